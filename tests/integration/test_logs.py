"""`--log-format json`: one object per line, access lines without query strings or tokens."""

from __future__ import annotations

import json

import aiohttp

from bench.launcher import start_server, stop_server


async def test_json_logs_and_access_lines(tmp_path) -> None:
    server = start_server(tmp_path, "--log-format", "json")
    try:
        async with aiohttp.ClientSession() as http:
            headers = {"Authorization": "Bearer sekrit-token"}
            url = server.http_url + "/api/v1/streams?token=sekrit-token"
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
            async with http.post(server.http_url + "/whip/live/x", data="v=0") as response:
                assert response.status == 415
    finally:
        stop_server(server)
    lines = [line for line in server.log().splitlines() if line.strip()]
    entries = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= set(e) for e in entries)
    access = [e["message"] for e in entries if e["logger"] == "litesfu.access"]
    assert any(m.startswith("GET /api/v1/streams 200 ") and m.endswith(" ms") for m in access)
    assert any(m.startswith("POST /whip/live/x 415 ") for m in access)
    assert "sekrit" not in server.log()
    assert "?" not in "".join(access)
