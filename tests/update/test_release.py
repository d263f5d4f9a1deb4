"""The sans-IO parts of `km update`: base URL, archive names, SHA256SUMS, version order."""

from __future__ import annotations

import pytest

from km.update.release import (
    ReleaseError,
    archive_name,
    base_url,
    is_newer,
    newest,
    parse_sums,
    platform_name,
)

A = "a" * 64
B = "B" * 64


def test_base_url_is_the_latest_release_or_the_mirror() -> None:
    assert base_url({}) == "https://github.com/kilometers-ai/km/releases/latest/download"
    assert base_url({"KM_INSTALL_BASE_URL": "http://127.0.0.1:8000/"}) == "http://127.0.0.1:8000"
    assert base_url({"KM_INSTALL_BASE_URL": "  "}).endswith("/latest/download")


@pytest.mark.parametrize(
    ("system", "machine", "expected"),
    [("linux", "x86_64", "linux-amd64"), ("darwin", "arm64", "darwin-arm64"),
     ("win32", "AMD64", "windows-amd64"), ("linux", "aarch64", "linux-arm64"),
     ("freebsd", "amd64", None), ("linux", "riscv64", None)],
)  # fmt: skip
def test_platform_names_match_the_archives(system: str, machine: str, expected: str) -> None:
    assert platform_name(system, machine) == expected


def test_archive_names() -> None:
    assert archive_name("0.2.0", "linux-amd64") == "km-0.2.0-linux-amd64.tar.gz"
    assert archive_name("0.2.0", "windows-amd64") == "km-0.2.0-windows-amd64.zip"


def test_parse_sums_reads_both_sha256sum_forms() -> None:
    text = f"{A}  km-0.1.0-linux-amd64.tar.gz\n{B} *km-0.1.0-windows-amd64.zip\r\n\n"
    assert parse_sums(text) == {
        "km-0.1.0-linux-amd64.tar.gz": A,
        "km-0.1.0-windows-amd64.zip": B.lower(),
    }


@pytest.mark.parametrize("line", ["nothing here", f"{A[:-1]}  km.tar.gz", f"{A}km.tar.gz"])
def test_parse_sums_refuses_a_malformed_line(line: str) -> None:
    with pytest.raises(ReleaseError, match="line 2"):
        parse_sums(f"{A}  ok.tar.gz\n{line}\n")


def test_newest_picks_the_highest_final_version_for_the_platform() -> None:
    sums = {
        "km-0.9.0-linux-amd64.tar.gz": A,
        "km-0.10.0-linux-amd64.tar.gz": B,  # 0.10 > 0.9: not a string comparison
        "km-0.11.0rc1-linux-amd64.tar.gz": A,  # a pre-release, while a final one exists
        "km-0.12.0-darwin-arm64.tar.gz": A,  # another platform
        "km-0.12.0-windows-amd64.zip": A,
        "km-latest-linux-amd64.tar.gz": A,  # not a version
        "SHA256SUMS.sig": A,
    }
    found = newest(sums, "linux-amd64")
    assert found is not None
    assert (found.version, found.archive, found.sha256) == ("0.10.0", *list(sums.items())[1])
    assert found.top == "km-0.10.0-linux-amd64"
    windows = newest(sums, "windows-amd64")
    assert windows is not None and windows.top == "km-0.12.0-windows-amd64"
    assert newest(sums, "linux-arm64") is None
    only_rc = newest({"km-1.0.0rc1-linux-amd64.tar.gz": A}, "linux-amd64")
    assert only_rc is not None and only_rc.version == "1.0.0rc1"


@pytest.mark.parametrize(
    ("candidate", "current", "newer"),
    [("0.1.1", "0.1.0", True), ("0.10.0", "0.9.9", True), ("0.1.0", "0.1.0", False),
     ("0.1.0", "0.2.0", False), ("1.0.0", "1.0.0rc1", True), ("1.0.0rc1", "0.9.0", True),
     ("junk", "0.1.0", False), ("0.1.0", "junk", True)],
)  # fmt: skip
def test_version_order(candidate: str, current: str, newer: bool) -> None:
    assert is_newer(candidate, current) is newer
