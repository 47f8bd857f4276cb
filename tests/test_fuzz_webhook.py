"""Property-based fuzzing of POST /telegram/webhook (docs/reliability.md, "Fuzzing").

Generated and mutated updates go through the real webhook, the real dispatcher, PostgreSQL and Redis:
valid shapes with odd values, missing fields, huge strings, wrong types, unknown update kinds,
callback data of random bytes (and every prefix of the contract's callback ids with random
suffixes), commands with random arguments, contacts and media with odd payloads, sent by allowed,
pending, banned and unknown users in every conversation state.

Each example asserts: no 5xx; no ERROR record (a handler failure logged by the dispatcher's error
handler counts: a fuzzed update must never crash a handler); the victim's rows never change.
The example counts of the test functions add up to FUZZ_TOTAL (>= 10,000); `FUZZ_SCALE` (env, a
float) scales them for a quick local run or a longer exploration.

Reproducible by default: tests/conftest.py loads the derandomized hypothesis profile "ci", so every
run draws the same examples, and the boundary values (0, -1, 2^31, 2^63-1, 2^63, -2^63-1, 10^19-1,
empty and 64-byte data) are sent explicitly (`@example`) on top of them. `make fuzz` explores with
fresh seeds (profile "explore") and prints the seed to rerun with (`--hypothesis-seed=N`).
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

import psycopg
import pytest
from aiogram.fsm.storage.base import StorageKey
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette

from db import users
from handlers.states import AdminStates, BroadcastStates, LoginStates
from tests.conftest import ADMIN_ID, ErrorRecords
from tests.harness import Telegram
from tests.runtime_helpers import add_message, make_broadcaster

# aiogram warns about update kinds it does not know: exactly what some examples send.
pytestmark = pytest.mark.filterwarnings("ignore:Detected unknown update type:RuntimeWarning")

VICTIM = 710_000_001
ATTACKER = 710_000_002  # allowed, logged in, with groups and a message: callbacks do real work
PENDING = 710_000_003
BANNED = 710_000_004
EXPIRED = 710_000_005
KNOWN_SENDERS = (ATTACKER, PENDING, BANNED, EXPIRED)

_SCALE = float(os.environ.get("FUZZ_SCALE", "1"))
EXAMPLES = {
    "messages": 2500,
    "commands": 1500,
    "callbacks": 2500,
    "content": 1200,
    "mutated": 1500,
    "raw": 800,
    "admin": 1000,
}
FUZZ_TOTAL = sum(EXAMPLES.values())


def _n(name: str) -> int:
    return max(1, int(EXAMPLES[name] * _SCALE))


def _fuzz_settings(name: str) -> Any:
    # derandomize and the example database come from the loaded profile ("ci" or "explore").
    return settings(
        max_examples=_n(name), deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                               HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


# ---- the contract's vocabulary ------------------------------------------------------------------

CALLBACK_IDS = [
    "login", "logout", "logout_confirm", "back_to_menu", "restart_bot", "full_manual", "about_bot",
    "about_bot_text", "about_bot_video", "lang:uz", "lang:ru", "lang:en", "select_groups",
    "select_groups_page:0", "toggle_group:-1001:0", "deselect_all_groups", "add_group", "add_group_page:0",
    "import_group:-1001:0", "add_all_groups:0", "send_message", "set_interval:3", "set_interval_custom",
    "cancel_broadcast", "start_broadcast", "stop_broadcast", "sent_messages", "sent_messages_page:0",
    "history_view:1", "history_use:1", "history_delete:1", "admin_panel:all:0", "admin_user:1",
    "admin_add_week:1", "admin_add_month:1", "admin_add_vip:1", "admin_sub_month:1", "admin_block:1",
    "admin_unban:1", "admin_announce", "admin_announce_confirm", "admin_announce_cancel", "admin_stats",
]
COMMANDS = ["start", "menu", "cancel", "id", "info", "lang", "import_groups", "adduser", "ban", "unban",
            "help", "settings", "START", "start@tgcast_bot", "ban@other_bot", ""]
STATES = [None, LoginStates.WAITING_PHONE, LoginStates.WAITING_CODE, LoginStates.WAITING_PASSWORD,
          BroadcastStates.WAITING_BROADCAST_MSG, BroadcastStates.WAITING_INTERVAL,
          AdminStates.WAITING_ADMIN_ANNOUNCE, AdminStates.WAITING_ADMIN_ANNOUNCE_CONFIRM, "Unknown:STATE"]

_update_ids = itertools.count(50_000_000)
# The boundaries of 32- and 64-bit columns and of the 19-digit strings that still look like a BIGINT.
BOUNDARY_INTS = [0, -1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**19 - 1]
_ODD_INTS = [*BOUNDARY_INTS, 1, 2**31 - 1, -(2**31), 2**53, -(2**63), VICTIM, -VICTIM, ADMIN_ID]

odd_ints = st.one_of(st.sampled_from(_ODD_INTS), st.integers(), st.integers(-(2**63), 2**63 - 1))
ids_or_victim = st.one_of(odd_ints, st.just(VICTIM), st.integers(0, 10))
short_text = st.text(max_size=40)
texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.sampled_from(["", " ", "\x00", "\u202e", "👍🏽" * 50, "<b>x</b>", "&amp;", "+998901234567", "1 2 3 4 5",
                     "12345", "3", "0", "-5", "99999999999999999999", "NaN", "/", "//", "/ /"]),
    st.integers(0, 4200).map(lambda n: "я" * n),
)
senders = st.one_of(
    st.sampled_from(KNOWN_SENDERS),
    st.integers(1, 2**40),  # unknown users: each becomes a pending row
)


def _user(uid: int, draw_extra: dict[str, Any] | None = None) -> dict[str, Any]:
    user: dict[str, Any] = {"id": uid, "is_bot": False, "first_name": "F"}
    user.update(draw_extra or {})
    return user


user_extras = st.fixed_dictionaries({}, optional={
    "first_name": texts, "last_name": short_text, "username": short_text,
    "language_code": st.one_of(st.sampled_from(["uz", "ru", "en", "", "zz", "pt-br", "EN"]), short_text),
    "is_premium": st.booleans(),
})


def entities(text_len: int) -> st.SearchStrategy[list[dict[str, Any]]]:
    kinds = st.sampled_from(["bot_command", "bold", "italic", "text_link", "spoiler", "custom_emoji",
                             "mention", "url", "pre", "code", "blockquote", "underline", "strikethrough"])
    entity = st.builds(
        lambda kind, off, length, extra: {"type": kind, "offset": off, "length": length, **extra},
        kinds, st.integers(-3, text_len + 3), st.integers(-3, text_len + 5),
        st.fixed_dictionaries({}, optional={"url": short_text, "custom_emoji_id": short_text,
                                            "language": short_text}),
    )
    return st.lists(entity, max_size=4)


def _message(uid: int, extra: dict[str, Any], **content: Any) -> dict[str, Any]:
    return {
        "message_id": 1, "date": 0,
        "chat": {"id": uid, "type": "private"},
        "from": _user(uid, extra),
        **content,
    }


@st.composite
def text_messages(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(senders)
    text = draw(texts)
    content: dict[str, Any] = {"text": text}
    if draw(st.booleans()):
        content["entities"] = draw(entities(len(text)))
    msg = _message(uid, draw(user_extras), **content)
    msg["message_id"] = draw(odd_ints)
    msg["date"] = draw(st.one_of(st.just(0), odd_ints.filter(lambda d: -(2**40) < d < 2**40)))
    if draw(st.booleans()):
        msg["chat"] = {"id": draw(st.one_of(st.just(uid), odd_ints)),
                       "type": draw(st.sampled_from(["private", "group", "supergroup", "channel", "weird"]))}
    if draw(st.integers(0, 9)) == 0:
        msg["reply_to_message"] = _message(uid, {}, text=draw(short_text))
    kind = draw(st.sampled_from(["message", "message", "message", "edited_message"]))
    return {kind: msg}


@st.composite
def commands(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(senders)
    name = draw(st.one_of(st.sampled_from(COMMANDS), short_text.map(lambda s: s.replace(" ", ""))))
    args = draw(st.one_of(
        st.just(""),
        ids_or_victim.map(str),
        st.tuples(ids_or_victim, odd_ints).map(lambda t: f"{t[0]} {t[1]}"),
        st.tuples(ids_or_victim, st.sampled_from(["0", "1", "36500", "36501", "-3", "1.5", "١٢", "1e3"])).map(
            lambda t: f"{t[0]} {t[1]}"),
        texts,
    ))
    sep = draw(st.sampled_from([" ", "  ", "\n", "\t", " \u00a0"]))
    text = f"/{name}{sep}{args}" if args else f"/{name}"
    length = draw(st.one_of(st.just(len(name) + 1), st.integers(-2, len(text) + 3)))
    content = {"text": text, "entities": [{"type": "bot_command", "offset": 0, "length": length}]}
    return {"message": _message(uid, draw(user_extras), **content)}


def _suffixes() -> st.SearchStrategy[str]:
    return st.one_of(
        st.just(""), short_text, odd_ints.map(str),
        st.tuples(odd_ints, odd_ints).map(lambda t: f"{t[0]}:{t[1]}"),
        st.sampled_from(["all:0", "banned:-1", "requested:99999999", "nope:0", "uz", "xx", "3", "4", "1e3",
                         ":", "::", "0:0:0", "true", "null", str(VICTIM), f"{VICTIM}:0"]),
    )


def _boundary_callback_data() -> list[str]:
    """Each contract id carrying a number with every boundary in each numeric place; empty data and
    data of exactly 64 bytes (Telegram's limit)."""
    out = ["", "x" * 64, "é" * 32, "admin_block:" + "9" * 52]
    for cid in CALLBACK_IDS:
        prefix, *parts = cid.split(":")
        for i, part in enumerate(parts):
            if part.lstrip("-").isdigit():
                out += [":".join([prefix, *parts[:i], str(v), *parts[i + 1:]]) for v in BOUNDARY_INTS]
    return out


BOUNDARY_CALLBACK_DATA = _boundary_callback_data()
BOUNDARY_COMMANDS = [f"/{name} {v}" for name in ("ban", "unban", "adduser") for v in BOUNDARY_INTS] + [
    f"/adduser {ATTACKER} {v}" for v in BOUNDARY_INTS]


@st.composite
def callback_data(draw: st.DrawFn) -> str:
    how = draw(st.integers(0, 4))
    if how == 4:
        return draw(st.sampled_from(BOUNDARY_CALLBACK_DATA))
    if how == 0:  # random bytes decoded as text, at most 64 bytes as Telegram allows
        raw = draw(st.binary(max_size=64))
        return raw.decode(draw(st.sampled_from(["utf-8", "latin-1"])), errors="replace")
    if how == 1:  # any prefix of a contract id with a random suffix
        cid = draw(st.sampled_from(CALLBACK_IDS))
        cut = draw(st.integers(0, len(cid)))
        return (cid[:cut] + draw(_suffixes()))[:64]
    prefix = draw(st.sampled_from(CALLBACK_IDS)).split(":")[0]
    return f"{prefix}:{draw(_suffixes())}"[:64]


@st.composite
def callbacks(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(senders)
    query: dict[str, Any] = {
        "id": draw(st.one_of(st.just("1"), short_text)), "from": _user(uid, draw(user_extras)),
        "chat_instance": draw(st.one_of(st.just("1"), short_text)),
    }
    if draw(st.integers(0, 9)):
        query["data"] = draw(callback_data())
    where = draw(st.integers(0, 4))
    if where:
        message = _message(uid, {}, text=draw(short_text))
        message["message_id"] = draw(st.one_of(st.just(1), odd_ints))
        message["from"] = {"id": 123456, "is_bot": True, "first_name": "bot"}
        if where == 1:  # an inaccessible message (date 0)
            message = {"message_id": message["message_id"], "date": 0, "chat": message["chat"]}
        query["message"] = message
    elif draw(st.booleans()):
        query["inline_message_id"] = draw(short_text)
    return {"callback_query": query}


photo_size = st.fixed_dictionaries(
    {"file_id": short_text, "file_unique_id": short_text, "width": odd_ints, "height": odd_ints},
    optional={"file_size": odd_ints},
)


@st.composite
def content_messages(draw: st.DrawFn) -> dict[str, Any]:
    uid = draw(senders)
    kind = draw(st.sampled_from(["contact", "photo", "video", "sticker", "voice", "document", "animation",
                                 "location", "poll", "dice"]))
    content: dict[str, Any]
    if kind == "contact":
        content = {"contact": draw(st.fixed_dictionaries(
            {"phone_number": st.one_of(texts, st.sampled_from(["+998901234567", "00998901234567", "+", ""])),
             "first_name": short_text},
            optional={"user_id": st.one_of(st.just(uid), ids_or_victim), "last_name": short_text,
                      "vcard": texts}))}
    elif kind == "photo":
        content = {"photo": draw(st.lists(photo_size, max_size=4))}
    elif kind == "video":
        content = {"video": draw(st.fixed_dictionaries(
            {"file_id": short_text, "file_unique_id": short_text, "width": odd_ints, "height": odd_ints,
             "duration": odd_ints},
            optional={"file_size": odd_ints, "mime_type": short_text, "file_name": short_text}))}
    elif kind == "sticker":
        content = {"sticker": {"file_id": draw(short_text), "file_unique_id": "u", "type": "regular",
                               "width": 1, "height": 1, "is_animated": False, "is_video": False}}
    elif kind == "voice":
        content = {"voice": {"file_id": draw(short_text), "file_unique_id": "u", "duration": draw(odd_ints)}}
    elif kind == "document":
        content = {"document": {"file_id": draw(short_text), "file_unique_id": "u",
                                "file_size": draw(odd_ints), "file_name": draw(short_text)}}
    elif kind == "animation":
        content = {"animation": {"file_id": "a", "file_unique_id": "u", "width": 1, "height": 1, "duration": 1}}
    elif kind == "location":
        content = {"location": {"latitude": draw(st.floats(allow_nan=False)),
                                "longitude": draw(st.floats(allow_nan=False))}}
    elif kind == "poll":
        content = {"poll": {"id": "p", "question": draw(short_text), "options": [], "total_voter_count": 0,
                            "is_closed": False, "is_anonymous": True, "type": "regular",
                            "allows_multiple_answers": False}}
    else:
        content = {"dice": {"emoji": "🎲", "value": draw(odd_ints)}}
    if kind in ("photo", "video", "animation", "document") and draw(st.booleans()):
        caption = draw(texts)
        content["caption"] = caption
        if draw(st.booleans()):
            content["caption_entities"] = draw(entities(len(caption)))
    return {"message": _message(uid, draw(user_extras), **content)}


# ---- structural mutation of valid updates ---------------------------------------------------------

wrong_values = st.one_of(
    st.none(), st.booleans(), odd_ints, st.floats(allow_nan=False), texts,
    st.lists(st.integers(), max_size=3), st.dictionaries(short_text, st.integers(), max_size=3),
)


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.one_of(text_messages(), commands(), callbacks(), content_messages()))
    update: dict[str, Any] = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 4))):
        paths = list(_paths(update))
        if not paths:
            break
        parent, key = draw(st.sampled_from(paths))
        action = draw(st.integers(0, 2))
        if action == 0:
            del parent[key]
        elif action == 1:
            parent[key] = draw(wrong_values)
        elif isinstance(parent, dict):
            parent[draw(short_text)] = draw(wrong_values)
        else:
            parent.append(draw(wrong_values))
    if draw(st.integers(0, 4)) == 0:  # an update kind this bot does not handle, or no kind at all
        kind = draw(st.sampled_from(["my_chat_member", "chat_member", "inline_query", "poll_answer",
                                     "message_reaction", "business_message", "purchased_paid_media",
                                     "future_update_kind", "channel_post", "chat_join_request"]))
        update = {kind: draw(st.one_of(wrong_values, st.just(next(iter(update.values()), {}))))}
    return update


def _paths(node: Any) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield node, key
            yield from _paths(value)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield node, index
            yield from _paths(value)


# ---- the harness --------------------------------------------------------------------------------


SNAPSHOT_SQL = {
    "bot_users": "SELECT row_to_json(t)::text FROM bot_users t WHERE user_id = %(id)s",
    "accounts": "SELECT row_to_json(t)::text FROM accounts t WHERE owner_id = %(id)s",
    "groups": "SELECT row_to_json(t)::text FROM groups t WHERE owner_id = %(id)s ORDER BY chat_id",
    "messages": "SELECT row_to_json(t)::text FROM messages t WHERE owner_id = %(id)s ORDER BY id",
    "configs": "SELECT row_to_json(t)::text FROM configs t WHERE owner_id = %(id)s",
}


async def snapshot(db: psycopg.AsyncConnection, user_id: int) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, query in SNAPSHOT_SQL.items():
        cur = await db.execute(query, {"id": user_id})
        out[table] = [row[0] for row in await cur.fetchall()]
    return out


class Fuzzer:
    """Posts one generated update and checks the three properties."""

    def __init__(self, app: Starlette, tg: Telegram, db: psycopg.AsyncConnection, errors: ErrorRecords,
                 victim_before: dict[str, list[str]]) -> None:
        self.app, self.tg, self.db, self.errors = app, tg, db, errors
        self.victim_before = victim_before
        self.count = 0
        self.statuses: dict[int, int] = {}

    async def set_state(self, uid: int, state: Any) -> None:
        tgcast = self.app.state.tgcast
        key = StorageKey(bot_id=tgcast.bot.id, chat_id=uid, user_id=uid)
        await tgcast.dispatcher.storage.set_state(key, state)

    async def post(self, update: dict[str, Any], *, keep_update_id: bool = False) -> None:
        if not keep_update_id:
            update = {"update_id": next(_update_ids), **update}
        body = json.dumps(update, ensure_ascii=False).encode()
        assert len(body) <= 1024 * 1024, "the fuzzer keeps bodies within the webhook's bound"
        await self.post_raw(body)

    async def post_raw(self, body: bytes) -> None:
        self.errors.records.clear()
        response = await self.tg.client.post(
            "/telegram/webhook", content=body,
            headers={"X-Telegram-Bot-Api-Secret-Token": "test-webhook-secret-0123456789",
                     "content-type": "application/json"},
        )
        if response.status_code == 200:
            await self.tg._execute_inline_reply(response)
        self.count += 1
        self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1
        assert response.status_code < 500, (response.status_code, body[:500])
        assert response.status_code in (200, 400), (response.status_code, body[:500])
        failures = [f"{r.name}: {r.getMessage()} {r.exc_info[1]!r}" if r.exc_info else f"{r.name}: {r.getMessage()}"
                    for r in self.errors.records]
        assert not failures, (failures, body[:1000])
        if self.count % 250 == 0:  # a change of the victim's rows is found close to the update that made it
            assert await snapshot(self.db, VICTIM) == self.victim_before, body[:1000]

    async def check_victim(self) -> None:
        assert await snapshot(self.db, VICTIM) == self.victim_before


@pytest.fixture
async def fuzzer(app: Starlette, tg: Telegram, db: psycopg.AsyncConnection, net, settings, errors) -> Any:
    victim = await make_broadcaster(db, net, settings, VICTIM, groups=3)
    await add_message(db, VICTIM, "older history entry")
    await make_broadcaster(db, net, settings, ATTACKER, groups=12)
    await add_message(db, ATTACKER, "attacker's older entry")
    await users.create_pending(db, PENDING, username="p", first_name="P", last_name=None, language_code="en")
    await users.set_access(db, BANNED, status="banned", expires_at=None)
    await users.set_access(db, EXPIRED, status="active", expires_at=_past())
    assert victim.user_id == VICTIM
    fz = Fuzzer(app, tg, db, errors, await snapshot(db, VICTIM))
    started = time.perf_counter()
    yield fz
    await fz.check_victim()
    elapsed = time.perf_counter() - started
    _report(fz, elapsed)


def _past() -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) - timedelta(days=1)


_totals: dict[str, Any] = {"examples": 0, "seconds": 0.0, "statuses": {}}


def _report(fz: Fuzzer, elapsed: float) -> None:
    _totals["examples"] += fz.count
    _totals["seconds"] += elapsed
    for code, n in fz.statuses.items():
        _totals["statuses"][code] = _totals["statuses"].get(code, 0) + n
    print(f"\nfuzz: {fz.count} updates in {elapsed:.1f}s, statuses {fz.statuses}; "
          f"running total {_totals['examples']} updates, {_totals['seconds']:.1f}s")


async def _in_state(fuzzer: Fuzzer, update: dict[str, Any], state: Any) -> None:
    event = next(iter(update.values()), None)
    uid = None
    if isinstance(event, dict) and isinstance(event.get("from"), dict):
        uid = event["from"].get("id")
    if isinstance(uid, int) and 0 < uid < 2**40:
        await fuzzer.set_state(uid, state)


# ---- the boundaries, sent explicitly in every run (`@example`) ----------------------------------


def _text_update(uid: int, text: str) -> dict[str, Any]:
    content: dict[str, Any] = {"text": text}
    if text.startswith("/"):
        content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return {"message": _message(uid, {}, **content)}


def _press_update(uid: int, data: str) -> dict[str, Any]:
    message = _message(uid, {}, text="menu")
    message["from"] = {"id": 123456, "is_bot": True, "first_name": "bot"}
    return {"callback_query": {"id": "1", "from": _user(uid), "chat_instance": "1", "data": data,
                               "message": message}}


def _examples(cases: list[dict[str, Any]]) -> Any:
    """Decorates a @given test with one explicit example per case (hypothesis runs them first)."""
    def decorate(test: Any) -> Any:
        for case in reversed(cases):
            test = example(**case)(test)
        return test
    return decorate


# ---- the properties -------------------------------------------------------------------------------


@_fuzz_settings("messages")
@_examples([{"update": _text_update(ATTACKER, text), "state": state}
            for text in [*map(str, BOUNDARY_INTS), "", "9" * 64]
            for state in (None, BroadcastStates.WAITING_INTERVAL, LoginStates.WAITING_CODE)])
@given(update=text_messages(), state=st.sampled_from(STATES))
async def test_fuzz_text_messages_in_every_state(fuzzer: Fuzzer, update: dict[str, Any], state: Any) -> None:
    await _in_state(fuzzer, update, state)
    await fuzzer.post(update)


@_fuzz_settings("commands")
@_examples([{"update": _text_update(ATTACKER, text), "state": None} for text in BOUNDARY_COMMANDS])
@given(update=commands(), state=st.sampled_from(STATES))
async def test_fuzz_commands_with_random_args(fuzzer: Fuzzer, update: dict[str, Any], state: Any) -> None:
    await _in_state(fuzzer, update, state)
    await fuzzer.post(update)


@_fuzz_settings("callbacks")
@_examples([{"update": _press_update(ATTACKER, data), "state": None} for data in BOUNDARY_CALLBACK_DATA])
@given(update=callbacks(), state=st.sampled_from(STATES))
async def test_fuzz_callback_data(fuzzer: Fuzzer, update: dict[str, Any], state: Any) -> None:
    await _in_state(fuzzer, update, state)
    await fuzzer.post(update)


@_fuzz_settings("content")
@_examples([{"update": {"message": _message(ATTACKER, {}, contact={"phone_number": "+998901234567",
                                                                    "first_name": "C", "user_id": v})},
             "state": LoginStates.WAITING_PHONE} for v in BOUNDARY_INTS])
@given(update=content_messages(), state=st.sampled_from(STATES))
async def test_fuzz_contacts_and_media(fuzzer: Fuzzer, update: dict[str, Any], state: Any) -> None:
    await _in_state(fuzzer, update, state)
    await fuzzer.post(update)


@_fuzz_settings("mutated")
@_examples([{"update": _text_update(ATTACKER, "hi"), "update_id": v, "state": None} for v in BOUNDARY_INTS])
@given(update=mutated(), update_id=st.one_of(st.none(), wrong_values), state=st.sampled_from(STATES))
async def test_fuzz_mutated_shapes_and_unknown_kinds(
    fuzzer: Fuzzer, update: dict[str, Any], update_id: Any, state: Any
) -> None:
    await _in_state(fuzzer, update, state)
    if update_id is None:
        await fuzzer.post(update)
    else:
        await fuzzer.post({"update_id": update_id, **update}, keep_update_id=True)


def _as_admin(update: dict[str, Any]) -> dict[str, Any]:
    """The same update sent by the super admin: the admin handlers parse the forged input."""
    event = next(iter(update.values()), None)
    if isinstance(event, dict):
        if isinstance(event.get("from"), dict):
            event["from"]["id"] = ADMIN_ID
        for msg in (event, event.get("message")):
            if isinstance(msg, dict) and isinstance(msg.get("chat"), dict):
                msg["chat"]["id"] = ADMIN_ID
    return update


@_fuzz_settings("admin")
@_examples([{"update": _press_update(ADMIN_ID, data), "state": None} for data in BOUNDARY_CALLBACK_DATA]
           + [{"update": _text_update(ADMIN_ID, text), "state": None} for text in BOUNDARY_COMMANDS])
@given(update=st.one_of(commands(), callbacks(), text_messages(), content_messages()).map(_as_admin),
       state=st.sampled_from(STATES))
async def test_fuzz_as_the_super_admin(fuzzer: Fuzzer, update: dict[str, Any], state: Any) -> None:
    # The admin may legitimately act on anyone: only updates that do not name the victim are sent,
    # so the victim's rows must still come out unchanged.
    assume(str(VICTIM) not in json.dumps(update))
    if state in (BroadcastStates.WAITING_BROADCAST_MSG, BroadcastStates.WAITING_INTERVAL):
        # Reachable only once logged in, and the login creates the admin's row (a super admin has
        # none before: the access check skips them), which the message and config rows refer to.
        await users.lock_or_create(fuzzer.db, ADMIN_ID)
    await fuzzer.set_state(ADMIN_ID, state)
    await fuzzer.post(update)


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(str.encode),
    st.integers(1, 1024 * 1024 - 64).map(lambda n: ('{"update_id": 1, "message": {"text": "' + "x" * n).encode()),
    st.integers(1, 900_000).map(
        lambda n: json.dumps({"update_id": next(_update_ids), "message": {
            "message_id": 1, "date": 0, "chat": {"id": ATTACKER, "type": "private"},
            "from": {"id": ATTACKER, "is_bot": False, "first_name": "A"}, "text": "ж" * (n // 2)}},
            ensure_ascii=False).encode()),
    st.integers(1, 300_000).map(lambda d: b'{"update_id": 7, "message": ' + b"[" * d + b"]" * d + b"}"),
    st.integers(1, 2000).map(lambda d: ('{"update_id": 8, "message": ' + '{"reply_to_message": ' * d
                                        + "{}" + "}" * d + "}").encode()),
    st.sampled_from([b"", b"null", b"[]", b"{}", b'{"update_id": null}', b'{"update_id": 1e309}',
                     b'{"update_id": -1}', b'{"update_id": 99999999999999999999999}', b"\xff\xfe",
                     b'{"update_id": 5, "message": null}', b'{"update_id": 6, "callback_query": {}}']),
)


@_fuzz_settings("raw")
@_examples([{"body": b""}, {"body": b"x" * 64}, {"body": b"\xff" * 64}])
@given(body=raw_bodies)
async def test_fuzz_raw_bodies_and_huge_strings(fuzzer: Fuzzer, body: bytes) -> None:
    await fuzzer.post_raw(body)


# ---- regressions found by the fuzzer (kept as plain tests so they run in every quick pass) ---------


async def test_nul_characters_in_profile_and_text_do_not_crash(fuzzer: Fuzzer) -> None:
    """PostgreSQL text cannot store U+0000: an unknown user named "\x00" crashed the access check."""
    uid = 710_000_099
    await fuzzer.post({"message": _message(uid, {"first_name": "a\x00b", "username": "\x00"}, text="hi\x00")})
    row = await users.get(fuzzer.db, uid)
    assert row is not None and row.first_name == "a\ufffdb"


async def test_deeply_nested_json_is_400_not_500(fuzzer: Fuzzer) -> None:
    """json.loads raises RecursionError (not ValueError) beyond ~1000 levels: it was a 500."""
    await fuzzer.post_raw(b'{"update_id": 7, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert fuzzer.statuses == {400: 1}
