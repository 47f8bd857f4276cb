"""Settings: defaults from runtime.md; a missing or malformed one is one clear line and exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from core.settings import SettingsError, load_settings
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
    assert s.sandbox and s.use_fake_gateway


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
    proc = subprocess.run([sys.executable, "-m", "core.cli", "migrate"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60,
                          )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "LEASE_S" in lines[0] and "soon" not in lines[0]
