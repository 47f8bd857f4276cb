"""An emulated Telegram network behind the account gateway, kept in Redis.

Used by the tests, the sandbox, the soak harness and the benchmarks. Its state lives in Redis (under
its own key prefix) rather than in process memory so that the web process, any number of worker
processes and the test itself all see one network, and a SIGKILLed worker leaves it consistent.

It behaves like Telegram where tgcast's correctness depends on it: login codes and two-step
passwords, flood waits (account-wide), slow mode (per group and account), forbidden chats, revoked
sessions, and de-duplication of sends by `random_id`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.content import CAPTION_LIMIT, TEXT_LIMIT, utf16_len
from userbot.gateway import (
    HISTORY_PAGE,
    CodeSent,
    GatewayError,
    GroupInfo,
    GroupKind,
    OutgoingMedia,
    PasswordNeeded,
    Peer,
    Sent,
    SignedIn,
    own_post_in,
)
from userbot.latency import LatencyModel

_CODE_TTL_S = 300
# Like Telegram, the emulator keeps an upload only for a while and takes it for one message only;
# the photo/document that message stored is what later sends reference (`Sent.media_handle`).
UPLOAD_TTL_S = 1800
_STORED_MEDIA_TTL_S = 8 * 24 * 3600  # longer than any cycle runs
T = TypeVar("T")
_RNG = random.Random()  # latency draws where the caller brings no generator of its own (benchmarks)


@dataclass(frozen=True, slots=True)
class FakeGroup:
    chat_id: int
    title: str
    kind: GroupKind = "supergroup"
    slowmode_s: int = 0
    access_hash: int = 0


@dataclass(frozen=True, slots=True)
class PostedMessage:
    chat_id: int
    message_id: int
    from_tg_user_id: int
    kind: str
    text: str
    entities: list[dict[str, Any]]
    random_id: int
    at: float
    topic_id: int | None = None
    deleted: bool = False  # deleted since (the group's history no longer shows it)


def _burn(seconds: float) -> None:
    """Spend this much of the process's CPU on the calling thread (the event loop's, where a real
    client's keep-alive work happens)."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


class FakeTelegram:
    """The network: accounts, groups, sessions, and everything posted. Also the fault injector."""

    def __init__(
        self, redis: Redis, prefix: str = "tgcast:fake:", *, auto_accounts: bool = False,
        latency: LatencyModel | None = None, rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep, random_id_ttl_s: int | None = None,
    ) -> None:
        self.redis = redis
        self.p = prefix
        # Sandbox: any well-formed phone has an account (with the seeded groups), so nobody needs one.
        self.auto_accounts = auto_accounts
        self.send_script = redis.register_script(_SEND_LUA)  # EVALSHA after the first call
        # What Telegram's round trips cost (none by default), awaited, never blocking the loop;
        # `rng` makes the draws reproducible, `sleep` lets a test see them without waiting.
        self.latency = latency or LatencyModel()
        self.rng = rng or _RNG
        self.sleep = sleep
        # Telegram de-duplicates a send by its random_id but does not promise for how long; None keeps
        # them for ever, a number forgets each that many seconds after its post (the soak uses 60 s,
        # so a resend a whole interval later posts again and is counted as the duplicate it would be).
        self.random_id_ttl_s = random_id_ttl_s
        # Open senders of this process and when each pings next (the keep-alive charge, `_keepalive`).
        self._pings: dict[FakeSender, float] = {}
        self._keepalive_task: asyncio.Task[None] | None = None

    # ---- set-up and inspection (tests, sandbox) ------------------------------------------------

    async def add_account(
        self, phone: str, *, password: str | None = None, tg_user_id: int | None = None,
        groups: Sequence[int] = (), banned: bool = False, name: str = "",
    ) -> int:
        uid = tg_user_id or int(phone.lstrip("+")[-9:]) + 7_000_000_000
        await self.redis.hset(  # type: ignore[misc]
            f"{self.p}acct:{phone}",
            mapping={"tg_user_id": uid, "password": password or "", "banned": int(banned), "name": name},
        )
        if groups:
            await self.redis.sadd(f"{self.p}member:{uid}", *groups)  # type: ignore[misc]
        return uid

    async def add_group(self, group: FakeGroup, *, members: Sequence[int] = ()) -> None:
        await self.redis.set(f"{self.p}group:{group.chat_id}", json.dumps(asdict(group)))
        for uid in members:
            await self.redis.sadd(f"{self.p}member:{uid}", group.chat_id)  # type: ignore[misc]

    async def add_session(self, session: str, tg_user_id: int) -> None:
        """A session the account already has, issued elsewhere (one brought over from the older bot)."""
        await self.redis.set(f"{self.p}session:{session}", tg_user_id)

    async def join(self, tg_user_id: int, chat_id: int) -> None:
        await self.redis.sadd(f"{self.p}member:{tg_user_id}", chat_id)  # type: ignore[misc]

    async def last_code(self, phone: str) -> str | None:
        code = await self.redis.get(f"{self.p}lastcode:{phone}")
        return code.decode() if code else None

    async def posted(self, chat_id: int) -> list[PostedMessage]:
        """Every message of the group in order (this emulator's history of it), deleted ones marked."""
        return await self._messages(chat_id, 0)

    async def _messages(self, chat_id: int, start: int) -> list[PostedMessage]:
        raw = await self.redis.lrange(f"{self.p}posted:{chat_id}", start, -1)  # type: ignore[misc]
        deleted = {int(m) for m in await self.redis.smembers(f"{self.p}deleted:{chat_id}")}  # type: ignore[misc]
        found = []
        for entry in raw:  # "<message id>|<json>": the script numbers the message
            message_id, _, body = entry.decode().partition("|")
            found.append(PostedMessage(message_id=int(message_id), **json.loads(body),
                                       deleted=int(message_id) in deleted))
        return found

    async def post_as(self, chat_id: int, tg_user_id: int, text: str, *, topic_id: int | None = None) -> int:
        """Someone else (another member) writes in the group: the group's history goes on."""
        message_id = int(await self.redis.incr(f"{self.p}msgid:{chat_id}"))
        body = {"chat_id": chat_id, "from_tg_user_id": tg_user_id, "kind": "text", "text": text, "entities": [],
                "random_id": 0, "at": time.time(), "topic_id": topic_id}
        await self.redis.rpush(f"{self.p}posted:{chat_id}", f"{message_id}|{json.dumps(body)}")  # type: ignore[misc]
        return message_id

    async def posts_made(self) -> int:
        """Every post accepted so far, all groups together (one counter: the soak watches it)."""
        return int(await self.redis.get(f"{self.p}posts") or 0)

    async def history_page(self, chat_id: int, size: int) -> list[PostedMessage]:
        """The group's latest `size` messages, oldest first (deleted ones marked): what one request for
        its history reads."""
        return await self._messages(chat_id, -size)

    async def last_message(self, chat_id: int, topic_id: int | None = None) -> PostedMessage | None:
        """The group's (or the topic's) last message not deleted, as its history shows it."""
        shown = [m for m in await self.posted(chat_id)
                 if not m.deleted and (topic_id is None or m.topic_id == topic_id)]
        return shown[-1] if shown else None

    async def forbid_delete(self, chat_id: int) -> None:
        """Deleting in this group is refused (MESSAGE_DELETE_FORBIDDEN), as Telegram may."""
        await self.redis.set(f"{self.p}nodelete:{chat_id}", 1)

    async def upload_count(self, tg_user_id: int) -> int:
        return int(await self.redis.get(f"{self.p}uploads:{tg_user_id}") or 0)

    async def expire_uploads(self) -> int:
        """Forget every upload not yet sent, as Telegram does after a while (UPLOAD_TTL_S)."""
        keys = [key async for key in self.redis.scan_iter(match=f"{self.p}upload:*", count=200)]
        return int(await self.redis.delete(*keys)) if keys else 0

    # Connections, as Telegram would see them: every connect of a sender (one per account per
    # worker process when connections are reused), and how many are open now. A SIGKILLed worker
    # never closes its connections, so after one the open count stays high, as with lost sockets.
    async def connect_count(self, tg_user_id: int) -> int:
        return int(await self.redis.get(f"{self.p}connects:{tg_user_id}") or 0)

    async def connect_total(self) -> int:
        return int(await self.redis.get(f"{self.p}connects") or 0)

    async def open_connections(self, tg_user_id: int | None = None) -> int:
        """Open now: in all, or of one account."""
        key = "open" if tg_user_id is None else f"open:{tg_user_id}"
        return int(await self.redis.get(f"{self.p}{key}") or 0)

    async def peak_connections(self, tg_user_id: int) -> int:
        """The most connections of this account ever open at once. Above 1 from several worker
        machines, real Telegram would have killed the session (AUTH_KEY_DUPLICATED)."""
        return int(await self.redis.get(f"{self.p}peak:{tg_user_id}") or 0)

    async def _connected(self, tg_user_id: int) -> None:
        await self.redis.eval(_CONNECT_LUA, 0, self.p, str(tg_user_id), str(os.getpid()))  # type: ignore[misc]

    async def _disconnected(self, tg_user_id: int) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.decr(f"{self.p}open")
            pipe.decr(f"{self.p}open:{tg_user_id}")
            pipe.hincrby(f"{self.p}proc:{os.getpid()}", str(tg_user_id), -1)
            await pipe.execute()

    async def process_died(self, pid: int) -> int:
        """The operating system closes the sockets of a process that dies (SIGKILL included), so
        Telegram sees its connections end at once: they leave the open counts. Only a machine that
        vanishes leaves them open until Telegram times them out. Returns how many were closed."""
        return int(await self.redis.eval(_PROCESS_DIED_LUA, 0, self.p, str(pid)))  # type: ignore[misc]

    async def ping_total(self) -> int:
        """Keep-alive pings every process's open connections sent (with a ping cost in the model)."""
        return int(await self.redis.get(f"{self.p}pings") or 0)

    def _opened(self, sender: FakeSender) -> None:
        if not self.latency.ping_every_s:
            return
        self._pings[sender] = time.monotonic() + self.latency.ping_every_s
        if self._keepalive_task is None or self._keepalive_task.done():
            self._keepalive_task = asyncio.get_running_loop().create_task(self._keepalive())

    def _closed(self, sender: FakeSender) -> None:
        self._pings.pop(sender, None)

    async def _keepalive(self) -> None:
        """Every open connection pings every `ping_every_s`, as Telethon's keep-alive does: each ping
        costs this process `ping_cpu_ms` on its event loop (encrypting, sending, reading the pong) and
        one command to the network; one pipeline per second carries the pings then due. Ends when the
        process has no connection open."""
        every, cpu_s = self.latency.ping_every_s, self.latency.ping_cpu_ms / 1000
        while self._pings:
            await asyncio.sleep(min(1.0, every))
            now = time.monotonic()
            due = [sender for sender, at in self._pings.items() if at <= now]
            if not due:
                continue
            for sender in due:
                self._pings[sender] = now + every
            if cpu_s:
                _burn(cpu_s * len(due))
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for _ in due:
                        pipe.incr(f"{self.p}pings")
                    await pipe.execute()
            except RedisError:
                pass  # a lost ping is a lost ping; the connection itself is not the emulator's to drop

    async def _round_trip(self) -> None:
        delay = self.latency.send_s(self.rng)
        if delay:
            await self.sleep(delay)

    async def send_attempts(self, tg_user_id: int) -> list[float]:
        """Times of every send call that reached 'Telegram', accepted or not."""
        raw = await self.redis.lrange(f"{self.p}attempts:{tg_user_id}", 0, -1)  # type: ignore[misc]
        return [float(r) for r in raw]

    # faults
    async def set_flood(self, tg_user_id: int, seconds: float) -> None:
        await self.redis.set(f"{self.p}flood:{tg_user_id}", "1", px=max(1, int(seconds * 1000)))

    async def set_slowmode(self, chat_id: int, seconds: int) -> None:
        group = await self._group(chat_id)
        if group is not None:
            updated = FakeGroup(**{**asdict(group), "slowmode_s": seconds})
            await self.redis.set(f"{self.p}group:{chat_id}", json.dumps(asdict(updated)))

    async def forbid(self, chat_id: int, tg_user_id: int) -> None:
        """The account is banned from writing in that group (CHAT_WRITE_FORBIDDEN)."""
        await self.redis.sadd(f"{self.p}forbidden:{chat_id}", tg_user_id)  # type: ignore[misc]

    async def forbid_all(self, chat_id: int) -> None:
        """Nobody may post there (a read-only group): hidden from imports, refused on send."""
        await self.redis.set(f"{self.p}forbid_all:{chat_id}", 1)

    async def writable(self, chat_id: int, tg_user_id: int) -> bool:
        if await self.redis.exists(f"{self.p}forbid_all:{chat_id}"):
            return False
        return not await self.redis.sismember(f"{self.p}forbidden:{chat_id}", str(tg_user_id))  # type: ignore[misc]

    async def revoke_sessions(self, tg_user_id: int) -> None:
        await self.redis.sadd(f"{self.p}revoked", tg_user_id)  # type: ignore[misc]

    async def fail_next(self, tg_user_id: int, *codes: str) -> None:
        """The next sends of this account fail with these error codes, one each (e.g. FLOOD_WAIT_30)."""
        await self.redis.rpush(f"{self.p}faults:{tg_user_id}", *codes)  # type: ignore[misc]

    async def hang(self, tg_user_id: int, seconds: float) -> None:
        """The account's requests reach "Telegram" (a send is posted) but are not answered for this
        long: a hung request, which only the caller's timeout ends."""
        await self.redis.set(f"{self.p}hang:{tg_user_id}", "1", px=max(1, int(seconds * 1000)))

    async def unhang(self, tg_user_id: int) -> None:
        await self.redis.delete(f"{self.p}hang:{tg_user_id}")

    async def _held_answer(self, tg_user_id: int) -> None:
        # Polled: the hang is set in Redis, from another process as often as not.
        while await self.redis.exists(f"{self.p}hang:{tg_user_id}"):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    async def kill_connection(self, tg_user_id: int) -> None:
        """The account's connection drops: its next send fails with a network error (retried)."""
        await self.fail_next(tg_user_id, "NETWORK")

    # ---- inspection for the sandbox page ---------------------------------------------------------

    async def codes(self) -> dict[str, str]:
        """The last login code of every phone that asked for one recently (the "Telegram" chat)."""
        found: dict[str, str] = {}
        async for key in self.redis.scan_iter(match=f"{self.p}lastcode:*", count=200):
            code = await self.redis.get(key)
            if code is not None:
                found[key.decode().removeprefix(f"{self.p}lastcode:")] = code.decode()
        return found

    async def expire_code_if_sent(self, phone: str, text: str) -> bool:
        """The phone's owner sent `text` somewhere: Telegram expires a login code it finds in a
        message as it is (unspaced), so a code typed "12345" fails where "1 2 3 4 5" works."""
        code = await self.last_code(phone)
        if code is None or re.search(rf"(?<!\d){code}(?!\d)", text) is None:
            return False
        code_hash = await self.redis.get(f"{self.p}codehash:{phone}")
        keys = [f"{self.p}lastcode:{phone}", f"{self.p}codehash:{phone}"]
        if code_hash is not None:
            keys.append(f"{self.p}code:{code_hash.decode()}")
        await self.redis.delete(*keys)
        return True

    async def seeded_groups(self) -> list[FakeGroup]:
        groups = [await self._group(chat_id) for chat_id in sorted(await self._seeded_groups())]
        return [g for g in groups if g is not None]

    async def flood_left(self, tg_user_id: int) -> float:
        ms = await self.redis.pttl(f"{self.p}flood:{tg_user_id}")
        return ms / 1000 if ms and ms > 0 else 0.0

    async def forbidden_for(self, chat_id: int) -> list[int]:
        return sorted(int(x) for x in await self.redis.smembers(f"{self.p}forbidden:{chat_id}"))  # type: ignore[misc]

    async def forbids_all(self, chat_id: int) -> bool:
        return bool(await self.redis.exists(f"{self.p}forbid_all:{chat_id}"))

    async def pending_faults(self, tg_user_id: int) -> list[str]:
        raw = await self.redis.lrange(f"{self.p}faults:{tg_user_id}", 0, -1)  # type: ignore[misc]
        return [r.decode() for r in raw]

    # ---- internals --------------------------------------------------------------------------------

    async def _group(self, chat_id: int) -> FakeGroup | None:
        raw = await self.redis.get(f"{self.p}group:{chat_id}")
        return FakeGroup(**json.loads(raw)) if raw else None

    async def _account(self, phone: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(f"{self.p}acct:{phone}")  # type: ignore[misc]
        if not raw and self.auto_accounts:
            await self.add_account(phone, groups=await self._seeded_groups())
            raw = await self.redis.hgetall(f"{self.p}acct:{phone}")  # type: ignore[misc]
        return {k.decode(): v.decode() for k, v in raw.items()} if raw else None

    async def _seeded_groups(self) -> list[int]:
        return [int(x) for x in await self.redis.smembers(f"{self.p}seeded")]  # type: ignore[misc]

    async def seed(self, groups: Sequence[FakeGroup]) -> None:
        """Groups every auto-created account belongs to (sandbox)."""
        for group in groups:
            await self.add_group(group)
            await self.redis.sadd(f"{self.p}seeded", group.chat_id)  # type: ignore[misc]

    async def session_user(self, session: str) -> int:
        raw = await self.redis.get(f"{self.p}session:{session}")
        if raw is None:
            raise GatewayError("AUTH_KEY_UNREGISTERED")
        uid = int(raw)
        if await self.redis.sismember(f"{self.p}revoked", str(uid)):  # type: ignore[misc]
            raise GatewayError("SESSION_REVOKED")
        return uid


# KEYS: none (the prefix comes as ARGV[1]); ARGV: prefix, uid, pid. Counts a connection, keeping the
# account's peak of simultaneous ones, and which process holds it (`process_died`).
_CONNECT_LUA = """
local p, uid, pid = ARGV[1], ARGV[2], ARGV[3]
redis.call('HINCRBY', p .. 'proc:' .. pid, uid, 1)
redis.call('INCR', p .. 'connects:' .. uid)
redis.call('INCR', p .. 'connects')
redis.call('INCR', p .. 'open')
local now_open = redis.call('INCR', p .. 'open:' .. uid)
if now_open > tonumber(redis.call('GET', p .. 'peak:' .. uid) or '0') then
  redis.call('SET', p .. 'peak:' .. uid, now_open)
  local t = redis.call('TIME')
  redis.call('SET', p .. 'peak_at:' .. uid, t[1] .. '.' .. string.format('%06d', tonumber(t[2])))
end
"""

# ARGV: prefix, pid. Closes every connection the process still had open.
_PROCESS_DIED_LUA = """
local p, pid = ARGV[1], ARGV[2]
local held = redis.call('HGETALL', p .. 'proc:' .. pid)
local closed = 0
for i = 1, #held, 2 do
  local n = tonumber(held[i + 1])
  if n > 0 then
    redis.call('DECRBY', p .. 'open:' .. held[i], n)
    redis.call('DECRBY', p .. 'open', n)
    closed = closed + n
  end
end
redis.call('DEL', p .. 'proc:' .. pid)
return closed
"""

# KEYS: none (the prefix comes as ARGV[1]; the emulator is never run on a Redis cluster).
# ARGV: prefix, session, uid, chat_id, random_id, posted json, now (unix seconds), random id TTL in
# seconds (0: kept for ever).
_SEND_LUA = """
local p, session, uid, chat, rid, posted, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local rid_ttl = tonumber(ARGV[8])
local function send()
redis.call('RPUSH', p .. 'attempts:' .. uid, now)
if not redis.call('GET', p .. 'session:' .. session) then return {'err', 'AUTH_KEY_UNREGISTERED'} end
if redis.call('SISMEMBER', p .. 'revoked', uid) == 1 then return {'err', 'SESSION_REVOKED'} end
local fault = redis.call('LPOP', p .. 'faults:' .. uid)
if fault then return {'err', fault} end
local flood = redis.call('PTTL', p .. 'flood:' .. uid)
if flood > 0 then return {'err', 'FLOOD_WAIT_' .. math.ceil(flood / 1000)} end
local group = redis.call('GET', p .. 'group:' .. chat)
if (not group) or redis.call('SISMEMBER', p .. 'member:' .. uid, chat) == 0 then return {'err', 'NO_GROUP'} end
local closed = redis.call('EXISTS', p .. 'forbid_all:' .. chat) == 1
if closed or redis.call('SISMEMBER', p .. 'forbidden:' .. chat, uid) == 1 then
  return {'err', 'CHAT_WRITE_FORBIDDEN'}
end
local earlier = redis.call('GET', p .. 'rid:' .. uid .. ':' .. rid)
if earlier then return {'dup', earlier} end
local slow = redis.call('PTTL', p .. 'slow:' .. chat .. ':' .. uid)
if slow > 0 then return {'err', 'SLOWMODE_WAIT_' .. math.ceil(slow / 1000)} end
local message_id = redis.call('INCR', p .. 'msgid:' .. chat)
if rid_ttl > 0 then
  redis.call('SET', p .. 'rid:' .. uid .. ':' .. rid, message_id, 'EX', rid_ttl)
else
  redis.call('SET', p .. 'rid:' .. uid .. ':' .. rid, message_id)
end
redis.call('RPUSH', p .. 'posted:' .. chat, message_id .. '|' .. posted)
redis.call('INCR', p .. 'posts')
local slowmode = tonumber(cjson.decode(group)['slowmode_s']) or 0
if slowmode > 0 then redis.call('SET', p .. 'slow:' .. chat .. ':' .. uid, 1, 'EX', slowmode) end
return {'ok', tostring(message_id)}
end
-- The answer, and whether the account's answers are held (FakeTelegram.hang): told with it, so an
-- unheld send is one request and one answer, as with Telegram.
local answer = send()
answer[3] = redis.call('EXISTS', p .. 'hang:' .. uid)
return answer
"""


class FakeGateway:
    """`AccountGateway` over a `FakeTelegram`."""

    def __init__(self, network: FakeTelegram, *, request_timeout_s: float | None = None) -> None:
        self.net = network
        # Like the Telethon gateway's: a send or upload answered later than this is a TIMEOUT.
        self.request_timeout_s = request_timeout_s

    @property
    def _r(self) -> Redis:
        return self.net.redis

    async def send_code(self, phone: str) -> CodeSent:
        account = await self.net._account(phone)
        if account is None:
            raise GatewayError("PHONE_NUMBER_INVALID")
        if account.get("banned") == "1":
            raise GatewayError("PHONE_NUMBER_BANNED")
        code = f"{secrets.randbelow(90000) + 10000}"
        code_hash = secrets.token_hex(8)
        temp = "tmp-" + secrets.token_hex(16)
        p = self.net.p
        await self._r.set(f"{p}code:{code_hash}", json.dumps({"phone": phone, "code": code}), ex=_CODE_TTL_S)
        await self._r.set(f"{p}lastcode:{phone}", code, ex=_CODE_TTL_S)
        await self._r.set(f"{p}codehash:{phone}", code_hash, ex=_CODE_TTL_S)
        await self._r.set(f"{p}temp:{temp}", phone, ex=_CODE_TTL_S * 2)
        return CodeSent(phone_code_hash=code_hash, temp_session=temp)

    async def sign_in(
        self, temp_session: str, phone: str, code: str, phone_code_hash: str
    ) -> SignedIn | PasswordNeeded:
        p = self.net.p
        if await self._r.get(f"{p}temp:{temp_session}") is None:
            raise GatewayError("AUTH_KEY_UNREGISTERED")
        raw = await self._r.get(f"{p}code:{phone_code_hash}")
        if raw is None:
            raise GatewayError("PHONE_CODE_EXPIRED")
        expected = json.loads(raw)
        if expected["phone"] != phone or expected["code"] != code:
            raise GatewayError("PHONE_CODE_INVALID")
        await self._r.delete(f"{p}code:{phone_code_hash}")
        account = await self.net._account(phone)
        assert account is not None
        if account.get("password"):
            await self._r.set(f"{p}temp2fa:{temp_session}", phone, ex=_CODE_TTL_S * 2)
            return PasswordNeeded(temp_session=temp_session, hint=None)
        return await self._issue(temp_session, phone, int(account["tg_user_id"]), account.get("name", ""))

    async def check_password(self, temp_session: str, phone: str, password: str) -> SignedIn:
        p = self.net.p
        if await self._r.get(f"{p}temp2fa:{temp_session}") is None:
            raise GatewayError("AUTH_KEY_UNREGISTERED")
        account = await self.net._account(phone)
        if account is None or account.get("password") != password:
            raise GatewayError("PASSWORD_HASH_INVALID")
        return await self._issue(temp_session, phone, int(account["tg_user_id"]), account.get("name", ""))

    async def _issue(self, temp_session: str, phone: str, uid: int, name: str = "") -> SignedIn:
        p = self.net.p
        session = "fake-" + secrets.token_hex(24)
        await self._r.set(f"{p}session:{session}", uid)
        await self._r.srem(f"{p}revoked", uid)  # type: ignore[misc]
        await self._r.delete(f"{p}temp:{temp_session}", f"{p}temp2fa:{temp_session}")
        return SignedIn(session=session, tg_user_id=uid, phone=phone, name=name)

    async def discard_login(self, temp_session: str) -> None:
        p = self.net.p
        await self._r.delete(f"{p}temp:{temp_session}", f"{p}temp2fa:{temp_session}")

    async def log_out(self, session: str) -> None:
        await self._r.delete(f"{self.net.p}session:{session}")

    async def identify(self, session: str) -> int:
        uid = await self.net.session_user(session)
        # A connection of its own, as Telethon opens one: it counts in the account's open connections.
        await self.net._connected(uid)
        try:
            await self.net._round_trip()
        finally:
            await self.net._disconnected(uid)
        return uid

    async def list_groups(self, session: str) -> Sequence[GroupInfo]:
        uid = await self.net.session_user(session)
        # A flood wait queued with `fail_next` (FLOOD_WAIT_N at the head) answers the dialog listing
        # too, as Telegram may; any other queued fault is left for the sends.
        faults = f"{self.net.p}faults:{uid}"
        head = await self._r.lindex(faults, 0)  # type: ignore[misc]
        if head is not None and head.decode().startswith("FLOOD_WAIT_"):
            await self._r.lpop(faults)  # type: ignore[misc]
            raise GatewayError("FLOOD_WAIT_X", int(head.decode().rpartition("_")[2]))
        p = self.net.p
        chat_ids = sorted(int(c) for c in await self._r.smembers(f"{p}member:{uid}"))  # type: ignore[misc]
        # The checks of `_group` and `writable`, for every group in one round trip: an account with
        # thousands of dialogs is listed in a blink, as Telegram lists them 100 per request.
        async with self._r.pipeline(transaction=False) as pipe:
            for chat_id in chat_ids:
                pipe.get(f"{p}group:{chat_id}")
                pipe.exists(f"{p}forbid_all:{chat_id}")
                pipe.sismember(f"{p}forbidden:{chat_id}", str(uid))
            replies = await pipe.execute()
        found: list[GroupInfo] = []
        for n, chat_id in enumerate(chat_ids):
            raw, closed, forbidden = replies[3 * n : 3 * n + 3]
            if not raw or closed or forbidden:
                continue
            group = FakeGroup(**json.loads(raw))
            found.append(GroupInfo(chat_id, group.title, group.kind, group.access_hash or None))
        return found

    def connect(self, session: str) -> FakeSender:
        return FakeSender(self.net, session, request_timeout_s=self.request_timeout_s)


class FakeSender:
    def __init__(self, network: FakeTelegram, session: str, *, request_timeout_s: float | None = None) -> None:
        self.net = network
        self.session = session
        self.uid = 0
        self.connected = False
        self.request_timeout_s = request_timeout_s
        self._memory = bytearray()  # the connection's memory while open (LatencyModel.conn_kib)

    async def _bounded(self, request: Awaitable[T]) -> T:
        if self.request_timeout_s is None:
            return await request
        try:
            async with asyncio.timeout(self.request_timeout_s):
                return await request
        except TimeoutError:
            raise GatewayError("TIMEOUT", detail="no answer in time") from None

    async def __aenter__(self) -> FakeSender:
        if self.net.latency.connect_ms:
            await self.net.sleep(self.net.latency.connect_s)
        self.uid = await self.net.session_user(self.session)
        await self.net._connected(self.uid)
        self.connected = True
        if self.net.latency.conn_kib:
            # Written, not just allocated, so that it is resident: what the process's RSS counts.
            self._memory = bytearray(b"\x01") * int(self.net.latency.conn_kib * 1024)
        self.net._opened(self)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.connected:
            self.connected = False
            self._memory = bytearray()
            self.net._closed(self)
            await self.net._disconnected(self.uid)

    async def _send(self, peer: Peer, kind: str, text: str, entities: list[dict[str, Any]], random_id: int) -> Sent:
        """Telegram's checks in Telegram's order, then the post, as one atomic step in Redis (a
        script): a send is either fully recorded (message + random id) or not at all, and costs one
        round trip, so the emulator does not dominate what benchmarks measure."""
        posted = {"chat_id": peer.chat_id, "from_tg_user_id": self.uid, "kind": kind, "text": text,
                  "entities": entities, "random_id": random_id, "at": time.time(), "topic_id": peer.topic_id}
        args: list[str | int | float] = [
            self.net.p, self.session, self.uid, peer.chat_id, random_id, json.dumps(posted), time.time(),
            self.net.random_id_ttl_s or 0,
        ]
        result = await self.net.send_script(keys=[], args=args)
        # The answer's trip back: a send is recorded when it reaches "Telegram", so a worker killed
        # while waiting here leaves a message it does not know about, as with the real one.
        await self.net._round_trip()
        if result[2]:
            await self.net._held_answer(self.uid)
        status, value = result[0].decode(), result[1]
        if status == "ok":
            return Sent(message_id=int(value))
        if status == "dup":
            return Sent(message_id=int(value), duplicate=True)
        code = value.decode()
        seconds = None
        if code[-1].isdigit():  # FLOOD_WAIT_30 -> FLOOD_WAIT_X, 30
            head, _, tail = code.rpartition("_")
            code, seconds = f"{head}_X", int(tail)
        if code == "NO_GROUP":
            code = "CHANNEL_PRIVATE" if peer.chat_id < -10**12 else "CHAT_ID_INVALID"
        raise GatewayError(code, seconds)

    async def send_text(self, peer: Peer, text: str, entities: list[dict[str, Any]], random_id: int) -> Sent:
        if not text.strip():
            raise GatewayError("MESSAGE_EMPTY")
        if utf16_len(text) > TEXT_LIMIT:
            raise GatewayError("MESSAGE_TOO_LONG")
        return await self._bounded(self._send(peer, "text", text, entities, random_id))

    async def last_message_id(self, peer: Peer) -> int | None:
        return await self._bounded(self._last_message_id(peer))

    async def _last_message_id(self, peer: Peer) -> int | None:
        await self._may_ask(peer)
        last = await self.net.last_message(peer.chat_id, peer.topic_id)
        return last.message_id if last is not None else None

    async def delete_message(self, peer: Peer, message_id: int) -> bool:
        return await self._bounded(self._delete_message(peer, message_id))

    async def find_own_post(self, peer: Peer, since: datetime, text: str) -> int | None:
        return await self._bounded(self._find_own_post(peer, since, text))

    async def _find_own_post(self, peer: Peer, since: datetime, text: str) -> int | None:
        await self._may_ask(peer)
        await self.net._held_answer(self.uid)  # an account "Telegram" stopped answering gets no history either
        shown = [m for m in await self.net.history_page(peer.chat_id, HISTORY_PAGE)
                 if not m.deleted and (peer.topic_id is None or m.topic_id == peer.topic_id)]
        return own_post_in(
            [(m.message_id, m.from_tg_user_id == self.uid, datetime.fromtimestamp(int(m.at), UTC), m.text)
             for m in reversed(shown)], since, text, whole_history=len(shown) < HISTORY_PAGE)

    async def _delete_message(self, peer: Peer, message_id: int) -> bool:
        await self._may_ask(peer)
        target = next((m for m in await self.net.posted(peer.chat_id) if m.message_id == message_id), None)
        if target is None or target.deleted:
            return False  # Telegram answers a delete of nothing with nothing deleted
        if target.from_tg_user_id != self.uid or await self.net.redis.exists(f"{self.net.p}nodelete:{peer.chat_id}"):
            raise GatewayError("MESSAGE_DELETE_FORBIDDEN")
        await self.net.redis.sadd(f"{self.net.p}deleted:{peer.chat_id}", message_id)  # type: ignore[misc]
        return True

    async def _may_ask(self, peer: Peer) -> None:
        """What Telegram checks before any request of the account about a group: the session, an
        account-wide flood wait, membership. One round trip's latency."""
        await self.net._round_trip()
        await self.net.session_user(self.session)
        flood = await self.net.redis.pttl(f"{self.net.p}flood:{self.uid}")
        if flood > 0:
            raise GatewayError("FLOOD_WAIT_X", -(-flood // 1000))
        if not await self.net.redis.sismember(f"{self.net.p}member:{self.uid}", str(peer.chat_id)):  # type: ignore[misc]
            raise GatewayError("CHANNEL_PRIVATE" if peer.chat_id < -10**12 else "CHAT_ID_INVALID")

    async def upload_media(self, media: OutgoingMedia) -> str:
        return await self._bounded(self._upload(media))

    async def _upload(self, media: OutgoingMedia) -> str:
        token = secrets.token_hex(8)
        await self.net.redis.incr(f"{self.net.p}uploads:{self.uid}")
        await self.net.redis.set(f"{self.net.p}upload:{self.uid}:{token}", media.kind, ex=UPLOAD_TTL_S)
        await self.net._round_trip()
        return json.dumps({"fake_upload": token, "name": media.file_name, "size": len(media.data)})

    async def send_media(self, peer: Peer, media_handle: str, kind: Literal["photo", "video"], caption: str,
                         entities: list[dict[str, Any]], random_id: int) -> Sent:
        return await self._bounded(self._send_media(peer, media_handle, kind, caption, entities, random_id))

    async def _send_media(self, peer: Peer, media_handle: str, kind: Literal["photo", "video"], caption: str,
                          entities: list[dict[str, Any]], random_id: int) -> Sent:
        if utf16_len(caption) > CAPTION_LIMIT:
            raise GatewayError("MEDIA_CAPTION_TOO_LONG")
        try:
            handle = json.loads(media_handle)
            upload_key = f"{self.net.p}upload:{self.uid}:{handle['fake_upload']}" if "fake_upload" in handle else None
            stored_key = f"{self.net.p}media:{int(handle['fake_media'])}" if upload_key is None else None
        except (ValueError, TypeError, KeyError):
            raise GatewayError("MEDIA_EMPTY") from None
        media_key = upload_key or stored_key
        if media_key is not None and not await self.net.redis.exists(media_key):
            # A repeat of an accepted send is still de-duplicated (the script answers it); anything
            # else needs the file: an upload expires or serves one message, stored media is lasting.
            if not await self.net.redis.exists(f"{self.net.p}rid:{self.uid}:{random_id}"):
                raise GatewayError("FILE_PART_X_MISSING" if upload_key else "MEDIA_EMPTY")
        sent = await self._send(peer, kind, caption, entities, random_id)
        if sent.duplicate:
            return sent
        if upload_key is None:
            return Sent(sent.message_id, media_handle=media_handle)
        await self.net.redis.delete(upload_key)
        stored_id = await self.net.redis.incr(f"{self.net.p}media_seq")
        await self.net.redis.set(f"{self.net.p}media:{stored_id}", kind, ex=_STORED_MEDIA_TTL_S)
        return Sent(sent.message_id, media_handle=json.dumps({"fake_media": stored_id}))
