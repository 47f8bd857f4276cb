"""The bearer tokens of the operator endpoints (/tick, /metrics, /ops): read from the Authorization
header, compared in constant time."""

from __future__ import annotations

import hmac

from pydantic import SecretStr
from starlette.requests import Request


def bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_matches(given: str | None, expected: SecretStr) -> bool:
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.get_secret_value().encode())
