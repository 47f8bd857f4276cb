"""Until when this worker trusts each account's connection claim (userbot/claims.py).

A claim lapses in Redis after its TTL whether or not its holder noticed, so the holder trusts it only
for `trust_s` (the TTL less a margin) after the request that last confirmed it was *sent* — not
answered: a slow answer must not stretch the trust past the TTL. The sender cache closes a
connection whose claim is not trusted any more, in use or not, before another worker may connect.
Pure bookkeeping on an injected clock: no Redis, so it holds while Redis is unreachable.
"""

from __future__ import annotations

from collections.abc import Callable


class ClaimTrust:
    def __init__(self, trust_s: float, clock: Callable[[], float]) -> None:
        self.trust_s = trust_s
        self._clock = clock
        self._until: dict[str, float] = {}  # per name: the clock time its trust runs out

    def confirm(self, name: str, sent_at: float) -> None:
        """A request sent at `sent_at` confirmed the claim of `name` (a later confirmation never shortens it)."""
        until = sent_at + self.trust_s
        self._until[name] = max(until, self._until.get(name, until))

    def trusted(self, name: str, now: float | None = None) -> bool:
        until = self._until.get(name)
        return until is not None and (self._clock() if now is None else now) < until

    def forget(self, name: str) -> None:
        """No connection of `name` is open any more: the next one starts from its own claim."""
        self._until.pop(name, None)
