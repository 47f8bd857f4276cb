"""Every setting (docs/runtime.md, "Settings"), read from the environment and `.env`.

`load_settings()` is the only entry point: it turns pydantic's multi-line validation report into
one line naming the setting, which the CLI prints before exiting non-zero.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from cryptography.fernet import Fernet
from psycopg import ProgrammingError
from psycopg.conninfo import conninfo_to_dict
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from redis.connection import parse_url

from core.plans import Plan, parse_plans

# The sandbox bot's token (SANDBOX=1 without BOT_TOKEN): aiogram needs a well-formed one; the built-in Bot API
# emulator accepts any. Here, not in handlers/, so workers use it without importing aiogram.
SANDBOX_BOT_TOKEN = "1000000001:sandbox-token-for-the-built-in-emulator"


class SettingsError(Exception):
    """A missing or malformed setting; the message is one line naming it."""


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    # Telegram
    bot_token: SecretStr | None = None
    api_id: int | None = None
    api_hash: SecretStr | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    telegram_dc: int | None = None
    telegram_dc_address: str | None = None
    telegram_public_key_file: str | None = None
    bot_api_base: str | None = None
    # "auto": the built-in emulator in sandbox mode, Telethon otherwise ("fake" only on purpose: tests, bench).
    gateway: str = Field(default="auto", pattern="^(auto|telethon|fake)$")
    # SANDBOX=1 (asked for by the dev runner, never implied): the built-in Telegram emulator and the
    # unauthenticated /sandbox page, which can act as anyone; so `web` binds loopback only unless
    # SANDBOX_ALLOW_REMOTE=1.
    sandbox: bool = False
    sandbox_allow_remote: bool = False

    # People
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    admin_usernames: Annotated[frozenset[str], NoDecode] = frozenset()
    support_contact: str = "@admin"
    manual_video_file_id: str | None = None
    default_language: str = Field(default="uz", pattern="^(uz|ru|en)$")
    # Self-serve access paid in Telegram Stars: `name:days:stars[:recurring]`, comma-separated
    # (docs/payments.md). Unset: no plans, nothing is sold, the bot behaves as without the feature.
    plans: Annotated[tuple[Plan, ...], NoDecode] = ()
    # Telegram accounts one user may connect; each posts to its own groups, paced on its own.
    max_accounts_per_user: int = Field(default=3, ge=1, le=20)

    # Storage
    database_url: str
    redis_url: str
    # The built-in Telegram emulator's own Redis (unset: REDIS_URL). The soak harness flushes the
    # service's Redis to prove recovery; "Telegram" must survive that, as the real one would.
    fake_redis_url: str | None = None
    # What the built-in emulator charges per connect and per send (0: nothing); benchmarks set
    # Telegram's costs. Sends are log-normal with this median and 99th percentile.
    fake_connect_ms: int = Field(default=0, ge=0)
    fake_send_p50_ms: int = Field(default=0, ge=0)
    fake_send_p99_ms: int = Field(default=0, ge=0)
    # What the emulator charges per open connection (0: nothing): KiB kept resident, and a keep-alive
    # ping every FAKE_PING_EVERY_S costing FAKE_PING_CPU_MS of the worker's CPU; benchmarks set the
    # figures measured against a real MTProto server (docs/benchmarks.md).
    fake_conn_kib: float = Field(default=0, ge=0)
    fake_ping_every_s: float = Field(default=0, ge=0)
    fake_ping_cpu_ms: float = Field(default=0, ge=0)
    # How long the emulator remembers a send's random_id (unset: for ever). Telegram does not say how
    # long it de-duplicates; the soak sets 60 s so that a resend a whole interval later is a duplicate.
    fake_random_id_ttl_s: int | None = Field(default=None, ge=1)
    session_keys: Annotated[tuple[SecretStr, ...], NoDecode]
    run_retention_days: int = Field(default=7, ge=1)

    # Scheduler
    tick_token: SecretStr
    due_window_s: int = Field(default=60, ge=0)
    tick_cap: int = Field(default=1000, ge=1)
    jitter_max_ms: int = Field(default=15000, ge=0)
    min_interval_minutes: int = Field(default=3, ge=1)
    max_interval_minutes: int = Field(default=10080, ge=1)

    # Worker
    batch_size: int = Field(default=20, ge=1)
    lease_s: int = Field(default=120, ge=1)
    lock_ttl_s: int = Field(default=60, ge=1)
    lock_busy_retries: int = Field(default=10, ge=0)
    cont_delay_ms: int = Field(default=1500, ge=0)
    cont_jitter_ms: int = Field(default=1500, ge=0)
    send_pause_min_ms: int = Field(default=1000, ge=0)
    send_pause_max_ms: int = Field(default=2000, ge=0)
    max_retries: int = Field(default=3, ge=0)
    retry_base_ms: int = Field(default=2000, ge=1)
    retry_max_ms: int = Field(default=120000, ge=1)
    slowmode_default_s: int = Field(default=300, ge=1)
    account_pause_s: int = Field(default=3600, ge=1)
    # A batch also claims deliveries falling due within this horizon and waits for each one's time
    # (docs/runtime.md, "Micro-batch"); kept far below LEASE_S.
    claim_ahead_ms: int = Field(default=20000, ge=0, le=60000)
    # Send batches one worker process runs at once on its event loop (docs/worker.md).
    worker_concurrency: int = Field(default=500, ge=1, le=5000)
    announce_rate: float = Field(default=25, gt=0, le=30)
    # Account connections a worker keeps between batches: closed after this long unused (longer than
    # common intervals, so every cycle of an account reuses one), and at most this many open. The cap is
    # a safety bound, not a working limit: below the accounts a worker serves it closes connections that
    # are needed again within the interval (10,000 accounts on 4 workers is 2,500 each, and one worker
    # may be left holding most of them while the others restart). docs/runtime.md, "Account connections".
    client_idle_s: int = Field(default=900, ge=1)
    client_max: int = Field(default=10000, ge=1)
    # After Redis lost its data (a flush, a restart without persistence) nobody takes an account's
    # connection claim anew for this long, so a worker still trusting a claim that vanished closes its
    # connection before another connects (userbot/claims.py). Unset: the claim TTL (30 s). 0 only where
    # one worker runs (the dev runner) or Redis never loses data.
    claim_state_loss_wait_s: float | None = Field(default=None, ge=0, le=600)
    # Every request to Telegram from a send batch (a send, each 512 KiB part of an upload) is bounded by
    # this; a request that takes longer is a TIMEOUT, retried with the same random_id.
    request_timeout_s: float = Field(default=20, gt=0, le=300)
    # How long Telegram is trusted to remember a send's random_id (it answers a repeat with the first
    # message instead of posting again) — it promises no duration. A send left without an answer is
    # repeated as-is within this; later, the group's history is read first (docs/runtime.md).
    random_id_trust_s: int = Field(default=60, ge=0, le=86400)
    # A warm shutdown (the first SIGTERM) ends within this: platforms SIGKILL ~30 s after SIGTERM, so the
    # worker stops sending, gives back what its batches have not sent and hands its queue over before
    # then (docs/worker.md, "Shutdown").
    worker_shutdown_s: float = Field(default=25, ge=2, le=600)

    # Operations
    redis_prefix: str = "tgcast:"  # every key of ours (FSM, locks, caches); RQ keeps its own "rq:" keys
    queue_prefix: str = "tgcast"  # RQ queue names: <prefix>-broadcast, <prefix>-announce
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    metrics_token: SecretStr | None = None
    ops_token: SecretStr | None = None  # the /ops page; unset: the page is off
    # web, worker and polling wait this long for PostgreSQL and Redis to answer at start (a database
    # restarting, a container starting beside them) before giving up; one-shot commands never wait.
    startup_wait_s: int = Field(default=15, ge=0, le=300)

    @field_validator("bot_token", "api_hash", "ops_token", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `BOT_TOKEN=` in an .env means "not set", not a token of no characters.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ops_token")
    @classmethod
    def _ops_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("needs at least 16 characters")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        # Checked here so that a typo stops every command at start, not the first query an hour later.
        try:
            parsed = conninfo_to_dict(value)
        except ProgrammingError:
            parsed = None  # libpq's message quotes the value, which may hold a password
        if not value.strip() or parsed is None:
            raise ValueError("is not a PostgreSQL URL (postgresql://…) or connection string")
        return value

    @field_validator("redis_url", "fake_redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_url(value)
            except ValueError:
                raise ValueError("is not a Redis URL (redis://, rediss:// or unix://)") from None
        return value

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admin_ids(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("plans", mode="before")
    @classmethod
    def _plans(cls, value: object) -> object:
        return parse_plans(value) if isinstance(value, str) else value

    @field_validator("admin_usernames", mode="before")
    @classmethod
    def _admin_usernames(cls, value: object) -> object:
        parts = _split_csv(value)
        if isinstance(parts, list):
            return [p.lstrip("@").lower() for p in parts]
        return parts

    @field_validator("session_keys", mode="before")
    @classmethod
    def _session_keys(cls, value: object) -> object:
        parts = _split_csv(value)
        if isinstance(parts, list) and not parts:
            raise ValueError("needs at least one Fernet key")
        for n, key in enumerate(parts if isinstance(parts, list) else [], start=1):
            try:
                Fernet(key)
            except (ValueError, TypeError):
                # Say which one, never what it holds.
                raise ValueError(f"key {n} is not a Fernet key (`tgcast generate-key` prints one)") from None
        return parts

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.min_interval_minutes > self.max_interval_minutes:
            raise ValueError("MIN_INTERVAL_MINUTES is above MAX_INTERVAL_MINUTES")
        if self.send_pause_min_ms > self.send_pause_max_ms:
            raise ValueError("SEND_PAUSE_MIN_MS is above SEND_PAUSE_MAX_MS")
        if self.fake_send_p99_ms and self.fake_send_p99_ms < self.fake_send_p50_ms:
            raise ValueError("FAKE_SEND_P99_MS is below FAKE_SEND_P50_MS")
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("WEBHOOK_SECRET is required when WEBHOOK_URL is set")
        if self.gateway == "telethon" and (self.api_id is None or self.api_hash is None):
            raise ValueError("API_ID and API_HASH are required for GATEWAY=telethon")
        return self

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redaction filter."""
        values = [self.bot_token, self.api_hash, self.webhook_secret, self.tick_token, self.metrics_token,
                  self.ops_token]
        values += list(self.session_keys)
        return [v.get_secret_value() for v in values if v is not None]

    def bot_token_value(self) -> str:
        """BOT_TOKEN; without one, the emulator's token only where an emulator was asked for (SANDBOX=1,
        or GATEWAY=fake in tests and benchmarks), never as a silent stand-in in production."""
        if self.bot_token is not None:
            return self.bot_token.get_secret_value()
        if self.sandbox or self.gateway == "fake":
            return SANDBOX_BOT_TOKEN
        raise SettingsError("setting BOT_TOKEN is missing")

    @cached_property
    def use_fake_gateway(self) -> bool:
        if self.gateway == "auto":
            return self.sandbox
        return self.gateway == "fake"

    def check_live(self, *, accounts: bool) -> None:
        """Outside sandbox mode, what a process talking to Telegram needs: BOT_TOKEN, and API_ID and
        API_HASH where it uses accounts (unless GATEWAY=fake asks for the emulator on purpose)."""
        if self.sandbox:
            return
        missing = [] if self.bot_token is not None else ["BOT_TOKEN"]
        if accounts and not self.use_fake_gateway:
            missing += [name for name, value in (("API_ID", self.api_id), ("API_HASH", self.api_hash))
                        if value is None]
        if missing:
            names = ", ".join(missing)
            raise SettingsError(f"setting {names} is missing" if len(missing) == 1 else
                                f"settings {names} are missing")


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "_".join(str(p) for p in first["loc"]).upper() or "settings"
        if first["type"] == "missing":
            raise SettingsError(f"setting {name} is missing") from None
        # Never echo the input: a malformed secret must not reach the terminal or the logs.
        reason = first["msg"].removeprefix("Value error, ")
        raise SettingsError(f"setting {name} is malformed: {reason}") from None
