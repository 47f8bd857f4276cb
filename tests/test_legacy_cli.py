"""`tgcast import-legacy` as an operator runs it: a real process configured by environment variables.
Bad input is one line on stderr and exit code 2 with nothing written on either side; the report goes to
stdout (JSON with --json), progress to stderr; no session string is printed anywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.conftest import _ADMIN_URL
from tests.legacy_fixtures import LegacyDb, seed_node, seed_python
from tests.test_cli import base_env, tgcast  # noqa: F401 - base_env is a fixture

pytestmark = pytest.mark.slow


@pytest.fixture
def python_source() -> Iterator[LegacyDb]:
    db = LegacyDb(_ADMIN_URL, "python").create()
    yield db
    db.drop()


def counts(database_url: str) -> tuple[int, int, int]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM bot_users), (SELECT count(*) FROM accounts), "
                           "(SELECT count(*) FROM legacy_runs)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def test_dry_run_then_import_with_a_json_report(base_env, tmp_path: Path, database_url, python_source) -> None:  # noqa: F811
    seeded = seed_python(python_source, datetime.now(UTC))
    url = python_source.url("sqlalchemy")
    first = tgcast(base_env, tmp_path, "import-legacy", "--from", url)
    assert first.returncode == 0, first.stderr
    assert counts(database_url)[:2] == (0, 0)  # the first run from a source is a dry run
    second = tgcast(base_env, tmp_path, "import-legacy", "--from", url, "--json")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["dry_run"] is False and report["flavour"] == "python"
    assert report["reasons"]["non_numeric_id"] == 1 and report["imported"]["user"] == 5
    assert "reading" in second.stderr and "writing" in second.stderr  # progress goes to stderr
    assert counts(database_url)[:2] == (5, 6)  # one user has two accounts
    printed = first.stdout + first.stderr + second.stdout + second.stderr
    assert not any(s[4:40] in printed for s in seeded.sessions.values() if len(s) > 40)


@pytest.mark.parametrize("case", ["unanswered", "neither", "missing_column", "not_postgres", "no_url"])
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(base_env, tmp_path: Path, database_url,  # noqa: F811
                                                              case: str) -> None:
    source = LegacyDb(_ADMIN_URL, "node").create()
    try:
        seed_node(source, datetime.now(UTC))
        url = source.url("prisma")
        if case == "unanswered":
            url = "postgresql://postgres:pw@127.0.0.1:9/tgbot?schema=public&connection_limit=5"
        elif case == "neither":
            with source.connect() as conn:
                conn.execute('DROP TABLE "TelegramAccount", "BroadcastConfig"')
        elif case == "missing_column":
            with source.connect() as conn:
                conn.execute('ALTER TABLE "BroadcastConfig" DROP COLUMN "interval"')
        elif case == "not_postgres":
            url = "mysql://root@127.0.0.1/tgbot"
        before = source.fingerprint()
        args = ["import-legacy", "--apply"] + ([] if case == "no_url" else ["--from", url])
        done = tgcast(base_env, tmp_path, *args)
        assert done.returncode == 2, (done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if not line.startswith("reading")]
        assert len(lines) == 1 and lines[0].startswith("tgcast: "), done.stderr
        assert "pw@" not in done.stderr
        assert done.stdout == ""
        assert counts(database_url) == (0, 0, 0)
        assert source.fingerprint() == before
    finally:
        source.drop()


def test_verify_sessions_refuses_while_the_older_worker_writes(base_env, tmp_path: Path, database_url,  # noqa: F811
                                                               python_source) -> None:
    now = datetime.now(UTC)
    seed_python(python_source, now)
    url = python_source.url()
    assert tgcast(base_env, tmp_path, "import-legacy", "--from", url, "--apply").returncode == 0
    with python_source.connect() as conn:
        conn.execute("UPDATE broadcast_attempts SET updated_at = %s", (now.replace(tzinfo=None),))
    done = tgcast(base_env, tmp_path, "import-legacy", "--from", url, "--verify-sessions")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and done.stderr.startswith("tgcast: ")
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM accounts WHERE status = 'active'").fetchone()
    assert row is not None and row[0] == 5  # untouched: all but the unreadable one
