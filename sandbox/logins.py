"""Whose login codes are whose on the sandbox page.

On Telegram a login code reaches only the phone's owner, and Telegram expires a code its owner sends
in a message as it is (unspaced), anywhere. On the page anyone can act as any user, so the sandbox
takes the phone a user sends the bot (as text or with the contact button) as theirs: only that user
sees its codes, and a code that user then sends unspaced is expired at the emulated Telegram before
the bot receives the message — so the bot's "code expired, type it with spaces" is met here first,
not in production.
"""

from __future__ import annotations

from redis.asyncio import Redis

from core.phone import normalize_phone
from userbot.fake import FakeTelegram

_KEEP_S = 7 * 24 * 3600  # a sandbox session's length; the page forgets older phones


def _key(prefix: str, user_id: int) -> str:
    return f"{prefix}sandbox:phones:{user_id}"


async def remember_phone(redis: Redis, prefix: str, user_id: int, phone: str) -> None:
    """`phone` as typed or shared; anything that is not a phone number is ignored."""
    normalized = normalize_phone(phone)
    if normalized is None:
        return
    await redis.sadd(_key(prefix, user_id), normalized)  # type: ignore[misc]
    await redis.expire(_key(prefix, user_id), _KEEP_S)


async def phones_of(redis: Redis, prefix: str, user_id: int) -> set[str]:
    raw = await redis.smembers(_key(prefix, user_id))  # type: ignore[misc]
    return {p.decode() if isinstance(p, bytes) else str(p) for p in raw}


async def codes_of(net: FakeTelegram, redis: Redis, prefix: str, user_id: int | None) -> dict[str, str]:
    """The login codes "Telegram" sent to this user's phones (nobody's without a user)."""
    if user_id is None:
        return {}
    mine = await phones_of(redis, prefix, user_id)
    return {phone: code for phone, code in (await net.codes()).items() if phone in mine}


async def expire_sent_codes(net: FakeTelegram, redis: Redis, prefix: str, user_id: int, text: str) -> None:
    """Before the bot gets `text`: a code of the sender's own phones in it, unspaced, expires."""
    for phone in await phones_of(redis, prefix, user_id):
        await net.expire_code_if_sent(phone, text)
