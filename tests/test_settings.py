"""Settings: defaults as docs/runtime.md, "Settings" lists them; a missing or malformed one is one clear
line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import SANDBOX_BOT_TOKEN, SettingsError, load_settings
from tests.conftest import SESSION_KEY

REQUIRED = {"database_url": "postgresql://x/y", "redis_url": "redis://x", "session_keys": SESSION_KEY,
            "tick_token": "t" * 16, "_env_file": None}


def test_defaults_match_the_runtime_spec() -> None:
    s = load_settings(**REQUIRED)
    assert (s.due_window_s, s.tick_cap, s.jitter_max_ms) == (60, 1000, 15000)
    assert (s.min_interval_minutes, s.max_interval_minutes) == (3, 10080)
    assert (s.batch_size, s.lease_s, s.lock_ttl_s, s.lock_busy_retries) == (20, 120, 60, 10)
    assert (s.cont_delay_ms, s.cont_jitter_ms, s.send_pause_min_ms, s.send_pause_max_ms) == (1500, 1500, 1000, 2000)
    assert (s.max_retries, s.retry_base_ms, s.retry_max_ms, s.slowmode_default_s) == (3, 2000, 120000, 300)
    assert (s.account_pause_s, s.announce_rate, s.run_retention_days, s.default_language) == (3600, 25, 7, "uz")
    # Nothing emulated unless asked for: no sandbox, and GATEWAY=auto means Telethon.
    assert not s.sandbox and not s.use_fake_gateway and s.ops_token is None
    assert s.startup_wait_s == 15


def test_defaults_carry_the_real_shape() -> None:
    # 10,000 broadcasters every 5 minutes (docs/runtime.md, "Capacity on defaults"): each account's
    # connection outlives the interval, and one worker may hold every account while the others restart.
    # (TICK_CAP bounds a transaction only: tests/test_tick.py, a tick drains what is due.)
    s = load_settings(**REQUIRED)
    assert s.client_idle_s > 5 * 60
    assert s.client_max >= 10_000


def test_a_worker_lifts_its_open_files_limit_for_its_connections() -> None:
    # In a child: the limit is the process's own.
    code = (
        "import resource, tgcast_cli\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "print(tgcast_cli.raise_open_files(1000)[0], resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    returned, now, hard = (int(v) for v in done.stdout.split())
    wanted = 1000 + 256
    assert returned == now == (wanted if hard == -1 else min(wanted, hard))  # -1: RLIM_INFINITY


def test_sandbox_and_emulated_accounts_only_when_asked_for() -> None:
    sandbox = load_settings(**REQUIRED, sandbox="1")
    assert sandbox.sandbox and sandbox.use_fake_gateway and not sandbox.sandbox_allow_remote
    assert sandbox.bot_token_value() == SANDBOX_BOT_TOKEN
    sandbox.check_live(accounts=True)  # the emulator stands in for every credential

    production = load_settings(**REQUIRED)
    with pytest.raises(SettingsError, match="BOT_TOKEN"):
        production.bot_token_value()
    with pytest.raises(SettingsError) as info:
        production.check_live(accounts=True)
    assert str(info.value) == "settings BOT_TOKEN, API_ID, API_HASH are missing"
    with pytest.raises(SettingsError) as info:
        production.check_live(accounts=False)
    assert str(info.value) == "setting BOT_TOKEN is missing"

    with_bot = load_settings(**REQUIRED, bot_token="123:abc", api_id=5)
    assert not with_bot.use_fake_gateway
    with pytest.raises(SettingsError, match="API_HASH"):
        with_bot.check_live(accounts=True)
    load_settings(**REQUIRED, bot_token="123:abc", api_id=5, api_hash="h" * 32).check_live(accounts=True)

    # Tests and benchmarks ask for the emulated gateway by name; that stays allowed.
    explicit = load_settings(**REQUIRED, bot_token="123:abc", gateway="fake")
    assert explicit.use_fake_gateway and not explicit.sandbox
    explicit.check_live(accounts=True)
    assert load_settings(**REQUIRED, gateway="fake").bot_token_value() == SANDBOX_BOT_TOKEN


def test_blank_credentials_are_unset() -> None:
    s = load_settings(**REQUIRED, bot_token="", api_hash=" ", ops_token="")
    assert s.bot_token is None and s.api_hash is None and s.ops_token is None


def test_ops_token_is_its_own_secret() -> None:
    s = load_settings(**REQUIRED, ops_token="o" * 16)
    assert s.ops_token is not None and "o" * 16 in s.secret_values()
    with pytest.raises(SettingsError, match="OPS_TOKEN"):
        load_settings(**REQUIRED, ops_token="short")


@pytest.mark.parametrize(("override", "name"), [
    ({"session_keys": "abc"}, "SESSION_KEYS"),
    ({"session_keys": f"{SESSION_KEY},{SESSION_KEY[:-2]}"}, "SESSION_KEYS"),
    ({"database_url": "foo"}, "DATABASE_URL"), ({"database_url": " "}, "DATABASE_URL"),
    ({"redis_url": "nope"}, "REDIS_URL"), ({"redis_url": "http://x"}, "REDIS_URL"),
    ({"redis_url": "redis://x:port/0"}, "REDIS_URL"), ({"fake_redis_url": "x"}, "FAKE_REDIS_URL"),
])
def test_malformed_storage_settings_name_themselves(override: dict, name: str) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(**{**REQUIRED, **override})
    message = str(info.value)
    assert message.startswith(f"setting {name} is malformed") and "\n" not in message
    assert all(str(v) not in message for v in override.values() if len(str(v).strip()) > 3)


def test_storage_settings_in_every_accepted_form() -> None:
    s = load_settings(**{**REQUIRED, "database_url": "host=db dbname=tgcast user=app",
                         "redis_url": "unix:///run/redis.sock?db=2", "fake_redis_url": "rediss://:pw@h:6380/1",
                         "session_keys": f"{SESSION_KEY}, 5a8rH0wZr6wq1kQ9l3f2YdV7m3cJ0kS2nB4tX6yE8uA="})
    assert len(s.session_keys) == 2


def test_lists_are_comma_separated() -> None:
    s = load_settings(**REQUIRED, admin_ids="1, 2,3", admin_usernames="@Boss,other")
    assert s.admin_ids == {1, 2, 3} and s.admin_usernames == {"boss", "other"}


@pytest.mark.parametrize(
    ("override", "name"),
    [({"tick_token": None}, "TICK_TOKEN"), ({"batch_size": "many"}, "BATCH_SIZE"),
     ({"admin_ids": "1,x"}, "ADMIN_IDS"), ({"default_language": "de"}, "DEFAULT_LANGUAGE")],
)
def test_bad_setting_names_itself(override: dict, name: str) -> None:
    values = {**REQUIRED, **override}
    values = {k: v for k, v in values.items() if v is not None}
    with pytest.raises(SettingsError) as info:
        load_settings(**values)
    message = str(info.value)
    assert name in message and "\n" not in message


def test_cli_exits_nonzero_with_one_line(tmp_path) -> None:
    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://x/y", "REDIS_URL": "redis://x",
           "SESSION_KEYS": SESSION_KEY, "TICK_TOKEN": "secret-tick", "LEASE_S": "soon"}
    proc = subprocess.run([sys.executable, "-m", "tgcast_cli", "migrate"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "LEASE_S" in lines[0] and "soon" not in lines[0]


def test_the_request_timeout_has_a_default_and_bounds() -> None:
    assert load_settings(**REQUIRED).request_timeout_s == 20
    assert load_settings(**REQUIRED, request_timeout_s=0.5).request_timeout_s == 0.5
    for bad in (0, -1, 301):
        with pytest.raises(SettingsError):
            load_settings(**REQUIRED, request_timeout_s=bad)


def test_the_worker_shutdown_bound_has_a_default_and_bounds() -> None:
    assert load_settings(**REQUIRED).worker_shutdown_s == 25
    assert load_settings(**REQUIRED, worker_shutdown_s=6).worker_shutdown_s == 6
    for bad in (0, 1.5, -1, 601):
        with pytest.raises(SettingsError):
            load_settings(**REQUIRED, worker_shutdown_s=bad)
