"""Authorization matrix (docs/reliability.md, "Authorization matrix"): every callback and command carrying
an id, pressed by the object's owner, another allowed user, a pending user, a banned user and a super admin.

For each cell the rows of every party (bot_users, accounts, groups, messages, configs) are
snapshotted before and after: exactly the parties the table names may change, and only in the
allowed cells. Read-only screens (pages, cards, history entries) must show their marker callback to
the allowed roles only, and nothing of the owner's (message texts, group ids) may reach anyone else.

`docs/reliability.md` ("Authorization matrix") is generated from `CASES`:
`RELIABILITY_WRITE_DOCS=1 .venv/bin/pytest tests/test_authz_matrix.py -k doc` rewrites it, and the
same test fails when the document and the table drift apart.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from core.phone import mask_phone
from db import users
from tests.conftest import ADMIN_ID
from tests.harness import Telegram, TgUser
from tests.runtime_helpers import add_message, make_broadcaster

OWNER, OTHER, PENDING, BANNED = 720_000_001, 720_000_002, 720_000_003, 720_000_004
PLANS = "week:7:250,month:30:750:recurring"  # payments on: their buttons are in the matrix too
TARGET, TARGET_BANNED = 720_000_009, 720_000_010  # the users the admin actions are about
ROLES = ("owner", "other", "pending", "banned", "admin")
SECRET_TEXT = "owner-only history text 7f3a"

DOC = Path(__file__).parent.parent / "docs" / "reliability.md"


@dataclass(frozen=True)
class Case:
    action: str  # placeholders: {msg} the owner's old history entry, {chat} an owner's group, {target},
    # {payment} a Stars payment of the target, {account} the owner's account
    changes: frozenset[str]  # roles whose press changes rows
    who_changes: str  # "owner": the object's owner's rows; "self": the presser's own rows; "target"
    shows: frozenset[str] = frozenset()  # roles that get the screen (read-only actions)
    marker: str = ""  # a callback id prefix proving the screen was shown
    owner_is: str = "owner"  # who plays the owner: "owner" (a broadcaster), "target", "target_banned"
    note: str = ""


def _c(action: str, changes: str = "", who: str = "owner", shows: str = "", marker: str = "",
       owner_is: str = "owner", note: str = "") -> Case:
    return Case(action, frozenset(changes.split()), who, frozenset(shows.split()), marker, owner_is, note)


CASES: list[Case] = [
    _c("history_view:{msg}", shows="owner", marker="history_use:", note="others: 'not found', no leak"),
    _c("history_use:{msg}", changes="owner", shows="owner", marker="set_interval:"),
    _c("history_delete:{msg}", changes="owner"),
    _c("history_view:999999", note="no such entry, for anyone"),
    _c("toggle_group:{chat}:0", changes="owner"),
    _c("import_group:{chat}:0", changes="owner", note="the chat must be in the presser's own account"),
    _c("toggle_group:-1:0", note="not a group of anyone"),
    _c("select_groups_page:1", shows="owner other", marker="toggle_group:", note="each sees their own list"),
    _c("select_groups_page:-5", shows="owner other", marker="toggle_group:", note="forged page: clamped"),
    _c("add_group_page:1", shows="owner other", marker="import_group:", note="each sees their own account"),
    _c("sent_messages_page:1", shows="owner other", marker="history_view:", note="each sees their own history"),
    _c("accounts", shows="owner other", marker="account_logout:", note="each sees their own accounts"),
    _c("account_logout:{account}", shows="owner", marker="account_logout_ok:",
       note="others: 'not connected any more', nothing of the owner's shown"),
    _c("account_logout_ok:{account}", changes="owner", note="only the owner logs their account out"),
    _c("account_logout_ok:999999", note="no such account, for anyone"),
    _c("account_add", note="starts the login conversation of the presser's own account; stores nothing"),
    _c("group_accounts:0", shows="owner other", marker="group_account:", note="each sees their own list"),
    _c("group_account:{chat}:0", note="owner: no other account of theirs is in it; others: not their group"),
    _c("sent_messages_page:99999", shows="owner other", marker="history_view:", note="forged page: clamped"),
    _c("set_interval:3", changes="owner other", who="self", note="own config; needs login and a message"),
    _c("set_interval:7", who="self", note="forged value: refused for everyone"),
    _c("use_as_message:1", note="forged: no offer in the presser's own conversation, nothing stored"),
    _c("lang:ru", changes="owner other pending admin", who="self", note="public, except for the banned"),
    _c("lang:xx", who="self", note="unknown language: refused"),
    _c("admin_panel:all:0", shows="admin", marker="admin_user:", owner_is="target"),
    _c("admin_panel:banned:99999", shows="admin", marker="admin_panel:", owner_is="target"),
    _c("admin_user:{target}", shows="admin", marker="admin_block:", owner_is="target"),
    _c("admin_add_week:{target}", changes="admin", who="target", owner_is="target"),
    _c("admin_add_month:{target}", changes="admin", who="target", owner_is="target"),
    _c("admin_add_vip:{target}", changes="admin", who="target", owner_is="target"),
    _c("admin_sub_month:{target}", changes="admin", who="target", owner_is="target"),
    _c("admin_block:{target}", changes="admin", who="target", owner_is="target"),
    _c("admin_unban:{target}", changes="admin", who="target", owner_is="target_banned"),
    _c("/adduser {target} 7", changes="admin", who="target", owner_is="target"),
    _c("/ban {target}", changes="admin", who="target", owner_is="target"),
    _c("/unban {target}", changes="admin", who="target", owner_is="target_banned"),
    _c(f"admin_block:{ADMIN_ID}", owner_is="target", note="banning a super admin is refused"),
    _c("pay_plans", shows="owner other pending admin", marker="pay_buy:", note="the plans; not for the banned"),
    _c("pay_buy:week", note="sends an invoice to the presser (not banned); stores nothing"),
    _c("pay_buy:year", note="no such plan"),
    _c("pay_cancel", shows="owner", marker="pay_cancel_ok", note="only with a renewing subscription"),
    _c("pay_cancel_ok", changes="owner", who="self", note="own subscription only; the owner's renews"),
    _c("admin_refund:{payment}", shows="admin", marker="admin_refund_ok:", owner_is="target"),
    _c("admin_refund_ok:{payment}", changes="admin", who="target", owner_is="target"),
    _c("admin_refund_ok:999999", owner_is="target", note="no such payment"),
    _c("/paysupport", note="answers everyone, the banned too"),
]


@pytest.fixture
def settings_overrides() -> dict[str, str]:
    return {"plans": PLANS}


@dataclass
class World:
    ids: dict[str, int]  # role -> user id
    msg: int  # the owner's older (not current) history entry
    chat: int  # one of the owner's groups
    target: int
    payment: int  # a payment of TARGET, not refunded
    account: int  # the owner's account
    phone: str  # the owner's account's phone, masked as screens show it


async def _history(db: psycopg.AsyncConnection, owner: int, n: int, text: str) -> int:
    first = 0
    for i in range(n):
        mid = await add_message(db, owner, f"{text} #{i}")
        first = first or mid
    return first


async def build_world(db, net, settings, case: Case) -> World:
    owner = await make_broadcaster(db, net, settings, OWNER, groups=12, active=False)
    msg = await _history(db, OWNER, 6, SECRET_TEXT)
    await make_broadcaster(db, net, settings, OTHER, groups=12, active=False)
    await _history(db, OTHER, 6, "other's entry")
    await users.create_pending(db, PENDING, username="p", first_name="P", last_name=None, language_code="en")
    await users.set_access(db, BANNED, status="banned", expires_at=None)
    await users.set_access(db, TARGET, status="active", expires_at=datetime.now(UTC) + timedelta(days=10))
    await users.set_access(db, TARGET_BANNED, status="banned", expires_at=None)
    await db.execute("UPDATE bot_users SET language = 'en' WHERE language IS NULL")
    # The code the pressers' updates carry, so recording it (one language per person) changes no row.
    await db.execute("UPDATE bot_users SET language_code = 'en'")
    cur = await db.execute(
        "INSERT INTO payments (user_id, telegram_payment_charge_id, plan, days, stars, currency)"
        " VALUES (%(t)s, 'authz-charge', 'week', 7, 250, 'XTR') RETURNING id", {"t": TARGET})
    payment = (await cur.fetchone())[0]
    await db.execute(
        "INSERT INTO star_subscriptions (user_id, plan, charge_id, last_charge_id, renews_at)"
        " VALUES (%(o)s, 'month', 'authz-sub', 'authz-sub', now() + interval '20 days')", {"o": OWNER})
    owner_id = {"owner": OWNER, "target": TARGET, "target_banned": TARGET_BANNED}[case.owner_is]
    ids = {"owner": owner_id, "other": OTHER, "pending": PENDING, "banned": BANNED, "admin": ADMIN_ID}
    target = TARGET_BANNED if case.owner_is == "target_banned" else TARGET
    return World(ids, msg, owner.chat_ids[0], target, payment, owner.account_id, mask_phone(owner.phone))


TABLES = {
    "bot_users": "SELECT row_to_json(t)::text FROM bot_users t WHERE user_id = %(id)s",
    "accounts": "SELECT row_to_json(t)::text FROM accounts t WHERE owner_id = %(id)s",
    "groups": "SELECT row_to_json(t)::text FROM groups t WHERE owner_id = %(id)s ORDER BY chat_id",
    "messages": "SELECT row_to_json(t)::text FROM messages t WHERE owner_id = %(id)s ORDER BY id",
    "configs": "SELECT row_to_json(t)::text FROM configs t WHERE owner_id = %(id)s",
    "payments": "SELECT row_to_json(t)::text FROM payments t WHERE user_id = %(id)s ORDER BY id",
    "star_subscriptions": "SELECT row_to_json(t)::text FROM star_subscriptions t WHERE user_id = %(id)s",
}
PARTIES = (OWNER, OTHER, PENDING, BANNED, ADMIN_ID, TARGET, TARGET_BANNED)


async def snapshot(db: psycopg.AsyncConnection) -> dict[int, dict[str, list[str]]]:
    out: dict[int, dict[str, list[str]]] = {}
    for uid in PARTIES:
        out[uid] = {}
        for table, query in TABLES.items():
            cur = await db.execute(query, {"id": uid})
            out[uid][table] = [re.sub(r'"profile_refreshed_at":"[^"]*",?', "", r[0]) for r in await cur.fetchall()]
    return out


async def act(tg: Telegram, presser: TgUser, action: str) -> None:
    if action.startswith("/"):
        await tg.send(presser, action)
    else:
        await tg.press(presser, action)


def _expected_changed(case: Case, role: str, world: World) -> set[int]:
    if role not in case.changes:
        return set()
    if case.who_changes == "self":
        return {world.ids[role]}
    if case.who_changes == "target":
        return {world.target}
    return {world.ids["owner"]}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=[c.action for c in CASES])
async def test_authorization_matrix(tg: Telegram, db, net, settings, case: Case, role: str) -> None:
    world = await build_world(db, net, settings, case)
    action = case.action.format(msg=world.msg, chat=world.chat, target=world.target, payment=world.payment,
                                account=world.account)
    presser = TgUser(world.ids[role], first_name=role, language_code="en")
    before = await snapshot(db)
    tg.api.clear()
    await act(tg, presser, action)
    after = await snapshot(db)

    changed = {uid for uid in PARTIES if before[uid] != after[uid]}
    assert changed == _expected_changed(case, role, world), (action, role, changed)

    shown = [m for m in tg.api.messages(presser.id)]
    callbacks = [c for m in shown for c in _callbacks(m)]
    marked = bool(case.marker) and any(c.startswith(case.marker) for c in callbacks)
    assert marked == (role in case.shows), (action, role, callbacks)

    if presser.id != OWNER:  # nothing of the owner's reaches anyone else
        texts = " ".join(str(m.get("text") or m.get("caption") or "") for m in shown)
        assert SECRET_TEXT not in texts
        assert f"<of {OWNER}>" not in texts
        assert world.phone not in texts  # the owner's account is never named to anyone else
        assert not any(str(world.chat) in c for c in callbacks)


def _callbacks(message: dict) -> list[str]:
    markup = message.get("reply_markup")
    if not isinstance(markup, dict):
        return []
    return [b["callback_data"] for row in markup.get("inline_keyboard", []) for b in row if "callback_data" in b]


# ---- the document, generated from CASES -------------------------------------------------------------

_LABELS = {"owner": "owner", "other": "other allowed", "pending": "pending", "banned": "banned",
           "admin": "super admin"}


def matrix_markdown() -> str:
    head = "| action | " + " | ".join(_LABELS[r] for r in ROLES) + " | notes |"
    lines = [head, "|" + "---|" * (len(ROLES) + 2)]
    for case in CASES:
        cells = []
        for role in ROLES:
            if role in case.changes:
                cells.append("**changes**" if case.who_changes != "self" else "**changes own**")
            elif role in case.shows:
                cells.append("shows")
            else:
                cells.append("–")
        owner = {"owner": "", "target": "owner = the target user", "target_banned": "owner = a banned target"}
        notes = "; ".join(x for x in (owner[case.owner_is], case.note) if x)
        lines.append(f"| `{case.action}` | " + " | ".join(cells) + f" | {notes} |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- authz-matrix:begin -->", "<!-- authz-matrix:end -->"


def test_doc_matrix_in_sync() -> None:
    table = matrix_markdown()
    text = DOC.read_text() if DOC.exists() else ""
    block = f"{BEGIN}\n{table}{END}"
    current = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, re.S)
    if os.environ.get("RELIABILITY_WRITE_DOCS"):
        assert current, "docs/reliability.md needs the authz-matrix markers"
        DOC.write_text(text[: current.start()] + block + text[current.end():])
        return
    assert current is not None and current.group(0) == block, (
        "docs/reliability.md is stale: RELIABILITY_WRITE_DOCS=1 .venv/bin/pytest tests/test_authz_matrix.py -k doc"
    )
