"""Sharded engines: which assets a shard owns, and its share of the collective's capital.
Pure (no I/O). See docs/sharding.md.

`rawe consensus --shard K/N` owns the assets whose stable hash falls into shard K:
``crc32(asset, UTF-8) mod N == K``. K is 0-based (0 to N-1). crc32 (zlib) is the same in
every process, on every machine and in every Python version, unlike `hash()`, which is
salted per process.

Global limits without a cross-shard round trip: each shard trades a fixed share of the
collective's capital (a budget), so that the sum over the shards can never pass a limit:

* cash: a shard starts with ``initial_cash / N``;
* open positions: ``max_open_positions`` is split, shard K gets ``M // N`` plus one for
  ``K < M mod N``: the shares add up to M exactly (N > M would leave a shard nothing: refused);
* gross exposure: a multiple of equity; each shard keeps its own gross under that multiple of
  its own equity, so the sum stays under the multiple of the sum;
* a proposal's size stays a fraction of the collective's equity, which a shard counts as N
  times its own (so positions are as large as unsharded), and `max_position_fraction` is
  applied to the same base.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from rawe_cli.config import Settings
from rawe_cli.errors import UsageError

MAX_SHARDS = 256
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True, slots=True)
class Shard:
    index: int  # K, 0-based
    count: int  # N

    def owns(self, asset: str) -> bool:
        return shard_of(asset, self.count) == self.index

    def misrouted(self, asset: str) -> str:
        """Why a proposal on `asset` does not belong here ("" when it does)."""
        other = shard_of(asset, self.count)
        if other == self.index:
            return ""
        return f"asset {asset!r} belongs to shard {other}/{self.count}, not {self}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(asset: str, count: int) -> int:
    """The shard (0-based) that owns `asset` among `count` shards."""
    return zlib.crc32(asset.encode("utf-8", "surrogateescape")) % count if count > 1 else 0


def parse_shard(text: str) -> Shard:
    """`K/N` (K 0-based) -> Shard; anything else is a usage error (one line, exit 2)."""
    m = _SPEC.fullmatch(text or "")
    if m is None:
        raise UsageError(f"--shard {text!r}: expected K/N, e.g. 0/2 and 1/2 for two shards "
                         "(K is 0-based)")
    k, n = int(m.group(1)), int(m.group(2))
    if not 1 <= n <= MAX_SHARDS:
        raise UsageError(f"--shard {text!r}: N must be 1 to {MAX_SHARDS}, got {n}")
    if k >= n:
        raise UsageError(f"--shard {text!r}: K is 0-based and must be below N (0 to {n - 1})")
    return Shard(k, n)


def check_count(n: int | None, flag: str = "--shards") -> int:
    """A shard count from the settings, the environment or a flag (0/None: unsharded)."""
    if n is None or n == 0:
        return 0
    if not 1 <= n <= MAX_SHARDS:
        raise UsageError(f"{flag}: must be 1 to {MAX_SHARDS} (0 or unset: not sharded), got {n}")
    return n


def open_positions_share(total: int, shard: Shard) -> int:
    """Shard K's share of `max_open_positions`: the shares add up to `total`."""
    base, extra = divmod(total, shard.count)
    return base + (1 if shard.index < extra else 0)


def budget(settings: Settings, shard: Shard) -> Settings:
    """The settings of one shard's engine: its share of the cash and of the open positions
    (the multiples of equity stay as they are: they hold per shard, so for the sum too)."""
    if shard.count > settings.max_open_positions:
        raise UsageError(f"--shard {shard}: max_open_positions ({settings.max_open_positions}) "
                         f"cannot be split over {shard.count} shards (a shard would get none); "
                         "raise it or use fewer shards")
    return dataclasses.replace(
        settings, initial_cash=settings.initial_cash / shard.count,
        max_open_positions=open_positions_share(settings.max_open_positions, shard))


Tally = dict[str, float]  # field (`wins:<name>`, `losses:<name>`, `pnl:<name>`) -> increment


def outcome_increments(agents: Sequence[str], weights: Sequence[float],
                       opponents: Sequence[str], pnl: float) -> Tally:
    """What one closed position adds to its agents' records, as increments (the credit of
    `core.weighting.apply_closed_trade`: voters win or lose and share the P&L by the weight
    they voted with; opponents record the opposite and no P&L)."""
    won = pnl > 0
    total = sum(weights) or float(len(agents)) or 1.0
    shares = weights if len(weights) == len(agents) else (1.0,) * len(agents)
    out: Tally = {}
    for name, share in zip(agents, shares, strict=True):
        key = f"wins:{name}" if won else f"losses:{name}"
        out[key] = out.get(key, 0) + 1
        out[f"pnl:{name}"] = out.get(f"pnl:{name}", 0.0) + pnl * share / total
    for name in opponents:
        key = f"losses:{name}" if won else f"wins:{name}"
        out[key] = out.get(key, 0) + 1
    return out
