"""The one-pass payload scanners (Hyperscan, RE2 `Set`) against the reference loop (`lower()`,
`in`, a digit count): the same needles, overlapping and nested ones included, the same escape
and digit answers, for any bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from km.redact import needles
from km.redact.needles import (
    PayloadScan,
    PayloadScanner,
    loop_finder,
    loop_scanner,
    payload_scanner,
)
from km.redact.rules import DEFAULT_RULES

NEEDLES = sorted(DEFAULT_RULES.compiled.text.everything.needles)
DIGITS = 13
# Bytes made of the needles' own characters in both cases, digits, escapes and non-UTF-8.
ALPHABET = sorted(
    {c for n in NEEDLES for c in n.encode() + n.upper().encode()}
    | set(b" 0123456789\\/u")
    | {0xC3, 0xA9, 0xFF, 0x0A}
)


def _built(name: str) -> PayloadScanner:
    scanner: PayloadScanner | None = getattr(needles, name)(NEEDLES, DIGITS)
    if scanner is None:
        pytest.skip(f"{name}: its library is not installed here")
    return scanner


@pytest.fixture(params=["_hyperscan_scanner", "_re2_scanner"])
def fast_scanner(request: pytest.FixtureRequest) -> PayloadScanner:
    return _built(request.param)


REFERENCE = loop_scanner(NEEDLES, DIGITS)


def both(scan: PayloadScanner, payload: bytes) -> tuple[PayloadScan, PayloadScan]:
    fast = scan(payload)
    slow = REFERENCE(payload)
    return (sorted(fast[0]), fast[1], fast[2]), (sorted(slow[0]), slow[1], slow[2])


def test_the_fastest_scanner_is_chosen() -> None:
    pytest.importorskip("hyperscan")
    assert payload_scanner(NEEDLES, DIGITS).__qualname__.startswith("_hyperscan_scanner")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b"nothing here", ([], False, False)),
        (b"akiapi private key", (["akia", "api", "private", "private key"], False, False)),
        (b"AKIAPI Private KEY", (["akia", "api", "private", "private key"], False, False)),
        (b"ghp_ghs_xoxb", (["ghp_", "ghs_", "xox"], False, False)),
        (b"x" * 70_000 + b"@", (["@"], False, False)),  # at the far end of a large payload
        (b'{"a":"\\u0041"}', ([], True, False)),
        (b'{"a":"\\U0041"}', ([], False, False)),  # not a JSON escape
        (b'{"a":"caf\\u00e9"}', ([], False, False)),  # not ASCII: hides no needle
        (b'"https:\\/\\/x"', ([":\\/\\/"], True, False)),
        (b"1 2 3 4 5 6 7 8 9 0 1 2", ([], False, False)),  # 12 digits
        (b"1 2 3 4 5 6 7 8 9 0 1 2\xff3", ([], False, True)),  # 13, across a non-UTF-8 byte
        (b"1234567\n890123", ([], False, True)),  # and across a newline
        (b"", ([], False, False)),
    ],
)
def test_examples(
    fast_scanner: PayloadScanner, payload: bytes, expected: tuple[list[str], bool, bool]
) -> None:
    fast, slow = both(fast_scanner, payload)
    assert fast == expected
    assert slow == expected


@given(st.lists(st.sampled_from(ALPHABET), max_size=400).map(bytes))
def test_same_answers_as_the_loop(payload: bytes) -> None:
    for name in ("_hyperscan_scanner", "_re2_scanner"):
        scanner = getattr(needles, name)(NEEDLES, DIGITS)
        if scanner is not None:
            fast, slow = both(scanner, payload)
            assert fast == slow, name
    assert fast == slow


@given(st.lists(st.sampled_from([*NEEDLES, *map(str.upper, NEEDLES), "zz", " ", "7"]), max_size=30))
def test_same_answers_in_needle_soup(parts: list[str]) -> None:
    for name in ("_hyperscan_scanner", "_re2_scanner"):
        scanner = getattr(needles, name)(NEEDLES, DIGITS)
        if scanner is not None:
            fast, slow = both(scanner, "".join(parts).encode())
            assert fast == slow, name


def test_no_unicode_case_folding(fast_scanner: PayloadScanner) -> None:
    # U+212A KELVIN SIGN folds to "k" in Unicode; `bytes.lower()` (ASCII) does not fold it.
    payload = "\u212a_live_".encode()
    fast, slow = both(fast_scanner, payload)
    assert fast == slow
    assert "k_live_" not in fast[0]


def test_non_ascii_needles_use_the_loop() -> None:
    scan = payload_scanner(["contraseña", "token"], DIGITS)
    assert sorted(scan("la contraseña y el token".encode())[0]) == ["contraseña", "token"]
    assert scan(b"nada") == ([], False, False)
    assert sorted(loop_finder(["contraseña"])("CONTRASEÑA".lower().encode())) == ["contraseña"]


def test_one_scratch_per_thread() -> None:
    import threading

    scan = _built("_hyperscan_scanner")
    payload = b"x" * 50_000 + b"Bearer ghp_abc"
    results: list[PayloadScan] = []

    def work() -> None:
        for _ in range(50):
            results.append(scan(payload))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 200
    assert all(sorted(r[0]) == ["bearer", "ghp_"] for r in results)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Iterator[Path]:
    pytest.importorskip("hyperscan")
    needles.cache_compiled_scanners_in(str(tmp_path))
    try:
        yield tmp_path
    finally:
        needles.cache_compiled_scanners_in(None)


def test_the_compiled_scanner_is_kept_and_loaded_again(cache_dir: Path) -> None:
    first = _built("_hyperscan_scanner")
    (cached,) = cache_dir.glob("km-scanner-*.hsdb")
    assert cached.stat().st_mode & 0o777 == 0o600
    written = cached.read_bytes()
    second = _built("_hyperscan_scanner")
    assert cached.read_bytes() == written  # loaded, not compiled and written again
    payload = b"x" * 1000 + b"AKIA... Bearer \\u0041 4111111111111111"
    assert both(second, payload)[0] == both(first, payload)[0] == both(first, payload)[1]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[: len(data) // 2],  # cut short
        lambda data: data.replace(b"token", b"tokex", 1),  # another pattern set's file
        lambda data: b"not a scanner",
    ],
)
def test_a_damaged_or_foreign_cache_file_is_compiled_again(
    cache_dir: Path, damage: Callable[[bytes], bytes]
) -> None:
    _built("_hyperscan_scanner")
    (cached,) = cache_dir.glob("km-scanner-*.hsdb")
    cached.write_bytes(damage(cached.read_bytes()))
    scan = _built("_hyperscan_scanner")
    fast, slow = both(scan, b'{"token": "ghp_abc", "mail": "a@b.c"}')
    assert fast == slow and fast[0]
    assert cached.read_bytes().startswith(b"km-scanner 1\n")  # rewritten whole


def _maybe(scan: PayloadScan) -> bool:
    return bool(scan[0] or scan[1] or scan[2])


@given(st.lists(st.lists(st.sampled_from(ALPHABET), max_size=60).map(bytes), max_size=40))
def test_batch_scan_flags_exactly_the_payloads_the_loop_flags(payloads: list[bytes]) -> None:
    # Newlines in a payload (ALPHABET has 0x0A) make the batch scan go one by one: also covered.
    _, scan_many = needles.payload_scanners(NEEDLES, DIGITS)
    assert scan_many(payloads) == [_maybe(REFERENCE(p)) for p in payloads]
    flat = [p.replace(b"\n", b" ") for p in payloads]
    assert scan_many(flat) == [_maybe(REFERENCE(p)) for p in flat]


def test_batch_scan_of_clean_payloads_around_dirty_ones() -> None:
    pytest.importorskip("hyperscan")
    _, scan_many = needles.payload_scanners(NEEDLES, DIGITS)
    assert scan_many.__qualname__.startswith("_hyperscan_scanners")
    clean = b'{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"0001 xx"}}'
    payloads = [clean] * 50
    payloads[0] = b"Bearer x"  # a match at the very start
    payloads[7] = clean + b'"password"'  # at the end of a payload, before the separator
    payloads[8] = b"token token token"  # right after a flagged one
    payloads[20] = b"1234567 890123"  # 13 digits, no needle
    payloads[49] = b"@"  # the last one
    payloads[30] = b'"\\u0041"'  # an escape
    flagged = [i for i, maybe in enumerate(scan_many(payloads)) if maybe]
    assert flagged == [0, 7, 8, 20, 30, 49]
    assert scan_many([clean] * 1000) == [False] * 1000
    assert scan_many([]) == []
    assert scan_many([b"", b"", b"sk"]) == [False, False, True]


def test_needles_with_a_newline_scan_one_by_one() -> None:
    _, scan_many = needles.payload_scanners(["a\nb", "token"], DIGITS)
    assert scan_many([b"xa", b"bx", b"a\nb", b"token"]) == [False, False, True, True]
