"""The `tgcast` command line. Each subcommand loads the settings first and reaches the services it
needs, so a bad setting or an unreachable PostgreSQL or Redis stops it at once: one line, exit 2.

The composition root: the one module that may import every package (the web app, the sandbox, the
worker, the services), which is why it sits at the top level rather than in core/ (pure rules) —
tests/test_import_direction.py keeps it the only one.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from core.logs import setup_logging
from core.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from datetime import datetime

    from starlette.applications import Starlette

    from legacy.urls import LegacyUrl

# Start-up probes give up after this long: a firewalled host is a clear line, not a hang.
CONNECT_TIMEOUT_S = 5


class Unreachable(Exception):
    """PostgreSQL or Redis does not answer at start; the message is one line naming the setting."""


def _settings() -> Settings:
    settings = load_settings()
    setup_logging(settings.log_level, settings.log_format, settings.secret_values())
    return settings


def _reach(settings: Settings, *, postgres: bool = True, redis: bool = True, wait: bool = False) -> None:
    """Reaches the services a command needs before it starts. A long-running process (`wait`) tries
    again every second for up to STARTUP_WAIT_S, silently, so a database restarting under it is not a
    crash; past that, or at once for a one-shot command, it gives up with one line."""
    deadline = time.monotonic() + (settings.startup_wait_s if wait else 0)
    while True:
        try:
            _probe(settings, postgres=postgres, redis=redis)
            return
        except Unreachable:
            if time.monotonic() + 1 > deadline:
                raise
            time.sleep(1)


def _probe(settings: Settings, *, postgres: bool, redis: bool) -> None:
    """One round trip to each, with bounded timeouts. The message names the setting and the error
    class only: the URL may hold a password."""
    if postgres:
        import psycopg

        try:
            with psycopg.connect(settings.database_url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            raise Unreachable(f"cannot reach PostgreSQL at DATABASE_URL ({type(exc).__name__})") from None
    if redis:
        from redis import Redis
        from redis.exceptions import RedisError

        urls = [("REDIS_URL", settings.redis_url)]
        if settings.fake_redis_url and settings.use_fake_gateway:
            urls.append(("FAKE_REDIS_URL", settings.fake_redis_url))
        for name, url in urls:
            try:
                with Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S,
                                    socket_timeout=CONNECT_TIMEOUT_S) as client:
                    client.ping()
            except (RedisError, OSError) as exc:
                raise Unreachable(f"cannot reach Redis at {name} ({type(exc).__name__})") from None


def check_bind(settings: Settings, host: str) -> None:
    """Sandbox mode serves /sandbox, which has no authentication and acts as any user (super admins
    included): loopback only, unless SANDBOX_ALLOW_REMOTE=1 says the exposure is meant."""
    if not settings.sandbox or settings.sandbox_allow_remote:
        return
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise SettingsError(f"sandbox mode binds loopback only: --host {host} refused "
                            "(use 127.0.0.1, or set SANDBOX_ALLOW_REMOTE=1)")


def cmd_migrate(args: argparse.Namespace) -> int:
    from db.migrate import migrate

    settings = _settings()
    _reach(settings, redis=False)
    applied = migrate(settings.database_url)
    print(f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else ""))
    return 0


def web_app(settings: Settings) -> Starlette:
    """The web app; with SANDBOX=1, the sandbox page and its Bot API emulator mounted beside it."""
    from api.app import create_app

    if not settings.sandbox:
        return create_app(settings)
    from sandbox.web import Sandbox

    return create_app(settings, sandbox=Sandbox(settings))


def cmd_web(args: argparse.Namespace) -> int:
    import uvicorn

    settings = _settings()
    settings.check_live(accounts=True)
    check_bind(settings, args.host)
    _reach(settings, wait=True)
    app = web_app(settings)
    # log_config=None: uvicorn's records go through our root handler (JSON, redaction) instead of
    # its own plain-text ones; access lines are left out (the metrics count requests).
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, log_level=settings.log_level.lower(),
                access_log=False, proxy_headers=True)
    return 0


def cmd_polling(args: argparse.Namespace) -> int:
    from api.polling import run_polling

    settings = _settings()
    settings.check_live(accounts=True)
    _reach(settings, wait=True)
    asyncio.run(run_polling(settings))
    return 0


def cmd_set_webhook(args: argparse.Namespace) -> int:
    from api.webhook_admin import set_webhook

    settings = _settings()
    settings.check_live(accounts=False)
    print(asyncio.run(set_webhook(settings, url=args.url, max_connections=args.max_connections)))
    return 0


def cmd_delete_webhook(args: argparse.Namespace) -> int:
    from api.webhook_admin import delete_webhook

    settings = _settings()
    settings.check_live(accounts=False)
    print(asyncio.run(delete_webhook(settings, drop_pending=args.drop_pending)))
    return 0


def cmd_generate_key(args: argparse.Namespace) -> int:
    from core.crypto import SecretBox

    print(SecretBox.generate_key())
    return 0


def cmd_tick(args: argparse.Namespace) -> int:
    import json

    from redis.asyncio import Redis

    from db.pool import open_pool
    from jobs.tick import record_tick, tick

    settings = _settings()
    settings.check_live(accounts=False)  # expired users are told through the bot
    _reach(settings)

    async def run() -> int:
        redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=CONNECT_TIMEOUT_S)
        pool = await open_pool(settings.database_url, min_size=1, max_size=2)
        try:
            summary = await tick(pool, settings)
            await record_tick(redis, settings, summary)
        finally:
            await redis.aclose()
            await pool.close()
        print(json.dumps(summary.as_json()))
        return 0

    return _with_storage(run)


# Descriptors a worker needs besides its account connections: its pools, Redis, logs, the Bot API client.
OTHER_FILES = 256


def warn_server(settings: Settings) -> bool:
    """One warning line when PostgreSQL runs without what the worker relies on (autovacuum: the
    deliveries queue fills with dead rows without it, and every batch slows down; docs/runtime.md,
    "Queue upkeep"). A warning, not a refusal: the service works, only slower. Returns whether it warned."""
    import logging

    import psycopg

    from db.ops import autovacuum_on

    try:
        with psycopg.connect(settings.database_url, connect_timeout=CONNECT_TIMEOUT_S) as conn:
            if autovacuum_on(conn):
                return False
    except psycopg.Error:
        return False  # reachability is the start-up check's to report, not this warning's
    # Logged (in the configured format), not printed: a JSON log stays one JSON object per line.
    logging.getLogger(__name__).warning(
        "PostgreSQL runs with autovacuum off: the deliveries table's dead rows will pile up and sends slow "
        "down (turn it on: it is PostgreSQL's default)")
    return True


def raise_open_files(needed: int) -> tuple[int, int]:
    """Lift the soft limit on open files to what `needed` connections take (each account connection is a
    socket), up to the hard limit; many systems start processes at a soft 1,024, below CLIENT_MAX. Returns
    (soft, hard) as they are afterwards; a hard limit below `needed` is logged, not fatal: past it a
    connect fails like any network error and the batch retries later."""
    import logging
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + OTHER_FILES
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < want:
        logging.getLogger(__name__).warning(
            "open files limited to %d (hard limit): fewer than CLIENT_MAX account connections fit", soft)
    return soft, hard


def cmd_worker(args: argparse.Namespace) -> int:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from worker.process import run_worker

    settings = _settings()
    settings.check_live(accounts=True)
    _reach(settings, wait=True)
    warn_server(settings)
    raise_open_files(settings.client_max)
    try:
        run_worker(settings, burst=args.burst)
    except RedisConnectionError as exc:
        # Redis went away between the check above and the worker's own start (RQ registers the worker
        # before its retrying loop runs): the same one line and exit 2 as the check, not a traceback.
        raise Unreachable(f"cannot reach Redis at REDIS_URL ({type(exc).__name__})") from None
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    import psycopg

    from services.key_rotation import rotate_sessions

    settings = _settings()
    _reach(settings, redis=False)

    async def run() -> int:
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            report = await rotate_sessions(conn, settings, batch_size=args.batch_size)
        print(f"rotated {report.rotated} session(s); {report.current} already under the first key")
        if report.unreadable:
            owners = ", ".join(str(o) for o in report.unreadable)
            print(f"tgcast: {len(report.unreadable)} session(s) cannot be opened with any key of SESSION_KEYS "
                  f"(owner ids: {owners}); they were left as they are", file=sys.stderr)
            return 1
        return 0

    return _with_storage(run)


def cmd_stats(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    import psycopg
    from redis.asyncio import Redis

    from services.gauges import stats

    settings = _settings()
    _reach(settings)

    async def run() -> int:
        redis = Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        try:
            async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
                found = await stats(settings, conn, redis)
        finally:
            await redis.aclose()
        if args.json:
            print(json.dumps(dataclasses.asdict(found)))
            return 0
        d = found.deliveries_24h
        tick = "never" if found.last_tick_age_s is None else f"{found.last_tick_age_s:.0f} s ago"
        print("users:         " + ", ".join(f"{k} {v}" for k, v in found.users.items()))
        print("accounts:      " + ", ".join(f"{k} {v}" for k, v in found.accounts.items()))
        print(f"configs:       active {found.configs_active}")
        print(f"deliveries 24h: sent {d.sent}, failed {d.failed}, cancelled {d.cancelled}")
        for q in found.queues:
            print(f"queue {q.name}: waiting {q.depth}, scheduled {q.scheduled}")
        print(f"last tick:     {tick}")
        return 0

    return _with_storage(run)


def _stopped_at(text: str) -> datetime:
    from datetime import UTC, datetime

    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time like 2026-12-06T18:30:00Z: {text!r}") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def cmd_import_legacy(args: argparse.Namespace) -> int:
    import os

    from legacy.urls import LegacyUrlError, parse_legacy_url

    settings = _settings()
    raw_url = args.source or os.environ.get("LEGACY_DATABASE_URL")
    if not raw_url:
        raise SettingsError("--from (or LEGACY_DATABASE_URL) is required: the older bot's DATABASE_URL")
    try:
        url = parse_legacy_url(raw_url)
    except LegacyUrlError as exc:
        raise SettingsError(str(exc)) from None
    _reach(settings, redis=args.verify_sessions)
    if args.verify_sessions:
        settings.check_live(accounts=True)
        return _with_storage(lambda: _verify_legacy(settings, args, url))
    return _with_storage(lambda: _import_legacy(settings, args, url))


async def _import_legacy(settings: Settings, args: argparse.Namespace, url: LegacyUrl) -> int:
    from legacy.importer import ImportRequest, Mode, run_import, stderr_progress
    from legacy.source import SourceError

    mode: Mode = "dry" if args.dry_run else "apply" if args.apply else "auto"
    request = ImportRequest(url, mode=mode, schema_choice=args.schema, stopped_at=args.stopped_at,
                            use_last_run=args.use_last_run, interval_unit=args.interval_unit)
    try:
        report = await run_import(settings, request, progress=stderr_progress)
    except SourceError as exc:
        print(f"tgcast: {exc}", file=sys.stderr)
        return 2
    print(report.as_json() if args.json else report.as_text())
    if report.dry_run and not args.json:
        print("\nDry run: nothing was imported. Run the same command again (or with --apply) to import.")
    return 0


async def _verify_legacy(settings: Settings, args: argparse.Namespace, url: LegacyUrl) -> int:
    import json

    from redis.asyncio import Redis

    from legacy.importer import stderr_progress
    from legacy.source import SourceError
    from legacy.verify import CLAIM_TTL_S, OlderBotAlive, verify_sessions
    from userbot.claims import ConnectionClaims, new_owner, state_loss_wait
    from userbot.factory import build_gateway

    redis = Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=CONNECT_TIMEOUT_S)
    try:
        gateway = build_gateway(settings, redis)
        claims = ConnectionClaims(redis, settings.redis_prefix, f"import-legacy:{new_owner()}", ttl_s=CLAIM_TTL_S,
                                  state_loss_wait_s=state_loss_wait(settings.claim_state_loss_wait_s))
        report = await verify_sessions(settings, gateway, url, claims, parallel=args.parallel, again=args.again,
                                       choice=args.schema, progress=stderr_progress)
    except (SourceError, OlderBotAlive) as exc:
        print(f"tgcast: {exc}", file=sys.stderr)
        return 2
    finally:
        await redis.aclose()
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.as_text())
    return 0


def _with_storage(run: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Runs a storage command; a database or Redis lost after the start-up probe is one clear line and
    exit 2 as well, not a traceback."""
    import psycopg
    from redis.exceptions import RedisError

    try:
        return asyncio.run(run())
    except psycopg.OperationalError as exc:
        print(f"tgcast: cannot use PostgreSQL at DATABASE_URL ({type(exc).__name__})", file=sys.stderr)
    except RedisError as exc:
        print(f"tgcast: cannot use Redis at REDIS_URL ({type(exc).__name__})", file=sys.stderr)
    return 2


COMMANDS: dict[str, tuple[str, Callable[[argparse.Namespace], int]]] = {
    "migrate": ("apply the SQL migrations that are missing (safe to repeat)", cmd_migrate),
    "web": ("serve the web process (webhook, /tick, /health, /metrics)", cmd_web),
    "polling": ("run the bot with long polling instead of a webhook (no public URL needed)", cmd_polling),
    "set-webhook": ("point Telegram at WEBHOOK_URL with WEBHOOK_SECRET (idempotent)", cmd_set_webhook),
    "delete-webhook": ("remove the webhook (for switching to long polling)", cmd_delete_webhook),
    "generate-key": ("print a new Fernet key for SESSION_KEYS", cmd_generate_key),
    "tick": ("run one tick (what POST /tick does) and print its JSON summary", cmd_tick),
    "worker": ("run an RQ worker for the broadcast and announcement queues, with RQ's scheduler", cmd_worker),
    "rotate-keys": ("re-encrypt every stored session with the first key of SESSION_KEYS", cmd_rotate_keys),
    "stats": ("print users by status, active configs, deliveries in 24 h and queue depth", cmd_stats),
    "import-legacy": ("take over the older bot's users, sessions, groups and broadcasts (docs/migrating.md)",
                      cmd_import_legacy),
}


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _import_legacy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="source", metavar="URL",
                   help="the older bot's DATABASE_URL as written (default: LEGACY_DATABASE_URL)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--dry-run", action="store_true", help="read and report, write nothing (the default the "
                      "first time a source is seen)")
    what.add_argument("--apply", action="store_true", help="import without a dry run first")
    what.add_argument("--verify-sessions", action="store_true",
                      help="after the import, with the older bot stopped: use each imported session once online")
    p.add_argument("--schema", choices=["node", "python"], help="which older schema, when both are present")
    p.add_argument("--stopped-at", type=_stopped_at, metavar="TIME",
                   help="when the older worker stopped (ISO, UTC): the last post of groups with no record of one")
    p.add_argument("--use-last-run", action="store_true",
                   help="for groups with no record of a post, count from the broadcast's last run instead")
    p.add_argument("--interval-unit", choices=["seconds", "minutes", "milliseconds"],
                   help="the unit of the older intervals (default: Python seconds; Node decided from the data)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--parallel", type=_positive, default=8, help="--verify-sessions: connections at once")
    p.add_argument("--again", action="store_true", help="--verify-sessions: also sessions checked before")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tgcast", description="Telegram auto-broadcast service")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, func) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(func=func)
        if name == "set-webhook":
            p.add_argument("--url", help="defaults to WEBHOOK_URL")
            p.add_argument("--max-connections", type=int, default=40)
        if name == "delete-webhook":
            p.add_argument("--drop-pending", action="store_true", help="also drop updates waiting at Telegram")
        if name == "worker":
            p.add_argument("--burst", action="store_true", help="exit once the queues are empty")
        if name == "rotate-keys":
            p.add_argument("--batch-size", type=_positive, default=100, help="sessions per transaction")
        if name == "stats":
            p.add_argument("--json", action="store_true", help="print one JSON object instead")
        if name == "import-legacy":
            _import_legacy_arguments(p)
        if name == "web":
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=8000)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (SettingsError, Unreachable) as exc:
        print(f"tgcast: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
