"""Server-reflexive discovery, sans-IO: requests, resends, answers, failures, and the flag."""

from __future__ import annotations

import random

import pytest

from sfu.protocol.reflexive import ATTEMPTS, REFRESH, RETRY, RTO, ReflexiveDiscovery
from sfu.wire import stun
from signaling.sdp.candidates import MAX_STUN_SERVERS, split_stun, stun_server
from signaling.startup.flags import parse_args

SERVER = ("192.0.2.10", 3478)
PUBLIC = ("203.0.113.7", 8000)


def answer(request: bytes, mapped: tuple[str, int] = PUBLIC) -> stun.Message:
    tid = stun.parse(request).transaction_id
    value = stun.encode_xor_address(*mapped, tid)
    return stun.parse(stun.encode(stun.BINDING_SUCCESS, tid, [(stun.XOR_MAPPED_ADDRESS, value)]))


def test_a_server_is_asked_at_once_and_its_answer_is_the_reflexive_address() -> None:
    discovery = ReflexiveDiscovery(random.Random(1))
    discovery.add_server(SERVER, 0.0)
    ((request, to),) = discovery.poll(0.0)
    assert to == SERVER and stun.parse(request).msg_type == stun.BINDING_REQUEST
    assert discovery.poll(0.1) == []  # not yet due again
    assert discovery.handle(answer(request), SERVER, 0.2)
    assert discovery.addresses() == [PUBLIC]
    assert discovery.next_due() == pytest.approx(0.2 + REFRESH)
    assert discovery.poll(REFRESH) == []
    assert len(discovery.poll(0.2 + REFRESH)) == 1  # asked again: a mapping may change


def test_an_answer_from_elsewhere_or_to_no_request_is_refused() -> None:
    discovery = ReflexiveDiscovery(random.Random(2))
    discovery.add_server(SERVER, 0.0)
    ((request, _),) = discovery.poll(0.0)
    assert not discovery.handle(answer(request), ("192.0.2.66", 3478), 0.1)  # spoofed source
    other = stun.encode(stun.BINDING_REQUEST, b"x" * 12, [])
    assert not discovery.handle(answer(other), SERVER, 0.1)  # no such transaction
    assert discovery.addresses() == []


def test_an_unanswered_server_is_resent_then_given_up_and_asked_again_later() -> None:
    discovery = ReflexiveDiscovery(random.Random(3))
    discovery.add_server(SERVER, 0.0)
    sent = discovery.poll(0.0)
    now, wait = 0.0, RTO
    for _ in range(ATTEMPTS - 1):
        now += wait
        wait *= 2
        sent += discovery.poll(now)
    assert len(sent) == ATTEMPTS and len({data for data, _ in sent}) == 1  # the same request
    now += wait
    assert discovery.poll(now) == [] and discovery.failures == 1
    assert discovery.poll(now + RETRY - 0.01) == []
    assert len(discovery.poll(now + RETRY)) == 1


@pytest.mark.parametrize(
    ("value", "server"),
    [
        ("stun:stun.example.net:3478", ("stun.example.net", 3478)),
        ("stun:192.0.2.1:19302", ("192.0.2.1", 19302)),
        ("stun:[2001:db8::1]:3478", ("2001:db8::1", 3478)),
    ],
)
def test_a_stun_candidate_names_a_host_and_port(value: str, server: tuple[str, int]) -> None:
    assert stun_server(value) == server


@pytest.mark.parametrize(
    "value",
    ["stun:", "stun:host", "stun::3478", "stun:host:0", "stun:host:70000", "stun:host:x",
     "stun:a b:1", "stun:user@host:1", "stun:" + "h" * 300 + ":1"],
)  # fmt: skip
def test_a_bad_stun_candidate_is_refused_with_a_reason(value: str) -> None:
    with pytest.raises(ValueError, match="stun:"):
        stun_server(value)


def test_stun_servers_are_split_from_the_addresses_and_bounded() -> None:
    assert split_stun(["auto", "stun:s:1"]) == (["auto"], (("s", 1),))
    with pytest.raises(ValueError, match="at most"):
        split_stun([f"stun:s{i}:1" for i in range(MAX_STUN_SERVERS + 1)])


def test_the_flag_takes_stun_servers_beside_auto_and_refuses_bad_ones(capsys) -> None:
    args = parse_args(["--candidate", "stun:stun.example.net:3478"])
    assert args.candidate == ["auto"] and args.stun_servers == (("stun.example.net", 3478),)
    with pytest.raises(SystemExit):
        parse_args(["--candidate", "stun:stun.example.net"])
    assert "is not stun:HOST:PORT" in capsys.readouterr().err
