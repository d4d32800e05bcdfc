"""Every Redis key and stream name RAWE uses, under one namespace prefix.

Unsharded (the default, and every deployment made before sharding): `<ns>:<name>`, as
always, so an existing collective keeps its state where it is (docs/sharding.md).

Sharded (`shards` = N >= 1): every key carries a Redis Cluster hash tag, so that the keys a
script touches at once live in one slot (one cluster node): a shard's own keys are
`{<ns>:<K>of<N>}:<name>` (K 0-based), the keys of the whole collective (the agent registry,
the agents' P&L tallies, the market stream, the recorded shard count) `{<ns>}:<name>`.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "rawe"
CONSENSUS_GROUP = "consensus"


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str = DEFAULT_NAMESPACE
    shards: int = 0  # 0: unsharded (`<ns>:...` keys); N >= 1: sharded, hash-tagged keys
    shard: int | None = None  # this shard (0-based); None: the whole collective

    def _k(self, name: str) -> str:
        if not self.shards:
            return f"{self.namespace}:{name}"
        if self.shard is None:
            raise ValueError(f"{name}: a shard's key needs a shard (Keys.of(k))")
        return f"{{{self.namespace}:{self.shard}of{self.shards}}}:{name}"

    def _g(self, name: str) -> str:
        """A key of the whole collective (every shard's)."""
        return f"{{{self.namespace}}}:{name}" if self.shards else f"{self.namespace}:{name}"

    @property
    def sharded(self) -> bool:
        return self.shards > 0

    def of(self, shard: int) -> Keys:
        """The keys of one shard of this collective."""
        return Keys(self.namespace, self.shards, shard)

    def all_shards(self) -> list[Keys]:
        """Every shard's keys (one entry, these keys, when unsharded)."""
        return [self.of(k) for k in range(self.shards)] if self.shards else [self]

    def for_asset(self, asset: str) -> Keys:
        """The keys of the shard that owns `asset` (these keys when unsharded)."""
        if not self.shards:
            return self
        from rawe_cli.shards import shard_of

        return self.of(shard_of(asset, self.shards))

    @property
    def registry(self) -> str:
        """Hash: agent name -> JSON record, where agents register (HSETNX). Unsharded it is
        `agents`; sharded it is the collective's, and each shard keeps its own `agents`."""
        return self._g("agents") if self.shards else self._k("agents")

    @property
    def tally(self) -> str:
        """Sharded: hash of the agents' realized outcomes over every shard, by atomic
        increments: `wins:<name>`, `losses:<name>`, `pnl:<name>`, `updated:<name>`."""
        return self._g("tally")

    @property
    def tally_applied(self) -> str:
        """Sharded: sorted set of the closed decisions already added to `tally` (scored by
        the time they were), so that an outcome is added exactly once."""
        return self._g("tally:applied")

    @property
    def outbox(self) -> str:
        """Sharded: set of this shard's closed decisions whose outcome is not yet in `tally`
        (written in the same fenced write as the close)."""
        return self._k("outbox")

    @property
    def shard_count(self) -> str:
        """String: how many shards the collective has (written once, SET NX)."""
        return self._g("shards")

    @property
    def proposals(self) -> str:
        """Stream: proposals from agents (and `rawe inject-signal`)."""
        return self._k("proposals")

    @property
    def market(self) -> str:
        """Stream: bars and narrative events, published by whichever process owns the feed
        (one stream for every shard: each engine reads all of it, for its marks)."""
        return self._g("market")

    @property
    def dead_letter(self) -> str:
        """Stream: messages that were rejected, with the reason."""
        return self._k("deadletter")

    @property
    def agents(self) -> str:
        """Hash: agent name -> JSON record (personality, weight, wins, losses, pnl, updated):
        the engine's records (sharded: this shard's, see `registry`)."""
        return self._k("agents")

    @property
    def decisions(self) -> str:
        """Hash: decision id -> JSON ledger entry."""
        return self._k("decisions")

    @property
    def decision_index(self) -> str:
        """Sorted set: decision id scored by decision time."""
        return self._k("decisions:index")

    @property
    def positions(self) -> str:
        """Hash: asset -> JSON open position."""
        return self._k("positions")

    @property
    def portfolio(self) -> str:
        """Hash: cash, realized P&L, fees and other portfolio scalars."""
        return self._k("portfolio")

    @property
    def open_decisions(self) -> str:
        """Set: ids of decisions not final yet (pending or open): a restore reads these and
        the newest few, never the whole ledger."""
        return self._k("decisions:open")

    def seen_bucket(self, bucket: int) -> str:
        """Hash: proposal id -> stream entry id it was counted from, for the proposals whose
        window ends in `bucket` (SEEN_BUCKET seconds of ends each, store.py), so a proposal
        id never counts twice, across restarts too (a redelivery of the same entry is not a
        duplicate: it is a live vote being reclaimed). A bucket goes as a whole once its
        windows have ended (a proposal that old is refused as expired anyway)."""
        return self._k(f"seen:{bucket}")

    @property
    def seen_buckets(self) -> str:
        """Sorted set: the `seen_bucket` keys, scored by the last window end they hold."""
        return self._k("seen:buckets")

    @property
    def seen_proposals(self) -> str:
        """Hash: proposal id -> entry id, as written before the buckets (`seen_bucket`):
        read at a restore and trimmed; nothing new is written to it."""
        return self._k("seen")

    @property
    def seen_expiry(self) -> str:
        """Sorted set: `seen_proposals`' ids scored by the end of their window (read and
        trimmed, never written any more)."""
        return self._k("seen:expiry")

    @property
    def marks(self) -> str:
        """Hash: symbol -> last price."""
        return self._k("marks")

    @property
    def lease(self) -> str:
        """String: the active consensus engine's lease (owner id), with a TTL."""
        return self._k("lease")

    @property
    def fence(self) -> str:
        """Counter: the fencing token, incremented at every lease acquisition."""
        return self._k("fence")

    @property
    def fence_epoch(self) -> str:
        """String: a random epoch written with every lease acquisition. A token is the pair
        (counter, epoch): after Redis restarts empty the counter starts at 1 again, the
        epoch never repeats, so a token from before the restart cannot pass."""
        return self._k("fence:epoch")

    @property
    def marker(self) -> str:
        """String: the collective's state marker, a random id written with its first state.
        Gone means Redis came back empty: an engine that knew it never starts from nothing."""
        return self._k("state-marker")

    @property
    def regime_weights(self) -> str:
        """Hash: 'regime|agent' -> weight, for the regime scheme."""
        return self._k("regime-weights")
