"""`userbot.errors.to_gateway_error`, row by row, with exceptions built exactly as Telethon builds them.

No network: `rpc_message_to_error` is the function Telethon itself calls on every RPC error reply,
so feeding it `RpcError(code, message)` reproduces what a real send raises, including the
fallback to base classes for names the installed Telethon does not know.
"""

from __future__ import annotations

import asyncio
import struct

import pytest
from telethon import errors
from telethon.errors import rpcerrorlist
from telethon.tl.types import RpcError

from userbot.errors import to_gateway_error
from userbot.gateway import GatewayError


def rpc(code: int, message: str) -> BaseException:
    return errors.rpc_message_to_error(RpcError(error_code=code, error_message=message), request=None)


def _topic_closed() -> BaseException:
    cls = getattr(errors, "TopicClosedError", None)  # absent in 1.39 and 1.45; maybe in later ones
    return cls(request=None) if cls is not None else rpc(400, "TOPIC_CLOSED")


ROWS: list[tuple[str, BaseException, str, int | None]] = [
    # flood family: the number travels in .seconds
    ("flood wait class", errors.FloodWaitError(request=None, capture=42), "FLOOD_WAIT_X", 42),
    ("flood wait reply", rpc(420, "FLOOD_WAIT_42"), "FLOOD_WAIT_X", 42),
    ("flood premium reply", rpc(420, "FLOOD_PREMIUM_WAIT_7"), "FLOOD_PREMIUM_WAIT_X", 7),
    ("slowmode class", errors.SlowModeWaitError(request=None, capture=10), "SLOWMODE_WAIT_X", 10),
    ("slowmode reply", rpc(420, "SLOWMODE_WAIT_10"), "SLOWMODE_WAIT_X", 10),
    ("unknown 420 with number", rpc(420, "FLOOD_SOMETHING_NEW_9"), "FLOOD_WAIT_X", 9),
    ("frozen account", rpc(420, "FROZEN_METHOD_INVALID"), "FROZEN_METHOD_INVALID", None),
    ("peer flood class", errors.PeerFloodError(request=None), "PEER_FLOOD", None),
    ("peer flood reply", rpc(400, "PEER_FLOOD"), "PEER_FLOOD", None),
    # transient server trouble
    ("rpc call fail", errors.RpcCallFailError(request=None), "RPC_CALL_FAIL", None),
    ("unknown 500", rpc(500, "SOME_NEW_500"), "RPC_CALL_FAIL", None),
    ("negative 500", rpc(-500, "No workers running"), "RPC_CALL_FAIL", None),
    ("negative 503", rpc(-503, "Timeout"), "TIMEOUT", None),
    ("TIMEOUT name", rpc(500, "TIMEOUT"), "TIMEOUT", None),
    ("Timedout name", rpc(-503, "Timedout"), "TIMEOUT", None),
    ("random id duplicate class", errors.RandomIdDuplicateError(request=None), "RANDOM_ID_DUPLICATE", None),
    ("random id duplicate reply", rpc(500, "RANDOM_ID_DUPLICATE"), "RANDOM_ID_DUPLICATE", None),
    # the session is gone
    ("auth key unregistered", errors.AuthKeyUnregisteredError(request=None), "AUTH_KEY_UNREGISTERED", None),
    ("session revoked", errors.SessionRevokedError(request=None), "SESSION_REVOKED", None),
    ("user deactivated", errors.UserDeactivatedError(request=None), "USER_DEACTIVATED", None),
    ("user deactivated ban", errors.UserDeactivatedBanError(request=None), "USER_DEACTIVATED_BAN", None),
    ("auth key duplicated", errors.AuthKeyDuplicatedError(request=None), "AUTH_KEY_DUPLICATED", None),
    ("unknown 401", rpc(401, "SOME_NEW_401"), "SESSION_REVOKED", None),
    # an unknown 406 is an ordinary refusal, not a dead auth key, although Telethon calls it AuthKeyError
    ("unknown 406", rpc(406, "SOME_NEW_THING"), "SOME_NEW_THING", None),
    # forbidden / unreachable / topics
    ("chat write forbidden", errors.ChatWriteForbiddenError(request=None), "CHAT_WRITE_FORBIDDEN", None),
    ("chat restricted", rpc(400, "CHAT_RESTRICTED"), "CHAT_RESTRICTED", None),
    ("send media forbidden", rpc(403, "CHAT_SEND_MEDIA_FORBIDDEN"), "CHAT_SEND_MEDIA_FORBIDDEN", None),
    ("send plain forbidden", rpc(403, "CHAT_SEND_PLAIN_FORBIDDEN"), "CHAT_SEND_PLAIN_FORBIDDEN", None),
    ("banned in channel", rpc(400, "USER_BANNED_IN_CHANNEL"), "USER_BANNED_IN_CHANNEL", None),
    ("channel private", errors.ChannelPrivateError(request=None), "CHANNEL_PRIVATE", None),
    ("channel invalid", rpc(400, "CHANNEL_INVALID"), "CHANNEL_INVALID", None),
    ("chat id invalid", rpc(400, "CHAT_ID_INVALID"), "CHAT_ID_INVALID", None),
    ("peer id invalid", rpc(400, "PEER_ID_INVALID"), "PEER_ID_INVALID", None),
    ("chat admin required", rpc(400, "CHAT_ADMIN_REQUIRED"), "CHAT_ADMIN_REQUIRED", None),
    ("topic closed", _topic_closed(), "TOPIC_CLOSED", None),
    ("topic deleted", rpc(400, "TOPIC_DELETED"), "TOPIC_DELETED", None),
    # bad content
    ("message too long", errors.MessageTooLongError(request=None), "MESSAGE_TOO_LONG", None),
    ("caption too long", rpc(400, "MEDIA_CAPTION_TOO_LONG"), "MEDIA_CAPTION_TOO_LONG", None),
    ("entity bounds", rpc(400, "ENTITY_BOUNDS_INVALID"), "ENTITY_BOUNDS_INVALID", None),
    ("message empty", rpc(400, "MESSAGE_EMPTY"), "MESSAGE_EMPTY", None),
    ("unknown 400 with number", rpc(400, "BRAND_NEW_THING_5"), "BRAND_NEW_THING_X", 5),
    # login
    ("code invalid", rpc(400, "PHONE_CODE_INVALID"), "PHONE_CODE_INVALID", None),
    ("code expired", rpc(400, "PHONE_CODE_EXPIRED"), "PHONE_CODE_EXPIRED", None),
    ("password needed", errors.SessionPasswordNeededError(request=None), "SESSION_PASSWORD_NEEDED", None),
    ("password wrong", rpc(400, "PASSWORD_HASH_INVALID"), "PASSWORD_HASH_INVALID", None),
    ("phone invalid", rpc(400, "PHONE_NUMBER_INVALID"), "PHONE_NUMBER_INVALID", None),
    ("phone banned", rpc(400, "PHONE_NUMBER_BANNED"), "PHONE_NUMBER_BANNED", None),
    ("phone flood", rpc(400, "PHONE_NUMBER_FLOOD"), "PHONE_NUMBER_FLOOD", None),
    # numbers that are not durations stay out of .seconds
    ("file migrate", rpc(303, "FILE_MIGRATE_2"), "FILE_MIGRATE_X", None),
    ("file part missing", rpc(400, "FILE_PART_3_MISSING"), "FILE_PART_X_MISSING", None),
    # transport
    ("asyncio timeout", asyncio.TimeoutError(), "TIMEOUT", None),  # noqa: UP041 - the alias is the point
    ("builtin timeout", TimeoutError("read timed out"), "TIMEOUT", None),
    ("connection error", ConnectionError("Connection to Telegram failed 5 time(s)"), "NETWORK", None),
    ("connection reset", ConnectionResetError(104, "reset by peer"), "NETWORK", None),
    ("os error", OSError(113, "No route to host"), "NETWORK", None),
    ("incomplete read", asyncio.IncompleteReadError(b"", 8), "NETWORK", None),
    ("transport 404", errors.InvalidBufferError(struct.pack("<i", -404)), "NETWORK", None),
    ("auth key not found", errors.AuthKeyNotFound(), "NETWORK", None),
    # anything else
    ("value error", ValueError("boom"), "UNKNOWN", None),
    ("runtime error", RuntimeError("logged in right after sending the code"), "UNKNOWN", None),
]


@pytest.mark.parametrize(("exc", "code", "seconds"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_row(exc: BaseException, code: str, seconds: int | None) -> None:
    err = to_gateway_error(exc)
    assert isinstance(err, GatewayError)
    assert (err.code, err.seconds) == (code, seconds)
    assert err.detail.startswith(type(exc).__name__)


def test_every_name_telethon_knows_maps_to_itself() -> None:
    # EMAIL_UNCONFIRMED shares its class with EMAIL_UNCONFIRMED_(\d+); the two cannot be told apart.
    # Lower-case keys ("Timedout") are unreachable through Telethon's upper-casing look-up; the
    # -503 rows above cover them.
    numbered = {cls for _, cls in rpcerrorlist.rpc_errors_re}
    for name, cls in rpcerrorlist.rpc_errors_dict.items():
        if cls in numbered or not name.isupper():
            continue
        code = to_gateway_error(rpc(400, name)).code
        assert code == name, name


def test_every_numbered_name_telethon_knows_maps_to_its_pattern() -> None:
    for pattern, cls in rpcerrorlist.rpc_errors_re:
        exc = rpc(400, pattern.replace("(\\d+)", "7"))
        assert isinstance(exc, cls)
        err = to_gateway_error(exc)
        assert err.code == pattern.replace("(\\d+)", "X")
        assert err.seconds == (7 if hasattr(exc, "seconds") else None)


def test_rewritten_codes_keep_telegrams_name() -> None:
    assert to_gateway_error(rpc(401, "SOME_NEW_401")).extra == {"rpc_name": "SOME_NEW_401"}
    assert to_gateway_error(rpc(420, "FLOOD_SOMETHING_NEW_9")).extra == {"rpc_name": "FLOOD_SOMETHING_NEW_9"}
    assert to_gateway_error(rpc(400, "TOPIC_CLOSED")).extra == {}


def test_gateway_error_passes_through() -> None:
    err = GatewayError("PEER_ID_INVALID", detail="x")
    assert to_gateway_error(err) is err


def test_detail_is_truncated_and_never_holds_a_session_string() -> None:
    session = "1" + "BQAbCdEf0123456789-_" * 20
    err = to_gateway_error(ValueError(f"bad session {session} " + "x" * 1000))
    assert session not in err.detail
    assert "BQAbCdEf" not in err.detail
    assert err.detail.startswith("ValueError: bad session [redacted]")
    assert len(err.detail) <= 300


def test_detail_of_exception_without_text_is_the_class_name() -> None:
    assert to_gateway_error(TimeoutError()).detail == "TimeoutError"
