"""`km sync` is bounded against an API that accepts and never answers, or drips a byte a
second; the uplink verifies TLS certificates (a custom CA bundle trusted on request), against
an aiohttp application and against the real `km serve --tls-cert`; the key is never sent over
plain http to a host that is not this machine unless allowed. Real km processes, real loopback
sockets, a CA and certificates made in the test."""

from __future__ import annotations

import datetime
import os
import socket
import sqlite3
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from km.settings import DEFAULT_SYNC_TIMEOUT_S
from km.uplink.client import check_transport, is_loopback
from km.uplink.errors import InsecureTransport
from tests.conftest import KM
from tests.server.serve_process import KmServe, create_key
from tests.server.test_tls import make_certificate
from tests.uplink.fake_api import GOOD_KEY, FakeApi, ServerThread
from tests.uplink.helpers import fill_spool, make_events, states

EVENTS = 40
HOLD_S = 60.0  # the longest a hostile server holds a connection (its loops stop by themselves)


def sync_env(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        KM_API_URL=url,
        KM_API_KEY=GOOD_KEY,
        KM_SPOOL=str(tmp_path / "spool.db"),
        KM_CONFIG=str(tmp_path / "config.toml"),
        **extra,
    )
    return env


def km_lines(stderr: bytes) -> list[str]:
    return [x for x in stderr.decode().splitlines() if x.startswith("km:")]


@contextmanager
def hostile_server(drip: bool) -> Iterator[str]:
    """A loopback server that accepts connections and then never answers (or answers one
    byte a second); every loop ends by itself within HOLD_S, or when the test ends."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.2)
    done = threading.Event()
    conns: list[socket.socket] = []

    def hold(conn: socket.socket) -> None:
        conn.settimeout(1.0)
        deadline = time.monotonic() + HOLD_S
        reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        sent = 0
        while not done.is_set() and time.monotonic() < deadline:
            try:
                if not conn.recv(65536) and not drip:
                    return
            except TimeoutError:
                pass
            except OSError:
                return
            if drip and sent < len(reply):
                try:
                    conn.send(reply[sent : sent + 1])
                except OSError:
                    return
                sent += 1

    def serve() -> None:
        deadline = time.monotonic() + HOLD_S
        while not done.is_set() and time.monotonic() < deadline:
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=hold, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        done.set()
        thread.join(5)
        listener.close()
        for conn in conns:
            conn.close()


@pytest.mark.parametrize("drip", [False, True], ids=["silent", "drip"])
def test_sync_gives_up_at_its_deadline_and_marks_nothing_sent(tmp_path: Path, drip: bool) -> None:
    fill_spool(tmp_path / "spool.db", make_events(EVENTS))
    with hostile_server(drip) as url:
        started = time.monotonic()
        result = subprocess.run(
            [*KM, "sync", "--timeout", "3"],
            capture_output=True,
            env=sync_env(tmp_path, url),
            timeout=45,  # the bound: without a deadline this took > 150 s
        )
        elapsed = time.monotonic() - started
    assert result.returncode == 5, result.stderr
    lines = km_lines(result.stderr)
    assert len(lines) == 1 and "gave up after 3 s" in lines[0], result.stderr
    assert f"{EVENTS} still wait" in lines[0]
    assert GOOD_KEY not in result.stderr.decode()
    assert states(tmp_path / "spool.db")["sent"] == 0
    assert elapsed < 40


def test_the_default_deadline_is_under_a_minute() -> None:
    assert DEFAULT_SYNC_TIMEOUT_S < 60


# -- TLS ------------------------------------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca_and_cert(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate for 127.0.0.1 it signed: (ca.pem, cert.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("km test CA"))
        .issuer_name(_name("km test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = (directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@contextmanager
def https_api(tmp_path: Path, api: FakeApi) -> Iterator[tuple[str, Path]]:
    ca, cert, key = make_ca_and_cert(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = ServerThread()
    runners: list[web.AppRunner] = []

    async def start() -> int:
        runner = web.AppRunner(api.app(), auto_decompress=False)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        port: int = runner.addresses[0][1]
        return port

    async def stop() -> None:
        for runner in runners:
            await runner.cleanup()

    try:
        port = server.call(start)
        yield f"https://127.0.0.1:{port}", ca
    finally:
        server.close(stop)


def test_sync_verifies_the_certificate_and_trusts_a_given_ca(tmp_path: Path) -> None:
    fill_spool(tmp_path / "spool.db", make_events(EVENTS))
    api = FakeApi()
    with https_api(tmp_path, api) as (url, ca):
        refused = subprocess.run(
            [*KM, "sync", "--timeout", "6"],
            capture_output=True,
            env=sync_env(tmp_path, url),
            timeout=60,
        )
        assert refused.returncode != 0
        assert b"certificate" in refused.stderr and b"KM_CA_BUNDLE" in refused.stderr
        assert states(tmp_path / "spool.db")["sent"] == 0
        trusted = subprocess.run(
            [*KM, "sync", "--timeout", "20"],
            capture_output=True,
            env=sync_env(tmp_path, url, KM_CA_BUNDLE=str(ca)),
            timeout=60,
        )
    assert trusted.returncode == 0, trusted.stderr
    assert states(tmp_path / "spool.db")["sent"] == EVENTS


def test_an_unreadable_ca_bundle_is_one_line(tmp_path: Path) -> None:
    fill_spool(tmp_path / "spool.db", make_events(3))
    env = sync_env(tmp_path, "https://127.0.0.1:9", KM_CA_BUNDLE=str(tmp_path / "missing.pem"))
    result = subprocess.run([*KM, "sync"], capture_output=True, env=env, timeout=60)
    lines = km_lines(result.stderr)
    assert result.returncode != 0 and len(lines) == 1 and "CA bundle" in lines[0]


# -- plain http -----------------------------------------------------------------------------


def test_the_key_is_not_sent_over_plain_http_to_another_host(tmp_path: Path) -> None:
    fill_spool(tmp_path / "spool.db", make_events(3))
    url = "http://km-api.invalid:8080"  # never resolves (RFC 6761): nothing leaves the machine
    result = subprocess.run(
        [*KM, "sync"], capture_output=True, env=sync_env(tmp_path, url), timeout=60
    )
    lines = km_lines(result.stderr)
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "plain http" in lines[0] and "KM_ALLOW_INSECURE_HTTP=1" in lines[0]
    allowed = subprocess.run(
        [*KM, "sync", "--timeout", "20"],
        capture_output=True,
        env=sync_env(tmp_path, url, KM_ALLOW_INSECURE_HTTP="1"),
        timeout=60,
    )
    assert b"plain http" not in allowed.stderr  # it tried (and failed to resolve the name)
    assert states(tmp_path / "spool.db")["sent"] == 0


def test_loopback_needs_no_permission() -> None:
    for url in ("http://127.0.0.1:8000", "http://localhost", "http://[::1]:1", "http://127.8.0.1"):
        check_transport(url, False)
    assert not is_loopback("10.0.0.1") and not is_loopback("example.com")
    with pytest.raises(InsecureTransport):
        check_transport("http://192.168.1.10", False)
    check_transport("http://192.168.1.10", True)
    check_transport("https://api.example.com", False)


# -- TLS against the real `km serve --tls-cert/--tls-key` -----------------------------------


def stored_events(database_url: str) -> int:
    db = sqlite3.connect(database_url.removeprefix("sqlite://"))
    try:
        (n,) = db.execute("SELECT count(*) FROM events").fetchone()
    finally:
        db.close()
    return int(n)


@pytest.mark.parametrize("issuer", ["private CA", "self-signed"])
def test_sync_to_a_tls_km_serve_trusts_only_the_configured_ca(tmp_path: Path, issuer: str) -> None:
    """The certificate is refused until KM_CA_BUNDLE names what signed it (the CA, or the
    self-signed certificate itself), and still refused for a name it was not issued for."""
    if issuer == "private CA":
        trusted, cert, key = make_ca_and_cert(tmp_path)
    else:
        cert, key = make_certificate(tmp_path)
        trusted = cert
    fill_spool(tmp_path / "spool.db", make_events(EVENTS))
    database_url = f"sqlite://{tmp_path / 'server.db'}"
    api_key = create_key(database_url)
    client = ssl.create_default_context(cafile=str(trusted))
    args = ("--tls-cert", str(cert), "--tls-key", str(key))
    with KmServe(database_url, *args, ssl_context=client) as server:
        url = server.url
        assert url.startswith("https://127.0.0.1:")

        def sync(url: str, timeout: str, **extra: str) -> subprocess.CompletedProcess[bytes]:
            env = sync_env(tmp_path, url, **extra)
            env["KM_API_KEY"] = api_key
            return subprocess.run(
                [*KM, "sync", "--timeout", timeout], capture_output=True, env=env, timeout=60
            )

        refused = sync(url, "4")
        assert refused.returncode != 0
        assert b"certificate" in refused.stderr and b"KM_CA_BUNDLE" in refused.stderr
        assert api_key.encode() not in refused.stderr
        other_name = sync(url.replace("127.0.0.1", "localhost"), "4", KM_CA_BUNDLE=str(trusted))
        assert other_name.returncode != 0 and b"certificate" in other_name.stderr
        assert states(tmp_path / "spool.db")["sent"] == 0 and stored_events(database_url) == 0
        delivered = sync(url, "20", KM_CA_BUNDLE=str(trusted))
        assert delivered.returncode == 0, delivered.stderr
        assert states(tmp_path / "spool.db")["sent"] == EVENTS
        assert stored_events(database_url) == EVENTS
