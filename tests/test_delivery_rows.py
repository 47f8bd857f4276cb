"""A delivery's status changes are heap-only updates (docs/runtime.md, "Queue upkeep"): no index entry is
written when a row goes pending → in flight → sent, or back, so the queue's churn costs the row versions
only. Counted inside one transaction by PostgreSQL itself, so the check is exact and immediate."""

from __future__ import annotations

from psycopg import AsyncConnection

from db import deliveries
from tests.runtime_helpers import add_message, utcnow
from tests.test_prune import OWNER, add_cycle, add_deliveries, add_user

GROUPS = 20


async def _hot_and_all_updates(db: AsyncConnection) -> tuple[int, int]:
    cur = await db.execute("SELECT pg_stat_get_xact_tuples_hot_updated('deliveries'::regclass),"
                           " pg_stat_get_xact_tuples_updated('deliveries'::regclass)")
    row = await cur.fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def test_status_changes_write_no_index_entries(db: AsyncConnection) -> None:
    await add_user(db, OWNER)
    cycle_id = await add_cycle(db, OWNER, 1, await add_message(db, OWNER, "m"), finished_days_ago=None)
    async with db.transaction():
        await add_deliveries(db, cycle_id, OWNER, GROUPS)
        await db.execute("UPDATE deliveries SET status = 'in_flight', lease_until = now() + interval '1 minute',"
                         " updated_at = now() WHERE cycle_id = %(c)s", {"c": cycle_id})
        cur = await db.execute("SELECT id FROM deliveries WHERE cycle_id = %(c)s ORDER BY id", {"c": cycle_id})
        ids = [int(r[0]) for r in await cur.fetchall()]
        await deliveries.release(db, ids[:5])  # back to pending
        await db.execute("UPDATE deliveries SET status = 'sent', sent_at = %(at)s, lease_until = NULL"
                         " WHERE id = ANY(%(ids)s)", {"ids": ids[5:], "at": utcnow()})
        hot, updated = await _hot_and_all_updates(db)
    assert updated == GROUPS + 5 + (GROUPS - 5)
    assert hot == updated
