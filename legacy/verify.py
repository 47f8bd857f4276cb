"""`tgcast import-legacy --verify-sessions`: each imported account's session used once, online.

It confirms the session works, learns the Telegram user id the string did not carry (the Node
version's strings have none), and fills in what only Telegram knows of the user's groups (a
supergroup's access hash, without which tgcast cannot address it; whether it is a forum). A session
Telegram no longer accepts is marked as needing log-in and its broadcast stopped; the user reads why
on their next message.

One session used from two places at once is ended by Telegram for good (AUTH_KEY_DUPLICATED), so it
refuses to run while the older bot's worker still looks alive, and opens at most `parallel`
connections at a time, each account once.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from core.crypto import SecretBox, SecretBoxError
from core.outcomes import Kind, rule_for
from core.settings import Settings
from db import accounts
from db import legacy as store
from legacy import source
from legacy.importer import Progress
from legacy.rules import Flavour, as_utc
from legacy.urls import LegacyUrl
from services.broadcast import stop
from userbot.claims import ConnectionClaims
from userbot.gateway import AccountGateway, GatewayError

# An older worker that wrote an attempt this recently may still hold the sessions open.
ALIVE_WITHIN = timedelta(minutes=1)
# One account's check (who am I, then its dialogs) is bounded; a hung one is tried again later. The
# connection claim is held for longer than that, so no tgcast worker connects the account meanwhile.
CHECK_TIMEOUT_S = 60
CLAIM_TTL_S = CHECK_TIMEOUT_S * 2


class OlderBotAlive(Exception):
    """The older bot's worker wrote within the last minute; the message says when."""


@dataclass(slots=True)
class VerifyReport:
    outcomes: Counter[str] = field(default_factory=Counter)  # ok, needs_login, retry_later, taken, in_use
    groups_refreshed: int = 0
    groups_unselected: int = 0
    notes: list[tuple[int, str, str]] = field(default_factory=list)  # (owner, outcome, code)

    def as_dict(self) -> dict[str, object]:
        return {"outcomes": dict(self.outcomes), "groups_refreshed": self.groups_refreshed,
                "groups_unselected": self.groups_unselected,
                "notes": [{"owner_id": o, "outcome": out, "code": c} for o, out, c in self.notes]}

    def as_text(self) -> str:
        lines = ["sessions: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())),
                 f"groups: {self.groups_refreshed} refreshed, {self.groups_unselected} unselected (not writable now)"]
        lines += [f"  user {o}: {out} ({c})" for o, out, c in self.notes]
        return "\n".join(lines)


async def check_older_bot_stopped(url: LegacyUrl, now: datetime, *, choice: Flavour | None = None) -> None:
    last = as_utc(await source.last_activity(url, choice=choice))
    if last is not None and now - last < ALIVE_WITHIN:
        raise OlderBotAlive(f"the older bot's worker wrote at {last:%H:%M:%S} UTC, less than a minute ago: "
                            "stop it first (one session used in two places is ended by Telegram)")


async def verify_sessions(settings: Settings, gateway: AccountGateway, url: LegacyUrl, claims: ConnectionClaims, *,
                          parallel: int = 8, again: bool = False, choice: Flavour | None = None,
                          now: datetime | None = None, progress: Progress = lambda _line: None) -> VerifyReport:
    """`claims` are tgcast's connection claims (userbot/claims.py): an account a tgcast worker holds
    is in use there, so it is not opened a second time (and needs no check: it is working)."""
    await check_older_bot_stopped(url, now or datetime.now(UTC), choice=choice)
    box = SecretBox(settings.session_keys)
    report = VerifyReport()
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        todo = await store.accounts_to_verify(conn, again=again)
    progress(f"checking {len(todo)} sessions, {parallel} at a time …")
    gate = asyncio.Semaphore(parallel)
    done = 0

    async def one(account: store.ImportedAccount) -> None:
        nonlocal done
        async with gate:
            name = str(account.account_id)  # the name a worker's connection cache claims it by
            if not await claims.hold(name):
                report.outcomes["in_use"] += 1
                report.notes.append((account.owner_id, "in_use", "a tgcast worker holds its connection"))
            else:
                try:
                    await _verify_one(settings, gateway, box, account, report)
                finally:
                    await claims.release(name)
        done += 1
        if done % 100 == 0:
            progress(f"{done}/{len(todo)} sessions checked")

    await asyncio.gather(*(one(a) for a in todo))
    return report


async def _verify_one(settings: Settings, gateway: AccountGateway, box: SecretBox,
                      account: store.ImportedAccount, report: VerifyReport) -> None:
    try:
        session = box.decrypt(account.session_enc)
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            tg_user_id = await gateway.identify(session)
            found = await gateway.list_groups(session)
    except TimeoutError:
        report.outcomes["retry_later"] += 1
        report.notes.append((account.owner_id, "retry_later", "TIMEOUT"))
        return
    except SecretBoxError:
        await _needs_login(settings, account, report, "SESSION_KEYS")
        return
    except GatewayError as err:
        if rule_for(err.code).kind is Kind.REVOKED:
            await _needs_login(settings, account, report, err.code)
        else:  # a flood wait or the network: the session may well be fine; check again later
            report.outcomes["retry_later"] += 1
            report.notes.append((account.owner_id, "retry_later", err.code))
        return
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        async with conn.transaction():
            holder = await store.mark_verified(conn, account.account_id, account.owner_id, account.legacy_id,
                                               tg_user_id)
            if holder is not None:
                if await accounts.revoke(conn, account.account_id, account.login_id) \
                        and await accounts.get_active(conn, account.owner_id) is None:
                    await stop(conn, account.owner_id)
                report.outcomes["taken"] += 1
                report.notes.append((account.owner_id, "taken", f"held by user {holder}"))
                return
            refreshed, unselected = await store.refresh_groups(
                conn, account.owner_id, account.account_id,
                [(g.chat_id, g.title, g.kind, g.access_hash) for g in found])
    report.groups_refreshed += refreshed
    report.groups_unselected += unselected
    report.outcomes["ok"] += 1


async def _needs_login(settings: Settings, account: store.ImportedAccount, report: VerifyReport, code: str) -> None:
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        async with conn.transaction():
            # Only this login's session: a user who logged in again meanwhile keeps the new one.
            if await accounts.revoke(conn, account.account_id, account.login_id) \
                    and await accounts.get_active(conn, account.owner_id) is None:
                await stop(conn, account.owner_id)
    report.outcomes["needs_login"] += 1
    report.notes.append((account.owner_id, "needs_login", code))
