"""Re-encrypting every stored session under the first key of SESSION_KEYS (`tgcast rotate-keys`).

Rotation procedure: put the new key first in SESSION_KEYS (keep the old ones after it), deploy, run
`tgcast rotate-keys`, then drop the old keys. A session already under the first key is left as it
is, so the command is safe to repeat and to resume after an interruption.
"""

from __future__ import annotations

import logging
from contextlib import aclosing
from dataclasses import dataclass, field

from cryptography.fernet import Fernet, InvalidToken
from psycopg import AsyncConnection

from core.crypto import SecretBox, SecretBoxError
from core.settings import Settings
from db import accounts

log = logging.getLogger(__name__)


@dataclass(slots=True)
class RotationReport:
    rotated: int = 0
    current: int = 0  # already under the first key
    unreadable: list[int] = field(default_factory=list)  # owner ids no configured key opens


async def rotate_sessions(conn: AsyncConnection, settings: Settings, *, batch_size: int = 100) -> RotationReport:
    box = SecretBox(settings.session_keys)
    first = Fernet(settings.session_keys[0].get_secret_value())
    report = RotationReport()
    async with aclosing(accounts.iter_sessions(conn, batch_size=batch_size)) as batches:
        async for batch in batches:
            for account_id, owner_id, token in batch:
                try:
                    first.decrypt(token)
                    report.current += 1
                    continue
                except InvalidToken:
                    pass
                try:
                    await accounts.update_session(conn, account_id, box.rotate(token))
                    report.rotated += 1
                except SecretBoxError:
                    # Left as it is: an operator may still have the key that opens it.
                    report.unreadable.append(owner_id)
            log.info("rotated a batch of %s session(s)", len(batch))
    return report
