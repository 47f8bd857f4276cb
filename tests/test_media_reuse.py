"""Media that survives time (docs/reliability.md, "Media handles"): a cycle uploads its photo/video
once, then references the media its first message stored; an upload the server lost is uploaded again
once without counting a retry; the media bytes are read from PostgreSQL only when an upload is due.

The emulator keeps an upload only for a while and takes it for one message only, like the server;
the Telethon half is checked offline against the TL shapes Telegram answers with."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from psycopg import AsyncConnection
from telethon.tl import functions, types

from jobs.send_batch import run_batch
from jobs.tick import tick
from tests.runtime_helpers import cycle_row, deliveries_of, make_broadcaster, utcnow
from tests.test_telethon_gateway_pure import FakeClient, _channel_message, _updates
from userbot import telethon_gateway as tg
from userbot.fake import FakeGateway
from userbot.gateway import GatewayError, OutgoingMedia, Peer
from userbot.telethon_gateway import TelethonGateway, input_media, stored_media_handle

PHOTO = b"\xff\xd8 fake jpeg"


async def start_cycle(pool, settings) -> int:
    summary = await tick(pool, settings)
    assert len(summary.cycle_ids) == 1, summary
    return summary.cycle_ids[0]


async def due_now(db: AsyncConnection, cycle_id: int) -> None:
    """The waits asked for (slow mode, backoff) are over: simulated by moving the deliveries' clock."""
    await db.execute(
        "UPDATE deliveries SET next_attempt_at = now() - interval '1 second'"
        " WHERE cycle_id = %(c)s AND status = 'pending'",
        {"c": cycle_id},
    )


def handle_kind(handle: str | None) -> str | None:
    if handle is None:
        return None
    data = json.loads(handle)
    return "stored" if "fake_media" in data else "upload" if "fake_upload" in data else "other"


@asynccontextmanager
async def media_table_hidden(db: AsyncConnection) -> AsyncIterator[None]:
    """Any read of the media table fails while inside (the table is renamed away for the moment)."""
    await db.execute("ALTER TABLE media RENAME TO media_hidden_by_test")
    try:
        yield
    finally:
        await db.execute("ALTER TABLE media_hidden_by_test RENAME TO media")


# ---- the worker against the emulator --------------------------------------------------------------


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 1}])
async def test_after_the_first_send_the_cycle_references_the_stored_media(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3101, groups=3, media=PHOTO, text="caption")
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)
    assert handle_kind((await cycle_row(db, cycle_id))["media_handle"]) == "stored"
    await net.expire_uploads()  # a long pause between batches: the upload is gone, the stored media is not
    for _ in range(2):
        await run_batch(ctx, cycle_id)
    assert await net.upload_count(b.tg_user_id) == 1
    assert {(r["status"], r["retry"]) for r in await deliveries_of(db, cycle_id)} == {("sent", 0)}
    for chat_id in b.chat_ids:
        assert [(p.kind, p.text) for p in await net.posted(chat_id)] == [("photo", "caption")]


async def test_a_photo_cycle_split_by_slow_mode_re_uploads_once_and_sends_everywhere(
    db, net, settings, pool, ctx
) -> None:
    b = await make_broadcaster(db, net, settings, 3102, groups=2, media=PHOTO, text="caption")
    cycle_id = await start_cycle(pool, settings)
    # Every group of the first batch is in slow mode: nothing is sent, the cycle keeps the upload's handle.
    await net.fail_next(b.tg_user_id, "SLOWMODE_WAIT_120", "SLOWMODE_WAIT_120")
    first = await run_batch(ctx, cycle_id)
    assert first.outcome == "continued"
    assert {(r["status"], r["retry"]) for r in await deliveries_of(db, cycle_id)} == {("pending", 0)}
    assert handle_kind((await cycle_row(db, cycle_id))["media_handle"]) == "upload"
    # The wait outlasts the upload.
    assert await net.expire_uploads() == 1
    await due_now(db, cycle_id)
    second = await run_batch(ctx, cycle_id)
    assert (second.outcome, second.sent) == ("finished", 2)
    assert await net.upload_count(b.tg_user_id) == 2  # exactly one re-upload
    assert {(r["status"], r["retry"]) for r in await deliveries_of(db, cycle_id)} == {("sent", 0)}
    cycle = await cycle_row(db, cycle_id)
    assert (cycle["outcome"], cycle["sent"], cycle["failed"]) == ("sent", 2, 0)
    assert handle_kind(cycle["media_handle"]) == "stored"
    for chat_id in b.chat_ids:
        assert [p.kind for p in await net.posted(chat_id)] == ["photo"]


async def test_a_lost_upload_is_uploaded_again_once_without_a_retry(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3103, groups=2, media=PHOTO)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "FILE_PART_0_MISSING")
    result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.sent) == ("finished", 2)
    assert {(r["status"], r["retry"]) for r in await deliveries_of(db, cycle_id)} == {("sent", 0)}
    assert await net.upload_count(b.tg_user_id) == 2


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 1}])
async def test_an_expired_stored_reference_is_uploaded_again_once(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3104, groups=3, media=PHOTO)
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)
    first_handle = (await cycle_row(db, cycle_id))["media_handle"]
    assert handle_kind(first_handle) == "stored"
    await net.fail_next(b.tg_user_id, "FILE_REFERENCE_EXPIRED")
    second = await run_batch(ctx, cycle_id)
    assert second.sent == 1
    renewed = (await cycle_row(db, cycle_id))["media_handle"]
    assert handle_kind(renewed) == "stored" and renewed != first_handle
    await run_batch(ctx, cycle_id)
    assert {(r["status"], r["retry"]) for r in await deliveries_of(db, cycle_id)} == {("sent", 0)}
    assert await net.upload_count(b.tg_user_id) == 2


async def test_the_same_failure_twice_in_a_row_takes_the_normal_retry_path(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3105, groups=1, media=PHOTO)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "FILE_PART_0_MISSING", "FILE_PART_0_MISSING")
    result = await run_batch(ctx, cycle_id)
    assert result.outcome == "continued"
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["retry"]) == ("pending", 1)
    assert row["next_attempt_at"] > utcnow() + timedelta(milliseconds=settings.retry_base_ms // 2)
    assert await net.upload_count(b.tg_user_id) == 2
    assert (await cycle_row(db, cycle_id))["media_handle"] is None  # the next attempt uploads afresh
    await due_now(db, cycle_id)
    done = await run_batch(ctx, cycle_id)
    assert (done.outcome, done.sent) == ("finished", 1)
    assert await net.upload_count(b.tg_user_id) == 3
    [row] = await deliveries_of(db, cycle_id)
    assert (row["status"], row["retry"]) == ("sent", 1)


async def test_a_stored_media_the_server_no_longer_has_is_uploaded_again(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3106, groups=2, media=PHOTO)
    cycle_id = await start_cycle(pool, settings)
    await net.fail_next(b.tg_user_id, "SLOWMODE_WAIT_120")  # the first group waits, the second is sent
    await run_batch(ctx, cycle_id)
    assert handle_kind((await cycle_row(db, cycle_id))["media_handle"]) == "stored"
    for key in [k async for k in net.redis.scan_iter(match=f"{net.p}media:*")]:
        await net.redis.delete(key)  # the stored copy is gone: MEDIA_EMPTY
    await due_now(db, cycle_id)
    done = await run_batch(ctx, cycle_id)
    assert (done.outcome, done.sent) == ("finished", 1)
    assert await net.upload_count(b.tg_user_id) == 2
    assert {(r["status"], r["retry"]) for r in await deliveries_of(db, cycle_id)} == {("sent", 0)}


async def test_a_text_cycle_never_reads_media(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3107, groups=2)
    cycle_id = await start_cycle(pool, settings)
    async with media_table_hidden(db):
        result = await run_batch(ctx, cycle_id)
    assert (result.outcome, result.sent) == ("finished", 2)
    assert await net.upload_count(b.tg_user_id) == 0


@pytest.mark.parametrize("settings_overrides", [{"batch_size": 1}])
async def test_a_batch_with_a_media_handle_does_not_read_the_media_bytes(db, net, settings, pool, ctx) -> None:
    b = await make_broadcaster(db, net, settings, 3108, groups=3, media=PHOTO)
    cycle_id = await start_cycle(pool, settings)
    await run_batch(ctx, cycle_id)  # uploads, reading the bytes once
    async with media_table_hidden(db):
        for _ in range(2):
            await run_batch(ctx, cycle_id)
    assert {r["status"] for r in await deliveries_of(db, cycle_id)} == {"sent"}
    assert await net.upload_count(b.tg_user_id) == 1


# ---- the emulator's uploads --------------------------------------------------------------------


async def test_the_emulator_takes_an_upload_for_one_message_and_stored_media_for_many(db, net, settings) -> None:
    b = await make_broadcaster(db, net, settings, 3109, groups=3, active=False)
    peers = [Peer(chat_id, "supergroup") for chat_id in b.chat_ids]
    async with FakeGateway(net).connect(b.session) as conn:
        upload = await conn.upload_media(OutgoingMedia("photo", PHOTO, "p.jpg", "image/jpeg"))
        first = await conn.send_media(peers[0], upload, "photo", "", [], 1)
        assert handle_kind(first.media_handle) == "stored"
        with pytest.raises(GatewayError) as info:
            await conn.send_media(peers[1], upload, "photo", "", [], 2)
        assert info.value.code == "FILE_PART_X_MISSING"
        assert first.media_handle is not None
        again = await conn.send_media(peers[1], first.media_handle, "photo", "", [], 3)
        assert again.media_handle == first.media_handle
        # a repeat of an accepted send is de-duplicated, not refused
        assert (await conn.send_media(peers[0], upload, "photo", "", [], 1)).duplicate
        later = await conn.upload_media(OutgoingMedia("photo", PHOTO, "p.jpg", "image/jpeg"))
        await net.expire_uploads()
        with pytest.raises(GatewayError) as info:
            await conn.send_media(peers[2], later, "photo", "", [], 4)
        assert info.value.code == "FILE_PART_X_MISSING"
        with pytest.raises(GatewayError) as info:
            await conn.send_media(peers[2], "not json", "photo", "", [], 5)
        assert info.value.code == "MEDIA_EMPTY"


# ---- the Telethon gateway (offline) ---------------------------------------------------------------


@pytest.fixture
def fake_client(monkeypatch: pytest.MonkeyPatch) -> type[FakeClient]:
    FakeClient.behaviour, FakeClient.instances = {}, []
    monkeypatch.setattr(tg, "TelegramClient", FakeClient)
    return FakeClient


GW = TelethonGateway(api_id=1, api_hash="0" * 32)
CHANNEL = Peer(chat_id=-1001234567890, kind="supergroup", access_hash=5)


def _photo(reference: bytes = b"ref") -> types.Photo:
    return types.Photo(id=-(2**62), access_hash=2**63 - 1, file_reference=reference, date=None, sizes=[], dc_id=2)


def test_a_stored_photo_handle_round_trips_to_input_media_photo() -> None:
    handle = stored_media_handle(_updates(_channel_message(40, types.MessageMediaPhoto(photo=_photo(b"\x00\xff")))))
    assert handle is not None
    assert json.loads(handle)["file_reference"] == "00ff"
    assert input_media(handle, "photo") == types.InputMediaPhoto(
        id=types.InputPhoto(id=-(2**62), access_hash=2**63 - 1, file_reference=b"\x00\xff"))


def test_a_stored_document_handle_round_trips_to_input_media_document() -> None:
    document = types.Document(id=7, access_hash=-8, file_reference=b"d", date=None, mime_type="video/mp4", size=3,
                              dc_id=2, attributes=[])
    handle = stored_media_handle(_updates(_channel_message(41, types.MessageMediaDocument(document=document))))
    assert handle is not None
    assert input_media(handle, "video") == types.InputMediaDocument(
        id=types.InputDocument(id=7, access_hash=-8, file_reference=b"d"))


def test_no_stored_media_in_an_answer_without_the_message() -> None:
    assert stored_media_handle(_updates(types.UpdateMessageID(id=9, random_id=1))) is None
    assert stored_media_handle(_updates(_channel_message(42))) is None
    assert stored_media_handle(_updates(_channel_message(43, types.MessageMediaPhoto(photo=None)))) is None


@pytest.mark.parametrize("handle", [
    '{"stored": "photo", "id": "1", "access_hash": "2", "file_reference": "zz"}',
    '{"stored": "photo", "id": "1"}',
    '{"stored": "sticker", "id": "1", "access_hash": "2", "file_reference": ""}',
])
def test_an_unreadable_stored_handle_asks_for_a_new_upload(handle: str) -> None:
    with pytest.raises(GatewayError) as info:
        input_media(handle, "photo")
    assert info.value.code == "MEDIA_HANDLE_INVALID"


async def test_send_media_returns_the_stored_media_and_keeps_it_stable(fake_client: type[FakeClient]) -> None:
    answers: list[Any] = [
        _updates(_channel_message(40, types.MessageMediaPhoto(photo=_photo(b"first")))),
        # Telegram may answer a later send with another file reference for the same photo
        _updates(_channel_message(41, types.MessageMediaPhoto(photo=_photo(b"second")))),
    ]
    fake_client.behaviour["send"] = lambda client: answers.pop(0)
    async with GW.connect("") as conn:
        upload = await conn.upload_media(OutgoingMedia("photo", PHOTO, "p.jpg", "image/jpeg"))
        first = await conn.send_media(CHANNEL, upload, "photo", "cap", [], 1)
        assert first.message_id == 40 and first.media_handle is not None
        second = await conn.send_media(CHANNEL, first.media_handle, "photo", "cap", [], 2)
    # the caller's handle stays the same, so a cycle writes its handle once
    assert second.media_handle == first.media_handle
    upload_request, stored_request = fake_client.instances[-1].requests
    assert isinstance(upload_request, functions.messages.SendMediaRequest)
    assert isinstance(upload_request.media, types.InputMediaUploadedPhoto)
    assert stored_request.media == types.InputMediaPhoto(
        id=types.InputPhoto(id=-(2**62), access_hash=2**63 - 1, file_reference=b"first"))


async def test_a_stored_handle_works_on_a_new_connection(fake_client: type[FakeClient]) -> None:
    handle = stored_media_handle(_updates(_channel_message(40, types.MessageMediaPhoto(photo=_photo()))))
    assert handle is not None
    fake_client.behaviour["send"] = _updates(_channel_message(50, types.MessageMediaPhoto(photo=_photo())))
    async with GW.connect("") as conn:
        sent = await conn.send_media(CHANNEL, handle, "photo", "", [], 9)
    assert (sent.message_id, sent.media_handle) == (50, handle)
    [request] = fake_client.instances[-1].requests
    assert isinstance(request.media, types.InputMediaPhoto)


async def test_a_duplicate_send_carries_no_media_handle(fake_client: type[FakeClient]) -> None:
    from telethon import errors

    fake_client.behaviour["send"] = errors.RandomIdDuplicateError(request=None)
    async with GW.connect("") as conn:
        upload = await conn.upload_media(OutgoingMedia("photo", PHOTO, "p.jpg", "image/jpeg"))
        sent = await conn.send_media(CHANNEL, upload, "photo", "", [], 1)
    assert sent.duplicate and sent.media_handle is None


async def test_a_long_lived_connection_remembers_a_bounded_number_of_stored_media(
    fake_client: type[FakeClient],
) -> None:
    """a connection serves an account for its whole life, a media cycle a minute."""
    fake_client.behaviour["send"] = lambda client: _updates(
        _channel_message(40, types.MessageMediaPhoto(photo=_photo(b"ref"))))
    async with GW.connect("") as conn:
        for n in range(tg.STORED_MEDIA_MAX * 3):  # a new upload per cycle
            upload = await conn.upload_media(OutgoingMedia("photo", PHOTO, f"p{n}.jpg", "image/jpeg"))
            await conn.send_media(CHANNEL, upload, "photo", "", [], n)
        assert len(conn._stored_media) == tg.STORED_MEDIA_MAX
