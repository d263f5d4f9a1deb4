"""Names in terminal columns: whole where they fit, cut in the middle where they do not; and
`km status` (the real km) using it at 80 and 40 columns, with no `None` anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from km.display import ELLIPSIS, MIN_NAME_WIDTH, fit_names, middle_ellipsis
from km.status_cmd import SERVERS_OTHER_COLUMNS

KM = str(Path(sys.executable).parent / "km")
TIMEOUT_S = 60


def test_middle_ellipsis_examples() -> None:
    assert middle_ellipsis("mcp-server-everything", 21) == "mcp-server-everything"
    assert middle_ellipsis("mcp-server-everything", 12) == "mcp-se…thing"
    assert middle_ellipsis("abc", 1) == ELLIPSIS
    assert middle_ellipsis("abc", 0) == ""


@given(st.text(max_size=60), st.integers(min_value=0, max_value=70))
def test_middle_ellipsis_fits_and_keeps_both_ends(text: str, width: int) -> None:
    out = middle_ellipsis(text, width)
    if len(text) <= width:
        assert out == text
        return
    assert len(out) == width
    if width >= 3:
        head, _, tail = out.partition(ELLIPSIS)
        assert text.startswith(head) and text.endswith(tail) and head and tail


def test_fit_names_is_whole_on_a_wide_terminal() -> None:
    names = ["mcp-server-everything", "time"]
    assert fit_names(names, 80, 56) == (names, 21)
    fitted, width = fit_names(names, 40, 56)
    assert fitted == ["mcp-se…thing", "time"] and width == 12


def km(tmp_path: Path, *args: str, stdin: str = "", columns: int = 80) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KM_")}
    env.update(HOME=str(tmp_path), KM_SPOOL=str(tmp_path / "spool.db"), KM_GRACE="0.3")
    env.update(KM_CONFIG=str(tmp_path / "config.toml"), COLUMNS=str(columns))
    done = subprocess.run(
        [KM, *args], input=stdin, capture_output=True, text=True, env=env, timeout=TIMEOUT_S
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_status_shows_names_whole_at_80_columns_and_cut_in_the_middle_at_40(
    tmp_path: Path,
) -> None:
    long_name = "a-server-with-a-long-name-for-narrow-terminals"
    for name in ("mcp-server-everything", long_name):
        km(tmp_path, "--name", name, "cat", stdin='{"jsonrpc":"2.0","id":1,"method":"ping"}\n')
    wide = km(tmp_path, "status", columns=80)
    assert wide.count("mcp-server-everything") == 2  # events by server, sessions
    assert "None" not in wide
    narrow = km(tmp_path, "status", columns=40)
    by_server = middle_ellipsis(long_name, 40 - SERVERS_OTHER_COLUMNS)  # a narrow table
    in_sessions = middle_ellipsis(long_name, MIN_NAME_WIDTH)  # a wide one
    assert by_server == "a-server-with…ow-terminals" and in_sessions == "a-serv…inals"
    assert by_server in narrow and in_sessions in narrow, narrow
    assert "mcp-server-everything" in narrow and "mcp-se…thing" in narrow
    assert "None" not in narrow
