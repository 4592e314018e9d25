"""HTTPS for the pages and API (--tls-cert/--tls-key): what a browser on another machine needs
to be given the camera. Publish and play go through it with real aiortc peers."""

from __future__ import annotations

import datetime
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.launcher import start_server, stop_server
from tests.integration.peers import close_all, play, publish


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_pages_and_whip_whep_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server = start_server(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), scheme="https")
    try:
        connector = aiohttp.TCPConnector(ssl=False)  # the test's own self-signed certificate
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.get(server.http_url + "/publish.html") as response:
                assert response.status == 200
            publisher = await publish(http, server.http_url, "live/tls")
            player = await play(http, server.http_url, "live/tls")
            try:
                assert await player.wait_for("video", 10, timeout=20), player.frames
            finally:
                await close_all(publisher, player)
        plain = server.http_url.replace("https://", "http://")
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.get(plain + "/", timeout=aiohttp.ClientTimeout(total=5)):
                    pass
    finally:
        stop_server(server)
    assert "LiteSFU ready: https://" in server.log()
    assert "Traceback" not in server.log()


def test_a_certificate_without_its_key_is_refused(tmp_path: Path) -> None:
    cert, _ = self_signed(tmp_path)
    with pytest.raises(RuntimeError, match="--tls-cert and --tls-key go together"):
        start_server(tmp_path, "--tls-cert", str(cert))


def test_an_unreadable_certificate_stops_the_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    # Start-up checks each flag's value before anything binds (issue 24): one line, status 2.
    with pytest.raises(RuntimeError, match=r"litesfu: --tls-cert: \S+ is not a file"):
        start_server(tmp_path, "--tls-cert", str(missing), "--tls-key", str(missing))
