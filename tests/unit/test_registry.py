"""Both registry backends keep one contract: TTL'd node records and exclusive stream claims."""

from __future__ import annotations

import asyncio

import pytest

from signaling.cluster.registry import MemoryRegistry, RedisRegistry, RegistryError
from tests.redisd import redis_server  # noqa: F401  (a fixture)


@pytest.fixture(params=["memory", "redis"])
async def registry(request):
    if request.param == "memory":
        yield MemoryRegistry()
        return
    server = request.getfixturevalue("redis_server")
    backend = RedisRegistry(server.url, prefix="test:")
    yield backend
    await backend.close()


async def test_node_records_expire_with_their_ttl(registry) -> None:
    await registry.put_node("a", {"url": "http://127.0.0.1:1"}, ttl=0.3)
    await registry.put_node("b", {"url": "http://127.0.0.1:2"}, ttl=30)
    assert set(await registry.nodes()) == {"a", "b"}
    await asyncio.sleep(0.5)
    assert await registry.nodes() == {"b": {"url": "http://127.0.0.1:2"}}
    await registry.remove_node("b")
    assert await registry.nodes() == {}


async def test_a_claim_is_exclusive_until_released_or_expired(registry) -> None:
    assert await registry.claim("live/x", "a", ttl=0.4) == "a"
    assert await registry.claim("live/x", "b", ttl=0.4) == "a"
    assert await registry.claim("live/x", "a", ttl=0.4) == "a"  # renewal by the holder
    await registry.release("live/x", "b")  # only the holder may release
    assert await registry.owner("live/x") == "a"
    await asyncio.sleep(0.6)
    assert await registry.owner("live/x") is None
    assert await registry.claim("live/x", "b", ttl=5) == "b"
    await registry.release("live/x", "b")
    assert await registry.owner("live/x") is None


async def test_renewal_keeps_a_claim_past_its_first_ttl(registry) -> None:
    assert await registry.claim("s", "a", ttl=0.4) == "a"
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert await registry.claim("s", "a", ttl=0.4) == "a"
    assert await registry.claim("s", "b", ttl=0.4) == "a"


async def test_an_unreachable_redis_is_a_registry_error(redis_server) -> None:  # noqa: F811
    backend = RedisRegistry(redis_server.url, timeout=0.5)
    await backend.put_node("a", {}, ttl=5)
    redis_server.stop()
    with pytest.raises(RegistryError):
        await backend.nodes()
    redis_server.start()
    await backend.put_node("a", {}, ttl=5)  # reconnects by itself
    assert set(await backend.nodes()) == {"a"}
    await backend.close()


async def test_records_that_are_not_ours_are_ignored(redis_server) -> None:  # noqa: F811
    backend = RedisRegistry(redis_server.url, prefix="p:")
    await backend.client.set("p:node:junk", "not json")
    await backend.client.set("p:node:list", "[1, 2]")
    await backend.put_node("ok", {"n": 1}, ttl=5)
    assert await backend.nodes() == {"ok": {"n": 1}}
    await backend.close()
