"""The test harness: real PostgreSQL and Redis in their own database and key space, the fake Bot API
server, the emulated Telegram network, and the web app driven through its webhook.

Environment: TEST_DATABASE_URL (a server URL whose database may create others; default the local
`postgres` database) and TEST_REDIS_URL (a server; each run claims a free db 1..15 of it). The session creates a
database of its own, migrates it, and drops it at the end; Redis db is flushed between tests.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from psycopg import sql
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from starlette.applications import Starlette

from core.settings import Settings
from db.migrate import migrate
from devtools.services import claim_redis_db
from sandbox.botapi import FakeBotAPI, FakeBotAPIServer
from tests.harness import WEBHOOK_SECRET, Telegram, TgUser
from userbot.fake import FakeTelegram

ADMIN_ID = 900_000_001
BOT_TOKEN = "123456:TEST-token-for-the-fake-bot-api-0000"
TICK_TOKEN = "test-tick-token-0123456789"
SESSION_KEY = "Q8kc3ryTr3mH0C8rcn1-6ydrM0Y_gkDmKcbkfxk-6SU="

# Hypothesis draws the same examples on every run ("ci", the default: a failure in CI is a failure on
# every machine); `make fuzz` explores with fresh seeds ("explore", HYPOTHESIS_PROFILE=explore).
_HYPOTHESIS_HEALTH = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
hypothesis_settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True,
                                     suppress_health_check=_HYPOTHESIS_HEALTH)
hypothesis_settings.register_profile("explore", derandomize=False, database=None, deadline=None, print_blob=True,
                                     max_examples=1000, suppress_health_check=_HYPOTHESIS_HEALTH)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def _url_with_db(url: str, dbname: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    params["dbname"] = dbname
    return psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"tgcast_test_{os.getpid()}"
    with psycopg.connect(_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = _url_with_db(_ADMIN_URL, name)
    migrate(url)
    yield url
    with psycopg.connect(_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url, release = claim_redis_db(_REDIS_URL)
    yield url
    release()


@pytest.fixture(scope="session")
def botapi_server() -> Iterator[FakeBotAPIServer]:
    with FakeBotAPIServer(FakeBotAPI()) as server:
        yield server


@pytest.fixture
def botapi(botapi_server: FakeBotAPIServer) -> FakeBotAPI:
    botapi_server.api.clear()
    return botapi_server.api


_TABLES = ("deliveries", "cycles", "configs", "messages", "media", "groups", "accounts", "notices",
           "announcements", "bot_users", "admin_usernames", "legacy_rows", "legacy_runs")


@pytest.fixture(autouse=True)
def clean_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from empty tables and an empty Redis db (only for tests that use them)."""
    needs = {"database_url", "settings", "app", "tg", "db", "redis", "net"} & set(request.fixturenames)
    if needs:
        db_url = request.getfixturevalue("database_url")
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(
                    sql.SQL(", ").join(sql.Identifier(t) for t in _TABLES)
                )
            )
        with SyncRedis.from_url(request.getfixturevalue("redis_url")) as r:
            r.flushdb()
    yield


def make_settings(database_url: str, redis_url: str, bot_api_base: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "session_keys": SESSION_KEY,
        "tick_token": TICK_TOKEN,
        "webhook_secret": WEBHOOK_SECRET,
        "bot_token": BOT_TOKEN,
        "bot_api_base": bot_api_base,
        "gateway": "fake",
        "admin_ids": str(ADMIN_ID),
        "support_contact": "@tgcast_support",
        "default_language": "en",
        "jitter_max_ms": 0,
        "send_pause_min_ms": 0,
        "send_pause_max_ms": 0,
        "cont_delay_ms": 0,
        "cont_jitter_ms": 0,
        # Tests empty Redis before each one: waiting out every loss of state would make each test's first
        # connection wait. The wait itself is tested in tests/test_claims.py.
        "claim_state_loss_wait_s": 0,
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(
    database_url: str, redis_url: str, botapi_server: FakeBotAPIServer, settings_overrides: dict[str, Any]
) -> Settings:
    return make_settings(database_url, redis_url, botapi_server.base_url, **settings_overrides)


@pytest.fixture
async def app(settings: Settings, botapi: FakeBotAPI) -> AsyncIterator[Starlette]:
    from api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://tgcast.test") as c:
        yield c


@pytest.fixture
def tg(client: httpx.AsyncClient, botapi: FakeBotAPI, botapi_server: FakeBotAPIServer) -> Telegram:
    return Telegram(client, botapi, botapi_server.base_url, BOT_TOKEN)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[psycopg.AsyncConnection]:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    async with AsyncExitStack() as stack:
        r = Redis.from_url(redis_url)
        stack.push_async_callback(r.aclose)
        yield r


@pytest.fixture
def net(redis: Redis, settings: Settings) -> FakeTelegram:
    """The emulated Telegram network, the same one the app's fake gateway talks to."""
    return FakeTelegram(redis, prefix=f"{settings.redis_prefix}fake:")


@pytest.fixture
def admin() -> TgUser:
    return TgUser(ADMIN_ID, first_name="Admin", username="boss")


@pytest.fixture
def user() -> TgUser:
    return TgUser(700_000_001, first_name="Ali", username="ali")


# ---- the runtime's tests: a pool, an in-process job context, a sync Redis for RQ -----------------


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[Any]:
    from db.pool import open_pool

    p = await open_pool(settings.database_url, min_size=1, max_size=6)
    await p.wait()
    yield p
    await p.close()


@pytest.fixture
async def ctx(settings: Settings, botapi: FakeBotAPI) -> AsyncIterator[Any]:
    from tests.runtime_helpers import job_context

    async with job_context(settings) as c:
        yield c


@pytest.fixture
def sync_redis(settings: Settings) -> Iterator[SyncRedis]:
    r = SyncRedis.from_url(settings.redis_url)
    yield r
    r.close()


class ErrorRecords(logging.Handler):
    """Every ERROR (or worse) record logged anywhere while a test runs."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def errors() -> Iterator[ErrorRecords]:
    handler = ErrorRecords()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)
