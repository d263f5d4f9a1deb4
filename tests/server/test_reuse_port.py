"""`km serve --reuse-port`: several real processes serve one port (SO_REUSEPORT); one that does
not ask for it cannot bind a port they hold."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from tests.server.serve_process import START_TIMEOUT_S, KmServe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_processes_share_a_port_and_one_serves_when_the_other_stops(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'server.db'}"
    port = free_port()
    with (
        KmServe(db, "--port", str(port), "--reuse-port") as first,
        KmServe(db, "--port", str(port), "--reuse-port") as second,
    ):
        assert first.port == second.port == port
        assert first.get("/health")[0] == 200
        assert first.stop() == 0
        for _ in range(5):  # every new connection now reaches the second process
            assert second.get("/health")[0] == 200


def test_without_the_option_the_port_is_refused(tmp_path: Path) -> None:
    db = f"sqlite://{tmp_path / 'server.db'}"
    port = free_port()
    with KmServe(db, "--port", str(port), "--reuse-port"):
        refused = subprocess.run(
            [sys.executable, "-m", "km.server", "--port", str(port), "--database-url", db],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=START_TIMEOUT_S,
        )  # fmt: skip
    assert refused.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}" in refused.stderr.decode()
