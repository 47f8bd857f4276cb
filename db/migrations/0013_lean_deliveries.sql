-- A delivery row belongs to its cycle, and still goes when its cycle does (a pruned summary, a deleted
-- user), but no longer through a foreign key. The tick writes ~20 delivery rows per cycle, 40,000 a
-- minute in production's shape, and the key's check ran once per row: a quarter of the time of the
-- tick's INSERT (EXPLAIN ANALYZE, 20,000 rows: 54 of 220 ms). Nothing else needs the check: delivery rows
-- are only ever written by the statement that creates their cycle (db/tick.py, create_cycles), in the
-- same transaction, so no other session can delete that cycle in between.
--
-- The cascade is kept as a statement-level trigger: one DELETE per statement that removes cycles,
-- whatever their number, including the ones a deleted user's cascade removes.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_cycle_id_fkey;

CREATE FUNCTION deliveries_follow_cycles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM deliveries d USING gone g WHERE d.cycle_id = g.id;
    RETURN NULL;
END
$$;

CREATE TRIGGER cycles_take_their_deliveries AFTER DELETE ON cycles
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION deliveries_follow_cycles();

-- The two partial indexes go too, so that a delivery's status changes become heap-only (HOT) updates.
-- A status change used to add an entry to every index of the table (status and lease_until were in the
-- partial indexes' predicates, so no update could be HOT): three or four index entries per send, on top
-- of the row versions, and most of what autovacuum then had to clean. With only the primary key and
-- (cycle_id, chat_id) left, and neither ever updated, PostgreSQL keeps a row's new versions on its own page
-- and writes no index entry at all, as long as the page has room: hence the fill factor, which leaves
-- each page of freshly written rows room for their next versions.
-- What the indexes served is served by (cycle_id, chat_id): every statement that reads pending rows
-- names its cycle, and a cycle has a few dozen rows; the expired-lease release (the tick's only
-- whole-table reader) walks the running cycles instead (db/tick.py).
DROP INDEX deliveries_due;
DROP INDEX deliveries_leased;
ALTER TABLE deliveries SET (fillfactor = 60);

-- A group's row is updated once per post (its last post's time and message id), on columns no index
-- holds: room on its page keeps those updates heap-only too. Applies to pages written from now on.
ALTER TABLE groups SET (fillfactor = 80);
