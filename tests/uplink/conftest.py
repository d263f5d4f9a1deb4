"""Markers of the uplink tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "restarts_postgresql: stops and starts the machine's PostgreSQL cluster (pg_ctlcluster); "
        "deselect with -m 'not restarts_postgresql'",
    )
