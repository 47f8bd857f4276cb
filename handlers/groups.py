"""The user's group list (`select_groups`) and importing from the account (`add_group`)."""

from __future__ import annotations

import logging

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder
from psycopg_pool import AsyncConnectionPool
from redis.asyncio import Redis

from core.crypto import SecretBox
from core.i18n import Translator
from core.paging import Page, page_of
from core.settings import Settings
from db import accounts
from db import groups as db_groups
from db.rows import Group
from handlers import callbacks as cb
from handlers.accounts_screen import account_label
from handlers.menu import button, require_login, send_main_menu
from handlers.ui import show
from services.groups import FLOOD_CODE, AccountGroups, NotLoggedIn
from userbot.gateway import AccountGateway, GatewayError, GroupInfo

log = logging.getLogger(__name__)

PER_PAGE = 10
_TITLE_MAX = 28
# One meaning per mark on both screens: what the mark says is the group's state, and pressing a
# group always flips it (docs/bot.md, "Groups").
IN_LIST = "✅"
NOT_IN_LIST = "➕"


def _short(title: str) -> str:
    return title if len(title) <= _TITLE_MAX else title[: _TITLE_MAX - 1] + "…"


def fetch_failed_text(tr: Translator, exc: GatewayError | NotLoggedIn) -> str:
    """Why the account's groups cannot be shown now. The user's list is untouched: every listing
    happens before anything is written."""
    if isinstance(exc, GatewayError) and exc.code == FLOOD_CODE and exc.seconds:
        return tr("groups.flood_wait", seconds=exc.seconds)
    return tr("groups.fetch_failed")


def _nav(kb: InlineKeyboardBuilder, page: Page,
         factory: type[cb.SelectGroupsPage] | type[cb.AddGroupPage] | type[cb.GroupAccounts]) -> None:
    row = []
    if page.has_prev:
        row.append(button("◀", factory(page=page.number - 1)))
    if page.has_next:
        row.append(button("▶", factory(page=page.number + 1)))
    if row:
        kb.row(*row)


def list_keyboard(tr: Translator, page: Page, rows: list[Group], total: int, *,
                  several_accounts: bool = False) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    for g in rows:
        kb.row(button(f"{IN_LIST} {_short(g.title)}", cb.ToggleGroup(chat_id=g.chat_id, page=page.number)))
    _nav(kb, page, cb.SelectGroupsPage)
    if total and several_accounts:
        kb.row(button(tr("groups.btn_accounts"), cb.GroupAccounts(page=page.number)))
    if total:
        kb.row(button(tr("groups.btn_remove_all"), cb.DeselectAllGroups()))
    kb.row(button(tr("groups.btn_import"), cb.AddGroup()), button(tr("groups.btn_add_all"), cb.AddAllGroups(page=0)))
    kb.row(button(tr("common.back"), cb.BackToMenu()))
    return kb.as_markup()


def import_keyboard(tr: Translator, page: Page, shown: list[GroupInfo], selected: set[int]) -> InlineKeyboardMarkup:
    kb = InlineKeyboardBuilder()
    buttons = [
        button(f"{IN_LIST if g.chat_id in selected else NOT_IN_LIST} {_short(g.title)}",
               cb.ImportGroup(chat_id=g.chat_id, page=page.number))
        for g in shown
    ]
    for i in range(0, len(buttons), 2):
        kb.row(*buttons[i : i + 2])
    _nav(kb, page, cb.AddGroupPage)
    kb.row(button(tr("groups.btn_add_all"), cb.AddAllGroups(page=page.number)))
    kb.row(button(tr("common.back"), cb.SelectGroups()))
    return kb.as_markup()


async def show_list(query: CallbackQuery, pool: AsyncConnectionPool, tr: Translator, requested: int) -> None:
    async with pool.connection() as conn:
        total = await db_groups.count_selected(conn, query.from_user.id)
        page = page_of(requested, total, PER_PAGE)
        rows = await db_groups.selected_page(conn, query.from_user.id, offset=page.offset, limit=PER_PAGE)
        several = await accounts.count(conn, query.from_user.id) > 1
    text = tr("groups.list_title", count=total)
    if total:
        text += "\n" + tr("groups.page", page=page.number + 1, pages=page.count)
    else:
        text += "\n" + tr("groups.list_empty")
    await show(query, text, list_keyboard(tr, page, rows, total, several_accounts=several))


async def show_account_choice(query: CallbackQuery, pool: AsyncConnectionPool, tr: Translator, requested: int) -> None:
    """Which account posts to each group of the list, a page at a time; pressing a group moves it on."""
    async with pool.connection() as conn:
        total = await db_groups.count_selected(conn, query.from_user.id)
        page = page_of(requested, total, PER_PAGE)
        rows = await db_groups.selected_page(conn, query.from_user.id, offset=page.offset, limit=PER_PAGE)
        owned = await accounts.list_for_owner(conn, query.from_user.id)
    labels = {a.id: account_label(tr, a, n) for n, a in enumerate(owned, 1)}
    kb = InlineKeyboardBuilder()
    for g in rows:
        label = labels.get(g.account_id, tr("groups.no_account")) if g.account_id else tr("groups.no_account")
        kb.row(button(f"{_short(g.title)} · {label}", cb.GroupAccount(chat_id=g.chat_id, page=page.number)))
    _nav(kb, page, cb.GroupAccounts)
    kb.row(button(tr("common.back"), cb.SelectGroups()))
    await show(query, tr("groups.accounts_title", page=page.number + 1, pages=page.count), kb.as_markup())


async def show_import(query: CallbackQuery, pool: AsyncConnectionPool, service: AccountGroups, tr: Translator,
                      requested: int) -> None:
    async with pool.connection() as conn:
        found = await service.listed(conn, query.from_user.id)
        selected = await db_groups.selected_ids(conn, query.from_user.id)
    if not found:
        kb = InlineKeyboardBuilder()
        kb.row(button(tr("common.back"), cb.SelectGroups()))
        await show(query, tr("groups.none_found"), kb.as_markup())
        return
    page = page_of(requested, len(found), PER_PAGE)
    shown = found[page.offset : page.offset + PER_PAGE]
    in_list = sum(1 for g in found if g.chat_id in selected)
    text = tr("groups.import_header", page=page.number + 1, pages=page.count, selected=in_list, total=len(found))
    await show(query, text, import_keyboard(tr, page, shown, selected))


# ---- handlers --------------------------------------------------------------------------------------


def _service(redis: Redis, gateway: AccountGateway, box: SecretBox, settings: Settings) -> AccountGroups:
    return AccountGroups(redis, gateway, box, settings)


async def _guard(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                 is_admin: bool) -> bool:
    return await require_login(query, pool=pool, settings=settings, tr=tr, is_admin=is_admin)


async def select_groups(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings, tr: Translator,
                        is_admin: bool, callback_data: cb.SelectGroups | cb.SelectGroupsPage) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    await query.answer()
    await show_list(query, pool, tr, getattr(callback_data, "page", 0))


async def add_group(query: CallbackQuery, pool: AsyncConnectionPool, redis: Redis, gateway: AccountGateway,
                    box: SecretBox, settings: Settings, tr: Translator, is_admin: bool,
                    callback_data: cb.AddGroup | cb.AddGroupPage) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    service = _service(redis, gateway, box, settings)
    try:
        await show_import(query, pool, service, tr, getattr(callback_data, "page", 0))
    except (GatewayError, NotLoggedIn) as exc:
        await query.answer(fetch_failed_text(tr, exc), show_alert=True)
        return
    await query.answer()


async def import_group(query: CallbackQuery, callback_data: cb.ImportGroup, pool: AsyncConnectionPool,
                       redis: Redis, gateway: AccountGateway, box: SecretBox, settings: Settings, tr: Translator,
                       is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    service = _service(redis, gateway, box, settings)
    try:
        async with pool.connection() as conn:
            toggled = await service.toggle(conn, query.from_user.id, callback_data.chat_id)
    except (GatewayError, NotLoggedIn) as exc:
        await query.answer(fetch_failed_text(tr, exc), show_alert=True)
        return
    if toggled is None:
        await query.answer(tr("groups.not_found"), show_alert=True)
        return
    key = "groups.added" if toggled.added else "groups.removed"
    await query.answer(tr(key, title=toggled.group.title))
    await show_import(query, pool, service, tr, callback_data.page)


async def add_all_groups(query: CallbackQuery, callback_data: cb.AddAllGroups, pool: AsyncConnectionPool,
                         redis: Redis, gateway: AccountGateway, box: SecretBox, settings: Settings,
                         tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    service = _service(redis, gateway, box, settings)
    try:
        async with pool.connection() as conn:
            added, _already = await service.add_all(conn, query.from_user.id)
    except (GatewayError, NotLoggedIn) as exc:
        await query.answer(fetch_failed_text(tr, exc), show_alert=True)
        return
    await query.answer(tr.n("groups.added_n", added, count=added) if added else tr("groups.all_already"))
    await show_import(query, pool, service, tr, callback_data.page)


async def toggle_group(query: CallbackQuery, callback_data: cb.ToggleGroup, pool: AsyncConnectionPool,
                       settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    async with pool.connection() as conn:
        removed = await db_groups.deselect(conn, query.from_user.id, callback_data.chat_id)
    if removed is None:
        await query.answer(tr("groups.not_found"), show_alert=True)
        return
    await query.answer(tr("groups.removed", title=removed.title))
    await show_list(query, pool, tr, callback_data.page)


async def deselect_all_groups(query: CallbackQuery, pool: AsyncConnectionPool, settings: Settings,
                              tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    async with pool.connection() as conn:
        await db_groups.deselect_all(conn, query.from_user.id)
    await query.answer(tr("groups.all_removed"))
    await show_list(query, pool, tr, 0)


async def group_accounts(query: CallbackQuery, callback_data: cb.GroupAccounts, pool: AsyncConnectionPool,
                         settings: Settings, tr: Translator, is_admin: bool) -> None:
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    await query.answer()
    await show_account_choice(query, pool, tr, callback_data.page)


async def group_account(query: CallbackQuery, callback_data: cb.GroupAccount, pool: AsyncConnectionPool,
                        redis: Redis, gateway: AccountGateway, box: SecretBox, settings: Settings, tr: Translator,
                        is_admin: bool) -> None:
    """Move a group of the presser's list to the next of their accounts that is in it. Both ids are
    checked server-side: the group must be in the presser's list, the account one of theirs listing it."""
    if not await _guard(query, pool, settings, tr, is_admin):
        return
    service = _service(redis, gateway, box, settings)
    async with pool.connection() as conn:
        group = await db_groups.get(conn, query.from_user.id, callback_data.chat_id)
        if group is None or not group.selected:
            await query.answer(tr("groups.not_found"), show_alert=True)
            return
        try:
            reach = await service.reach(conn, query.from_user.id)
        except (GatewayError, NotLoggedIn) as exc:
            await query.answer(fetch_failed_text(tr, exc), show_alert=True)
            return
        candidates = reach.accounts.get(group.chat_id, [])
        others = [a for a in candidates if a != group.account_id]
        if not others:
            await query.answer(tr("groups.no_other_account"), show_alert=True)
            return
        after = [a for a in others if group.account_id is not None and a > group.account_id]
        chosen = (after or others)[0]
        await db_groups.set_account(conn, query.from_user.id, group.chat_id, chosen)
        owned = await accounts.list_for_owner(conn, query.from_user.id)
    label = next(account_label(tr, a, n) for n, a in enumerate(owned, 1) if a.id == chosen)
    await query.answer(tr("groups.account_set", title=group.title, account=label))
    await show_account_choice(query, pool, tr, callback_data.page)


async def import_groups_command(message: Message, pool: AsyncConnectionPool, redis: Redis,
                                gateway: AccountGateway, box: SecretBox, settings: Settings, tr: Translator,
                                is_admin: bool) -> None:
    assert message.from_user is not None
    service = _service(redis, gateway, box, settings)
    try:
        async with pool.connection() as conn:
            added, already = await service.add_all(conn, message.from_user.id)
    except NotLoggedIn:
        await send_main_menu(message, pool=pool, settings=settings, tr=tr, user_id=message.from_user.id,
                             is_admin=is_admin, notice=tr("menu.need_login"))
        return
    except GatewayError as exc:
        await message.answer(fetch_failed_text(tr, exc))
        return
    await message.answer(tr.n("groups.imported", added, added=added, already=already))


def make_router() -> Router:
    router = Router(name=__name__)
    router.callback_query.register(select_groups, cb.SelectGroups.filter())
    router.callback_query.register(select_groups, cb.SelectGroupsPage.filter())
    router.callback_query.register(add_group, cb.AddGroup.filter())
    router.callback_query.register(add_group, cb.AddGroupPage.filter())
    router.callback_query.register(import_group, cb.ImportGroup.filter())
    router.callback_query.register(add_all_groups, cb.AddAllGroups.filter())
    router.callback_query.register(toggle_group, cb.ToggleGroup.filter())
    router.callback_query.register(deselect_all_groups, cb.DeselectAllGroups.filter())
    router.callback_query.register(group_accounts, cb.GroupAccounts.filter())
    router.callback_query.register(group_account, cb.GroupAccount.filter())
    router.message.register(import_groups_command, Command("import_groups"))
    return router

