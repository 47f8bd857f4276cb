"""The emulated network every sandbox account starts with."""

from __future__ import annotations

from userbot.fake import FakeGroup, FakeTelegram

SEED_GROUPS = (
    FakeGroup(-1001000000001, "Tashkent Market", "supergroup", access_hash=11),
    FakeGroup(-1001000000002, "Samarkand Ads (slow mode 60 s)", "supergroup", slowmode_s=60, access_hash=12),
    FakeGroup(-1001000000003, "Bukhara Sellers Forum", "forum", access_hash=13),
    FakeGroup(-1000000004, "Friends basic group", "group"),
    FakeGroup(-1001000000005, "Read-only announcements", "supergroup", access_hash=15),
)
# In the last one posting is forbidden for everybody: it shows how a refused group ends.
FORBIDDEN_CHAT = -1001000000005


async def seed_sandbox(network: FakeTelegram) -> None:
    await network.seed(SEED_GROUPS)
    await network.forbid_all(FORBIDDEN_CHAT)
