"""The dev runner (`make run`): it asks for sandbox mode only when no BOT_TOKEN is configured, and it
keeps OPS_TOKEN with the other generated dev secrets, stable across restarts and valid as a setting."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from core.settings import load_settings
from devtools import devrun
from tests.conftest import SESSION_KEY

GENERATED = {"SESSION_KEYS": SESSION_KEY, "TICK_TOKEN": "t" * 32, "WEBHOOK_SECRET": "w" * 32, "OPS_TOKEN": "o" * 32}


@pytest.mark.parametrize(("environ", "dotenv", "sandbox"), [
    ({}, {}, True),
    ({"BOT_TOKEN": ""}, {}, True),
    ({"BOT_TOKEN": "123:abc"}, {}, False),
    ({}, {"BOT_TOKEN": "123:abc"}, False),  # a bot token in .env is a live bot too
    ({"SANDBOX": "0"}, {}, False),  # asked not to: the web process then stops, naming BOT_TOKEN
    ({"BOT_TOKEN": "123:abc", "SANDBOX": "1"}, {}, True),
])
def test_sandbox_mode_is_asked_for_only_without_a_bot_token(environ: dict, dotenv: dict, sandbox: bool) -> None:
    env, is_sandbox = devrun.dev_env(environ, dotenv, GENERATED)
    assert is_sandbox is sandbox
    assert load_settings(**_as_settings(env)).sandbox is sandbox


def test_what_the_developer_set_wins_over_generated_secrets() -> None:
    env, _ = devrun.dev_env({"OPS_TOKEN": "mine-from-the-shell-0123"}, {"TICK_TOKEN": "mine-from-dotenv-0123"},
                            GENERATED)
    assert env["OPS_TOKEN"] == "mine-from-the-shell-0123" and env["TICK_TOKEN"] == "mine-from-dotenv-0123"
    assert env["WEBHOOK_SECRET"] == GENERATED["WEBHOOK_SECRET"]
    env, _ = devrun.dev_env({"TICK_TOKEN": "shell-wins-0123456"}, {"TICK_TOKEN": "dotenv-loses-0123"}, GENERATED)
    assert env["TICK_TOKEN"] == "shell-wins-0123456"


def test_ops_token_is_generated_once_and_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devrun, "LOCAL", tmp_path / ".local")
    first = devrun._dev_secrets()
    assert set(GENERATED) <= set(first)
    assert devrun._dev_secrets() == first  # a restart keeps every secret (sessions stay decryptable)
    path = tmp_path / ".local" / "dev.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load_settings(**_as_settings({**first, "SANDBOX": "1"}))
    assert settings.ops_token is not None and settings.ops_token.get_secret_value() == first["OPS_TOKEN"]

    # A dev.env written before OPS_TOKEN existed gets one added, the rest untouched.
    path.write_text("".join(f"{k}={v}\n" for k, v in first.items() if k != "OPS_TOKEN"))
    again = devrun._dev_secrets()
    assert len(again["OPS_TOKEN"]) >= 16 and again["SESSION_KEYS"] == first["SESSION_KEYS"]
    assert {k: v for k, v in again.items() if k != "OPS_TOKEN"} == {k: v for k, v in first.items() if k != "OPS_TOKEN"}


def _as_settings(env: dict[str, str]) -> dict[str, object]:
    base: dict[str, object] = {"database_url": "postgresql://x/y", "redis_url": "redis://x", "_env_file": None}
    names = {"SESSION_KEYS", "TICK_TOKEN", "WEBHOOK_SECRET", "OPS_TOKEN", "BOT_TOKEN", "SANDBOX"}
    return base | {k.lower(): v for k, v in env.items() if k in names}


class _Clock:
    """Time that moves only when the code under test sleeps: no real waiting, no timing in the test."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def __call__(self) -> float:
        return self.now


def test_the_url_waits_until_the_server_answers() -> None:
    clock, calls = _Clock(), []

    def get(url: str, **_: object) -> object:
        calls.append((url, clock.now))
        if len(calls) < 4:  # the web process is still starting: connection refused
            raise httpx.ConnectError("refused")
        return object()

    assert devrun.wait_until_answering("http://127.0.0.1:8000", lambda: True, 60, get=get, sleep=clock.sleep,
                                       clock=clock)
    assert [url for url, _ in calls] == ["http://127.0.0.1:8000/health"] * 4
    assert calls[-1][1] > 0  # it waited between the tries


def test_no_url_when_the_web_process_dies_or_never_answers() -> None:
    clock = _Clock()

    def refused(url: str, **_: object) -> object:
        raise httpx.ConnectError("refused")

    assert not devrun.wait_until_answering("http://x", lambda: False, 60, get=refused, sleep=clock.sleep, clock=clock)
    assert clock.now == 0  # gone at once: no waiting
    assert not devrun.wait_until_answering("http://x", lambda: True, 60, get=refused, sleep=clock.sleep, clock=clock)
    assert clock.now >= 60


def test_make_test_runs_the_whole_suite_in_several_processes_and_a_named_test_in_one() -> None:
    from devtools.testrun import pytest_args

    assert pytest_args([], 3) == ["-n", "3", "--dist", "worksteal"]
    assert pytest_args(["-q", "--durations=40"], 3)[:2] == ["-n", "3"]
    for argv in (["tests/test_tick.py", "-q"], ["tests/test_tick.py::test_x"], ["-n", "0"], ["-p", "no:xdist"]):
        assert pytest_args(argv, 3) == argv
    assert pytest_args([], 1) == []
