"""The login conversation's server side: temporary state in Redis, the gateway calls, and moving the
durable session into Postgres.

The temporary state (phone, code hash, half-authorised session, wrong-try counters) is one encrypted
blob under a per-user key with a 10-minute TTL, so a web restart or another replica continues the
flow, and nothing of it is readable in Redis.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Literal

from psycopg import AsyncConnection
from redis.asyncio import Redis

from core.crypto import SecretBox, SecretBoxError
from core.settings import Settings
from db import accounts, users
from db import groups as db_groups
from services import broadcast
from services.groups import cache_key as groups_cache_key
from userbot.gateway import AccountGateway, GatewayError, PasswordNeeded, SignedIn

log = logging.getLogger(__name__)

LOGIN_TTL_S = 600
MAX_WRONG_TRIES = 5


@dataclass(slots=True)
class PendingLogin:
    phone: str
    phone_code_hash: str
    temp_session: str
    wrong_codes: int = 0
    wrong_passwords: int = 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the conversation does next; `kind` names it, handlers map it to a screen."""

    kind: Literal[
        "code_sent", "signed_in", "password_needed", "wrong_code", "wrong_password", "too_many_tries",
        "code_expired", "no_login", "invalid_phone", "banned_phone", "flood", "error", "too_many_accounts",
    ]
    seconds: int = 0
    moved_from: tuple[int, ...] = ()  # previous owners of the account (they must be told)


class LoginStore:
    def __init__(self, redis: Redis, box: SecretBox, settings: Settings) -> None:
        self.redis = redis
        self.box = box
        self.settings = settings

    def key(self, user_id: int) -> str:
        return f"{self.settings.redis_prefix}login:{user_id}"

    async def load(self, user_id: int) -> PendingLogin | None:
        raw = await self.redis.get(self.key(user_id))
        if raw is None:
            return None
        try:
            return PendingLogin(**json.loads(self.box.decrypt(raw)))
        except (SecretBoxError, ValueError, TypeError):
            log.warning("unreadable login state for user %s dropped", user_id)
            await self.redis.delete(self.key(user_id))
            return None

    async def save(self, user_id: int, pending: PendingLogin, *, keep_ttl: bool = False) -> None:
        blob = self.box.encrypt(json.dumps(asdict(pending)))
        if keep_ttl:
            # Counting a wrong try must not extend the 10 minutes the code was issued for.
            await self.redis.set(self.key(user_id), blob, keepttl=True, xx=True)
        else:
            await self.redis.set(self.key(user_id), blob, ex=LOGIN_TTL_S)

    async def delete(self, user_id: int) -> None:
        await self.redis.delete(self.key(user_id))


def _flood(exc: GatewayError) -> Outcome | None:
    if exc.code.startswith("FLOOD") or exc.code == "PHONE_NUMBER_FLOOD":
        return Outcome("flood", seconds=exc.seconds or 60)
    return None


class LoginFlow:
    def __init__(self, store: LoginStore, gateway: AccountGateway, box: SecretBox) -> None:
        self.store = store
        self.gateway = gateway
        self.box = box

    async def cancel(self, user_id: int) -> None:
        pending = await self.store.load(user_id)
        await self.store.delete(user_id)
        if pending is not None:
            await self.gateway.discard_login(pending.temp_session)

    async def send_code(self, user_id: int, phone: str) -> Outcome:
        await self.cancel(user_id)  # a second phone replaces a half-finished login
        try:
            sent = await self.gateway.send_code(phone)
        except GatewayError as exc:
            if exc.code in ("PHONE_NUMBER_INVALID", "PHONE_NUMBER_UNOCCUPIED"):
                return Outcome("invalid_phone")
            if exc.code in ("PHONE_NUMBER_BANNED", "PHONE_NUMBER_FROZEN"):
                return Outcome("banned_phone")
            log.info("send_code failed: %s", exc.code)
            return _flood(exc) or Outcome("error")
        await self.store.save(user_id, PendingLogin(phone, sent.phone_code_hash, sent.temp_session))
        return Outcome("code_sent")

    async def submit_code(self, conn: AsyncConnection, user_id: int, code: str) -> Outcome:
        pending = await self.store.load(user_id)
        if pending is None:
            return Outcome("no_login")
        try:
            result = await self.gateway.sign_in(pending.temp_session, pending.phone, code, pending.phone_code_hash)
        except GatewayError as exc:
            if exc.code in ("PHONE_CODE_INVALID", "PHONE_CODE_EMPTY"):
                pending.wrong_codes += 1
                return await self._wrong(user_id, pending, "wrong_code")
            if exc.code == "PHONE_CODE_EXPIRED":
                await self.cancel(user_id)
                return Outcome("code_expired")
            if exc.code in ("AUTH_KEY_UNREGISTERED", "SESSION_REVOKED"):
                await self.cancel(user_id)  # the temporary session is gone: start again
                return Outcome("no_login")
            log.info("sign_in failed: %s", exc.code)
            return _flood(exc) or Outcome("error")
        if isinstance(result, PasswordNeeded):
            pending.temp_session = result.temp_session
            await self.store.save(user_id, pending, keep_ttl=True)
            return Outcome("password_needed")
        return await self._finish(conn, user_id, result)

    async def submit_password(self, conn: AsyncConnection, user_id: int, password: str) -> Outcome:
        pending = await self.store.load(user_id)
        if pending is None:
            return Outcome("no_login")
        try:
            result = await self.gateway.check_password(pending.temp_session, pending.phone, password)
        except GatewayError as exc:
            if exc.code in ("PASSWORD_HASH_INVALID", "PASSWORD_EMPTY"):
                pending.wrong_passwords += 1
                return await self._wrong(user_id, pending, "wrong_password")
            if exc.code in ("AUTH_KEY_UNREGISTERED", "SESSION_REVOKED"):
                await self.cancel(user_id)
                return Outcome("no_login")
            log.info("check_password failed: %s", exc.code)
            return _flood(exc) or Outcome("error")
        return await self._finish(conn, user_id, result)

    async def _wrong(
        self, user_id: int, pending: PendingLogin, kind: Literal["wrong_code", "wrong_password"]
    ) -> Outcome:
        if max(pending.wrong_codes, pending.wrong_passwords) >= MAX_WRONG_TRIES:
            await self.cancel(user_id)
            return Outcome("too_many_tries")
        await self.store.save(user_id, pending, keep_ttl=True)
        return Outcome(kind)

    async def _finish(self, conn: AsyncConnection, user_id: int, signed: SignedIn) -> Outcome:
        """Store the durable session (encrypted): the user's row of this Telegram account is renewed, or
        a new account is added within MAX_ACCOUNTS_PER_USER. The account leaves any other bot user who
        had it. Groups left with no account (theirs was logged out) are posted to from this one."""
        encrypted = self.box.encrypt(signed.session)
        settings = self.store.settings
        async with conn.transaction():
            known = await accounts.find_own(conn, user_id, tg_user_id=signed.tg_user_id, phone=signed.phone)
            if known is None and await accounts.count(conn, user_id) >= settings.max_accounts_per_user:
                refused = True
            else:
                refused = False
                previous = await accounts.others_holding(conn, signed.tg_user_id, except_owner=user_id)
                for row in previous:
                    await accounts.delete(conn, row.owner_id, row.id)
                    if await accounts.get_active(conn, row.owner_id) is None:
                        await broadcast.stop(conn, row.owner_id)
                account_id = await accounts.store(conn, user_id, tg_user_id=signed.tg_user_id, phone=signed.phone,
                                                  session_enc=encrypted, name=signed.name)
                await db_groups.adopt(conn, user_id, account_id)
        if refused:
            await self.cancel(user_id)
            # The session just made is of no use here: end it at Telegram rather than leave it open.
            try:
                await self.gateway.log_out(signed.session)
            except GatewayError as exc:
                log.info("log_out of a refused login failed: %s", exc.code)
            return Outcome("too_many_accounts")
        await self.store.delete(user_id)
        # Groups cached for an earlier session of this account must not be offered for the new one.
        await self.store.redis.delete(groups_cache_key(settings, user_id, account_id))
        return Outcome("signed_in", moved_from=tuple(dict.fromkeys(row.owner_id for row in previous)))


async def ensure_user_row(conn: AsyncConnection, user_id: int, *, is_admin: bool, first_name: str,
                          username: str | None, last_name: str | None, language_code: str | None) -> None:
    """Super admins skip the access check, so they may have no row yet; the account needs one."""
    if await users.get(conn, user_id) is not None:
        return
    await users.create_pending(conn, user_id, username=username, first_name=first_name, last_name=last_name,
                               language_code=language_code)
    if is_admin:
        await users.set_access(conn, user_id, status="active", expires_at=None)


async def log_out(conn: AsyncConnection, redis: Redis, settings: Settings, gateway: AccountGateway, box: SecretBox,
                  user_id: int, account_id: int | None = None) -> bool:
    """Log one account of the user out (None: their first): end the session at Telegram where possible
    and delete it here. Its groups stay in the list with no account; the broadcast stops when no active
    account is left, and otherwise goes on from the others (the round cancels what this one would have
    sent, db/batches.py)."""
    if account_id is None:
        first = await accounts.get(conn, user_id)
        if first is None:
            return False
        account_id = first.id
    async with conn.transaction():
        account = await accounts.delete(conn, user_id, account_id)
        if account is not None and await accounts.get_active(conn, user_id) is None:
            await broadcast.stop(conn, user_id)
    if account is None:
        return False
    await redis.delete(groups_cache_key(settings, user_id, account.id))
    try:
        await gateway.log_out(box.decrypt(account.session_enc))
    except (GatewayError, SecretBoxError) as exc:
        # Already revoked or unreadable: deleting it here is all that is left to do.
        log.info("log_out at Telegram failed for user %s: %s", user_id, type(exc).__name__)
    return True
