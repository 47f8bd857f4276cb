"""Group commit of the "sent" records of every batch running in a worker process.

A batch records each send before its next one (the record also tells whether the cycle is still live,
so a stop takes effect between two sends). Written one statement per send, that would be a PostgreSQL
round trip per delivery and the largest share of the database's CPU at full load: hundreds of batches
each writing one row every 1–2 s. Here the records of all batches that arrive within `linger_s` of each
other go in one statement (`db.deliveries.mark_sent_many`), and so do those that arrive while the
previous statement runs.

What the linger costs: nothing in pace, since a batch's next send waits 1–2 s for the pacing pause
anyway and the record is awaited inside that pause; a batch's last record ends its job up to
`linger_s` later. What it risks: a send made but not yet recorded when the process dies is sent again
after the lease expires, with the same `random_id`, which Telegram de-duplicates — the window every
send has between Telegram's answer and its record, widened by `linger_s`.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

import psycopg
from psycopg_pool import AsyncConnectionPool

from db import deliveries
from db.deliveries import SentRow

log = logging.getLogger(__name__)

# Long enough to gather the records of a busy process (hundreds of batches, a send each every 1–2 s:
# 100–300 records a second give ~5–15 per statement), short against the pacing pause it hides in.
LINGER_S = 0.05


def linger_for(send_pause_min_ms: int) -> float:
    """The linger hides in the pacing pause, so it is at most half the shortest pause. Without a pause
    (the machinery benchmarks, the tests) there is none: a record is written at once, together only with
    the records that arrived while the previous statement ran."""
    return min(LINGER_S, max(0, send_pause_min_ms) / 2000)
# A bound on one statement's size; more waiting records go in the next one, at once.
MAX_ROWS = 500
# A record is of a post Telegram made: a failed write (a pooled connection PostgreSQL dropped when it
# restarted, a short outage) is tried again after these pauses (~30 s in all) before the batches waiting
# on it are failed. Not recorded, the row would stay in flight until its lease ran out and be posted
# again, possibly after Telegram has forgotten its random_id.
RETRY_PAUSES_S = (0.1, 0.3, 1.0, 2.0, 5.0, 10.0, 10.0)


class SentRecorder:
    """`record(...)` returns (recorded, cycle still live) once the row is written. One statement is in
    flight at a time; records arriving meanwhile wait for the next."""

    def __init__(self, pool: AsyncConnectionPool, *, linger_s: float = LINGER_S, max_rows: int = MAX_ROWS) -> None:
        self._pool = pool
        self._linger_s = linger_s
        self._max_rows = max_rows
        self._waiting: list[tuple[SentRow, asyncio.Future[tuple[bool, bool]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.statements = 0  # written statements, for tests

    @property
    def waiting(self) -> int:
        """Records not yet written (lingering, or waiting for the statement under way)."""
        return len(self._waiting)

    async def record(self, delivery_id: int, cycle_id: int, tg_message_id: int, sent_at: datetime) -> tuple[bool, bool]:
        future: asyncio.Future[tuple[bool, bool]] = asyncio.get_running_loop().create_future()
        self._waiting.append((SentRow(delivery_id, cycle_id, tg_message_id, sent_at), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_all(), name="sent-records")
        # Shielded: a batch cancelled by its job timeout while waiting leaves its record to be written
        # with the others (the post happened) rather than pulling it out of a statement under way.
        return await asyncio.shield(future)

    async def _flush_all(self) -> None:
        if self._linger_s > 0:
            await asyncio.sleep(self._linger_s)
        while self._waiting:
            taken, self._waiting = self._waiting[: self._max_rows], self._waiting[self._max_rows:]
            try:
                written = await self._write([row for row, _ in taken])
            except Exception as exc:  # every waiting batch fails as its own single write would have
                log.warning("recording %s sends failed: %s", len(taken), type(exc).__name__)
                for _, future in taken:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for row, future in taken:
                if not future.done():
                    future.set_result(written.get(row.delivery_id, (False, False)))

    async def _write(self, rows: list[SentRow]) -> dict[int, tuple[bool, bool]]:
        for pause in (*RETRY_PAUSES_S, None):
            try:
                async with self._pool.connection() as conn:
                    written = await deliveries.mark_sent_many(conn, rows)
                self.statements += 1
                return written
            except psycopg.OperationalError as exc:
                if pause is None:
                    raise
                # The pool drops a connection that broke; the next try takes another (or a new one).
                log.warning("recording %s sends failed (%s), trying again in %.1f s", len(rows),
                            type(exc).__name__, pause)
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Write what is waiting (before the pool closes)."""
        if self._flusher is not None and not self._flusher.done():
            await self._flusher
