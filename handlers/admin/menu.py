"""The super admin's main menu (stats line and panel buttons)."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup
from psycopg import AsyncConnection

from core.i18n import Translator


async def admin_menu_screen(conn: AsyncConnection, tr: Translator) -> tuple[str, InlineKeyboardMarkup]:
    """Filled in by the access & administration work; returns (text, keyboard)."""
    raise NotImplementedError
