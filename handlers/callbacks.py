"""Every callback id of the bot (docs/bot.md, "Callback ids at a glance"), as `CallbackData` factories.

The prefixes are the original bot's ids (operators' documentation relies on them). Callback data is
user input: handlers still check, server-side, that the presser may do this to this object. Every
number is bounded (core/bounds.py) as it is read, so a forged one out of range never parses and gets
the "outdated button" answer like any other unparseable data; building one out of range raises.
"""

from __future__ import annotations

from typing import Annotated, Any

from aiogram.filters.callback_data import CallbackData
from pydantic import BeforeValidator

from core import bounds
from db.users import UserFilter  # the admin panel's views are the repository's filters


def _within(bound: bounds.Bound) -> BeforeValidator:
    def check(value: Any) -> int:
        # Packed data is text: only the plain decimal form `pack` writes is read (not '+5', '5.0', '1_0').
        number = bounds.parse_int(value, bound) if isinstance(value, str) else value
        if not isinstance(number, int) or number not in bound:
            raise ValueError(f"not an integer within {bound.low}..{bound.high}")
        return number

    return BeforeValidator(check)


UserId = Annotated[int, _within(bounds.USER_ID)]
RowId = Annotated[int, _within(bounds.ROW_ID)]
ChatId = Annotated[int, _within(bounds.CHAT_ID)]
Page = Annotated[int, _within(bounds.PAGE)]
Minutes = Annotated[int, _within(bounds.INTERVAL_MINUTES)]


class Login(CallbackData, prefix="login"):
    pass


class Logout(CallbackData, prefix="logout"):
    pass


class LogoutConfirm(CallbackData, prefix="logout_confirm"):
    pass


# ---- accounts ------------------------------------------------------------------------------------


class Accounts(CallbackData, prefix="accounts"):
    """The accounts screen: every account of the presser, its state, Add and Log out."""


class AccountAdd(CallbackData, prefix="account_add"):
    """Log in another account (or one whose session ended), within MAX_ACCOUNTS_PER_USER."""


class AccountLogout(CallbackData, prefix="account_logout"):
    """Ask before logging out one account; `id` must be one of the presser's own accounts."""

    id: RowId


class AccountLogoutConfirm(CallbackData, prefix="account_logout_ok"):
    id: RowId


class BackToMenu(CallbackData, prefix="back_to_menu"):
    pass


class RestartBot(CallbackData, prefix="restart_bot"):
    pass


class FullManual(CallbackData, prefix="full_manual"):
    pass


class AboutBot(CallbackData, prefix="about_bot"):
    pass


class AboutBotText(CallbackData, prefix="about_bot_text"):
    pass


class AboutBotVideo(CallbackData, prefix="about_bot_video"):
    pass


class Language(CallbackData, prefix="lang"):
    code: str


# ---- groups -------------------------------------------------------------------------------------


class SelectGroups(CallbackData, prefix="select_groups"):
    pass


class SelectGroupsPage(CallbackData, prefix="select_groups_page"):
    page: Page


class ToggleGroup(CallbackData, prefix="toggle_group"):
    chat_id: ChatId
    page: Page


class DeselectAllGroups(CallbackData, prefix="deselect_all_groups"):
    pass


class AddGroup(CallbackData, prefix="add_group"):
    pass


class AddGroupPage(CallbackData, prefix="add_group_page"):
    page: Page


class ImportGroup(CallbackData, prefix="import_group"):
    chat_id: ChatId
    page: Page


class AddAllGroups(CallbackData, prefix="add_all_groups"):
    page: Page


class GroupAccounts(CallbackData, prefix="group_accounts"):
    """Which account posts to which group of the list, a page of it."""

    page: Page


class GroupAccount(CallbackData, prefix="group_account"):
    """Post to this group of the list from the next of the presser's accounts that is in it."""

    chat_id: ChatId
    page: Page


# ---- message, interval, start/stop ---------------------------------------------------------------


class SendMessage(CallbackData, prefix="send_message"):
    pass


class SetInterval(CallbackData, prefix="set_interval"):
    minutes: Minutes


class SetIntervalCustom(CallbackData, prefix="set_interval_custom"):
    pass


class CancelBroadcast(CallbackData, prefix="cancel_broadcast"):
    pass


class UseAsMessage(CallbackData, prefix="use_as_message"):
    """Offered under a text or media the user sent outside any conversation; `message_id` is that
    message's id in the user's chat (the content itself waits in the FSM data)."""

    message_id: RowId


class StartBroadcast(CallbackData, prefix="start_broadcast"):
    pass


class StopBroadcast(CallbackData, prefix="stop_broadcast"):
    pass


class PileUpMenu(CallbackData, prefix="pile_up_menu"):
    """The broadcast's no-pile-up rule: the screen."""


class PileUp(CallbackData, prefix="pile_up"):
    """Choose the rule: `mode` one of off, skip, replace (core/pile_up.py); anything else is refused."""

    mode: str


# ---- history -------------------------------------------------------------------------------------


class SentMessages(CallbackData, prefix="sent_messages"):
    pass


class SentMessagesPage(CallbackData, prefix="sent_messages_page"):
    page: Page


class HistoryView(CallbackData, prefix="history_view"):
    id: RowId


class HistoryUse(CallbackData, prefix="history_use"):
    id: RowId


class HistoryDelete(CallbackData, prefix="history_delete"):
    id: RowId


# ---- admin ---------------------------------------------------------------------------------------


class AdminPanel(CallbackData, prefix="admin_panel"):
    view: UserFilter
    page: Page


class AdminUser(CallbackData, prefix="admin_user"):
    id: UserId


class AdminAddWeek(CallbackData, prefix="admin_add_week"):
    id: UserId


class AdminAddMonth(CallbackData, prefix="admin_add_month"):
    id: UserId


class AdminAddVip(CallbackData, prefix="admin_add_vip"):
    id: UserId


class AdminSubMonth(CallbackData, prefix="admin_sub_month"):
    id: UserId


class AdminBlock(CallbackData, prefix="admin_block"):
    id: UserId


class AdminUnban(CallbackData, prefix="admin_unban"):
    id: UserId


class AdminAnnounce(CallbackData, prefix="admin_announce"):
    pass


class AdminAnnounceConfirm(CallbackData, prefix="admin_announce_confirm"):
    pass


class AdminAnnounceCancel(CallbackData, prefix="admin_announce_cancel"):
    pass


class AdminStats(CallbackData, prefix="admin_stats"):
    pass
