"""/info for super admins (the command itself lives with the menu commands)."""

from __future__ import annotations

from psycopg import AsyncConnection

from core.i18n import Translator
from db import ops, users


async def admin_info_text(conn: AsyncConnection, tr: Translator) -> str:
    counts = await users.counts(conn)
    return tr("admin.info", total=counts.total, active=counts.active, pending=counts.pending,
              broadcasts=await ops.active_configs(conn))
