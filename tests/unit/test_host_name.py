"""--candidate-from-host: the Host header's domain name leads the candidates, resolved
(cached, bounded) or as an FQDN candidate; every bound and bad name tested."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from sfu.config import MediaConfig
from sfu.io.server import MediaServer
from signaling.http.app import create_app
from signaling.http.state import HOST_NAMES
from signaling.sdp.host_name import (
    MAX_LOOKUPS,
    MAX_NAMES,
    NAME,
    RESOLVE,
    TTL,
    HostNames,
    host_name,
)
from signaling.startup.flags import parse_args

OFFER = (Path(__file__).parent / "offers" / "obs_publish.sdp").read_text()


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("sfu.example.net", "sfu.example.net"),
        ("SFU.Example.NET:8443", "sfu.example.net"),
        ("sfu.example.net.", "sfu.example.net"),
        ("192.0.2.7:8080", None),
        ("[2001:db8::1]:8080", None),
        ("localhost:8080", None),
        ("", None),
        (None, None),
        ("bad_name.example.net", None),
        ("-x.example.net", None),
        ("a" * 64 + ".example.net", None),
        ("x." * 130 + "net", None),
        ("evil.example.net/x", None),
    ],
)
def test_only_a_valid_domain_name_is_taken_from_the_host(header: str | None, name: str | None):
    assert host_name(header) == name


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_names_are_resolved_once_cached_and_bounded() -> None:
    asked: list[str] = []

    async def lookup(name: str) -> list[str]:
        asked.append(name)
        if name.startswith("fail"):
            raise OSError("no such name")
        return ["203.0.113.7", "203.0.113.8", "2001:db8::7", "203.0.113.9", "203.0.113.10"]

    clock = Clock()
    names = HostNames(lookup, clock)
    await names.prepare("sfu.example.net")
    await names.prepare("sfu.example.net")
    assert asked == ["sfu.example.net"]
    assert names.addresses("sfu.example.net")[:2] == ["203.0.113.7", "203.0.113.8"]
    assert len(names.addresses("sfu.example.net")) == 4  # MAX_ADDRESSES
    await names.prepare("fail.example.net")
    assert names.addresses("fail.example.net") == [] and names.failures == 1
    await names.prepare("fail.example.net")
    assert names.failures == 1  # a failure is cached too
    clock.now += TTL + 1
    assert names.addresses("sfu.example.net") == []
    await names.prepare("sfu.example.net")
    assert asked.count("sfu.example.net") == 2
    for i in range(MAX_NAMES + 10):
        await names.prepare(f"n{i}.example.net")
    assert len(names._cache) == MAX_NAMES


async def test_lookups_at_once_are_bounded_and_a_slow_one_is_not_waited_for() -> None:
    release = asyncio.Event()

    async def slow(name: str) -> list[str]:
        await release.wait()
        return ["203.0.113.7"]

    names = HostNames(slow)
    waits = [names.prepare(f"n{i}.example.net") for i in range(MAX_LOOKUPS + 2)]
    await asyncio.wait_for(asyncio.gather(*waits), 5)  # each gives up after LOOKUP_TIMEOUT
    assert names.refused == 2
    await asyncio.sleep(0.05)
    assert names.failures == MAX_LOOKUPS  # too slow: failed, and cached as such
    assert names.addresses("n0.example.net") == []
    release.set()


async def answer_for(mode: str, host: str) -> str:
    media = MediaServer(MediaConfig(udp_host="127.0.0.1", udp_port=0, tcp_port=0))
    await media.start()
    app = create_app(media, ["127.0.0.1"], None, candidate_from_host=mode)

    async def lookup(name: str) -> list[str]:
        return ["203.0.113.7"] if name == "sfu.example.net" else []

    app[HOST_NAMES] = HostNames(lookup)
    try:
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as http:
            headers = {"Content-Type": "application/sdp", "Host": host}
            async with http.post(server.make_url("/whip/live"), data=OFFER, headers=headers) as r:
                assert r.status == 201, await r.text()
                return await r.text()
    finally:
        await media.stop()


def candidate_addresses(answer: str) -> list[str]:
    lines = [line for line in answer.split("\r\n") if line.startswith("a=candidate:")]
    return list(dict.fromkeys(line.split()[4] for line in lines))


async def test_resolve_leads_with_the_names_addresses() -> None:
    answer = await answer_for(RESOLVE, "sfu.example.net:8443")
    assert candidate_addresses(answer) == ["203.0.113.7", "127.0.0.1"]
    assert "c=IN IP4 203.0.113.7\r\n" in answer


async def test_name_leads_with_the_name_and_keeps_an_ip_in_the_c_line() -> None:
    answer = await answer_for(NAME, "sfu.example.net")
    assert candidate_addresses(answer) == ["sfu.example.net", "127.0.0.1"]
    assert "c=IN IP4 127.0.0.1\r\n" in answer


async def test_a_host_that_is_no_name_changes_nothing() -> None:
    answer = await answer_for(RESOLVE, "unknown.example.net")
    assert candidate_addresses(answer) == ["127.0.0.1"]
    answer = await answer_for(NAME, "127.0.0.1:8080")
    assert candidate_addresses(answer) == ["127.0.0.1"]


def test_the_flag_refuses_an_unknown_mode_from_the_environment(monkeypatch, capsys) -> None:
    monkeypatch.setenv("SFU_CANDIDATE_FROM_HOST", "dns")
    with pytest.raises(SystemExit):
        parse_args([])
    assert "--candidate-from-host must be one of off, resolve, name" in capsys.readouterr().err
    monkeypatch.setenv("SFU_CANDIDATE_FROM_HOST", "resolve")
    assert parse_args([]).candidate_from_host == RESOLVE
