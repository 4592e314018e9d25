"""The process's DTLS identity: its certificate, its fingerprint and the SSL context built on it.

One certificate serves every session, and the SDP answer needs its fingerprint before any
handshake starts, so it lives apart from the per-session handshake (dtls.py). The fingerprint
check of a peer is here too: both sides of it are the same digest written the SDP way.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from OpenSSL import SSL

__all__ = [
    "DEFAULT_SRTP_PROFILES",
    "Certificate",
    "check_fingerprint",
    "parse_fingerprints",
]

DEFAULT_SRTP_PROFILES = b"SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80"

# Forward-secret AEAD suites for ECDSA certificates only (what WebRTC peers use): no CBC, no
# static RSA, no RSA certificates, so a client cannot talk the server down to a legacy suite.
_CIPHERS = (
    b"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"
)
_DTLS1_2_VERSION = 0xFEFD  # pyOpenSSL exposes no constant for it

_DIGESTS = {"sha-1": "sha1", "sha-256": "sha256", "sha-384": "sha384", "sha-512": "sha512"}


def _hex_fingerprint(der: bytes, algorithm: str) -> str:
    """Format a digest the way SDP a=fingerprint writes it: AB:CD:..."""
    digest = hashlib.new(_DIGESTS[algorithm], der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def parse_fingerprints(fingerprints: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """SDP (algorithm, value) pairs in the form check_fingerprint compares: the algorithm in
    lower case, the value as upper-case hex without colons."""
    return [
        (algorithm.lower(), value.replace(":", "").upper()) for algorithm, value in fingerprints
    ]


def check_fingerprint(der: bytes, expected: list[tuple[str, str]]) -> str | None:
    """None when the DER certificate matches one of `expected` (from parse_fingerprints),
    else why not."""
    usable = [(a, v) for a, v in expected if a in _DIGESTS]
    if not usable:
        return "no remote fingerprint with a supported algorithm"
    for algorithm, value in usable:
        if _hex_fingerprint(der, algorithm).replace(":", "") == value:
            return None
    return "peer certificate does not match the remote fingerprint"


def _accept_any_chain(
    _conn: SSL.Connection, _cert: object, _errno: int, _depth: int, _ok: int
) -> bool:
    """WebRTC certificates are self-signed; the fingerprint check after the handshake
    is what authenticates the peer."""
    return True


class Certificate:
    """The process-wide DTLS identity: an ECDSA P-256 self-signed certificate.

    ECDSA keeps the certificate small, so the server's flight fits one datagram.
    SSL contexts are built lazily and cached here because every session shares them.
    """

    def __init__(self, key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> None:
        self.key = key
        self.cert = cert
        self._der = cert.public_bytes(serialization.Encoding.DER)
        self._fingerprint = _hex_fingerprint(self._der, "sha-256")
        self._contexts: dict[bytes, SSL.Context] = {}

    @classmethod
    def generate(cls) -> Certificate:
        """Make a fresh certificate, valid from yesterday (clock skew) for 30 days."""
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, secrets.token_hex(8))])
        start = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the DER certificate, for the SDP a=fingerprint:sha-256 line."""
        return self._fingerprint

    def ssl_context(self, srtp_profiles: bytes = DEFAULT_SRTP_PROFILES) -> SSL.Context:
        """The shared DTLS context offering `srtp_profiles`.

        The role is chosen per connection (accept/connect state), so one context per
        profile list serves both server and client endpoints.
        """
        ctx = self._contexts.get(srtp_profiles)
        if ctx is None:
            ctx = SSL.Context(SSL.DTLS_METHOD)
            ctx.set_min_proto_version(_DTLS1_2_VERSION)
            ctx.set_options(
                SSL.OP_NO_TICKET
                | SSL.OP_NO_QUERY_MTU
                | SSL.OP_NO_RENEGOTIATION
                | SSL.OP_NO_COMPRESSION
            )
            ctx.set_session_cache_mode(SSL.SESS_CACHE_OFF)
            # Free each connection's record buffers while idle: after the handshake a session
            # reads a DTLS record rarely (an alert), and this saves ~13 KB per session.
            ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
            ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT, _accept_any_chain)
            ctx.use_certificate(self.cert)
            ctx.use_privatekey(self.key)
            ctx.check_privatekey()
            ctx.set_cipher_list(_CIPHERS)
            ctx.set_tlsext_use_srtp(srtp_profiles)
            self._contexts[srtp_profiles] = ctx
        return ctx
