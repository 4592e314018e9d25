"""Two DtlsEndpoints connected in memory, shared by the DTLS, SRTP and fuzz tests."""

from __future__ import annotations

from sfu.protocol.certificate import Certificate
from sfu.protocol.dtls import DtlsEndpoint, DtlsState


def make_pair(
    server_cert: Certificate,
    client_cert: Certificate,
    *,
    server_profiles: bytes | None = None,
    client_profiles: bytes | None = None,
    client_fingerprint: str | None = None,
) -> tuple[DtlsEndpoint, DtlsEndpoint]:
    server = DtlsEndpoint(
        server_cert,
        is_server=True,
        remote_fingerprints=[("sha-256", client_fingerprint or client_cert.fingerprint)],
        srtp_profiles=server_profiles,
    )
    client = DtlsEndpoint(
        client_cert,
        is_server=False,
        remote_fingerprints=[("sha-256", server_cert.fingerprint)],
        srtp_profiles=client_profiles,
    )
    return server, client


def shuttle(
    server: DtlsEndpoint, client: DtlsEndpoint, to_server: list[bytes], now: float = 0.0
) -> list[bytes]:
    """Deliver flights back and forth until both sides go quiet; returns the last flight."""
    for _ in range(20):
        to_client = [out for d in to_server for out in server.receive(d, now)]
        to_server = [out for d in to_client for out in client.receive(d, now)]
        if not to_server:
            return to_client
    raise AssertionError("handshake did not settle")


def connect(server: DtlsEndpoint, client: DtlsEndpoint) -> None:
    assert server.start(0.0) == []
    shuttle(server, client, client.start(0.0))
    assert server.state is DtlsState.CONNECTED, server.failure
    assert client.state is DtlsState.CONNECTED, client.failure
