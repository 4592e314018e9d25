"""Pieces of /metrics and the logs that need no server: totals, merging, JSON lines."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sfu.session.transport import short_hash
from signaling.observe.logs import JsonFormatter
from signaling.observe.metrics import Totals, merged
from tests.harness import Harness


def test_totals_keep_what_gone_objects_reached() -> None:
    totals = Totals(2)  # objects named by their stats serial, as streams and tracks are
    assert totals.update([(1, (5, 50)), (2, (1, 10))]) == [6, 60]
    assert totals.update([(2, (3, 30))]) == [8, 80]  # 1 ended at (5, 50): still counted
    assert totals.update([]) == [8, 80]
    assert totals.update([((3, 0), (1, 1))]) == [9, 81]


WORKER = """# HELP litesfu_players Players
# TYPE litesfu_players gauge
litesfu_players 2.0
# HELP litesfu_drops_total Drops
# TYPE litesfu_drops_total counter
litesfu_drops_total{reason="stun_malformed"} 3.0
"""


def test_merged_expositions_label_each_process_once() -> None:
    text = merged([("0", WORKER), ("1", WORKER.replace("2.0", "5.0"))]).decode()
    assert text.count("# TYPE litesfu_players gauge") == 1  # one family, declared once
    families = {f.name: f for f in text_string_to_metric_families(text)}
    players = {s.labels["worker"]: s.value for s in families["litesfu_players"].samples}
    assert players == {"0": 2.0, "1": 5.0}
    drops = families["litesfu_drops"].samples
    assert {(s.labels["worker"], s.labels["reason"]) for s in drops} == {
        ("0", "stun_malformed"),
        ("1", "stun_malformed"),
    }


def test_json_lines_carry_the_context_given_as_extra() -> None:
    record = logging.LogRecord(
        "sfu.session.peer", logging.INFO, __file__, 1, "ended: %s", ("idle",), None
    )
    record.session_id, record.stream, record.role = short_hash("ab" * 16), "live/x", "play"
    entry = json.loads(JsonFormatter(worker=2).format(record))
    assert entry["message"] == "ended: idle"
    assert (entry["session_id"], entry["stream"], entry["role"], entry["worker"]) == (
        "d2f9fa9d",  # the first 8 hex digits of its SHA-256, as HTTP lines give it too
        "live/x",
        "play",
        2,
    )
    plain = json.loads(JsonFormatter(worker=None).format(logging.makeLogRecord({"msg": "x"})))
    assert "session_id" not in plain and "worker" not in plain


def test_a_sessions_id_never_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Session ids are capabilities: over a publisher's and a player's whole lives (connect,
    move, ICE restart, SSRC change, close), the media plane's lines and their JSON fields
    name them only by short hash."""
    caplog.set_level(logging.INFO)
    h = Harness()
    publisher, player = h.pair()
    h.run(0.5)
    player.move_to(("10.0.2.9", 6000))
    player.restart_ice()
    publisher.media.restart_ssrcs()  # type: ignore[union-attr]
    h.run(4.0)
    ids = [publisher.session.id, player.session.id]
    for session_id in ids:
        h.router.close(session_id, "DELETE")
    h.run(0.1)
    text = "\n".join(f"{r.getMessage()} {vars(r)}" for r in caplog.records)
    for line in ("moved from", "ICE restart", "SSRC changed", "closed (play"):
        assert line in text
    for session_id in ids:
        assert session_id not in text
        assert f"session #{short_hash(session_id)}: closed" in text
