"""`km tools scan` prints what a tool list says through `km.terminal.safe`: a name holding a
terminal escape sequence shows it as text, and rich markup characters show as themselves
(a `[` after a backslash too, which `rich.markup.escape` lets rich swallow)."""

from __future__ import annotations

import io
import json

from km.settings import Settings
from km.tools_cli.scan import run_scan
from tests.insight.test_session import POISONED

NAMES = ("x\\[y", "retitle\x1b]0;pwned\x07", "[/bogus]")


def test_scan_table_shows_names_as_they_are() -> None:
    tools = [{**POISONED, "name": name} for name in NAMES]
    out = io.StringIO()
    code = run_scan(["-"], Settings(), stdin=io.BytesIO(json.dumps(tools).encode()), stdout=out)
    assert code == 1  # poisoned: findings at high or above
    text = out.getvalue()
    assert "\x1b" not in text and "\x07" not in text
    assert "<ESC>" in text  # the escape sequence is shown, not sent
    assert "x\\[y" in text
    assert "[/bogus]" in text
