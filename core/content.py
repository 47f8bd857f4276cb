"""Rules for a broadcast message's content: Telegram's limits (counted in UTF-16 units, as Telegram
counts them) and the identity used to skip a history entry identical to the previous one."""

from __future__ import annotations

import hashlib
import json
from typing import Any

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
MEDIA_LIMIT_BYTES = 20 * 1024 * 1024  # the most a bot may download through the Bot API


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def content_hash(kind: str, text: str, entities: list[dict[str, Any]], media_sha256: str | None) -> str:
    canonical = json.dumps(
        {"kind": kind, "text": text, "entities": entities, "media": media_sha256},
        sort_keys=True, ensure_ascii=False, separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def preview(text: str, limit: int) -> str:
    """The first `limit` characters on one line, with an ellipsis when cut."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"
