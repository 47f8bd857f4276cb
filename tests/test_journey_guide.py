"""The guide (text and video) and /lang."""

from __future__ import annotations

import pytest

from db import users
from tests.harness import Telegram, TgUser
from tests.journey_helpers import allow

VIDEO = pytest.mark.parametrize("settings_overrides", [{"manual_video_file_id": "GUIDE-VIDEO"}])


@pytest.fixture
async def allowed(db, user: TgUser) -> TgUser:
    await allow(db, user)
    return user


@pytest.mark.parametrize("entry", ["full_manual", "about_bot"])
async def test_guide_offers_two_formats(tg: Telegram, allowed: TgUser, entry: str) -> None:
    await tg.send(allowed, "/menu")
    await tg.press(allowed, entry)
    screen = tg.screen(allowed)
    assert screen.has("guide.choose")
    assert screen.callbacks == ["about_bot_text", "about_bot_video", "back_to_menu"]


async def test_text_guide(tg: Telegram, settings, allowed: TgUser) -> None:
    await tg.send(allowed, "/menu")
    await tg.press(allowed, "about_bot_text")
    screen = tg.screen(allowed)
    assert screen.has("guide.text") and settings.support_contact in screen.text
    assert screen.callbacks == ["full_manual"]


async def test_video_guide_not_set_up(tg: Telegram, allowed: TgUser, botapi) -> None:
    await tg.send(allowed, "/menu")
    await tg.press(allowed, "about_bot_video")
    assert tg.screen(allowed).has("guide.no_video")
    assert not botapi.calls_of("sendVideo")


@VIDEO
async def test_video_guide(tg: Telegram, allowed: TgUser, botapi) -> None:
    await tg.send(allowed, "/menu")
    await tg.press(allowed, "about_bot_video")
    [call] = botapi.calls_of("sendVideo")
    assert call.params["video"] == "GUIDE-VIDEO" and int(call.params["chat_id"]) == allowed.id
    assert tg.screen(allowed).callbacks == ["full_manual"]


async def test_lang_picker_stores_and_applies_at_once(tg: Telegram, db, allowed: TgUser) -> None:
    await tg.send(allowed, "/lang")
    screen = tg.screen(allowed)
    assert screen.has("language.choose") and screen.callbacks == ["lang:uz", "lang:ru", "lang:en"]
    await tg.press(allowed, "lang:ru")
    row = await users.get(db, allowed.id)
    assert row is not None and row.language == "ru"
    assert "language.saved" in tg.screen(allowed, lang="ru").keys  # the reply already speaks Russian
    await tg.send(allowed, "/menu")
    assert "menu.not_connected" in tg.screen(allowed, lang="ru").keys
    assert "menu.not_connected" not in tg.screen(allowed, lang="en").keys


async def test_language_follows_telegram_until_chosen(tg: Telegram, db) -> None:
    uzbek = TgUser(700_000_321, first_name="Aziz", language_code="uz")
    await allow(db, uzbek)
    await tg.send(uzbek, "/menu")
    assert "menu.not_connected" in tg.screen(uzbek, lang="uz").keys
    await tg.send(uzbek, "/lang")
    await tg.press(uzbek, "lang:en")
    await tg.send(uzbek, "/menu")
    assert "menu.not_connected" in tg.screen(uzbek, lang="en").keys


async def test_forged_language_is_ignored(tg: Telegram, db, allowed: TgUser) -> None:
    await tg.send(allowed, "/lang")
    await tg.press(allowed, "lang:de")
    row = await users.get(db, allowed.id)
    assert row is not None and row.language is None


async def test_super_admin_without_a_row_can_choose_a_language(tg: Telegram, db, admin: TgUser) -> None:
    await tg.send(admin, "/lang")
    await tg.press(admin, "lang:uz")
    row = await users.get(db, admin.id)
    assert row is not None and row.language == "uz"
