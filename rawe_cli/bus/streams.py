"""The Redis transport: the only module that imports redis (and fakeredis).

Streams with consumer groups give at-least-once delivery: an entry is acked only after its
effect is durable, and entries left pending by a crashed consumer are reclaimed with
XAUTOCLAIM. The same code runs on a real Redis and on the embedded fakeredis server.

Measured quirks handled here (see DESIGN.md): fakeredis returns an XREADGROUP with COUNT at
once on an empty stream, so a read that comes back empty early sleeps briefly; and BLOCK is
kept at 1 s, under redis-py's socket timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple, TypeVar

from rawe_cli.bus.keys import Keys
from rawe_cli.errors import BusUnavailable, Fenced, RedisLost, StateDiverged

T = TypeVar("T")
Entry = tuple[str, dict[str, str]]
DEFAULT_URL = "redis://localhost:6379/0"
STREAM_MAXLEN = 500_000  # approximate cap of each stream (XADD MAXLEN ~)
BLOCK_MS = 1000


def connection_errors() -> tuple[type[BaseException], ...]:
    import redis.exceptions as rex

    return (rex.ConnectionError, rex.TimeoutError, ConnectionError, OSError)


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    if "@" in url:
        scheme, _, rest = url.partition("://")
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


async def connect(url: str | None, *, check: bool = True, retries: int = 3) -> Any:
    """A redis.asyncio client for `url`, or an embedded fakeredis one when url is None.

    `retries`: how often a command is retried on a connection error before it raises (a
    stale pooled connection needs one); the consensus engine keeps it at 1, so that an
    outage shows within about 0.1 s instead of hiding behind 0.7 s of retries.
    Raises BusUnavailable (one line) when a real server does not answer.
    """
    if url is None:
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True,
                                        encoding_errors="surrogateescape")
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    cluster = is_cluster_url(url)
    try:
        # `redis+cluster://host:port` (or rediss+cluster://): a Redis Cluster, any node as
        # the entry point (redis-py finds the others); every other URL: one server.
        make = (aioredis.RedisCluster.from_url if cluster else aioredis.from_url)
        client = make(
            url.replace("+cluster://", "://", 1) if cluster else url,
            decode_responses=True,
            # A field that is not UTF-8 must not make XREADGROUP itself raise (the entry would
            # stay pending and stop every engine that reclaims it). "surrogateescape" keeps
            # every byte (as U+DC80..U+DCFF, never a silent U+FFFD), so the codec can refuse
            # it with a reason, and a dead letter written back holds the original bytes.
            encoding_errors="surrogateescape",
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), retries),
            retry_on_error=[ConnectionError, TimeoutError],
            health_check_interval=10,
        )
        if not cluster:  # a cluster client keeps one pool per node, made as it finds them
            pool = client.connection_pool
            pool.connection_class = _hiredis_packing(pool.connection_class)
    except (ValueError, TypeError) as exc:
        raise BusUnavailable(f"bad Redis URL {_safe_url(url)!r}: {exc}") from None
    if check:
        import redis.exceptions as rex

        try:
            if cluster:
                await client.initialize()  # the slots map: every node must answer
            await client.ping()
        except (*connection_errors(), rex.RedisError) as exc:
            await client.aclose()
            raise BusUnavailable(refusal(url, exc)) from None
    return client


def is_cluster_url(url: str | None) -> bool:
    """`redis+cluster://...` or `rediss+cluster://...`: a Redis Cluster."""
    return bool(url) and url.split("://", 1)[0].endswith("+cluster")  # type: ignore[union-attr]


_PACKING: dict[type, type] = {}


def _hiredis_packing(base: type) -> type:
    """`base` (redis-py's asyncio connection class for the URL's scheme) with commands packed
    by hiredis, in C. redis-py's synchronous client does this already; its asyncio client
    packs every argument in Python, which cost the engine ~20% of its time on the fenced
    write (thousands of arguments per batch). Text that is not UTF-8 (kept as U+DC80..U+DCFF
    by `surrogateescape`, e.g. a dead letter's original bytes) goes through redis-py's own
    packer, which turns it back into the original bytes."""
    cls = _PACKING.get(base)
    if cls is None:
        import hiredis

        class Packed(base):  # type: ignore[misc, valid-type]
            def pack_command(self, *args: Any) -> list[bytes]:
                if isinstance(args[0], str) and " " in args[0]:
                    return super().pack_command(*args)  # 'CONFIG GET': redis-py splits it
                try:
                    return [hiredis.pack_command(args)]
                except (UnicodeEncodeError, TypeError):
                    # surrogates; or a type hiredis does not pack (redis-py says which)
                    return super().pack_command(*args)

        Packed.__name__ = Packed.__qualname__ = f"Hiredis{base.__name__}"
        cls = _PACKING[base] = Packed
    return cls


def refusal(url: str, exc: BaseException) -> str:
    """One line for a Redis that cannot be reached, or answers but refuses us."""
    import redis.exceptions as rex

    where = _safe_url(url)
    text = str(exc).splitlines()[0] if str(exc) else "no answer"
    if isinstance(exc, rex.AuthenticationError) or "NOAUTH" in text or "WRONGPASS" in text:
        return (f"Redis at {where} refused the credentials ({text}); put them in the URL: "
                "redis://USER:PASSWORD@host:port/db")
    if isinstance(exc, rex.InvalidResponse) or "Protocol error" in text:
        return (f"{where} does not answer as Redis ({text}): is that the Redis port? "
                "(redis-server listens on 6379 by default)")
    if "DB index is out of range" in text:
        db = url.rsplit("/", 1)[-1] if url.count("/") >= 3 else "?"
        return (f"Redis at {where}: database {db} does not exist (DB index is out of range); "
                "a default server has 16, /0 to /15")
    if isinstance(exc, rex.ResponseError):
        return f"Redis at {where} refused the connection: {text}"
    return f"cannot reach Redis at {where}: {exc.__class__.__name__}: {text}"


async def with_reconnect(
    op: Callable[[], Awaitable[T]],
    *,
    say: Callable[[str], None],
    max_wait: float = 1.0,
    give_up_after: float = 600.0,
) -> T:
    """Run `op`; while Redis is unreachable, retry with exponential backoff and say so."""
    delay = 0.1
    started = None
    errors = connection_errors()
    while True:
        try:
            result = await op()
        except errors as exc:
            now = time.monotonic()
            if started is None:
                started = now
                say(f"Redis unreachable ({exc.__class__.__name__}); reconnecting with backoff")
            elif now - started > give_up_after:
                raise BusUnavailable(f"Redis unreachable for {give_up_after:.0f} s; giving up"
                                     ) from None
            await asyncio.sleep(delay)
            delay = min(max_wait, delay * 2)
            continue
        if started is not None:
            say(f"Redis reachable again after {time.monotonic() - started:.1f} s")
        return result


class Token(NamedTuple):
    """A fencing token: the counter (INCR at every lease acquisition) and the random epoch
    written with it. The counter alone repeats after Redis restarts empty; the pair cannot."""

    counter: int
    epoch: str

    def __str__(self) -> str:
        return f"{self.counter}/{self.epoch[:8]}"


# Drop the buckets of seen ids whose windows have all ended (RAWE.TRIM buckets cutoff limit
# legacy-hash legacy-zset): UNLINK frees a bucket off Redis' main thread. Ids of the format
# before the buckets (one hash, one sorted set of ends) are trimmed the old way.
_TRIM = """
local function rawe_trim(index, cutoff, limit, hash, ends)
  local old = redis.call('ZRANGEBYSCORE', index, '-inf', cutoff, 'LIMIT', 0, limit)
  if #old > 0 then
    redis.call('UNLINK', unpack(old))
    redis.call('ZREM', index, unpack(old))
  end
  local ids = redis.call('ZRANGEBYSCORE', ends, '-inf', cutoff, 'LIMIT', 0, limit)
  if #ids > 0 then
    redis.call('HDEL', hash, unpack(ids))
    redis.call('ZREM', ends, unpack(ids))
  end
end
"""
# Apply a list of commands atomically, after checking the fencing token. KEYS: fence,
# fence epoch, state marker, index of the seen-id buckets. ARGV[1] = the token's counter
# ('' = no check), ARGV[2] = its epoch, ARGV[3] = the body, JSON: [seen, commands], `seen`
# per bucket [bucket key, last window end it may hold, flat pairs (proposal id, entry id,
# ...)] the write records as counted (written into the bucket once checked, the bucket
# into the index), `commands` lists of words. One JSON text instead of thousands of
# arguments: msgspec writes it in C at ~20 ns a word, where packing each word as an
# argument costs ~200 ns (hiredis) to ~1 us (redis-py). Then commands whose words may not
# be UTF-8 (dead letters keep the original bytes) or are long JSON texts (ledger entries) as
# arguments: a count n and the n words of one command, and so on. Every check comes before
# the first write (a Lua error does not undo earlier writes): a token that is not the
# current one is FENCED, or EMPTY when Redis lost the collective's state (the marker is
# gone); a proposal id already counted from another entry is DUPLICATE. XACK runs through
# pcall (a consumer group re-created under us must not abort the rest); RAWE.TRIM: _TRIM.
_APPLY = """
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  local verb = ARGV[i + 1]
  if verb == 'XACK' then
    redis.pcall(unpack(ARGV, i + 1, i + n))
  elseif verb == 'RAWE.TRIM' then
    rawe_trim(ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6])
  else
    redis.call(unpack(ARGV, i + 1, i + n))
  end
  i = i + n + 1
end
"""
_FENCED_WRITE = _TRIM + """
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[1])
  if current ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then
    if redis.call('EXISTS', KEYS[3]) == 0 then
      return redis.error_reply('EMPTY the state marker is gone')
    end
    return redis.error_reply('FENCED token is ' .. tostring(current))
  end
end
local body = cjson.decode(ARGV[3])
local seen, cmds = body[1], body[2]
for _, g in ipairs(seen) do  -- one HMGET per 200 ids, not an HGET each
  local pairs = g[3]
  for j = 1, #pairs, 400 do
    local ids = {}
    for k = j, math.min(j + 399, #pairs), 2 do ids[#ids + 1] = pairs[k] end
    local known = redis.call('HMGET', g[1], unpack(ids))
    for n = 1, #ids do
      local was = known[n]
      if was and was ~= pairs[j + 2 * n - 1] then
        return redis.error_reply('DUPLICATE ' .. ids[n] .. ' was counted from ' .. was)
      end
    end
  end
end
for _, g in ipairs(seen) do
  local pairs = g[3]
  for j = 1, #pairs, 400 do
    redis.call('HSET', g[1], unpack(pairs, j, math.min(j + 399, #pairs)))
  end
  redis.call('ZADD', KEYS[4], g[2], g[1])
end
for _, cmd in ipairs(cmds) do
  local verb = cmd[1]
  if verb == 'XACK' then
    redis.pcall(unpack(cmd))
  elseif verb == 'RAWE.TRIM' then
    rawe_trim(cmd[2], cmd[3], cmd[4], cmd[5], cmd[6])
  else
    if verb == 'ZADD' then  -- scores sent as JSON numbers: exact text for Redis
      for k = 3, #cmd, 2 do
        if type(cmd[k]) == 'number' then cmd[k] = string.format('%.17g', cmd[k]) end
      end
    end
    redis.call(unpack(cmd))
  end
end
local i = 4
""" + _APPLY + "return 1\n"
# Write a whole state into a Redis that lost it, only while the state marker is absent, then
# set the marker and take the lease if it is free. KEYS: marker, lease, fence, fence epoch.
# ARGV: marker, owner, ttl ms, new epoch, then the commands.
_WRITE_IF_EMPTY = _TRIM + """
local existing = redis.call('GET', KEYS[1])
if existing then
  return {'taken', existing}
end
local i = 5
""" + _APPLY + """
redis.call('SET', KEYS[1], ARGV[1])
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) then
  local n = redis.call('INCR', KEYS[3])
  redis.call('SET', KEYS[4], ARGV[4])
  return {'ok', tostring(n)}
end
return {'held', redis.call('GET', KEYS[2]) or ''}
"""
_CHUNK = 200  # fields (or ids) per command, to stay far below Lua's unpack limit

Command = tuple[str | float, ...]  # words; a ZADD score may be a float


def chunked(name: str, key: str, words: list[Any], per: int = _CHUNK) -> list[Command]:
    """`name key w1 w2 ...` split into commands of at most `per` pairs/ids."""
    step = per * (2 if name in ("HSET", "ZADD") else 1)
    return [(name, key, *words[i:i + step]) for i in range(0, len(words), step)]


def is_nogroup(exc: BaseException) -> bool:
    """A consumer group (or its stream) that is gone: Redis restarted empty (or was
    flushed under a blocked read: UNBLOCKED)."""
    text = str(exc)
    return ("NOGROUP" in text or "UNBLOCKED" in text
            or "requires the key to exist" in text)  # fakeredis's wording


_BODY = None


def _body(seen: list[tuple[str, str, list[str]]], commands: list[Command]) -> bytes:
    global _BODY
    if _BODY is None:
        import msgspec

        _BODY = msgspec.json.Encoder()
    return _BODY.encode((seen, commands))


async def fenced_write(client: Any, keys: Keys, token: Token | None, commands: list[Command],
                       *, seen: list[tuple[str, str, list[str]]] = (),  # type: ignore
                       raw: list[Command] = (),  # type: ignore[assignment]
                       verify: bool = False) -> None:
    """Run `commands` atomically in one round trip, only if the fence still holds `token`
    and no proposal id in `seen` (per bucket: its key, the last window end it may hold,
    flat pairs: id, entry id, id, ...; `SeenIds.wire`) was counted from another entry; the
    pairs are then recorded in their buckets. `commands` travel as one JSON text
    (their words: text and numbers); `raw` commands as arguments, for words that may not be
    UTF-8 (dead letters) and long JSON texts (ledger entries: escaped inside the body, they
    cost Redis more to unescape than to take as arguments).

    Raises Fenced when another engine has taken over since, RedisLost when Redis lost the
    collective's state, StateDiverged on a proposal counted twice. With `verify`, the token
    is checked even when there is nothing to write.
    """
    if not commands and not seen and not raw and not (verify and token is not None):
        return
    import redis.exceptions as rex

    args: list[Any] = ["", ""] if token is None else [str(token.counter), token.epoch]
    args.append(_body(seen, commands))
    for cmd in raw:
        args.append(str(len(cmd)))
        args.extend(cmd)
    script = getattr(client, "_rawe_fenced_write", None)
    if script is None:
        script = client.register_script(_FENCED_WRITE)
        client._rawe_fenced_write = script
    try:
        await script(keys=[keys.fence, keys.fence_epoch, keys.marker, keys.seen_buckets],
                     args=args)
    except rex.ResponseError as exc:
        text = str(exc)
        if "FENCED" in text:
            raise Fenced(f"{text.split('FENCED ', 1)[-1]}, this engine holds {token}"
                         ) from None
        if "EMPTY" in text:
            raise RedisLost("Redis lost the collective's state (the state marker is gone)"
                            ) from None
        if "DUPLICATE" in text:
            raise StateDiverged(f"proposal {text.split('DUPLICATE ', 1)[-1]}") from None
        raise


async def write_if_empty(client: Any, keys: Keys, marker: str, owner: str, ttl_ms: int,
                         epoch: str, commands: list[Command]) -> tuple[str, str]:
    """Write `commands` (a whole state) only if the collective's state marker is absent,
    then set it to `marker` and take the lease if it is free. Returns ("ok", counter of the
    new token), ("held", holder: written, but another engine holds the lease) or ("taken",
    the marker found: another engine's state is there, nothing was written)."""
    args: list[str] = [marker, owner, str(ttl_ms), epoch]
    for cmd in commands:
        args.append(str(len(cmd)))
        args.extend(cmd)
    reply = await client.eval(_WRITE_IF_EMPTY, 4, keys.marker, keys.lease, keys.fence,
                              keys.fence_epoch, *args)
    return str(reply[0]), str(reply[1])


def dead_letter_fields(source: str, entry_id: str, fields: dict[Any, Any], reason: str,
                       now: float) -> dict[str, str]:
    """A dead letter: the reason, where it came from, and the original fields (f_*)."""
    record = {"source": source, "entry_id": entry_id, "reason": reason, "at": repr(now)}
    for k, v in fields.items():
        key = k.decode(errors="surrogateescape") if isinstance(k, bytes) else str(k)
        value = v.decode(errors="surrogateescape") if isinstance(v, bytes) else str(v)
        record[f"f_{key}"] = value[:10_000]
    return record


def xadd_command(stream: str, fields: dict[str, str]) -> Command:
    """XADD as a command word list (for a fenced write)."""
    return ("XADD", stream, "MAXLEN", "~", str(STREAM_MAXLEN), "*",
            *(w for kv in fields.items() for w in kv))


class Bus:
    """Streams: proposals, market data, dead letters."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.r = client
        self.keys = keys

    def _raw_xreadgroup(self) -> None:
        """XREADGROUP replies as hiredis parsed them: redis-py's own parsing (RESP3 to RESP2
        shapes, then a dict per entry) cost ~0.4 us an entry, a tenth of the engine's CPU at
        full load. Only this class reads with XREADGROUP (`read`, `own_pending`)."""
        if not getattr(self.r, "_rawe_raw_xread", False):
            self.r.set_response_callback("XREADGROUP", _as_is)
            self.r._rawe_raw_xread = True

    async def ensure_group(self, stream: str, group: str, start: str = "0") -> None:
        import redis.exceptions as rex

        try:
            await self.r.xgroup_create(stream, group, id=start, mkstream=True)
        except rex.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def add(self, stream: str, fields: dict[str, str]) -> str:
        return await self.r.xadd(stream, fields, maxlen=STREAM_MAXLEN, approximate=True)

    async def add_many(self, stream: str, batch: list[dict[str, str]]) -> list[str]:
        if not batch:
            return []
        async with self.r.pipeline(transaction=False) as pipe:
            for fields in batch:
                pipe.xadd(stream, fields, maxlen=STREAM_MAXLEN, approximate=True)
            return await pipe.execute()

    async def read(self, stream: str, group: str, consumer: str, *, count: int = 500,
                   block_ms: int | None = BLOCK_MS) -> list[Entry]:
        """New entries for this consumer; [] after at most about `block_ms`."""
        started = time.monotonic()
        self._raw_xreadgroup()
        async with _group_errors():
            reply = await self.r.xreadgroup(group, consumer, {stream: ">"}, count=count,
                                            block=block_ms)
        entries = _raw_entries(reply)
        if not entries and block_ms:
            # fakeredis answers at once on an empty stream: don't spin.
            left = block_ms / 1000 - (time.monotonic() - started)
            if left > 0.005:
                await asyncio.sleep(min(left, 0.05))
        return entries

    async def ack(self, stream: str, group: str, ids: list[str]) -> None:
        if ids:
            await self.r.xack(stream, group, *ids)

    async def reclaim(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                      count: int = 500) -> list[Entry]:
        """Entries pending longer than `min_idle_ms` with any consumer, now this one's."""
        out: list[Entry] = []
        start = "0-0"
        while True:
            async with _group_errors():
                reply = await self.r.xautoclaim(stream, group, consumer, min_idle_ms, start,
                                                count=count)
            start, claimed = reply[0], reply[1]
            out.extend((eid, fields) for eid, fields in claimed if fields is not None)
            if start in ("0-0", b"0-0") or not claimed:
                return out

    async def own_pending(self, stream: str, group: str, consumer: str, count: int = 1000
                          ) -> list[Entry]:
        """Every entry pending under `consumer` (delivered to it, not acked), oldest first:
        XREADGROUP from id 0 reads its own history, page by page."""
        out: list[Entry] = []
        start = "0"
        while True:
            self._raw_xreadgroup()
            async with _group_errors():
                reply = await self.r.xreadgroup(group, consumer, {stream: start}, count=count)
            got = _raw_entries(reply)
            out.extend(got)
            if len(got) < count:
                return out
            start = got[-1][0]

    async def claim_idle(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                         count: int = 1000) -> list[Entry]:
        """Entries idle for `min_idle_ms` under *other* consumers (a deposed or dead engine
        read them and never acked), now this consumer's."""
        async with _group_errors():
            pending = await self.r.xpending_range(stream, group, min="-", max="+",
                                                  count=count, idle=min_idle_ms)
            ids = [p["message_id"] for p in pending if p["consumer"] != consumer]
            if not ids:
                return []
            claimed = await self.r.xclaim(stream, group, consumer, min_idle_ms, ids)
        return [(eid, fields) for eid, fields in claimed if fields is not None]

    async def pending_count(self, stream: str, group: str) -> int:
        async with _group_errors():
            info = await self.r.xpending(stream, group)
        return int(info["pending"] if isinstance(info, dict) else info[0])

    async def dead_letter(self, source: str, entry_id: str, fields: dict[str, Any],
                          reason: str, now: float) -> str:
        """Write one dead letter now (not fenced: for notes outside the engine's writes)."""
        return await self.add(self.keys.dead_letter,
                              dead_letter_fields(source, entry_id, fields, reason, now))

    async def tail(self, stream: str, last_id: str, count: int = 1000,
                   block_ms: int | None = None) -> list[Entry]:
        """Plain XREAD after `last_id` (no group): for followers such as the market feed."""
        reply = await self.r.xread({stream: last_id}, count=count, block=block_ms)
        return _entries(reply)


@contextlib.asynccontextmanager
async def _group_errors() -> AsyncIterator[None]:
    """NOGROUP (the consumer group is gone: Redis restarted empty) becomes RedisLost."""
    import redis.exceptions as rex

    try:
        yield
    except rex.ResponseError as exc:
        if is_nogroup(exc):
            raise RedisLost(f"the consumer group is gone ({str(exc).splitlines()[0]})"
                            ) from None
        raise


def _as_is(response: Any, **_options: Any) -> Any:
    return response


def _raw_entries(reply: Any) -> list[Entry]:
    """Entries from XREADGROUP's reply for one stream, as the server sent it: RESP3
    `{stream: [[id, [field, value, ...]], ...]}` or RESP2 `[[stream, [...]]]`. An entry
    deleted while pending has no fields (nil): {}."""
    if not reply:
        return []
    items = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
    out: list[Entry] = []
    add = out.append
    for eid, flat in items:
        if flat is None:
            add((eid, {}))
        elif isinstance(flat, dict):
            add((eid, flat))
        elif len(flat) == 2:  # the common case: one field, `data`
            add((eid, {flat[0]: flat[1]}))
        else:
            it = iter(flat)
            add((eid, dict(zip(it, it, strict=False))))
    return out


def _entries(reply: Any) -> list[Entry]:
    if not reply:
        return []
    if isinstance(reply, dict):  # RESP3
        items = next(iter(reply.values()))
        if items and isinstance(items[0], list) and len(items) == 1 and not isinstance(
                items[0][0], str):
            items = items[0]
    else:
        items = reply[0][1]
    return [(eid, fields or {}) for eid, fields in items]
