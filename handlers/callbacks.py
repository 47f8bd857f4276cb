"""Every callback id of the ui-contract, as `CallbackData` factories.

The prefixes are the original bot's ids (operators' documentation relies on them). Callback data is
user input: handlers still check, server-side, that the presser may do this to this object.
"""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData


class Login(CallbackData, prefix="login"):
    pass


class Logout(CallbackData, prefix="logout"):
    pass


class LogoutConfirm(CallbackData, prefix="logout_confirm"):
    pass


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
    page: int


class ToggleGroup(CallbackData, prefix="toggle_group"):
    chat_id: int
    page: int


class DeselectAllGroups(CallbackData, prefix="deselect_all_groups"):
    pass


class AddGroup(CallbackData, prefix="add_group"):
    pass


class AddGroupPage(CallbackData, prefix="add_group_page"):
    page: int


class ImportGroup(CallbackData, prefix="import_group"):
    chat_id: int
    page: int


class AddAllGroups(CallbackData, prefix="add_all_groups"):
    page: int


# ---- message, interval, start/stop ---------------------------------------------------------------


class SendMessage(CallbackData, prefix="send_message"):
    pass


class SetInterval(CallbackData, prefix="set_interval"):
    minutes: int


class SetIntervalCustom(CallbackData, prefix="set_interval_custom"):
    pass


class CancelBroadcast(CallbackData, prefix="cancel_broadcast"):
    pass


class StartBroadcast(CallbackData, prefix="start_broadcast"):
    pass


class StopBroadcast(CallbackData, prefix="stop_broadcast"):
    pass


# ---- history -------------------------------------------------------------------------------------


class SentMessages(CallbackData, prefix="sent_messages"):
    pass


class SentMessagesPage(CallbackData, prefix="sent_messages_page"):
    page: int


class HistoryView(CallbackData, prefix="history_view"):
    id: int


class HistoryUse(CallbackData, prefix="history_use"):
    id: int


class HistoryDelete(CallbackData, prefix="history_delete"):
    id: int


# ---- admin ---------------------------------------------------------------------------------------


class UserFilter(StrEnum):
    all = "all"
    requested = "requested"
    confirmed = "confirmed"
    banned = "banned"


class AdminPanel(CallbackData, prefix="admin_panel"):
    view: UserFilter
    page: int


class AdminUser(CallbackData, prefix="admin_user"):
    id: int


class AdminAddWeek(CallbackData, prefix="admin_add_week"):
    id: int


class AdminAddMonth(CallbackData, prefix="admin_add_month"):
    id: int


class AdminAddVip(CallbackData, prefix="admin_add_vip"):
    id: int


class AdminSubMonth(CallbackData, prefix="admin_sub_month"):
    id: int


class AdminBlock(CallbackData, prefix="admin_block"):
    id: int


class AdminUnban(CallbackData, prefix="admin_unban"):
    id: int


class AdminAnnounce(CallbackData, prefix="admin_announce"):
    pass


class AdminAnnounceConfirm(CallbackData, prefix="admin_announce_confirm"):
    pass


class AdminAnnounceCancel(CallbackData, prefix="admin_announce_cancel"):
    pass


class AdminStats(CallbackData, prefix="admin_stats"):
    pass
