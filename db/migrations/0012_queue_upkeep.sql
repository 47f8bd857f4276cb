-- The deliveries table is a queue: each row is written by the tick, updated two or three times within
-- minutes (pending -> in_flight -> sent), and deleted when its owner's next cycle starts, so at full
-- load most of its tuples are dead ones. Every status change is a non-HOT update (status is in the
-- partial indexes' predicates), so each leaves index entries behind too. Measured with autovacuum off,
-- the in-flight index held ~180,000 entries for a few hundred live rows and a batch's statements slowed
-- several-fold; this table therefore asks autovacuum to come much sooner than the server's default
-- (20 % of the table dead), and the groups (one row updated per post) likewise.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 2000,
                            autovacuum_analyze_scale_factor = 0.05, autovacuum_vacuum_insert_scale_factor = 0.05);
ALTER TABLE groups SET (autovacuum_vacuum_scale_factor = 0.05, autovacuum_vacuum_threshold = 2000);

-- Every statement of a batch looks its cycle's rows up by cycle_id: a cycle holds one row per selected
-- group, a few dozen at most, whatever ANALYZE happened to sample from a table that churns this fast.
-- An estimate in the hundreds made the planner hash-join whole tables for a cycle's twenty rows.
ALTER TABLE deliveries ALTER COLUMN cycle_id SET (n_distinct = -0.05);

-- The expired-lease release (db/tick.py) is the only reader of this index. Keyed on lease_until being
-- set rather than on the status, so no statement that filters on a status can be planned as a scan of
-- the whole index (a batch's "sent" record filters on 'in_flight' and 'pending': it walked this index
-- whole under stale statistics). A row holds a lease exactly while it is in flight.
DROP INDEX deliveries_leased;
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE lease_until IS NOT NULL;
ANALYZE deliveries;
