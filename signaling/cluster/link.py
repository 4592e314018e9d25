"""The sealed channel nodes of one cluster talk over: JSON in AES-GCM under the cluster secret.

Node-to-node requests carry relay set-up, including each relay's SRTP keys, so a shared secret
that only authenticated them would still let anyone on the path read the keys. Every body, both
ways, is therefore sealed with AES-256-GCM under a key derived from `--cluster-secret`; the
request path is the associated data (a sealed body is good for its own route only) and the
envelope carries the time it was sealed, refused when more than MAX_SKEW seconds off.

Within that window a captured request could be sent again, so the receiver remembers the nonce
of every body it opened until its window closes and refuses a second one. The memory is capped
at MAX_REMEMBERED nonces; when it is full of live ones, new bodies are refused (a replay is
never let through to make room), which takes more requests in a window than a cluster makes.
"""

from __future__ import annotations

import heapq
import json
import os
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_SKEW = 30.0  # seconds between the clocks of two nodes, and the replay window
MAX_SEALED_BYTES = 64 * 1024
NONCE_BYTES = 12
MAX_REMEMBERED = 65536  # nonces remembered at once, each for its body's replay window
SEALED_TYPE = "application/x-litesfu-sealed"


class LinkError(ValueError):
    """A body that is not sealed under our secret for this path, or is too old."""


class ReplayError(LinkError):
    """A sealed body opened before (or, with the memory full, one that cannot be checked)."""


class ClusterLink:
    def __init__(
        self,
        secret: str,
        *,
        max_remembered: int = MAX_REMEMBERED,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the cluster secret must be at least 16 characters")
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"litesfu cluster v1")
        self._aead = AESGCM(kdf.derive(secret.encode()))
        self._clock = clock
        self.max_remembered = max_remembered
        self._seen: set[bytes] = set()  # nonces of bodies opened and still in their window
        self._forget: list[tuple[float, bytes]] = []  # (end of window, nonce), soonest first

    def seal(self, path: str, message: dict) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps({"t": self._clock(), "m": message}).encode()
        return nonce + self._aead.encrypt(nonce, plain, path.encode())

    def open(self, path: str, sealed: bytes) -> dict:
        """The message sealed for `path`; LinkError for anything else."""
        if not NONCE_BYTES < len(sealed) <= MAX_SEALED_BYTES:
            raise LinkError("sealed body of the wrong size")
        try:
            plain = self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], path.encode())
        except InvalidTag as exc:
            raise LinkError("not sealed under this cluster's secret for this route") from exc
        envelope = json.loads(plain)
        sealed_at, now = float(envelope["t"]), self._clock()
        if abs(now - sealed_at) > MAX_SKEW:
            raise LinkError("sealed too long ago (or the clocks differ by more than 30 s)")
        self._remember(sealed[:NONCE_BYTES], sealed_at + MAX_SKEW, now)
        message = envelope["m"]
        if not isinstance(message, dict):
            raise LinkError("the message is not an object")
        return message

    def _remember(self, nonce: bytes, until: float, now: float) -> None:
        """Note a nonce as used until `until`; ReplayError if it was, or if memory is full."""
        while self._forget and self._forget[0][0] < now:
            self._seen.discard(heapq.heappop(self._forget)[1])
        if nonce in self._seen:
            raise ReplayError("a replay: this sealed body was opened before")
        if len(self._seen) >= self.max_remembered:
            raise ReplayError("too many sealed bodies in the replay window to check this one")
        self._seen.add(nonce)
        heapq.heappush(self._forget, (until, nonce))
