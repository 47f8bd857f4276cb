"""Session strings as the older bot's libraries write them, for the tests of `legacy.sessions`.

Each encoder follows its library's own writer step by step and shares nothing with the parser, so a
test that reads these strings back checks the parser against the libraries, not against itself:

- gramjs `StringSession.save()`: Buffer.concat of the dc byte, writeInt16BE(address byte length),
  the address as UTF-8, writeInt16BE(port), the key; `Buffer.toString("base64")` (standard alphabet,
  padded); '1' in front.
- Telethon: the installed library itself (`StringSession.save()`).
- Pyrogram 2.0.106 `Storage.export_session_string()`: struct '>BI?256sQ?', urlsafe base64, the
  '=' padding stripped. The older layouts its `MemoryStorage.open()` still accepts: '>B?256sI?' (351
  characters) and '>B?256sQ?' (356).
"""

from __future__ import annotations

import base64
import struct
from typing import Literal

from telethon.crypto import AuthKey
from telethon.sessions import StringSession

PyrogramLayout = Literal["current", "old32", "old64"]


def gramjs_string(dc: int, address: str, port: int, key: bytes) -> str:
    address_bytes = address.encode("utf-8")
    return gramjs_string_of_parts(dc, len(address_bytes), address_bytes, port, key)


def gramjs_string_of_parts(dc: int, declared_length: int, address_bytes: bytes, port: int, key: bytes) -> str:
    """A gramjs string whose length field may lie about its address, for the refusals."""
    parts = [
        bytes([dc]),
        declared_length.to_bytes(2, "big", signed=True),  # writeInt16BE
        address_bytes,
        port.to_bytes(2, "big", signed=True),  # writeInt16BE: gramjs cannot write a port above 32767
        key,
    ]
    return "1" + base64.b64encode(b"".join(parts)).decode("ascii")


def telethon_string(dc: int, address: str, port: int, key: bytes) -> str:
    session = StringSession()
    session.set_dc(dc, address, port)
    session.auth_key = AuthKey(key)
    return session.save()


def pyrogram_string(dc: int, key: bytes, user_id: int, *, api_id: int = 123456, test_mode: bool = False,
                    is_bot: bool = False, layout: PyrogramLayout = "current") -> str:
    if layout == "current":
        packed = struct.pack(">BI?256sQ?", dc, api_id, test_mode, key, user_id, is_bot)
    elif layout == "old32":
        packed = struct.pack(">B?256sI?", dc, test_mode, key, user_id, is_bot)
    else:
        packed = struct.pack(">B?256sQ?", dc, test_mode, key, user_id, is_bot)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")
