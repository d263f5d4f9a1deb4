"""The key stays out of reprs, stored texts and shown URLs."""

from __future__ import annotations

import base64
from urllib.parse import quote

from km.uplink.secret import Scrubber, Secret, display_url, mask

KEY = "km_live_abcdEFGH1234ijkl5678mnop90qr"


def test_mask() -> None:
    assert mask(KEY) == "km_live_abcd…"
    assert mask("short-key") == "sh…"
    assert mask("") == ""


def test_secret_never_shows_itself() -> None:
    s = Secret(KEY)
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s])):
        assert KEY not in text and "km_live_abcd…" in text
    assert s.reveal() == KEY
    assert s == Secret(KEY) and hash(s) == hash(Secret(KEY)) and s != Secret("other")


def test_scrubber_removes_every_form() -> None:
    scrub = Scrubber(KEY, None, "")
    forms = (KEY, quote(KEY, safe=""), base64.b64encode(KEY.encode()).decode())
    for form in forms:
        text = scrub(f"401: bad key {form}!")
        assert KEY not in text and form not in text
        assert "km_live_abcd…" in text
    scrub.add("km_live_second_key_0000000000000000")
    assert "second_key" not in scrub("k=km_live_second_key_0000000000000000")
    assert scrub("nothing secret") == "nothing secret"


def test_display_url_drops_credentials() -> None:
    assert display_url("https://api.example.com/x") == "https://api.example.com/x"
    assert display_url("https://user:pw@api.example.com:8443/p?q=1") == (
        "https://api.example.com:8443/p?q=1"
    )
    assert display_url("http://u@[::1]:80/") == "http://[::1]:80/"
    assert display_url("http://[bad") == "<unreadable URL>"
