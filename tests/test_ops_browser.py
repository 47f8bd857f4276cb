"""GET /ops: token rules, the numbers it shows, and the page as a real browser renders it (Debian's
headless Chromium against a real uvicorn server), with a screenshot kept under artifacts/."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from redis import Redis as SyncRedis
from rq import Queue

from api.app import create_app
from devtools.chromium import find_chromium
from sandbox.live_server import LiveServer
from tests.conftest import TICK_TOKEN

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


def seed(database_url: str, redis_url: str) -> dict[str, int]:
    """A day of activity: finished cycles over the last hours, two paused accounts, queued jobs."""
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for uid in (1, 2, 3):
            conn.execute("INSERT INTO bot_users (user_id, first_name, status) VALUES (%s, 'U', 'active')", (uid,))
            conn.execute(
                "INSERT INTO accounts (owner_id, tg_user_id, phone, session_enc, flood_until, pause_reason) "
                "VALUES (%s, %s, '+998901234567', '\\x00', %s, %s)",
                (uid, uid + 100, {1: now + timedelta(minutes=20), 2: now + timedelta(hours=2)}.get(uid),
                 {1: "flood", 2: "peer_flood"}.get(uid)),
            )
        row = conn.execute("INSERT INTO messages (owner_id, kind, text, content_hash) "
                           "VALUES (3, 'text', 'hi', 'h') RETURNING id").fetchone()
        assert row is not None
        sent_total = failed_total = 0
        for seq, hours_ago in enumerate([0, 1, 1, 2, 5, 9, 23], start=1):
            sent, failed = 10 + seq, seq % 3
            sent_total, failed_total = sent_total + sent, failed_total + failed
            reasons = {"forbidden": failed} if failed else {}
            if seq == 7:
                reasons["unreachable"] = 0
            conn.execute(
                "INSERT INTO cycles (owner_id, seq, message_id, interval_minutes, scheduled_at, run_at, started_at, "
                "finished_at, status, total, sent, failed, reasons, lag_ms) VALUES (3, %s, %s, 10, "
                "now() - %s::interval, now() - %s::interval, now() - %s::interval, now() - %s::interval, 'done', "
                "%s, %s, %s, %s, %s)",
                (seq, row[0], f"{hours_ago} hours", f"{hours_ago} hours", f"{hours_ago} hours",
                 f"{hours_ago} hours", sent + failed, sent, failed, json.dumps(reasons), 400 * seq),
            )
    with SyncRedis.from_url(redis_url) as r:
        q = Queue("tgcast-broadcast", connection=r)
        for n in range(3):
            q.enqueue("jobs.send_batch.send_batch", n, 0)
        q.enqueue_at(now + timedelta(hours=1), "jobs.send_batch.send_batch", 9, 0)
        r.set("tgcast:last_tick", time.time() - 12)
    return {"sent": sent_total, "failed": failed_total}


# ---- over HTTP -----------------------------------------------------------------------------------


async def test_token_by_query_or_bearer_falls_back_to_tick_token(client) -> None:
    assert (await client.get("/ops")).status_code == 401
    assert (await client.get("/ops?token=wrong")).status_code == 401
    assert (await client.get("/ops", headers={"Authorization": "Bearer wrong"})).status_code == 401
    by_query = await client.get(f"/ops?token={TICK_TOKEN}")
    assert by_query.status_code == 200 and by_query.headers["content-type"].startswith("text/html")
    assert by_query.headers["cache-control"] == "no-store"
    assert (await client.get("/ops", headers={"Authorization": f"Bearer {TICK_TOKEN}"})).status_code == 200


class TestMetricsTokenWins:
    @pytest.fixture
    def settings_overrides(self) -> dict:
        return {"metrics_token": "ops-metrics-token-0123456789"}

    async def test_metrics_token_replaces_tick_token(self, client) -> None:
        assert (await client.get(f"/ops?token={TICK_TOKEN}")).status_code == 401
        assert (await client.get("/ops?token=ops-metrics-token-0123456789")).status_code == 200


async def test_page_shows_the_numbers(client, settings) -> None:
    totals = seed(settings.database_url, settings.redis_url)
    page = (await client.get(f"/ops?token={TICK_TOKEN}")).text
    bars = re.findall(r'<g class="bar" data-sent="(\d+)" data-failed="(\d+)"', page)
    assert len(bars) == 24
    assert sum(int(s) for s, _ in bars) == totals["sent"] and sum(int(f) for _, f in bars) == totals["failed"]
    assert int(bars[-1][0]) == 11  # the cycle finished this hour is the last bar
    assert re.search(r"<td>tgcast-broadcast</td><td class=\"n\">3</td><td class=\"n\">1</td>", page)
    assert "<td>forbidden</td>" in page and "<td>unreachable</td>" in page
    paused = page.split('id="paused"')[1].split("</section>")[0]
    assert paused.index("<td>1</td>") < paused.index("<td>2</td>")  # soonest back first
    assert "peer_flood" in paused and "<td>3</td>" not in paused
    assert re.search(r'class="big ok" id="tick-age">\d+ s<', page)
    assert "7 cycles started in 24 h" in page
    assert "<script" not in page


async def test_empty_page_renders(client) -> None:
    page = (await client.get(f"/ops?token={TICK_TOKEN}")).text
    assert 'id="tick-age">never<' in page and "none in 24 h" in page
    assert len(re.findall(r'<g class="bar"', page)) == 24


# ---- in a real browser ---------------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        pytest.skip("no Chromium found: install Debian's `chromium` (devtools/ensure_chromium.sh) "
                    "or set CHROMIUM_PATH")
    return path


@pytest.fixture
def live(settings, botapi) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as server:
        yield server


def run_chromium(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--hide-scrollbars", f"--user-data-dir={profile}", "--window-size=1280,1600"]
    return subprocess.run([chromium, *flags, *args], capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_ops_page_in_headless_chromium(chromium: str, live: LiveServer, settings, tmp_path: Path) -> None:
    totals = seed(settings.database_url, settings.redis_url)
    url = f"{live.url}/ops?token={TICK_TOKEN}"

    dom = run_chromium(chromium, tmp_path / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<title>tgcast operations</title>" in html
    for section in ("tick", "queues", "lag", "accounts", "per-hour", "paused", "failures"):
        assert f'id="{section}"' in html
    assert f"{totals['sent']}</span> sent" in html
    assert len(re.findall(r'<g class="bar"', html)) == 24 and "<svg" in html

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "ops.png"
    shot.unlink(missing_ok=True)
    result = run_chromium(chromium, tmp_path / "profile-shot", f"--screenshot={shot}", url)
    assert result.returncode == 0, result.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 1600)
    assert len(data) > 20_000  # a rendered page, not a blank one
