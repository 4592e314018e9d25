"""What a worker's handlers find on their aiohttp app: the media server and its policies.

create_app (app.py) fills these keys; the WHIP/WHEP, SRS, stats and internal routes read them.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from sfu.io.server import MediaServer
from signaling.sdp.host_name import HostNames
from signaling.sdp.trickle import EntityTags
from signaling.security.admission import Admission
from signaling.security.hooks import HttpHooks
from signaling.security.limits import Limits

MEDIA_SERVER = web.AppKey("media_server", MediaServer)
CANDIDATES = web.AppKey("candidates", list)
AUTO_CANDIDATES = web.AppKey("auto_candidates", bool)  # lead with the Host header's literal
HOST_CANDIDATE = web.AppKey("host_candidate", str)  # --candidate-from-host: off, resolve, name
HOST_NAMES = web.AppKey("host_names", HostNames)
LIMITS = web.AppKey("limits", Limits)
HOOKS = web.AppKey("hooks", HttpHooks)
ETAGS = web.AppKey("etags", EntityTags)
ADMISSION = web.AppKey("admission", Admission)


class ClusterHooks(Protocol):
    """What the public handlers ask of the cluster node's Cluster, with --redis-url only."""

    async def admit(self, request: web.Request, role: str, stream: str) -> None: ...
    async def admit_room(self, request: web.Request, room: str) -> None: ...
    def streams_view(self) -> dict: ...


CLUSTER = web.AppKey("cluster", ClusterHooks)
