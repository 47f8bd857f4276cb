"""Login (phone → code → password), the temporary state in Redis, restarts mid-login, account moves,
/cancel, the idle-code hint and logout."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from aiogram.fsm.storage.base import StorageKey
from starlette.applications import Starlette

from api.app import create_app
from db import accounts, configs
from handlers.states import AdminStates, BroadcastStates, LoginStates
from tests.conftest import BOT_TOKEN
from tests.harness import Telegram, TgUser
from tests.journey_helpers import PHONE, allow, fsm_state, log_in, make_groups, spaced
from userbot.fake import FakeGateway
from userbot.gateway import GatewayError

WAITING_PHONE = LoginStates.WAITING_PHONE.state
WAITING_CODE = LoginStates.WAITING_CODE.state
WAITING_PASSWORD = LoginStates.WAITING_PASSWORD.state


def _login_key(settings, user: TgUser) -> str:
    return f"{settings.redis_prefix}login:{user.id}"


def _deleted_ids(botapi, user: TgUser) -> list[int]:
    return [int(c.params["message_id"]) for c in botapi.calls_of("deleteMessage")
            if int(c.params["chat_id"]) == user.id]


@pytest.fixture
async def allowed(db, user: TgUser) -> TgUser:
    await allow(db, user)
    return user


async def test_login_asks_for_the_phone_with_a_contact_button(app, tg: Telegram, allowed: TgUser) -> None:
    await tg.press(allowed, "login")
    assert await fsm_state(app, allowed) == WAITING_PHONE
    screen = tg.screen(allowed)
    assert screen.has("login.ask_phone")
    assert [b.get("request_contact") for b in screen.reply_buttons] == [True]


async def test_login_when_already_logged_in_toasts_and_shows_the_menu(app, tg: Telegram, net,
                                                                      allowed: TgUser) -> None:
    await log_in(tg, net, allowed)
    await tg.press(allowed, "login")
    assert "login.already" in tg.toast_keys()
    assert await fsm_state(app, allowed) is None
    assert tg.screen(allowed).has("menu.status_title")


@pytest.mark.parametrize("typed", ["12345", "+998 90 12a 45 67", "hello"])
async def test_wrong_phone_format_keeps_the_state(app, tg: Telegram, net, allowed: TgUser, typed: str) -> None:
    await tg.press(allowed, "login")
    await tg.send(allowed, typed)
    assert tg.screen(allowed).has("login.bad_phone")
    assert await fsm_state(app, allowed) == WAITING_PHONE


async def test_phone_is_normalised_before_the_code_is_sent(app, tg: Telegram, net, allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, "00998 (90) 123-45-67")
    assert await net.last_code(PHONE) is not None
    assert await fsm_state(app, allowed) == WAITING_CODE
    screen = tg.screen(allowed)
    assert screen.has("login.code_sent")
    assert screen.raw.get("reply_markup") == {"remove_keyboard": True}


async def test_own_contact_is_accepted(app, tg: Telegram, net, allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.share_contact(allowed, PHONE.lstrip("+"))
    assert await fsm_state(app, allowed) == WAITING_CODE
    assert await net.last_code(PHONE) is not None


async def test_someone_elses_contact_is_refused(app, tg: Telegram, net, allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.share_contact(allowed, PHONE, owner_id=allowed.id + 1)
    assert tg.screen(allowed).has("login.not_own_contact")
    assert await fsm_state(app, allowed) == WAITING_PHONE
    assert await net.last_code(PHONE) is None


async def test_unknown_and_banned_numbers(app, tg: Telegram, net, allowed: TgUser) -> None:
    await tg.press(allowed, "login")
    await tg.send(allowed, "+12025550100")  # no such account on the network
    assert tg.screen(allowed).has("login.invalid_phone")
    await net.add_account("+12025550199", banned=True)
    await tg.send(allowed, "+12025550199")
    assert tg.screen(allowed).has("login.banned_phone")
    assert await fsm_state(app, allowed) == WAITING_PHONE


async def test_flood_wait_on_send_code_names_the_minutes(app, tg: Telegram, allowed: TgUser,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    async def flooded(self, phone: str):
        raise GatewayError("FLOOD_WAIT_X", 250)

    monkeypatch.setattr(FakeGateway, "send_code", flooded)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    screen = tg.screen(allowed)
    assert screen.has("login.flood") and "5 min" in screen.text
    assert await fsm_state(app, allowed) == WAITING_PHONE


async def test_right_code_stores_the_encrypted_session_and_clears_everything(
    app, tg: Telegram, net, db, redis, settings, allowed: TgUser, botapi
) -> None:
    uid = await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    assert await redis.exists(_login_key(settings, allowed))
    code = await net.last_code(PHONE)
    assert code is not None
    await tg.send(allowed, spaced(code))
    code_message_id = botapi.calls_of("deleteMessage")[-1].params["message_id"]
    assert code_message_id == _deleted_ids(botapi, allowed)[-1]
    account = await accounts.get(db, allowed.id)
    assert account is not None and account.tg_user_id == uid and account.phone == PHONE
    assert account.status == "active"
    session = app.state.tgcast.box.decrypt(account.session_enc)
    assert session.encode() not in bytes(account.session_enc)
    assert await net.session_user(session) == uid  # the stored session really is the signed-in one
    assert not await redis.exists(_login_key(settings, allowed))
    assert await fsm_state(app, allowed) is None
    screen = tg.screen(allowed)
    assert screen.has("login.success", "menu.status_title")
    assert screen.callbacks[0] == "start_broadcast"


@pytest.mark.parametrize("typed", ["", "abc", "12", "1 2 3 4 5 6 7 8 9"])
async def test_not_a_code_keeps_the_state_and_is_deleted(app, tg: Telegram, net, allowed: TgUser, botapi,
                                                         typed: str) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    await tg.send(allowed, typed or " ")
    assert tg.screen(allowed).has("login.not_a_code")
    assert await fsm_state(app, allowed) == WAITING_CODE
    assert _deleted_ids(botapi, allowed)


async def test_wrong_code_then_five_wrong_codes_reset_the_login(app, tg: Telegram, net, redis, settings,
                                                                allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    code = await net.last_code(PHONE)
    wrong = "11111" if code != "11111" else "22222"
    for _ in range(4):
        await tg.send(allowed, spaced(wrong))
        assert tg.screen(allowed).has("login.wrong_code")
        assert await fsm_state(app, allowed) == WAITING_CODE
    await tg.send(allowed, spaced(wrong))
    assert tg.all_keys(allowed) >= {"login.too_many_tries"}
    assert await fsm_state(app, allowed) is None
    assert not await redis.exists(_login_key(settings, allowed))


async def test_expired_code_goes_back_to_the_phone(app, tg: Telegram, net, redis, allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    code = await net.last_code(PHONE)
    async for key in redis.scan_iter(match=f"{net.p}code:*"):
        await redis.delete(key)  # Telegram forgot the code: it expired
    await tg.send(allowed, spaced(code or "12345"))
    assert tg.screen(allowed).has("login.code_expired")
    assert await fsm_state(app, allowed) == WAITING_PHONE


async def test_login_state_in_redis_is_encrypted_and_expires(tg: Telegram, net, redis, settings,
                                                            allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    raw = await redis.get(_login_key(settings, allowed))
    assert raw is not None
    assert b"998901234567" not in raw and b"tmp-" not in raw
    ttl = await redis.ttl(_login_key(settings, allowed))
    assert 0 < ttl <= 600


async def test_wrong_codes_do_not_extend_the_ten_minutes(tg: Telegram, net, redis, settings,
                                                        allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    await redis.expire(_login_key(settings, allowed), 100)  # as if 500 s of the 600 had passed
    code = await net.last_code(PHONE)
    await tg.send(allowed, spaced("11111" if code != "11111" else "22222"))
    assert tg.screen(allowed).has("login.wrong_code")
    assert 0 < await redis.ttl(_login_key(settings, allowed)) <= 100


async def test_login_state_lost_in_redis_asks_for_the_phone_again(app, tg: Telegram, net, redis, settings,
                                                                  allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    await redis.delete(_login_key(settings, allowed))  # the ten minutes are over
    await tg.send(allowed, spaced(await net.last_code(PHONE) or "12345"))
    assert tg.screen(allowed).has("login.restart")
    assert await fsm_state(app, allowed) == WAITING_PHONE


async def test_two_step_password(app, tg: Telegram, net, db, allowed: TgUser, botapi) -> None:
    await net.add_account(PHONE, password="s3cret-pass")
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    await tg.send(allowed, spaced(await net.last_code(PHONE) or ""))
    assert await fsm_state(app, allowed) == WAITING_PASSWORD
    assert tg.screen(allowed).has("login.ask_password")
    assert await accounts.get(db, allowed.id) is None

    botapi.clear_calls()
    await tg.send(allowed, "wrong-pass")
    calls = [c.method for c in botapi.calls if c.method != "getMe"]
    assert calls[0] == "deleteMessage", "the password leaves the chat before anything else"
    assert tg.screen(allowed).has("login.wrong_password")
    assert await fsm_state(app, allowed) == WAITING_PASSWORD

    await tg.send(allowed, "s3cret-pass")
    assert await fsm_state(app, allowed) is None
    assert tg.screen(allowed).has("login.success_2fa")
    assert await accounts.get(db, allowed.id) is not None
    assert len(_deleted_ids(botapi, allowed)) == 2


async def test_a_password_starting_with_a_slash_is_still_a_password(app, tg: Telegram, net, db, allowed: TgUser,
                                                                     botapi) -> None:
    await net.add_account(PHONE, password="/slash-pass")
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    await tg.send(allowed, spaced(await net.last_code(PHONE) or ""))
    await tg.send(allowed, "/slash-pass")
    assert tg.screen(allowed).has("login.success_2fa")
    assert len(_deleted_ids(botapi, allowed)) == 2


async def test_five_wrong_passwords_reset_the_login(app, tg: Telegram, net, redis, settings,
                                                    allowed: TgUser) -> None:
    await net.add_account(PHONE, password="right")
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    await tg.send(allowed, spaced(await net.last_code(PHONE) or ""))
    for _ in range(5):
        await tg.send(allowed, "nope")
    assert "login.too_many_tries" in tg.all_keys(allowed)
    assert await fsm_state(app, allowed) is None
    assert not await redis.exists(_login_key(settings, allowed))


async def test_secrets_never_reach_the_logs(tg: Telegram, net, allowed: TgUser,
                                            caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await net.add_account(PHONE, password="pa55-w0rd-xyz")
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    code = await net.last_code(PHONE) or ""
    await tg.send(allowed, spaced(code))
    await tg.send(allowed, "pa55-w0rd-xyz")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "pa55-w0rd-xyz" not in logged
    assert spaced(code) not in logged and f"'{code}'" not in logged


@asynccontextmanager
async def _web_process(settings, botapi, botapi_server) -> AsyncIterator[tuple[Starlette, Telegram]]:
    """One life of the web process: its lifespan opens and closes everything it holds, so a second
    one shares nothing with the first but PostgreSQL and Redis."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tgcast.test") as client:
            yield app, Telegram(client, botapi, botapi_server.base_url, BOT_TOKEN)


async def test_restart_between_phone_and_code_loses_nothing(net, db, settings, botapi, botapi_server,
                                                            allowed: TgUser) -> None:
    await net.add_account(PHONE)
    async with _web_process(settings, botapi, botapi_server) as (first, tg):
        await tg.press(allowed, "login")
        await tg.send(allowed, PHONE)
        assert await fsm_state(first, allowed) == WAITING_CODE
    # the first process is gone (lifespan closed: pool, Redis client, bot session)
    async with _web_process(settings, botapi, botapi_server) as (second, tg):
        assert await fsm_state(second, allowed) == WAITING_CODE
        await tg.send(allowed, spaced(await net.last_code(PHONE) or ""))
        assert tg.screen(allowed).has("login.success")
        assert await fsm_state(second, allowed) is None
    assert await accounts.get(db, allowed.id) is not None


async def test_restart_between_code_and_password_loses_nothing(net, db, settings, botapi, botapi_server,
                                                               allowed: TgUser) -> None:
    await net.add_account(PHONE, password="pw-after-restart")
    async with _web_process(settings, botapi, botapi_server) as (first, tg):
        await tg.press(allowed, "login")
        await tg.send(allowed, PHONE)
        await tg.send(allowed, spaced(await net.last_code(PHONE) or ""))
        assert await fsm_state(first, allowed) == WAITING_PASSWORD
    async with _web_process(settings, botapi, botapi_server) as (second, tg):
        await tg.send(allowed, "pw-after-restart")
        assert tg.screen(allowed).has("login.success_2fa")
        assert await fsm_state(second, allowed) is None
    assert await accounts.get(db, allowed.id) is not None


async def test_account_moves_to_the_new_owner(app, tg: Telegram, net, db, allowed: TgUser) -> None:
    other = TgUser(700_000_002, first_name="Vali")
    await allow(db, other)
    await log_in(tg, net, allowed, groups=make_groups(1))
    await tg.press(allowed, "add_all_groups:0")
    await tg.press(allowed, "send_message")
    await tg.send(allowed, "ad text")
    await tg.press(allowed, "set_interval:10")
    config = await configs.get(db, allowed.id)
    assert config is not None and config.active

    await tg.press(other, "login")
    await tg.send(other, PHONE)
    await tg.send(other, spaced(await net.last_code(PHONE) or ""))
    assert await accounts.get(db, allowed.id) is None
    moved = await accounts.get(db, other.id)
    assert moved is not None and moved.phone == PHONE
    config = await configs.get(db, allowed.id)
    assert config is not None and not config.active
    assert "login.moved_away" in tg.all_keys(allowed)


async def test_digits_while_idle_get_the_hint(app, tg: Telegram, allowed: TgUser) -> None:
    await tg.send(allowed, "54321")
    assert tg.screen(allowed).has("login.code_hint")


async def test_cancel_during_login_discards_the_temporary_session(app, tg: Telegram, net, redis, settings,
                                                                  allowed: TgUser) -> None:
    await net.add_account(PHONE)
    await tg.press(allowed, "login")
    await tg.send(allowed, PHONE)
    temp_keys = [k async for k in redis.scan_iter(match=f"{net.p}temp:*")]
    assert temp_keys
    await tg.send(allowed, "/cancel")
    assert await fsm_state(app, allowed) is None
    assert not await redis.exists(_login_key(settings, allowed))
    assert not [k async for k in redis.scan_iter(match=f"{net.p}temp:*")]
    assert "common.cancelled" in tg.all_keys(allowed)
    removed = [m for m in tg.api.messages(allowed.id) if m.get("reply_markup") == {"remove_keyboard": True}]
    assert removed, "the contact keyboard is taken away"
    assert tg.screen(allowed).callbacks == ["login", "full_manual"]


@pytest.mark.parametrize(
    "state",
    [BroadcastStates.WAITING_BROADCAST_MSG, BroadcastStates.WAITING_INTERVAL, AdminStates.WAITING_ADMIN_ANNOUNCE],
)
async def test_cancel_clears_any_conversation(app, tg: Telegram, allowed: TgUser, state) -> None:
    key = StorageKey(bot_id=app.state.tgcast.bot.id, chat_id=allowed.id, user_id=allowed.id)
    await app.state.tgcast.dispatcher.storage.set_state(key, state)
    await tg.send(allowed, "/cancel")
    assert await fsm_state(app, allowed) is None
    assert "common.cancelled" in tg.all_keys(allowed)


async def test_logout_asks_then_logs_out_everywhere(app, tg: Telegram, net, db, allowed: TgUser) -> None:
    await log_in(tg, net, allowed, groups=make_groups(1))
    await tg.press(allowed, "add_all_groups:0")
    await tg.press(allowed, "send_message")
    await tg.send(allowed, "ad")
    await tg.press(allowed, "set_interval:3")
    account = await accounts.get(db, allowed.id)
    assert account is not None
    session = app.state.tgcast.box.decrypt(account.session_enc)

    await tg.press(allowed, "logout")
    screen = tg.screen(allowed)
    assert screen.has("login.logout_confirm") and screen.callbacks == ["logout_confirm", "back_to_menu"]
    assert await accounts.get(db, allowed.id) is not None  # nothing happens before the confirmation

    await tg.press(allowed, "logout_confirm")
    assert await accounts.get(db, allowed.id) is None
    config = await configs.get(db, allowed.id)
    assert config is not None and not config.active
    with pytest.raises(GatewayError):
        await net.session_user(session)  # logged out at "Telegram" too
    screen = tg.screen(allowed)
    assert screen.has("login.logged_out", "menu.not_connected")
    assert screen.callbacks == ["login", "full_manual"]
