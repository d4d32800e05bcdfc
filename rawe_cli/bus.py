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
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from rawe_cli.errors import BusUnavailable, Fenced
from rawe_cli.keys import Keys

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


async def connect(url: str | None, *, check: bool = True) -> Any:
    """A redis.asyncio client for `url`, or an embedded fakeredis one when url is None.

    Raises BusUnavailable (one line) when a real server does not answer.
    """
    if url is None:
        import fakeredis

        return fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer(), decode_responses=True,
                                        encoding_errors="replace")
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialBackoff

    try:
        client = aioredis.from_url(
            url,
            decode_responses=True,
            # A field that is not UTF-8 must not make XREADGROUP itself raise (the entry would
            # stay pending and stop every engine that reclaims it): it decodes with U+FFFD and
            # is then refused, with a reason, by the codec.
            encoding_errors="replace",
            socket_connect_timeout=2,
            socket_timeout=5,
            retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 3),
            retry_on_error=[ConnectionError, TimeoutError],
            health_check_interval=10,
        )
    except ValueError as exc:
        raise BusUnavailable(f"bad Redis URL {_safe_url(url)!r}: {exc}") from None
    if check:
        import redis.exceptions as rex

        try:
            await client.ping()
        except (*connection_errors(), rex.RedisError) as exc:
            await client.aclose()
            raise BusUnavailable(refusal(url, exc)) from None
    return client


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
    max_wait: float = 5.0,
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


# Apply a list of commands atomically, after checking the fencing token (ARGV[1]; '' = no
# check). ARGV[2..] is a flat list: a count n, then the n words of one command, and so on.
_FENCED_WRITE = """
if ARGV[1] ~= '' then
  local current = redis.call('GET', KEYS[1])
  if current ~= ARGV[1] then
    return redis.error_reply('FENCED token is ' .. tostring(current))
  end
end
local i = 2
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
return 1
"""
_CHUNK = 200  # fields (or ids) per command, to stay far below Lua's unpack limit

Command = tuple[str, ...]


def chunked(name: str, key: str, words: list[str], per: int = _CHUNK) -> list[Command]:
    """`name key w1 w2 ...` split into commands of at most `per` pairs/ids."""
    step = per * (2 if name in ("HSET", "ZADD") else 1)
    return [(name, key, *words[i:i + step]) for i in range(0, len(words), step)]


async def fenced_write(client: Any, fence_key: str, token: int | None,
                       commands: list[Command], *, verify: bool = False) -> None:
    """Run `commands` atomically in one round trip, only if the fence still holds `token`.

    Raises Fenced when another engine has taken over since. With `verify`, the token is
    checked even when there is nothing to write.
    """
    if not commands and not (verify and token is not None):
        return
    import redis.exceptions as rex

    args: list[str] = ["" if token is None else str(token)]
    for cmd in commands:
        args.append(str(len(cmd)))
        args.extend(cmd)
    script = getattr(client, "_rawe_fenced_write", None)
    if script is None:
        script = client.register_script(_FENCED_WRITE)
        client._rawe_fenced_write = script
    try:
        await script(keys=[fence_key], args=args)
    except rex.ResponseError as exc:
        if "FENCED" in str(exc):
            raise Fenced(f"{str(exc).split('FENCED ', 1)[-1]}, this engine holds {token}"
                         ) from None
        raise


class Bus:
    """Streams: proposals, market data, dead letters."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.r = client
        self.keys = keys

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
        reply = await self.r.xreadgroup(group, consumer, {stream: ">"}, count=count,
                                        block=block_ms)
        entries = _entries(reply)
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
            reply = await self.r.xautoclaim(stream, group, consumer, min_idle_ms, start,
                                            count=count)
            start, claimed = reply[0], reply[1]
            out.extend((eid, fields) for eid, fields in claimed if fields is not None)
            if start in ("0-0", b"0-0") or not claimed:
                return out

    async def claim_idle(self, stream: str, group: str, consumer: str, min_idle_ms: int,
                         count: int = 1000) -> list[Entry]:
        """Entries idle for `min_idle_ms` under *other* consumers (a deposed or dead engine
        read them and never acked), now this consumer's."""
        pending = await self.r.xpending_range(stream, group, min="-", max="+", count=count,
                                              idle=min_idle_ms)
        ids = [p["message_id"] for p in pending if p["consumer"] != consumer]
        if not ids:
            return []
        claimed = await self.r.xclaim(stream, group, consumer, min_idle_ms, ids)
        return [(eid, fields) for eid, fields in claimed if fields is not None]

    async def pending_count(self, stream: str, group: str) -> int:
        info = await self.r.xpending(stream, group)
        return int(info["pending"] if isinstance(info, dict) else info[0])

    async def dead_letter(self, source: str, entry_id: str, fields: dict[str, Any],
                          reason: str, now: float) -> str:
        record = {"source": source, "entry_id": entry_id, "reason": reason,
                  "at": repr(now)}
        for k, v in fields.items():
            key = k.decode() if isinstance(k, bytes) else str(k)
            value = v.decode(errors="replace") if isinstance(v, bytes) else str(v)
            record[f"f_{key}"] = value[:10_000]
        return await self.add(self.keys.dead_letter, record)

    async def tail(self, stream: str, last_id: str, count: int = 1000,
                   block_ms: int | None = None) -> list[Entry]:
        """Plain XREAD after `last_id` (no group): for followers such as the market feed."""
        reply = await self.r.xread({stream: last_id}, count=count, block=block_ms)
        return _entries(reply)


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
