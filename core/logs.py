"""Logging set-up: plain text in dev, one JSON object per line in production, secrets redacted.

Redaction happens once, in a filter on the one root handler, so it covers every library's records
(aiogram, httpx, Telethon, RQ, uvicorn) and the formatted tracebacks too. Known secrets (the
settings' tokens and keys) are replaced by value; secrets that are not in the settings (users'
session strings, login codes, passwords, URL credentials) are caught by their shape.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Ids of what is being handled, added to every record emitted while they are set.
log_context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)

_CONTEXT_KEYS = ("update_id", "user_id", "job_id", "cycle_id", "request_id")
MASK = "***"

_SHAPES: tuple[tuple[re.Pattern[str], str], ...] = (
    # A bot token, also inside an API URL (".../bot123456:AA.../getMe": no word boundary before it),
    # and URL-encoded as an access log prints a request path ("/bot123456%3AAA.../sendMessage").
    (re.compile(r"(?<![0-9])[0-9]{5,}(?::|%3[Aa])[A-Za-z0-9_-]{30,}"), MASK),
    # Long base64 runs: Telethon string sessions (~350 chars), Fernet ciphertexts of them, auth keys.
    (re.compile(r"[A-Za-z0-9_-]{120,}={0,2}"), MASK),
    # The emulator's session strings (sandbox mode runs real flows with them).
    (re.compile(r"\bfake-[0-9a-f]{48}\b"), MASK),
    # key=value / "key": "value" pairs whose value is a secret whatever it looks like.
    (re.compile(
        r"""(?i)\b(\w*(?:password|passwd|login_code|phone_code|session|api_hash|token|secret)\w*)"""
        r"""(["']?\s*[:=]\s*["']?)([^\s"',;&)}]+)"""
    ), rf"\1\2{MASK}"),
    # Credentials in a URL (DATABASE_URL, REDIS_URL).
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+(@)"), rf"\1{MASK}\2"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, MASK)
    for pattern, replacement in _SHAPES:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """Redacts the message, the traceback and the stack of every record, and adds the context ids."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        return redact(text, self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record, nor echo its arguments
            message = str(record.msg)
        clean = self.redact(message)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None  # formatters would render the raw traceback again otherwise
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        ctx = log_context.get()
        if ctx:
            for key, value in ctx.items():
                if not hasattr(record, key):  # an explicit extra= wins over the ambient context
                    setattr(record, key, value)
        return True


@contextmanager
def bind(**ids: Any) -> Iterator[None]:
    """Add ids (job_id, cycle_id, user_id...) to every record logged inside the block."""
    token = log_context.set({**(log_context.get() or {}), **ids})
    try:
        yield
    finally:
        log_context.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = record.exc_text
        if record.stack_info:
            doc["stack"] = record.stack_info
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = " ".join(f"{k}={getattr(record, k)}" for k in _CONTEXT_KEYS if hasattr(record, k))
        return f"{line} [{extras}]" if extras else line


def setup_logging(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    numeric = logging.getLevelName(level)
    # Telethon at DEBUG dumps raw TL objects; they never carry the session, but keep it quiet anyway.
    logging.getLogger("telethon").setLevel(max(logging.INFO, numeric))
    # httpx logs every request URL at INFO, and a Bot API URL holds the token: redacted, but noisy.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, numeric))
