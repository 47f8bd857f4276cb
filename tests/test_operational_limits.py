"""Operational limits (docs/reliability.md, "Operational limits"): POST /tick and the webhook under bursts
of concurrent requests (300 in flight), through the ASGI app in-process and through a real uvicorn server.

Every answer must be correct or a clean 503/429; nothing may crash (no 5xx other than 503, no ERROR
record); all ticks together create each cycle once and enqueue each job once; every distinct update
is handled exactly once and a redelivered one never twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from redis import Redis as SyncRedis
from rq.registry import ScheduledJobRegistry

from api.app import create_app
from sandbox.live_server import LiveServer
from tests.conftest import ADMIN_ID, TICK_TOKEN, ErrorRecords
from tests.harness import WEBHOOK_SECRET, sent_to
from tests.runtime_helpers import make_broadcaster
from worker import queues

BURST = 300
DUE = 40  # configs due when the tick burst starts
RESULTS: dict[str, Any] = {}  # numbers for docs/reliability.md, printed with -s


def _no_errors(errors: ErrorRecords) -> None:
    assert not errors.records, [f"{r.name}: {r.getMessage()}" for r in errors.records[:5]]


def _start(update_id: int, user_id: int, text: str = "/start") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id % 1_000_000, "date": int(time.time()), "text": text,
            "chat": {"id": user_id, "type": "private"},
            "from": {"id": user_id, "is_bot": False, "first_name": "U", "language_code": "en"},
            "entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}],
        },
    }


async def _post_all(client: httpx.AsyncClient, requests: Sequence[tuple[str, dict[str, Any] | None, dict[str, str]]]
                    ) -> list[httpx.Response]:
    async def one(path: str, body: dict[str, Any] | None, headers: dict[str, str]) -> httpx.Response:
        return await client.post(path, json=body, headers=headers)

    return list(await asyncio.gather(*(one(*r) for r in requests)))


def _statuses(responses: list[httpx.Response]) -> Counter[int]:
    return Counter(r.status_code for r in responses)


def _clean(responses: list[httpx.Response]) -> None:
    for r in responses:
        assert r.status_code in (200, 429, 503), (r.status_code, r.text[:300])
        if r.status_code in (429, 503):
            assert "retry-after" in r.headers


# ---- /tick ----------------------------------------------------------------------------------------


async def _tick_burst(client: httpx.AsyncClient, db, settings, label: str) -> None:
    sync = SyncRedis.from_url(settings.redis_url)
    auth = {"Authorization": f"Bearer {TICK_TOKEN}"}
    started = time.perf_counter()
    responses = await _post_all(client, [("/tick", None, auth)] * BURST)
    elapsed = time.perf_counter() - started
    _clean(responses)
    ok = [r.json() for r in responses if r.status_code == 200]
    assert ok, "at least one tick must get through"
    assert sum(s["enqueued"] for s in ok) == DUE
    cur = await db.execute("SELECT owner_id, count(*), max(seq) FROM cycles GROUP BY owner_id")
    rows = await cur.fetchall()
    assert len(rows) == DUE and all(n == 1 and seq == 1 for _, n, seq in rows)
    queue = queues.broadcast_queue(settings, sync)
    queued = queue.get_job_ids()
    scheduled = ScheduledJobRegistry(queue=queue).get_job_ids()
    jobs = queued + scheduled
    assert len(jobs) == len(set(jobs)) == DUE, (len(jobs), len(set(jobs)))
    cur = await db.execute("SELECT id FROM cycles")
    assert {f"send-{cid}-0" for (cid,) in await cur.fetchall()} == set(jobs)
    RESULTS[f"tick {label}"] = {"requests": BURST, "statuses": dict(_statuses(responses)),
                                "seconds": round(elapsed, 2), "cycles": len(rows), "jobs": len(jobs)}
    sync.close()


async def _make_due(db, net, settings) -> None:
    for i in range(DUE):
        await make_broadcaster(db, net, settings, 730_000_000 + i, groups=2)


async def test_tick_burst_in_process(client, db, net, settings, errors) -> None:
    await _make_due(db, net, settings)
    await _tick_burst(client, db, settings, "ASGI")
    _no_errors(errors)


# ---- the webhook ------------------------------------------------------------------------------------


async def _webhook_burst(client: httpx.AsyncClient, db, botapi, label: str) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET}
    first = 60_000_000
    distinct = [("/telegram/webhook", _start(first + i, 740_000_000 + i), headers) for i in range(BURST - 60)]
    # One user's updates at once (aiogram isolates them through a Redis lock), and one update
    # redelivered 30 times at once (the update_id de-duplication must hold under a race).
    same_user = [("/telegram/webhook", _start(first + 1000 + i, 741_000_000, "/id"), headers) for i in range(30)]
    redelivered = [("/telegram/webhook", _start(first + 5000, 742_000_000, "/id"), headers)] * 30
    started = time.perf_counter()
    responses = await _post_all(client, distinct + same_user + redelivered)
    elapsed = time.perf_counter() - started
    _clean(responses)
    assert any(r.status_code == 200 for r in responses)
    # Each new user that got through has exactly one pending row; the admin heard of each once.
    ok_users = [740_000_000 + i for i, r in enumerate(responses[: BURST - 60]) if r.status_code == 200]
    cur = await db.execute("SELECT count(*) FROM bot_users WHERE user_id = ANY(%(ids)s) AND status = 'pending'",
                           {"ids": ok_users})
    assert (await cur.fetchone()) == (len(ok_users),)
    told = Counter(
        int(b["callback_data"].split(":")[1])
        for c in sent_to(botapi, ADMIN_ID) if c.method == "sendMessage"
        for row in (c.params.get("reply_markup") or {}).get("inline_keyboard", [])
        for b in row if str(b.get("callback_data", "")).startswith("admin_user:")
    )
    assert {u: told[u] for u in ok_users} == dict.fromkeys(ok_users, 1)
    # /id answered once per distinct update of the same user, and once for the redelivered one.
    same_ok = sum(r.status_code == 200 for r in responses[BURST - 60: BURST - 30])
    assert len(botapi.messages(741_000_000)) == same_ok
    assert len(botapi.messages(742_000_000)) == (1 if any(r.status_code == 200 for r in responses[-30:]) else 0)
    RESULTS[f"webhook {label}"] = {"requests": len(responses), "statuses": dict(_statuses(responses)),
                                   "seconds": round(elapsed, 2)}


async def test_webhook_burst_in_process(client, db, botapi, errors) -> None:
    await _webhook_burst(client, db, botapi, "ASGI")
    _no_errors(errors)


# ---- the same bursts against a real uvicorn server ---------------------------------------------------


@pytest.fixture
def live(settings, botapi) -> Iterator[LiveServer]:
    with LiveServer(create_app(settings)) as server:
        yield server


async def test_bursts_against_a_real_uvicorn_server(live: LiveServer, db, net, settings, botapi, errors) -> None:
    await _make_due(db, net, settings)
    limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
    # A fresh client per burst: reusing 300 keep-alive connections that uvicorn closes after 5 s idle
    # races the close (a client-side ReadError, not a server failure).
    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=60) as client:
        await _tick_burst(client, db, settings, "uvicorn")
    async with httpx.AsyncClient(base_url=live.url, limits=limits, timeout=60) as client:
        await _webhook_burst(client, db, botapi, "uvicorn")
    _no_errors(errors)
    print("\noperational limits:", RESULTS)


# ---- overload: the database pool exhausted ------------------------------------------------------------


@pytest.fixture
async def starved_pool(app) -> Any:
    """Every connection of the web process's pool held, and a short wait for one (10 s in production)."""
    pool = app.state.tgcast.pool
    saved = pool.timeout
    pool.timeout = 0.3
    held = [await pool.getconn(timeout=5) for _ in range(pool.max_size)]

    async def release() -> None:
        while held:
            await pool.putconn(held.pop())
        pool.timeout = saved

    yield release
    await release()


async def test_webhook_answers_503_when_the_pool_is_exhausted_and_the_redelivery_is_handled(
    tg, app, starved_pool, errors
) -> None:
    """Found by this file: a pool timeout inside a handler was answered 200 ("handled"), so Telegram
    never redelivered the update: it was lost, and an ERROR logged. Now 503 + Retry-After, and the
    update id is not remembered, so the redelivery runs."""
    update = _start(80_000_001, 760_000_001, "/id")
    busy = await tg.post_update(update)
    assert busy.status_code == 503 and "retry-after" in busy.headers
    assert tg.api.messages(760_000_001) == []
    await starved_pool()
    again = await tg.post_update(update)
    assert again.status_code == 200
    assert len(tg.api.messages(760_000_001)) == 1  # the redelivery was handled, once
    _no_errors(errors)


async def test_tick_answers_503_when_the_pool_is_exhausted(client, starved_pool, errors) -> None:
    """Found by this file: a pool timeout in /tick was a 500 with a traceback."""
    auth = {"Authorization": f"Bearer {TICK_TOKEN}"}
    busy = await client.post("/tick", headers=auth)
    assert busy.status_code == 503 and "retry-after" in busy.headers
    await starved_pool()
    assert (await client.post("/tick", headers=auth)).status_code == 200
