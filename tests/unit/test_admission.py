"""Per-client admission, the proxy's client address, session owners and the CLI's auth default."""

from __future__ import annotations

from signaling.security.admission import Admission, AdmissionPolicy, forwarded_client
from signaling.security.auth import SessionOwners
from signaling.security.clients import client_key
from signaling.startup.flags import parse_args


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gone(session_id: str) -> str | None:
    return None


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    admission = Admission(AdmissionPolicy(max_pending=0, rate=10, burst=20), clock=clock)
    results = [admission.check("192.0.2.1", gone) for _ in range(25)]
    assert [r is None for r in results] == [True] * 20 + [False] * 5
    refusal = results[-1]
    assert refusal is not None and refusal.kind == "rate" and refusal.retry_after == 1
    assert "192.0.2.1" in refusal.reason and "10/s" in refusal.reason
    assert admission.check("192.0.2.2", gone) is None  # another client has its own bucket
    clock.now += 0.5  # five tokens back
    assert [admission.check("192.0.2.1", gone) is None for _ in range(6)] == [True] * 5 + [False]
    assert admission.refused["rate"] == 6


def test_pending_sessions_are_capped_until_they_connect_or_end() -> None:
    states = {}
    admission = Admission(AdmissionPolicy(max_pending=3, rate=0), clock=Clock())
    for i in range(3):
        assert admission.check("198.51.100.7", states.get) is None
        states[f"s{i}"] = "new"
        admission.created("198.51.100.7", f"s{i}")
    refusal = admission.check("198.51.100.7", states.get)
    assert refusal is not None and refusal.kind == "pending"
    assert "3 sessions not yet connected" in refusal.reason
    states["s0"] = "connected"
    assert admission.check("198.51.100.7", states.get) is None
    states["s3"] = "connecting"
    admission.created("198.51.100.7", "s3")
    assert admission.check("198.51.100.7", states.get) is not None
    del states["s1"]  # ended
    assert admission.check("198.51.100.7", states.get) is None


def test_client_table_is_bounded() -> None:
    admission = Admission(AdmissionPolicy(burst=1), max_clients=100, clock=Clock())
    for i in range(1000):
        admission.check(f"10.0.{i // 256}.{i % 256}", gone)
    assert len(admission) == 100


def test_ipv6_clients_are_counted_per_64() -> None:
    assert (
        client_key("2001:db8:1:2::5") == client_key("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    )
    assert client_key("::ffff:192.0.2.9") == "192.0.2.9"
    assert client_key("192.0.2.9") == "192.0.2.9"
    admission = Admission(AdmissionPolicy(max_pending=0, rate=1, burst=1), clock=Clock())
    assert admission.check("2001:db8::1", gone) is None
    assert admission.check("2001:db8::2", gone) is not None


def test_forwarded_client_is_the_right_most_entry() -> None:
    assert forwarded_client("203.0.113.9, 198.51.100.1") == "198.51.100.1"
    assert forwarded_client("198.51.100.1") == "198.51.100.1"
    assert forwarded_client(" 2001:db8::1 ") == "2001:db8::1"
    for bad in (None, "", "198.51.100.1, unknown", "1.2.3.4,", "x\r\ny"):
        assert forwarded_client(bad) is None


def test_only_the_creating_token_owns_a_session() -> None:
    owners = SessionOwners()
    owners.remember("a", "token-1")
    assert owners.is_owner("a", "token-1")
    for other in ("token-2", None, ""):
        assert not owners.is_owner("a", other)
    assert not owners.is_owner("b", "token-1")
    owners.remember("b", None)
    assert not owners.is_owner("b", None)  # no token created it: no token can claim it
    owners.prune(lambda session_id: session_id == "b")
    assert len(owners) == 1 and not owners.is_owner("a", "token-1")


def test_auth_stats_is_on_whenever_auth_is(monkeypatch) -> None:
    monkeypatch.delenv("SFU_AUTH_STATS", raising=False)
    assert parse_args([]).auth_stats is False
    assert parse_args(["--auth-token", "t"]).auth_stats is True
    assert parse_args(["--auth-secret", "s"]).auth_stats is True
    assert parse_args(["--auth-secret", "s", "--no-auth-stats"]).auth_stats is False
    monkeypatch.setenv("SFU_AUTH_STATS", "0")
    assert parse_args(["--auth-token", "t"]).auth_stats is False
    args = parse_args(["--pending-timeout", "3", "--trust-proxy"])
    assert (args.pending_timeout, args.trust_proxy) == (3.0, True)
