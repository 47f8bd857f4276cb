"""Every setting of runtime.md, read from the environment and `.env`.

`load_settings()` is the only entry point: it turns pydantic's multi-line validation report into
one line naming the setting, which the CLI prints before exiting non-zero.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# The sandbox bot's token (no BOT_TOKEN): aiogram needs a well-formed one; the built-in Bot API
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
    # "auto": Telethon when API_ID is set, the built-in emulator otherwise.
    gateway: str = Field(default="auto", pattern="^(auto|telethon|fake)$")

    # People
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    admin_usernames: Annotated[frozenset[str], NoDecode] = frozenset()
    support_contact: str = "@admin"
    manual_video_file_id: str | None = None
    default_language: str = Field(default="uz", pattern="^(uz|ru|en)$")

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
    announce_rate: float = Field(default=25, gt=0, le=30)
    # Account connections a worker keeps between batches: closed after this long unused (longer than
    # common intervals, so every cycle of an account reuses one), and at most this many open.
    client_idle_s: int = Field(default=900, ge=1)
    client_max: int = Field(default=2000, ge=1)

    # Operations
    redis_prefix: str = "tgcast:"  # every key of ours (FSM, locks, caches); RQ keeps its own "rq:" keys
    queue_prefix: str = "tgcast"  # RQ queue names: <prefix>-broadcast, <prefix>-announce
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    log_format: str = Field(default="text", pattern="^(text|json)$")
    metrics_token: SecretStr | None = None

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _admin_ids(cls, value: object) -> object:
        return _split_csv(value)

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
        values = [self.bot_token, self.api_hash, self.webhook_secret, self.tick_token, self.metrics_token]
        values += list(self.session_keys)
        return [v.get_secret_value() for v in values if v is not None]

    def bot_token_value(self) -> str:
        """BOT_TOKEN, or the sandbox token when there is none."""
        return self.bot_token.get_secret_value() if self.bot_token else SANDBOX_BOT_TOKEN

    @cached_property
    def sandbox(self) -> bool:
        """No bot token: the service talks to the built-in Telegram emulator."""
        return self.bot_token is None

    @cached_property
    def use_fake_gateway(self) -> bool:
        if self.gateway == "auto":
            return self.api_id is None
        return self.gateway == "fake"


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "_".join(str(p) for p in first["loc"]).upper() or "settings"
        if first["type"] == "missing":
            raise SettingsError(f"setting {name} is missing") from None
        # Never echo the input: a malformed secret must not reach the terminal or the logs.
        raise SettingsError(f"setting {name} is malformed: {first['msg']}") from None
