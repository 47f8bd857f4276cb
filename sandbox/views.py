"""What the sandbox page shows, as JSON: a chat as a Telegram client would draw it, and the
emulated network (login codes, accounts, groups with everything the broadcast posted)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from db import sandbox as sandbox_db
from sandbox.entities import render_html
from sandbox.logins import codes_of
from sandbox.payments import payment_view
from sandbox.sandbox_botapi import SandboxBotAPI
from userbot.fake import FakeTelegram, PostedMessage

_MEDIA_KINDS = ("photo", "video", "animation", "document", "audio", "voice")


def _media(msg: dict[str, Any]) -> dict[str, Any] | None:
    for kind in _MEDIA_KINDS:
        if kind not in msg:
            continue
        obj = msg[kind][-1] if isinstance(msg[kind], list) else msg[kind]
        file_id = str(obj.get("file_id", "")) if isinstance(obj, dict) else ""
        return {"kind": kind, "file_id": file_id, "url": f"/sandbox/api/file/{file_id}"}
    return None


def _buttons(rows: Any) -> list[list[dict[str, Any]]]:
    drawn: list[list[dict[str, Any]]] = []
    for row in rows if isinstance(rows, list) else []:
        line = []
        for button in row if isinstance(row, list) else []:
            if isinstance(button, str):
                button = {"text": button}
            if isinstance(button, dict):
                line.append({k: button[k] for k in ("text", "callback_data", "url", "request_contact")
                             if k in button})
        drawn.append(line)
    return drawn


def message_view(msg: dict[str, Any], chat_id: int) -> dict[str, Any]:
    sender = msg.get("from") or {}
    outgoing = sender.get("id") != chat_id  # "outgoing" from the bot's side: shown on the left
    view: dict[str, Any] = {
        "id": msg["message_id"],
        "from_bot": outgoing,
        "date": msg.get("date"),
        "deleted": "deleted_date" in msg,
    }
    if view["deleted"]:
        return view
    if msg.get("text") is not None:
        view["text"], view["entities"] = msg["text"], msg.get("entities") or []
    else:
        view["text"], view["entities"] = msg.get("caption") or "", msg.get("caption_entities") or []
    view["html"] = render_html(view["text"], view["entities"])
    view["media"] = _media(msg)
    if "contact" in msg:
        view["contact"] = msg["contact"].get("phone_number")
    if isinstance(msg.get("invoice"), dict):
        invoice = msg["invoice"]
        view["invoice"] = {"title": invoice.get("title"), "description": invoice.get("description"),
                           "stars": invoice.get("total_amount"), "currency": invoice.get("currency"),
                           "paid": bool((msg.get("_pay") or {}).get("paid"))}
    markup = msg.get("reply_markup") or {}
    view["inline"] = _buttons(markup.get("inline_keyboard"))
    view["edited"] = "edit_date" in msg
    return view


def reply_keyboard(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The reply keyboard in force: the latest one the bot sent, unless removed since."""
    current: dict[str, Any] | None = None
    for msg in messages:
        markup = msg.get("reply_markup") or {}
        if markup.get("keyboard"):
            current = {
                "rows": _buttons(markup["keyboard"]),
                "one_time": bool(markup.get("one_time_keyboard")),
                "placeholder": markup.get("input_field_placeholder") or "",
                "message_id": msg["message_id"],
            }
        elif markup.get("remove_keyboard"):
            current = None
    return current


def _with_payment(api: SandboxBotAPI, msg: dict[str, Any]) -> dict[str, Any]:
    view = payment_view(api, msg)
    return {"payment": view} if view else {}


def chat_view(api: SandboxBotAPI, chat_id: int) -> dict[str, Any]:
    live = sorted(api.messages(chat_id), key=lambda m: m["message_id"])
    everything = sorted([*live, *api.deleted(chat_id)], key=lambda m: m["message_id"])
    return {
        "chat_id": chat_id,
        "messages": [message_view(m, chat_id) | _with_payment(api, m) for m in everything],
        "reply_keyboard": reply_keyboard(live),
        "toasts": api.toasts(chat_id),
    }


def _post_media(kind: str, cycle: dict[str, Any] | None) -> dict[str, Any] | None:
    """A posted photo or video, drawn from the bytes the broadcast stored (the emulated network keeps
    only what was posted, not the file): known while the page knows the post's cycle."""
    media_id = (cycle or {}).get("media_id")
    if kind not in ("photo", "video") or not isinstance(media_id, int):
        return None
    return {"kind": kind, "url": f"/sandbox/api/media/{media_id}"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _cycles(pool: AsyncConnectionPool, redis: Redis, prefix: str, posts: list[PostedMessage]) -> dict[int, Any]:
    """Cycle of each post by its random id; remembered in Redis because the deliveries of finished
    cycles are pruned, and the page should keep saying which cycle posted what. A post whose
    delivery was pruned before the page saw it (the page was closed) is found by its account and
    time: the cycle of that account that was sending when it was posted."""
    key = f"{prefix}sandbox:post-cycles"
    random_ids = sorted({p.random_id for p in posts})
    found: dict[int, Any] = {}
    if random_ids:
        cached = await redis.hmget(key, [str(r) for r in random_ids])  # type: ignore[misc]
        for rid, raw in zip(random_ids, cached, strict=True):
            if raw is not None:
                found[rid] = json.loads(raw)
    missing = [r for r in random_ids if r not in found]
    if not missing:
        return found
    async with pool.connection() as conn:
        for row in await sandbox_db.post_cycles(conn, missing):
            info = {"cycle_id": row.cycle_id, "seq": row.seq, "owner_id": row.owner_id,
                    "scheduled_at": _iso(row.scheduled_at), "retry": row.retry, "media_id": row.media_id}
            found[row.random_id] = info
            if row.delivery_status == "sent":
                await redis.hset(key, str(row.random_id), json.dumps(info))  # type: ignore[misc]
        for post in posts:
            if post.random_id in found:
                continue
            cycle = await sandbox_db.cycle_posting_at(conn, post.from_tg_user_id, datetime.fromtimestamp(post.at, UTC))
            if cycle is None:
                continue
            info = {"cycle_id": cycle.cycle_id, "seq": cycle.seq, "owner_id": cycle.owner_id,
                    "scheduled_at": _iso(cycle.scheduled_at), "retry": None, "media_id": cycle.media_id}
            found[post.random_id] = info
            if cycle.finished:  # while the cycle runs, its rows are still there to ask next time
                await redis.hset(key, str(post.random_id), json.dumps(info))  # type: ignore[misc]
    return found


async def network_view(net: FakeTelegram, pool: AsyncConnectionPool, redis: Redis, prefix: str,
                       user_id: int | None = None) -> dict[str, Any]:
    """`user_id`: the page's user; only the login codes sent to their phones are shown."""
    codes = await codes_of(net, redis, prefix, user_id)
    async with pool.connection() as conn:
        accounts = await sandbox_db.accounts(conn)
    account_views = []
    now = datetime.now(UTC)
    for acc in accounts:
        paused = acc.flood_until is not None and acc.flood_until > now  # an ended pause is no badge
        account_views.append({
            "owner_id": acc.owner_id, "tg_user_id": acc.tg_user_id, "phone": acc.phone, "status": acc.status,
            "flood_until": _iso(acc.flood_until) if paused else None,
            "pause_reason": acc.pause_reason if paused else None,
            "flood_left_s": await net.flood_left(acc.tg_user_id),
            "pending_faults": await net.pending_faults(acc.tg_user_id),
        })
    seeded = await net.seeded_groups()
    posted = {g.chat_id: await net.posted(g.chat_id) for g in seeded}
    cycles = await _cycles(pool, redis, prefix, [p for ps in posted.values() for p in ps])
    groups = []
    for g in seeded:
        groups.append({
            "chat_id": g.chat_id, "title": g.title, "kind": g.kind, "slowmode_s": g.slowmode_s,
            "read_only": await net.forbids_all(g.chat_id),
            "banned": await net.forbidden_for(g.chat_id),
            "posts": [
                {"message_id": p.message_id, "at": p.at, "kind": p.kind, "from_tg_user_id": p.from_tg_user_id,
                 "random_id": str(p.random_id), "topic_id": p.topic_id, "html": render_html(p.text, p.entities),
                 "cycle": cycles.get(p.random_id), "media": _post_media(p.kind, cycles.get(p.random_id)),
                 "deleted": p.deleted}
                for p in posted[g.chat_id]
            ],
        })
    return {"codes": [{"phone": k, "code": v} for k, v in sorted(codes.items())],
            "accounts": account_views, "groups": groups}
