"""Where a suspended asyncio task waits: the chain of coroutines it is inside, outermost first, down to
the future (or task) at the bottom.

`Task.get_stack()` shows only a suspended task's outermost frame, which for a job is always the same
line of the job's wrapper. A batch that stops moving needs the whole chain to tell a wait on Telegram
from one on PostgreSQL, Redis or another task; Python 3.11 has no call-graph API for it (3.14's
`asyncio.capture_call_graph` is the same walk). Only code locations and the awaited object's repr are
shown, never a frame's local values: those may hold a session or a message.
"""

from __future__ import annotations

import asyncio
from types import FrameType
from typing import Any

# A chain deeper than this is cut (a recursion through awaits): enough for any chain of ours.
MAX_DEPTH = 64


def _frame_of(obj: Any) -> FrameType | None:
    for name in ("cr_frame", "gi_frame", "ag_frame"):
        frame = getattr(obj, name, None)
        if frame is not None:
            return frame
    return None


def _awaited_by(obj: Any, frame: FrameType) -> Any:
    """The next coroutine (or generator) of the chain below `obj`, or None at the bottom."""
    for name in ("cr_await", "gi_yieldfrom", "ag_await"):
        awaited = getattr(obj, name, None)
        if awaited is not None:
            break
    else:
        return None
    if _frame_of(awaited) is not None:
        return awaited
    # An async generator's step (`async with` on an asynccontextmanager awaits one in `__aexit__`)
    # shows no frame of its own: the generator it steps is the context manager's `gen`.
    generator = getattr(frame.f_locals.get("self"), "gen", None)
    return generator if _frame_of(generator) is not None else None


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """`file:line in function` for each coroutine `task` is suspended in, outermost first, then what
    the task waits on (a future, or another task with its own location)."""
    lines: list[str] = []
    obj: Any = task.get_coro()
    while obj is not None and len(lines) < MAX_DEPTH:
        frame = _frame_of(obj)
        if frame is None:
            break
        lines.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        obj = _awaited_by(obj, frame)
    # The future at the bottom is not reachable through the chain (awaiting one yields an iterator
    # that hides it); the task keeps it as its waiter.
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is not None:
        lines.append(f"awaiting {waiter!r}")
    return lines
