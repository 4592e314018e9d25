"""The small bounds of the HTTP side: per-address rates, batched refusal lines, pages of the
stream list, capabilities hashed in logs."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import make_mocked_request

from signaling.security.clients import RateLimit
from signaling.serving.paging import DEFAULT_LIMIT, MAX_LIMIT, Page, requested_page
from signaling.serving.plumbing import Rejection
from signaling.serving.redact import redacted_path, short_hash
from signaling.serving.refusal_log import RefusalLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_rate_limit_allows_the_burst_then_the_rate_per_address() -> None:
    clock = Clock()
    limit = RateLimit(5, 10, clock=clock)
    assert [limit.wait("192.0.2.1") for _ in range(10)] == [0] * 10
    assert limit.wait("192.0.2.1") == 1 and limit.refused == 1
    assert limit.wait("192.0.2.2") == 0  # another address has its own bucket
    assert limit.wait("2001:db8::1") == 0
    assert [limit.wait("2001:db8::2") for _ in range(9)] == [0] * 9  # the same /64
    assert limit.wait("2001:db8::3") == 1
    clock.now += 0.2  # one token back at 5/s
    assert limit.wait("192.0.2.1") == 0
    assert limit.wait("192.0.2.1") == 1
    assert RateLimit(0, 0).wait("192.0.2.1") == 0  # off


def test_refusals_are_logged_once_per_interval_with_a_count(caplog) -> None:
    caplog.set_level(logging.INFO)
    clock = Clock()
    batch = RefusalLog(logging.getLogger("test.refusals"), "requests", 10.0, clock)
    for i in range(1000):
        batch.note(f"reason {i}")
        clock.now += 0.001
    assert [r.getMessage() for r in caplog.records] == ["requests refused: reason 0"]
    clock.now += 10
    batch.note("the last")
    assert caplog.records[-1].getMessage() == (
        "1000 requests refused in the last 11 s; the latest: the last"
    )


@pytest.mark.parametrize(
    ("query", "page"),
    [
        ("", Page(0, DEFAULT_LIMIT)),
        ("?limit=2&offset=4", Page(4, 2)),
        (f"?limit={MAX_LIMIT}", Page(0, MAX_LIMIT)),
    ],
)
def test_a_page_of_the_stream_list(query: str, page: Page) -> None:
    assert requested_page(make_mocked_request("GET", "/api/v1/streams" + query)) == page


@pytest.mark.parametrize(
    "query",
    ["?limit=0", f"?limit={MAX_LIMIT + 1}", "?limit=x", "?offset=-1", "?limit=1e3", "?offset=٣"],
)
def test_a_bad_page_is_a_400(query: str) -> None:
    with pytest.raises(Rejection) as refused:
        requested_page(make_mocked_request("GET", "/api/v1/streams" + query))
    assert refused.value.status == 400 and "\n" not in refused.value.reason


def test_next_names_the_following_page_until_the_last() -> None:
    assert Page(0, 2).fields(3, "/api/v1/streams") == {
        "total": 3,
        "next": "/api/v1/streams?offset=2&limit=2",
    }
    assert Page(2, 2).fields(3, "/api/v1/streams") == {"total": 3, "next": None}


def test_session_ids_and_event_keys_are_logged_as_short_hashes() -> None:
    session, key = "a" * 32, "Zx-9_abcdefghijklmnopq"
    assert short_hash(session) == short_hash(session) and len(short_hash(session)) == 8
    assert redacted_path(f"/sessions/{session}") == f"/sessions/#{short_hash(session)}"
    assert redacted_path(f"/sessions/{session}/layer") == f"/sessions/#{short_hash(session)}/layer"
    # A front's routing prefix stays readable, so its lines match its worker's.
    assert redacted_path(f"/sessions/w1-{session}") == f"/sessions/w1-#{short_hash(session)}"
    assert redacted_path(f"/events/streams/{key}") == f"/events/streams/#{short_hash(key)}"
    assert redacted_path("/whep/live/x") == "/whep/live/x"
