"""`km sync`, `km login`, `km config`: exit codes, one-line errors, the key kept out of sight."""

from __future__ import annotations

import io
import stat
import tomllib
from pathlib import Path

import pytest

from km.uplink.cli import _with_progress_bar, run_config, run_login, run_sync
from km.uplink.config_file import update_config
from km.uplink.run import Uplink
from tests.uplink.fake_api import GOOD_KEY, FakeApi, free_port, serving
from tests.uplink.helpers import FAST, fill_spool, make_events, make_settings, states

Capture = pytest.CaptureFixture[str]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def config_of(tmp_path: Path) -> dict[str, object]:
    path = Path(make_settings(tmp_path).resolve_config_path())
    return tomllib.loads(path.read_text())


# -- km config


def test_config_show_masks_the_key(tmp_path: Path, capsys: Capture) -> None:
    settings = make_settings(tmp_path)
    path = settings.resolve_config_path()
    update_config(
        path,
        {
            "api_url": "https://u:pw@api.example.com",
            "api_key": GOOD_KEY,
            "database_url": "postgresql://km:dbsecret@db/km",
        },
    )
    assert run_config(["show"], settings) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"# {path}"
    assert "api_url = https://api.example.com  # config file" in out
    assert "api_key = km_live_GGGG…  # config file" in out
    assert "database_url = postgresql://db/km  # config file" in out
    assert GOOD_KEY not in out and "pw" not in out and "dbsecret" not in out


def test_config_show_without_a_file(tmp_path: Path, capsys: Capture) -> None:
    settings = make_settings(tmp_path, key=GOOD_KEY)
    assert run_config([], settings) == 0
    out = capsys.readouterr().out
    assert "(does not exist yet)" in out
    assert "api_key = km_live_GGGG…  # KM_API_KEY or a flag" in out
    assert "max_payload = 65536  # default" in out


def test_config_set_unset_and_path(tmp_path: Path, capsys: Capture) -> None:
    settings = make_settings(tmp_path)
    assert run_config(["set", "api_url", "http://127.0.0.1:8477"], settings) == 0
    assert run_config(["set", "max_payload", "16k"], settings) == 0
    assert config_of(tmp_path) == {"api_url": "http://127.0.0.1:8477", "max_payload": "16k"}
    assert run_config(["unset", "max_payload"], settings) == 0
    assert config_of(tmp_path) == {"api_url": "http://127.0.0.1:8477"}
    assert run_config(["path"], settings) == 0
    assert capsys.readouterr().out.strip().endswith("config.toml")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "api_key", GOOD_KEY], "use `km login`"),
        (["set", "colour", "red"], "unknown key 'colour'"),
        (["set", "max_payload", "lots"], "expected a size"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_config_refusals(tmp_path: Path, capsys: Capture, args: list[str], message: str) -> None:
    assert run_config(args, make_settings(tmp_path)) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("km: ") and err.count("\n") == 1
    assert not Path(make_settings(tmp_path).resolve_config_path()).exists()


# -- km login


def test_login_verifies_and_saves_privately(tmp_path: Path, capsys: Capture) -> None:
    with serving(FakeApi()) as server:
        settings = make_settings(tmp_path)
        code = run_login(["--url", server.url], settings, stdin=io.StringIO(f"  {GOOD_KEY}\n"))
    assert code == 0
    assert config_of(tmp_path) == {"api_url": server.url, "api_key": GOOD_KEY}
    path = Path(settings.resolve_config_path())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    err = capsys.readouterr().err
    assert "accepted by" in err and GOOD_KEY not in err


def test_login_prompts_without_echo_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []

    def fake_getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return GOOD_KEY

    monkeypatch.setattr("getpass.getpass", fake_getpass)
    with serving(FakeApi()) as server:
        assert run_login(["--url", server.url], make_settings(tmp_path), stdin=Tty()) == 0
    assert asked == ["Kilometers API key (input hidden): "]


def test_login_refuses_a_rejected_key(tmp_path: Path, capsys: Capture) -> None:
    bad = "km_live_" + "B" * 32
    with serving(FakeApi()) as server:
        code = run_login(["--url", server.url], make_settings(tmp_path), stdin=io.StringIO(bad))
    assert code == 3
    err = capsys.readouterr().err
    assert "rejected the key" in err and bad not in err and err.count("\n") == 1
    assert not Path(make_settings(tmp_path).resolve_config_path()).exists()


def test_login_saves_unchecked_when_the_api_is_unreachable(tmp_path: Path, capsys: Capture) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    assert run_login(["--url", url], make_settings(tmp_path), stdin=io.StringIO(GOOD_KEY)) == 0
    assert config_of(tmp_path)["api_key"] == GOOD_KEY
    assert "could not reach" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        ([], GOOD_KEY, "no API URL"),
        (["--url", "ftp://x"], GOOD_KEY, "expected http(s)://"),
        (["--url", "http://h"], "\n", "no API key given"),
        (["--url", "http://h"], "km_live_a b", "spaces or control characters"),
        (["--url", "http://h", GOOD_KEY], "", "unrecognized arguments"),
    ],
)
def test_login_refusals(
    tmp_path: Path, capsys: Capture, args: list[str], stdin: str, message: str
) -> None:
    assert run_login(args, make_settings(tmp_path), stdin=io.StringIO(stdin)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


# -- km sync


def test_sync_without_an_api(tmp_path: Path, capsys: Capture) -> None:
    assert run_sync([], make_settings(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err == (
        "km: no API URL configured: run `km login --url https://...` "
        "(or set KM_API_URL and KM_API_KEY)\n"
    )
    assert run_sync([], make_settings(tmp_path, url="http://h")) == 2
    assert "no API key configured" in capsys.readouterr().err


def test_sync_with_nothing_captured(tmp_path: Path, capsys: Capture) -> None:
    settings = make_settings(tmp_path, "http://127.0.0.1:9", GOOD_KEY)
    assert run_sync(["--spool", str(tmp_path / "none.db")], settings) == 0
    assert "nothing to send" in capsys.readouterr().err


def test_sync_drains(tmp_path: Path, capsys: Capture) -> None:
    spool = tmp_path / "spool.db"
    ids = fill_spool(spool, make_events(700))
    api = FakeApi(reject_ids={ids[1]: "kind: no"})
    with serving(api) as server:
        code = run_sync(["--spool", str(spool)], make_settings(tmp_path, server.url, GOOD_KEY))
    assert code == 0
    assert states(spool) == {"pending": 0, "in_flight": 0, "sent": 699, "quarantined": 1}
    err = capsys.readouterr().err
    assert f"sent 699 events to {server.url}" in err and "1 quarantined" in err


def test_sync_after_everything_was_delivered_says_so_instead_of_sent_0(
    tmp_path: Path, capsys: Capture
) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(30))
    with serving(FakeApi()) as server:
        settings = make_settings(tmp_path, server.url, GOOD_KEY)
        assert run_sync(["--spool", str(spool)], settings) == 0  # as the background uplink would
        capsys.readouterr()
        assert run_sync(["--spool", str(spool)], settings) == 0
    err = capsys.readouterr().err
    assert err == (
        "km: nothing left to send: 30 events were already delivered by the background uplink "
        "(km status shows them as sent)\n"
    )


def test_sync_with_a_bad_key(tmp_path: Path, capsys: Capture) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(20))
    bad = "km_live_" + "B" * 32
    with serving(FakeApi()) as server:
        code = run_sync(["--spool", str(spool)], make_settings(tmp_path, server.url, bad))
    assert code == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "rejected the key" in err and "km login" in err
    assert bad not in err
    assert states(spool)["pending"] == 20


def test_progress_bar(tmp_path: Path, capsys: Capture) -> None:
    spool = tmp_path / "spool.db"
    fill_spool(spool, make_events(250))
    with serving(FakeApi()) as server:
        uplink = Uplink(make_settings(tmp_path, server.url, GOOD_KEY), str(spool), FAST)
        result = _with_progress_bar(uplink, server.url)
    assert result.sent == 250
    assert GOOD_KEY not in capsys.readouterr().err
