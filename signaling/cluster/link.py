"""The sealed channel nodes of one cluster talk over: JSON in AES-GCM under the cluster secret.

Node-to-node requests carry relay set-up, including each relay's SRTP keys, so a shared secret
that only authenticated them would still let anyone on the path read the keys. Every body, both
ways, is therefore sealed with AES-256-GCM under a key derived from `--cluster-secret`; the
request path is the associated data (a sealed body is good for its own route only) and the
envelope carries the time it was sealed, refused when more than MAX_SKEW seconds off, which
bounds replays to that window.
"""

from __future__ import annotations

import json
import os
import time

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAX_SKEW = 30.0  # seconds between the clocks of two nodes, and the replay window
MAX_SEALED_BYTES = 64 * 1024
NONCE_BYTES = 12
SEALED_TYPE = "application/x-litesfu-sealed"


class LinkError(ValueError):
    """A body that is not sealed under our secret for this path, or is too old."""


class ClusterLink:
    def __init__(self, secret: str) -> None:
        if len(secret) < 16:
            raise ValueError("the cluster secret must be at least 16 characters")
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"litesfu cluster v1")
        self._aead = AESGCM(kdf.derive(secret.encode()))

    def seal(self, path: str, message: dict) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        plain = json.dumps({"t": time.time(), "m": message}).encode()
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
        if abs(time.time() - float(envelope["t"])) > MAX_SKEW:
            raise LinkError("sealed too long ago (or the clocks differ by more than 30 s)")
        message = envelope["m"]
        if not isinstance(message, dict):
            raise LinkError("the message is not an object")
        return message
