"""Who is in the cluster and who owns which stream: one interface, two backends.

Node records and stream claims are values with a time to live, renewed by their holder while
their cause lives, so a node that dies without a word leaves nothing behind once its TTL runs
out. MemoryRegistry keeps them in this process (one host, and the unit tests); RedisRegistry
keeps them in Redis under one key prefix, for nodes on many hosts. Claims are atomic: SET NX
to take one, and compare-and-expire or compare-and-delete scripts so that only the holder can
renew or release it.
"""

from __future__ import annotations

import json
import time
from typing import Protocol

import redis.asyncio as aioredis
from redis.exceptions import RedisError

__all__ = ["MemoryRegistry", "RedisRegistry", "Registry", "RegistryError"]

MAX_RECORD_BYTES = 64 * 1024  # a node record larger than this is ignored as corrupt

RENEW_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class RegistryError(Exception):
    """The registry could not be reached or answered nonsense; the caller decides what waits."""


class Registry(Protocol):
    async def put_node(self, name: str, record: dict, ttl: float) -> None: ...
    async def remove_node(self, name: str) -> None: ...
    async def nodes(self) -> dict[str, dict]: ...
    async def claim(self, stream: str, node: str, ttl: float) -> str:
        """Take or renew `stream` for `node`; the owner afterwards (`node` when it holds it)."""
        ...

    async def release(self, stream: str, node: str) -> None: ...
    async def owner(self, stream: str) -> str | None: ...
    async def close(self) -> None: ...


class MemoryRegistry:
    """The registry of one process: dicts of values with their expiry times."""

    def __init__(self, clock=time.monotonic) -> None:
        self.clock = clock
        self._nodes: dict[str, tuple[float, dict]] = {}
        self._claims: dict[str, tuple[float, str]] = {}

    def _live(self, table: dict) -> dict:
        now = self.clock()
        for key in [k for k, (expiry, _) in table.items() if expiry <= now]:
            del table[key]
        return table

    async def put_node(self, name: str, record: dict, ttl: float) -> None:
        self._nodes[name] = (self.clock() + ttl, dict(record))

    async def remove_node(self, name: str) -> None:
        self._nodes.pop(name, None)

    async def nodes(self) -> dict[str, dict]:
        return {name: record for name, (_, record) in self._live(self._nodes).items()}

    async def claim(self, stream: str, node: str, ttl: float) -> str:
        held = self._live(self._claims).get(stream)
        if held is not None and held[1] != node:
            return held[1]
        self._claims[stream] = (self.clock() + ttl, node)
        return node

    async def release(self, stream: str, node: str) -> None:
        if self._live(self._claims).get(stream, (0.0, ""))[1] == node:
            del self._claims[stream]

    async def owner(self, stream: str) -> str | None:
        held = self._live(self._claims).get(stream)
        return held[1] if held is not None else None

    async def close(self) -> None:
        pass


class RedisRegistry:
    """The registry in Redis: `{prefix}node:{name}` JSON records, `{prefix}stream:{name}` owners.

    Every call fails fast (a few seconds at most) with RegistryError; redis-py reconnects by
    itself on the next call once the server is back.
    """

    def __init__(self, url: str, prefix: str = "litesfu:", timeout: float = 1.0) -> None:
        self.prefix = prefix
        self.client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            retry_on_timeout=False,
        )
        self._renew = self.client.register_script(RENEW_SCRIPT)
        self._release = self.client.register_script(RELEASE_SCRIPT)

    def _node_key(self, name: str) -> str:
        return f"{self.prefix}node:{name}"

    def _stream_key(self, stream: str) -> str:
        return f"{self.prefix}stream:{stream}"

    async def put_node(self, name: str, record: dict, ttl: float) -> None:
        await self._call(self.client.set(self._node_key(name), json.dumps(record), px=_ms(ttl)))

    async def remove_node(self, name: str) -> None:
        await self._call(self.client.delete(self._node_key(name)))

    async def nodes(self) -> dict[str, dict]:
        pattern = self._node_key("*")
        keys = await self._call(_scan(self.client, pattern))
        values = await self._call(self.client.mget(keys)) if keys else []
        found = {}
        for key, value in zip(keys, values, strict=True):
            if value is None or len(value) > MAX_RECORD_BYTES:
                continue  # expired between SCAN and MGET, or not one of ours
            try:
                record = json.loads(value)
            except ValueError:
                continue
            if isinstance(record, dict):
                found[key.removeprefix(self._node_key(""))] = record
        return found

    async def claim(self, stream: str, node: str, ttl: float) -> str:
        key = self._stream_key(stream)
        if await self._call(self.client.set(key, node, nx=True, px=_ms(ttl))):
            return node
        if await self._call(self._renew(keys=[key], args=[node, _ms(ttl)])):
            return node
        owner = await self._call(self.client.get(key))
        if owner is None:  # expired between the two calls: try once more
            taken = await self._call(self.client.set(key, node, nx=True, px=_ms(ttl)))
            return node if taken else (await self._call(self.client.get(key))) or node
        return owner

    async def release(self, stream: str, node: str) -> None:
        await self._call(self._release(keys=[self._stream_key(stream)], args=[node]))

    async def owner(self, stream: str) -> str | None:
        return await self._call(self.client.get(self._stream_key(stream)))

    async def close(self) -> None:
        await self.client.aclose()

    @staticmethod
    async def _call(awaitable):
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise RegistryError(f"redis: {exc}") from exc


async def _scan(client: aioredis.Redis, pattern: str) -> list[str]:
    return [key async for key in client.scan_iter(match=pattern, count=200)]


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
