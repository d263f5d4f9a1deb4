"""`km serve --tls-cert/--tls-key` over a self-signed certificate made here: HTTPS with TLS 1.2
or newer, nothing older, no plain HTTP on that port; a bad pair is a one-line usage error.
And the headers every answer carries: no server version, nosniff and no-store on JSON."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import warnings
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from km.errors import UsageError
from km.server.tls import server_context
from tests.server.conftest import Api
from tests.server.serve_process import KmServe, create_key

CONNECT_TIMEOUT_S = 10.0


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "km test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def test_https_with_a_self_signed_certificate(tmp_path: Path) -> None:
    cert, key_file = make_certificate(tmp_path)
    db = f"sqlite://{tmp_path / 'server.db'}"
    key = create_key(db)
    client = ssl.create_default_context(cafile=str(cert))
    args = ("--tls-cert", str(cert), "--tls-key", str(key_file))
    with KmServe(db, *args, ssl_context=client) as server:
        assert server.url.startswith("https://127.0.0.1:")
        status, body, headers = server.get("/api/v1/sessions", key)
        assert (status, body) == (200, {"sessions": [], "next_cursor": None})
        assert headers["Server"] == "km"
        # The negotiated protocol is TLS 1.2 or newer; a client capped at TLS 1.1 gets nothing.
        with (
            socket.create_connection(("127.0.0.1", server.port), CONNECT_TIMEOUT_S) as raw,
            client.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        old.load_verify_locations(cafile=str(cert))
        old.set_ciphers("DEFAULT:@SECLEVEL=0")  # so this client can offer TLS 1.0 and 1.1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            old.minimum_version = ssl.TLSVersion.TLSv1
            old.maximum_version = ssl.TLSVersion.TLSv1_1
        with (
            pytest.raises(ssl.SSLError),
            socket.create_connection(("127.0.0.1", server.port), CONNECT_TIMEOUT_S) as raw,
            old.wrap_socket(raw, server_hostname="127.0.0.1"),
        ):
            pass
        # Plain HTTP to the HTTPS port is never answered as HTTP.
        with socket.create_connection(("127.0.0.1", server.port), CONNECT_TIMEOUT_S) as plain:
            plain.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            plain.settimeout(CONNECT_TIMEOUT_S)
            try:
                answer = plain.recv(4096)
            except ConnectionResetError:
                answer = b""
            assert not answer.startswith(b"HTTP/")
        assert server.stop() == 0


def test_a_bad_certificate_pair_is_a_usage_error(tmp_path: Path) -> None:
    cert, key_file = make_certificate(tmp_path)
    (tmp_path / "other").mkdir()
    other_cert, _ = make_certificate(tmp_path / "other")
    for args, words in (
        ((str(cert), None), "go together"),
        ((str(tmp_path / "absent.pem"), str(key_file)), "no such file"),
        ((str(key_file), str(key_file)), "cannot load"),
        ((str(other_cert), str(key_file)), "cannot load"),
    ):
        with pytest.raises(UsageError) as info:
            server_context(*args)
        assert words in str(info.value) and "\n" not in str(info.value)


@pytest.mark.asyncio
async def test_json_answers_carry_nosniff_no_store_and_no_version(api: Api) -> None:
    key = await api.new_key("acme")
    for path, auth in (("/api/v1/sessions", key), ("/api/v1/events", key), ("/health", None),
                       ("/api/v1/sessions", "km_live_unknown")):  # fmt: skip
        _, _, resp = await api.get(path, auth)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["Cache-Control"] == "no-store", path
        assert resp.headers["Server"] == "km", path


def test_requests_aiohttp_refuses_itself_name_no_version(tmp_path: Path) -> None:
    with KmServe(f"sqlite://{tmp_path / 'server.db'}") as server:
        with socket.create_connection(("127.0.0.1", server.port), CONNECT_TIMEOUT_S) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            sock.settimeout(CONNECT_TIMEOUT_S)
            head = sock.recv(4096).split(b"\r\n\r\n")[0].decode()
        assert head.split(" ")[1] == "400", head
        servers = [line for line in head.split("\r\n") if line.lower().startswith("server:")]
        assert servers == ["Server: km"], head
