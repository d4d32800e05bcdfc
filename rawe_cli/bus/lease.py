"""One active consensus engine: a lease (SET NX PX) plus a fencing token.

The engine that acquires the lease increments the fence counter and writes a fresh random
epoch, in one script; its token is the pair (counter, epoch), and `Store.save` refuses a
write whose token is not the current one. After Redis restarts empty the counter starts at 1
again, but the epoch cannot repeat, so a token from before the restart never passes.

The same script guards the state: an engine that has seen the collective's state marker
(`<ns>:state-marker`) never takes the lease of a Redis where the marker is gone (it came back
empty): starting from nothing there would silently throw the state away. It waits for the
engine that holds the state to write it back (`Store.rewrite`). An engine that has never seen
a marker (the first start) takes the lease and writes a new marker.

A standby polls for the lease and takes over when the active engine stops renewing it
(killed, hung, partitioned).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from rawe_cli.bus.keys import Keys
from rawe_cli.bus.streams import Token

# KEYS: lease, fence, fence epoch, marker. ARGV: owner, ttl ms, new epoch, the marker the
# caller knows ('' = none), a new marker (used when there is none and the caller knows none).
_ACQUIRE = """
local marker = redis.call('GET', KEYS[4])
if not marker and ARGV[4] ~= '' then
  return {'empty', redis.call('GET', KEYS[1]) or ''}
end
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {'held', redis.call('GET', KEYS[1]) or '', marker or ''}
end
local n = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[3], ARGV[3])
local fresh = '0'
if not marker then
  marker = ARGV[5]
  redis.call('SET', KEYS[4], marker)
  fresh = '1'
end
return {'ok', tostring(n), marker, fresh}
"""
# KEYS: lease, marker. 1: renewed; 0: not ours; -1: not ours and the state marker is gone.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
if redis.call('EXISTS', KEYS[2]) == 0 then
  return -1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
RENEWED, NOT_OURS, STATE_GONE = 1, 0, -1


def new_epoch() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True, slots=True)
class Acquired:
    """What a try to take the lease found."""

    outcome: str  # "ok" | "held" (another engine has it) | "empty" (the marker is gone)
    token: Token | None = None
    holder: str = ""
    marker: str = ""  # the collective's state marker now ("" when there is none)
    fresh: bool = False  # "ok" on a Redis without a marker: a new collective was started


class Lease:
    def __init__(self, client: Any, keys: Keys, owner: str, ttl_ms: int = 3000) -> None:
        self.r = client
        self.keys = keys
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.token: Token | None = None

    async def try_acquire(self, known_marker: str = "") -> Acquired:
        """Take the lease if it is free. With `known_marker` (the state marker this engine
        has seen), never on a Redis whose marker is gone."""
        k = self.keys
        epoch = new_epoch()
        reply = await self.r.eval(_ACQUIRE, 4, k.lease, k.fence, k.fence_epoch, k.marker,
                                  self.owner, self.ttl_ms, epoch, known_marker,
                                  "m-" + secrets.token_hex(8))
        outcome = str(reply[0])
        if outcome == "empty":
            return Acquired("empty", holder=str(reply[1]))
        if outcome == "held":
            return Acquired("held", holder=str(reply[1]), marker=str(reply[2]))
        self.token = Token(int(reply[1]), epoch)
        return Acquired("ok", self.token, self.owner, str(reply[2]), reply[3] == "1")

    async def renew(self) -> int:
        """Extend the lease: RENEWED, NOT_OURS (expired and taken, or wiped) or STATE_GONE
        (not ours, and the state marker is gone too: Redis came back empty)."""
        return int(await self.r.eval(_RENEW, 2, self.keys.lease, self.keys.marker, self.owner,
                                     self.ttl_ms))

    async def release(self) -> None:
        await self.r.eval(_RELEASE, 1, self.keys.lease, self.owner)

    async def holder(self) -> str | None:
        return await self.r.get(self.keys.lease)
