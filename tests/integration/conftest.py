"""aiortc must stay on loopback: only 127.0.0.1 as a host candidate, no STUN servers."""

from __future__ import annotations

import aioice.ice
import pytest


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"])
