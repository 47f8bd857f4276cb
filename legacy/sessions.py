"""The older bot's Telegram session strings, read and rewritten as the Telethon string tgcast stores.

Three layouts reach us, all big-endian:

- gramjs (the Node bot): '1' + standard base64 of dc:u8, address length:int16, the address as text,
  port:int16, auth key (256 bytes). The address is whatever the client connected to: an IP literal,
  or in a browser a hostname.
- Telethon: '1' + urlsafe base64 (padding kept) of dc:u8, the packed IPv4 (4) or IPv6 (16) address,
  port:u16, auth key.
- Pyrogram (the Python bot, 2.0.106): urlsafe base64 with the padding stripped and no version
  character, of dc:u8, api_id:u32, test_mode:bool, auth key, user_id:u64, is_bot:bool. Strings
  exported by older Pyrogram releases lack the api_id and, in the oldest, carry a 32-bit user id. No
  address or port: Pyrogram looks the dc up in a table, which we do too.

Telethon's own loader must never see a legacy string: it picks the layout by length alone, so a
gramjs string with a 14-character address has exactly the length of a Telethon IPv6 one and loads
without an error, with a nonsense address made of the text's bytes. Hence the detection below is
by structure, gramjs first, and everything it cannot place is refused rather than guessed.

The auth key is the account: no exception, repr or description here carries it, or the string it
came from. A key is named by its key id (the last 8 bytes of its SHA-1), as Telegram does.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
import struct
from dataclasses import dataclass, field
from typing import Literal

SessionFormat = Literal["gramjs", "telethon", "pyrogram"]
_FORMATS = ("gramjs", "telethon", "pyrogram")

# Pyrogram's data centre tables (pyrogram/session/internals/data_center.py): production on port 443,
# the test servers on port 80.
PRODUCTION_DCS = {1: "149.154.175.53", 2: "149.154.167.51", 3: "149.154.175.100", 4: "149.154.167.91",
                  5: "91.108.56.130"}
TEST_DCS = {1: "149.154.175.10", 2: "149.154.167.40", 3: "149.154.175.117"}
PRODUCTION_PORT, TEST_PORT = 443, 80

AUTH_KEY_BYTES = 256
_VERSION = "1"  # the leading character of gramjs and Telethon strings; Pyrogram's carry none
_GRAMJS_HEAD = 1 + 2 + 2 + AUTH_KEY_BYTES  # dc, address length, port, key: 261 bytes plus the address
# An address length outside this span is not one gramjs writes (the shortest IPv4 text is 7
# characters); gramjs itself reads a "length" above 100 as the start of a packed IPv6 address.
_GRAMJS_ADDRESS_LENGTHS = range(7, 101)
_TELETHON_LAYOUTS = {263: ">B4sH256s", 275: ">B16sH256s"}  # decoded size → layout
# Pyrogram string length (unpadded) → layout and whether it carries the api_id.
_PYROGRAM_LAYOUTS = {362: (">BI?256sQ?", True), 351: (">B?256sI?", False), 356: (">B?256sQ?", False)}
_HOSTNAME = re.compile(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")


class UnreadableSession(ValueError):
    """A session string that cannot be used. `reason` is short and names no part of the input."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class LegacySession:
    """One account's session, whichever layout it came in, ready to be written out for Telethon.

    `address` is the IP text Telethon reports for it; `user_id` and `api_id` are known only from
    Pyrogram strings (None otherwise); `test_mode` means Telegram's test servers.
    """

    format: SessionFormat
    dc: int
    address: str
    port: int
    auth_key: bytes = field(repr=False)
    user_id: int | None
    api_id: int | None
    test_mode: bool

    def __post_init__(self) -> None:
        if self.format not in _FORMATS:
            raise UnreadableSession("unknown format")
        if self.dc not in (TEST_DCS if self.test_mode else PRODUCTION_DCS):
            raise UnreadableSession(f"unknown dc {self.dc}")
        if _canonical_address(self.address) != self.address:
            raise UnreadableSession("bad address")
        if not 1 <= self.port <= 65535:
            raise UnreadableSession(f"bad port {self.port}")
        if len(self.auth_key) != AUTH_KEY_BYTES:
            raise UnreadableSession(f"auth key of {len(self.auth_key)} bytes")
        if not any(self.auth_key):
            raise UnreadableSession("all-zero auth key")  # Telethon would load it as "no key" and sign in anew
        for name, value in (("user id", self.user_id), ("api id", self.api_id)):
            if value is not None and value <= 0:
                raise UnreadableSession(f"bad {name}")

    @property
    def key_id(self) -> str:
        return hashlib.sha1(self.auth_key, usedforsecurity=False).digest()[-8:].hex()

    def to_telethon(self) -> str:
        """The string Telethon's `StringSession.save()` writes for this dc, address, port and key."""
        packed = ipaddress.ip_address(self.address).packed
        body = struct.pack(f">B{len(packed)}sH256s", self.dc, packed, self.port, self.auth_key)
        return _VERSION + base64.urlsafe_b64encode(body).decode("ascii")

    def describe(self) -> dict[str, object]:
        """What may be printed or logged about this session."""
        return {"format": self.format, "dc": self.dc, "port": self.port, "key_id": self.key_id,
                "test_mode": self.test_mode, "has_user_id": self.user_id is not None}


def parse_session(text: str) -> LegacySession:
    """Read a gramjs, Telethon or Pyrogram session string; UnreadableSession for anything else."""
    text = text.strip()
    if not text:
        raise UnreadableSession("empty")
    if text.startswith(_VERSION):
        return _parse_versioned(_decode(text[1:]))
    return _parse_pyrogram(text)


def _decode(text: str) -> bytes:
    """Both base64 alphabets, with or without padding: gramjs writes standard, Telethon urlsafe."""
    text = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:  # binascii.Error, or a character outside ASCII
        raise UnreadableSession("not base64") from None


def _parse_versioned(raw: bytes) -> LegacySession:
    # gramjs before Telethon: a 14-character gramjs address gives Telethon IPv6's exact size.
    address_length = int.from_bytes(raw[1:3], "big", signed=True)
    if address_length in _GRAMJS_ADDRESS_LENGTHS and len(raw) == _GRAMJS_HEAD + address_length:
        return _parse_gramjs(raw, address_length)
    layout = _TELETHON_LAYOUTS.get(len(raw))
    if layout is None:
        raise UnreadableSession(f"bad length {len(raw)}")
    dc, packed, port, key = struct.unpack(layout, raw)
    address = _canonical_address(ipaddress.ip_address(packed).compressed)
    if address is None:
        raise UnreadableSession("bad address")
    return LegacySession("telethon", dc, address, port, key, user_id=None, api_id=None, test_mode=False)


def _parse_gramjs(raw: bytes, address_length: int) -> LegacySession:
    dc = raw[0]
    text_bytes = raw[3:3 + address_length]
    if not text_bytes.isascii():
        raise UnreadableSession("gramjs address not ASCII")
    text = text_bytes.decode("ascii")
    address = _canonical_address(text)
    if address is None:
        if not _HOSTNAME.fullmatch(text):
            raise UnreadableSession("gramjs address neither IP nor hostname")
        if dc not in PRODUCTION_DCS:
            raise UnreadableSession(f"unknown dc {dc}")
        # A hostname (browsers connect through the web names) tells nothing Telethon can use: the
        # key belongs to the dc, and any address of that dc serves it.
        address = PRODUCTION_DCS[dc]
    rest = raw[3 + address_length:]
    # Signed, as gramjs reads it back: gramjs cannot write a port above 32767, so a set top bit is damage.
    port, key = int.from_bytes(rest[:2], "big", signed=True), rest[2:]
    return LegacySession("gramjs", dc, address, port, key, user_id=None, api_id=None, test_mode=False)


def _parse_pyrogram(text: str) -> LegacySession:
    unpadded = text.rstrip("=")  # Pyrogram strips the padding; tolerate a copy that kept it
    known = _PYROGRAM_LAYOUTS.get(len(unpadded))
    if known is None:
        raise UnreadableSession(f"bad length {len(unpadded)}")
    layout, has_api_id = known
    fields = struct.unpack(layout, _decode(unpadded))
    if has_api_id:
        dc, api_id, test_mode, key, user_id, is_bot = fields
    else:
        (dc, test_mode, key, user_id, is_bot), api_id = fields, 0
    if is_bot:
        raise UnreadableSession("bot session")  # a bot cannot post into groups as an account does
    if dc not in (TEST_DCS if test_mode else PRODUCTION_DCS):
        raise UnreadableSession(f"unknown dc {dc}")
    address, port = (TEST_DCS[dc], TEST_PORT) if test_mode else (PRODUCTION_DCS[dc], PRODUCTION_PORT)
    # Zero is what a field no one filled in holds: the importer then asks Telegram, as for gramjs.
    return LegacySession("pyrogram", dc, address, port, key, user_id=user_id or None, api_id=api_id or None,
                         test_mode=test_mode)


def _canonical_address(text: str) -> str | None:
    """The IP text Telethon would report after a round trip through its string, or None.

    Refused too: addresses whose first two bytes read as a number up to 100 (IPv4 up to
    0.100.255.255, IPv6 below 65::). None is ever a Telegram server, and those two bytes sit where
    gramjs keeps its address length, which it tells from a packed address by exactly that bound:
    such a Telethon string would be a gramjs one in disguise.
    """
    try:
        packed = ipaddress.ip_address(text).packed
    except ValueError:
        return None
    if int.from_bytes(packed[:2], "big") <= 100:
        return None
    return ipaddress.ip_address(packed).compressed
