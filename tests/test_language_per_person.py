"""One language per person: the replies to their updates and the notices sent to them from the
workers and the access check speak the same language, resolved the same way (docs/bot.md, "Texts
and languages"). Texts are compared with the key rendered in the expected language, never wording."""

from __future__ import annotations

import pytest

from core.i18n import LANGUAGES, person_language, t
from db import users
from jobs.notices import notify
from tests.harness import Telegram, TgUser, message_keys
from tests.journey_helpers import allow
from worker.botapi import BotApiClient


async def _worker_notice(db, settings, botapi, user_id: int) -> str:
    """A notice from the workers (jobs/notices.py), as it reached the user."""
    before = len(botapi.messages(user_id))
    async with BotApiClient(settings.bot_token, settings.bot_api_base) as client:
        assert await notify(db, client, settings, user_id, cause="expired", key="notices.expired")
    sent = botapi.messages(user_id)
    assert len(sent) == before + 1
    return sent[-1]["text"]


def _speaks(tg: Telegram, user: TgUser, key: str) -> set[str]:
    """The languages in which the last screen shown to the user reads as `key`."""
    return {lang for lang in LANGUAGES if key in tg.screen(user, lang=lang).keys}


async def test_a_chosen_language_holds_for_replies_and_notices_whatever_the_update_says(
    tg: Telegram, db, settings, botapi
) -> None:
    person = TgUser(700_000_451, first_name="Aziz", language_code="en")
    await allow(db, person)
    await users.set_language(db, person.id, "uz")
    await tg.send(person, "/menu")  # the update says en
    assert _speaks(tg, person, "menu.not_connected") == {"uz"}
    assert await _worker_notice(db, settings, botapi, person.id) == t("uz", "notices.expired")
    assert t("uz", "notices.expired") != t("en", "notices.expired")  # else this test could not fail


async def test_without_a_choice_the_stored_code_follows_the_updates_so_notices_match_replies(
    tg: Telegram, db, settings, botapi, admin: TgUser
) -> None:
    # A super admin's row whose stored code went stale (the hourly profile refresh skips admins):
    # replies followed the update and notices the row, so the two spoke different languages.
    await users.create_pending(db, admin.id, username=admin.username, first_name=admin.first_name,
                               last_name=None, language_code="ru")
    assert admin.language_code == "en"
    await tg.send(admin, "/id")
    assert _speaks(tg, admin, "menu.your_id") == {"en"}
    row = await users.get(db, admin.id)
    assert row is not None and (row.language, row.language_code) == (None, "en")
    assert await _worker_notice(db, settings, botapi, admin.id) == t("en", "notices.expired")
    # A notice from the access check (a new user's request) speaks it too.
    newcomer = TgUser(700_000_452, first_name="Nodira", language_code="uz")
    await tg.send(newcomer, "/start")
    told = [m["text"] for m in botapi.messages(admin.id) if str(newcomer.id) in m.get("text", "")]
    assert len(told) == 1
    assert {lang for lang in LANGUAGES if "access.new_request" in message_keys(told[0], lang)} == {"en"}


@pytest.mark.parametrize("settings_overrides", [{"default_language": "uz"}])
async def test_an_admin_without_a_row_gets_notices_in_the_language_they_write(
    tg: Telegram, db, settings, botapi, admin: TgUser
) -> None:
    # A super admin needs no access row; their language must still be stored when they write, so the
    # notices of new requests (and payments, refunds) reach them in it, not in the default.
    assert await users.get(db, admin.id) is None and admin.language_code == "en"
    await tg.send(admin, "/id")
    assert await users.get(db, admin.id) is None  # still no access row: an admin needs none
    known = await users.language_of(db, admin.id)
    assert known is not None and known.language_code == "en"
    newcomer = TgUser(700_000_453, first_name="Nodira", language_code="uz")
    await tg.send(newcomer, "/start")
    told = [m["text"] for m in botapi.messages(admin.id) if str(newcomer.id) in m.get("text", "")]
    assert len(told) == 1
    assert {lang for lang in LANGUAGES if "access.new_request" in message_keys(told[0], lang)} == {"en"}


@pytest.mark.parametrize(
    ("chosen", "stored", "update", "expected"),
    [
        ("uz", "en", "en", "uz"),  # a /lang choice wins
        (None, "ru", "en", "ru"),  # then the code stored on the row
        (None, "de", "ru", "ru"),  # a stored code the bot does not speak: the update's
        (None, None, "ru-RU", "ru"),
        (None, None, None, "en"),  # then the default
        ("xx", None, None, "en"),
    ],
)
def test_person_language_order(chosen: str | None, stored: str | None, update: str | None, expected: str) -> None:
    class Row:
        language = chosen
        language_code = stored

    assert person_language(Row(), "en", update) == expected


def test_person_language_without_a_row_uses_the_update() -> None:
    assert person_language(None, "uz", "ru") == "ru"
    assert person_language(None, "uz", None) == "uz"
