"""One active consensus engine: a lease (SET NX PX) plus a fencing token (INCR).

The engine that acquires the lease increments the fence counter and writes with that token;
`Store.save` refuses a write whose token is not the current one. A standby polls for the
lease and takes over when the active engine stops renewing it (killed, hung, partitioned).
"""

from __future__ import annotations

from typing import Any

from rawe_cli.keys import Keys

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    def __init__(self, client: Any, keys: Keys, owner: str, ttl_ms: int = 3000) -> None:
        self.r = client
        self.keys = keys
        self.owner = owner
        self.ttl_ms = ttl_ms
        self.token: int | None = None

    async def try_acquire(self) -> int | None:
        """The new fencing token if this owner got the lease, else None."""
        got = await self.r.set(self.keys.lease, self.owner, nx=True, px=self.ttl_ms)
        if not got:
            return None
        self.token = int(await self.r.incr(self.keys.fence))
        return self.token

    async def renew(self) -> bool:
        """Extend the lease; False if it is no longer ours (expired and taken, or wiped)."""
        ok = await self.r.eval(_RENEW, 1, self.keys.lease, self.owner, self.ttl_ms)
        return bool(ok)

    async def release(self) -> None:
        await self.r.eval(_RELEASE, 1, self.keys.lease, self.owner)

    async def holder(self) -> str | None:
        return await self.r.get(self.keys.lease)
