"""Telethon exceptions reduced to `GatewayError(code, seconds, detail)`.

The code is Telegram's own RPC error name with its number replaced by X (FLOOD_WAIT_X), or a
transport name (TIMEOUT, NETWORK). Deciding what a code *means* (retry, pause, fail, revoke) is the
delivery classifier's and the login flow's job; this module only names the facts.

How the name is found, in order:

1. Telethon's generated classes (FloodWaitError, ChatWriteForbiddenError, …) never keep the name
   they were built from: their `.message` is the *base class* default ("FLOOD", "BAD_REQUEST").
   So the name comes from Telethon's own name→class tables, inverted (`_NAME_BY_CLASS`).
2. A name Telethon does not know (newer than the installed version, e.g. TOPIC_CLOSED, or
   FROZEN_METHOD_INVALID on 1.39) arrives as a bare base class (BadRequestError, FloodError, …)
   whose `.message` *is* the name Telegram sent. That name is the code, except for the statuses
   whose meaning does not depend on the name (`_FALLBACKS` below).
3. Everything that is not an RPC error goes through `_FALLBACKS` by type.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass

from telethon import errors as tl_errors
from telethon.errors import rpcerrorlist

from userbot.gateway import GatewayError

__all__ = ["to_gateway_error"]

_DETAIL_MAX = 300
_TRAILING_NUMBER = re.compile(r"^(?P<stem>.*?_)(?P<n>\d+)$")
# Session strings and auth keys are long base64 runs; an exception text should never hold one, but
# the detail ends up in logs and in the database, so any such run is cut out defensively.
_SECRET_RUN = re.compile(r"[A-Za-z0-9+/=_-]{40,}")


def _build_name_by_class() -> dict[type[BaseException], str]:
    names: dict[type[BaseException], str] = {}
    for name, cls in rpcerrorlist.rpc_errors_dict.items():
        # The dict holds a few lower-case aliases ("Timeout"); the upper-case spelling is canonical.
        if cls not in names or name.isupper():
            names[cls] = name.upper()
    for pattern, cls in rpcerrorlist.rpc_errors_re:
        names[cls] = pattern.replace("(\\d+)", "X")
    for cls in names:
        # "Timeout"/"Timedout" (-503) are spellings of one transient worker timeout; one code for
        # all of them and for our own transport timeouts keeps the classifier's table short.
        if issubclass(cls, tl_errors.TimedOutError):
            names[cls] = "TIMEOUT"
    return names


_NAME_BY_CLASS = _build_name_by_class()


@dataclass(frozen=True, slots=True)
class _Row:
    exc_type: type[BaseException]
    code: str | None  # None: keep the RPC name Telegram sent
    only_with_seconds: bool = False  # the row applies only when the name carried a number


# First matching row wins, so subclasses come before their bases (TimedOutError before ServerError,
# TimeoutError and ConnectionError before OSError).
_FALLBACKS: tuple[_Row, ...] = (
    # -503 "Timeout": Telegram's worker did not answer in time; transient like a network timeout.
    _Row(tl_errors.TimedOutError, "TIMEOUT"),
    # 500/-500 with a name Telethon does not know ("No workers running", …): Telegram's own fault,
    # so it is retried exactly like RPC_CALL_FAIL.
    _Row(tl_errors.ServerError, "RPC_CALL_FAIL"),
    # Every documented 401 means the authorisation is unusable (the one exception,
    # SESSION_PASSWORD_NEEDED, is known to Telethon and never gets here). Treating an unknown 401 as
    # revoked stops a broadcast that would otherwise fail every cycle with a dead session; the real
    # name stays in `extra["rpc_name"]`. A 406 is NOT treated this way although Telethon calls its
    # base class AuthKeyError: most 406s are ordinary user-facing refusals.
    _Row(tl_errors.UnauthorizedError, "SESSION_REVOKED"),
    # A 420 is a flood limit by definition; one with a number is a wait we must honour account-wide
    # even if Telegram invented a new name for it.
    _Row(tl_errors.FloodError, "FLOOD_WAIT_X", only_with_seconds=True),
    # 303/400/403/404/406 and 420 without a number: Telegram's name is the most precise code.
    _Row(tl_errors.RPCError, None),
    # The transport's "HTTP" error codes (404 = auth key forgotten, 429 = transport flood) and a key
    # the server claims not to know. Telethon documents the latter as possibly temporary, so it is
    # retried rather than treated as a revoked session; a dead session shows up as a 401 instead.
    _Row(tl_errors.InvalidBufferError, "NETWORK"),
    _Row(tl_errors.AuthKeyNotFound, "NETWORK"),
    _Row(asyncio.IncompleteReadError, "NETWORK"),
    _Row(TimeoutError, "TIMEOUT"),  # asyncio.TimeoutError is the builtin since 3.11
    _Row(ConnectionError, "NETWORK"),
    _Row(OSError, "NETWORK"),
)


def _detail(exc: BaseException) -> str:
    text = _SECRET_RUN.sub("[redacted]", str(exc))
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return detail if len(detail) <= _DETAIL_MAX else detail[: _DETAIL_MAX - 1] + "…"


def _split_number(name: str) -> tuple[str, int | None]:
    match = _TRAILING_NUMBER.match(name)
    if match is None:
        return name, None
    return match.group("stem") + "X", int(match.group("n"))


def _known_rpc(exc: BaseException) -> tuple[str, int | None] | None:
    for cls in type(exc).__mro__:
        name = _NAME_BY_CLASS.get(cls)
        if name is not None:
            # Only `.seconds` is a duration; other captures (new_dc, which, minutes) are not.
            seconds = getattr(exc, "seconds", None)
            return name, seconds if isinstance(seconds, int) else None
    return None


def to_gateway_error(exc: BaseException) -> GatewayError:
    """Name `exc` the way the delivery classifier and login flow expect (see module docstring)."""
    if isinstance(exc, GatewayError):
        return exc
    detail = _detail(exc)

    known = _known_rpc(exc)
    if known is not None:
        return GatewayError(known[0], known[1], detail)

    message: str | None = None
    raw_name: str | None = None
    seconds: int | None = None
    if isinstance(exc, tl_errors.RPCError):
        message = exc.message if isinstance(exc.message, str) and exc.message else type(exc).__name__
        raw_name, seconds = _split_number(message)

    for row in _FALLBACKS:
        if not isinstance(exc, row.exc_type):
            continue
        if row.only_with_seconds and seconds is None:
            continue
        code = row.code or raw_name or "UNKNOWN"
        if code == raw_name:
            return GatewayError(code, seconds, detail)
        # A rewritten code keeps the number only where the code still has a place for it.
        return GatewayError(
            code,
            seconds if code.endswith("_X") else None,
            detail,
            {"rpc_name": message} if message is not None else {},
        )

    return GatewayError("UNKNOWN", None, detail)
