"""asyncio helpers shared by the job bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


async def finish_even_if_cancelled(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` to its end even when the caller is cancelled meanwhile: the cancel is held until
    `coro` has finished, then raised. For clean-up that must complete whatever cut a batch off (its job
    timeout, a stopping worker's deadline): its rows handed back, its account lock let go of."""
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
