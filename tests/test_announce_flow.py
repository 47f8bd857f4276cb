"""The admin's announcement conversation: prompt, preview, confirm (enqueue, not send), cancel."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from redis import Redis as SyncRedis
from rq import Queue

from db import announcements, users
from jobs.announce import run_announcement
from tests.conftest import ADMIN_ID
from tests.harness import Telegram, TgUser, message_keys
from tests.runtime_helpers import run_job


async def _state(redis) -> str | None:
    keys = [k for k in await redis.keys("*fsm*") if k.endswith(b":state")]
    if not keys:
        return None
    value = await redis.get(keys[0])
    return value.decode() if value else None


def _queue(settings) -> Queue:
    return Queue(f"{settings.queue_prefix}-announce", connection=SyncRedis.from_url(settings.redis_url))


async def _audience(db, n: int) -> None:
    for i in range(n):
        await users.set_access(db, 2000 + i, status="active", expires_at=None)
    await users.set_access(db, 3000, status="pending", expires_at=datetime.now(UTC))


async def test_prompt_preview_confirm_enqueues_and_the_job_delivers(tg: Telegram, db, redis, settings,
                                                                    admin: TgUser) -> None:
    await _audience(db, 3)
    await tg.press(admin, "admin_announce")
    assert await _state(redis) == "AdminStates:WAITING_ADMIN_ANNOUNCE"
    screen = tg.screen(admin)
    assert screen.has("admin.announce_prompt") and screen.callbacks == ["admin_announce_cancel"]

    await tg.send_content(admin, sticker={"file_id": "st", "file_unique_id": "u", "type": "regular",
                                          "width": 1, "height": 1, "is_animated": False, "is_video": False})
    assert tg.screen(admin).has("admin.announce_only_media")
    assert await _state(redis) == "AdminStates:WAITING_ADMIN_ANNOUNCE"

    await tg.send(admin, "Big news", entities=[{"type": "bold", "offset": 0, "length": 3}])
    preview = tg.api.last("copyMessage")
    assert preview is not None and int(preview.params["chat_id"]) == ADMIN_ID
    assert int(preview.params["from_chat_id"]) == ADMIN_ID
    screen = tg.screen(admin)
    assert screen.has("admin.announce_preview") and "3 active users" in screen.text
    assert screen.callbacks == ["admin_announce_confirm", "admin_announce_cancel"]

    await tg.press(admin, "admin_announce_confirm")
    assert "admin.announce_queued" in tg.toast_keys()
    assert await _state(redis) is None
    ann = await announcements.get(db, 1)
    assert ann is not None and (ann.status, ann.total, ann.admin_id) == ("queued", 3, ADMIN_ID)
    assert ann.source_message_id == int(preview.params["message_id"])
    queue = _queue(settings)
    assert queue.job_ids == ["announce-1"]  # queued for a worker: nothing was sent in the webhook
    assert tg.api.messages(2000) == []

    await tg.press(admin, "admin_announce_confirm")  # a second press finds nothing to send
    assert "admin.announce_expired" in tg.toast_keys()
    assert await announcements.get(db, 2) is None

    result = await asyncio.to_thread(run_job, settings, run_announcement, 1)
    assert result == {"delivered": 3, "failed": 0, "blocked": 0}
    assert all(tg.api.messages(2000 + i) for i in range(3)) and tg.api.messages(3000) == []
    assert ann.progress_message_id is not None
    progress = tg.api.message(ADMIN_ID, ann.progress_message_id)
    assert progress is not None
    assert "admin.announce_progress" in message_keys(progress["text"])
    assert "admin.announce_report" in tg.screen(admin).keys


async def test_photo_announcement_is_previewed(tg: Telegram, db, redis, admin: TgUser) -> None:
    await tg.press(admin, "admin_announce")
    await tg.send_content(admin, photo=[{"file_id": "ph", "file_unique_id": "u1", "width": 10, "height": 10}],
                          caption="Look")
    assert tg.api.last("copyMessage") is not None
    assert tg.screen(admin).has("admin.announce_preview")
    assert await _state(redis) == "AdminStates:WAITING_ADMIN_ANNOUNCE_CONFIRM"


async def test_cancel_clears_the_state_and_shows_the_admin_menu(tg: Telegram, db, redis, settings,
                                                                admin: TgUser) -> None:
    await tg.press(admin, "admin_announce")
    await tg.send(admin, "Draft")
    await tg.press(admin, "admin_announce_cancel")
    assert await _state(redis) is None
    assert tg.screen(admin).has("admin.announce_cancelled", "admin.menu_title")
    assert await announcements.get(db, 1) is None
    assert _queue(settings).job_ids == []


async def test_normal_user_text_is_not_taken_as_an_announcement(tg: Telegram, db, user: TgUser) -> None:
    await users.set_access(db, user.id, status="active", expires_at=None)
    await tg.send(user, "Big news")
    assert tg.api.last("copyMessage") is None
    assert await announcements.get(db, 1) is None
