"""Account-affine routing: which queue an account's next send batch goes to.

Interim: every account goes to the shared broadcast queue (an empty mapping). The worker side (a queue
per worker process, named after the connection claims it holds) replaces this.
"""

from __future__ import annotations

from collections.abc import Iterable

from redis import Redis as SyncRedis

from core.settings import Settings


def home_queues(settings: Settings, connection: SyncRedis, owner_ids: Iterable[int]) -> dict[int, str]:
    """The queue of the live worker process holding each account's connection, for the accounts that
    have one; accounts left out go to the shared broadcast queue."""
    return {}
