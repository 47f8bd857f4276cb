"""The `tgcast` command with a fault injected, for tests only: `python -m tests.worker_faults worker --burst`.

KILL_AFTER_SEND_ENV=<path>: the first send the emulated Telegram accepts (not a duplicate) creates
<path> and SIGKILLs the process at once, before the worker records the send — the crash between send
and commit of docs/runtime.md, "Invariants". Production code carries no hook for it: this module wraps
the emulator's sender in the test's own worker process, before the command starts.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tgcast_cli import main
from userbot.fake import FakeSender
from userbot.gateway import Sent

KILL_AFTER_SEND_ENV = "TGCAST_TEST_KILL_AFTER_SEND"  # runtime_helpers.worker_env drops TGCAST_TEST_*


def _die_once(marker: Path) -> None:
    """Synchronous on purpose: nothing else of the process may run between the send and the kill."""
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def kill_after_send(marker: Path) -> None:
    def wrap(send: Callable[..., Awaitable[Sent]]) -> Callable[..., Awaitable[Sent]]:
        @functools.wraps(send)
        async def sent_then_killed(self: FakeSender, *args: Any, **kwargs: Any) -> Sent:
            sent = await send(self, *args, **kwargs)
            if not sent.duplicate:
                _die_once(marker)
            return sent

        return sent_then_killed

    for name in ("send_text", "send_media"):
        setattr(FakeSender, name, wrap(getattr(FakeSender, name)))


if __name__ == "__main__":
    if os.environ.get(KILL_AFTER_SEND_ENV):
        kill_after_send(Path(os.environ[KILL_AFTER_SEND_ENV]))
    sys.exit(main())
