"""How km was installed and what clients should run (the pure part of km/installation.py)."""

from __future__ import annotations

import pytest

from km.installation import Facts, Method, choose_launcher, classify, is_versioned_km


@pytest.mark.parametrize(
    ("path", "versioned"),
    [("/home/u/.local/lib/km/0.1.0/km", True),
     ("/opt/homebrew/Cellar/km/0.1.0/libexec/km", True),
     ("C:\\Users\\u\\scoop\\apps\\km\\0.1.0\\km.exe", True),
     ("C:\\Users\\u\\AppData\\Local\\Programs\\km\\0.1.0\\km.exe", True),
     ("/home/u/.local/bin/km", False), ("/opt/homebrew/bin/km", False),
     ("C:\\Users\\u\\scoop\\apps\\km\\current\\km.exe", False), ("km", False),
     ("/home/u/src/km/.venv/bin/km", False)],
)  # fmt: skip
def test_versioned_paths(path: str, versioned: bool) -> None:
    assert is_versioned_km(path) is versioned


@pytest.mark.parametrize(
    ("facts", "method", "prefix"),
    [(Facts("/home/u/.local/lib/km/0.1.0/km", True, "", False), "installer", "/home/u/.local"),
     (Facts("/opt/km/lib/km/0.1.0/km", True, "", False), "installer", "/opt/km"),
     (Facts("/opt/homebrew/Cellar/km/0.1.0/libexec/km", True, "", False), "homebrew", None),
     (Facts("C:\\Users\\u\\scoop\\apps\\km\\0.1.0\\km.exe", True, "", True), "scoop", None),
     (Facts("C:\\Users\\u\\AppData\\Local\\Programs\\km\\0.1.0\\km.exe", True, "", True),
      "installer-windows", None),
     (Facts("/tmp/dist/km-0.1.0-linux-amd64/km", True, "", False), "installer", None),
     (Facts("/home/u/.local/bin/km", False, "/home/u/.local/pipx/venvs/kilometers", False),
      "pipx", None),
     (Facts("/home/u/.local/bin/km", False, "/home/u/.local/share/uv/tools/kilometers", False),
      "uv", None),
     (Facts("/src/km/.venv/bin/km", False, "/src/km/.venv", False), "python", None)],
)  # fmt: skip
def test_classify(facts: Facts, method: Method, prefix: str | None) -> None:
    assert classify(facts) == (method, prefix)


def test_the_installer_link_wins_when_it_resolves_to_this_km() -> None:
    running = "/home/u/.local/lib/km/0.1.0/km"
    link = "/home/u/.local/bin/km"
    yes = {link, running, "/usr/local/bin/km"}.__contains__
    assert choose_launcher("installer", running, "/home/u/.local", None, yes) == link
    # The link points elsewhere (another km): a km on PATH that is this one, else this path.
    only_path = {running, "/usr/local/bin/km"}.__contains__
    assert (
        choose_launcher("installer", running, "/home/u/.local", "/usr/local/bin/km", only_path)
        == "/usr/local/bin/km"
    )
    assert (
        choose_launcher("installer", running, "/home/u/.local", None, {running}.__contains__)
        == running
    )
    # A versioned path found on PATH is no better than the running one.
    assert choose_launcher("installer", running, None, running, yes) == running


def test_homebrew_scoop_and_install_ps1_launchers() -> None:
    cellar = "/opt/homebrew/Cellar/km/0.1.0/libexec/km"
    assert choose_launcher("homebrew", cellar, None, None, lambda p: True) == "/opt/homebrew/bin/km"
    scoop = "C:\\Users\\u\\scoop\\apps\\km\\0.1.0\\km.exe"
    assert (
        choose_launcher("scoop", scoop, None, None, lambda p: True)
        == "C:\\Users\\u\\scoop\\apps\\km\\current\\km.exe"
    )
    ps1 = "C:\\Users\\u\\AppData\\Local\\Programs\\km\\0.1.0\\km.exe"
    assert choose_launcher("installer-windows", ps1, None, ps1, lambda p: True) == "km"
    assert choose_launcher("installer-windows", ps1, None, None, lambda p: True) == ps1
