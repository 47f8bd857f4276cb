-- Per-group spacing (docs/runtime.md, "Interval lower bound"): two posts of one broadcast in one group
-- are never less than the interval apart, measured on actual send times. The time of the last post
-- per (owner, group) lives on the group row because the delivery rows of finished cycles are dropped
-- when the next cycle starts.
ALTER TABLE groups ADD COLUMN last_sent_at TIMESTAMPTZ;

UPDATE groups g SET last_sent_at = s.at
FROM (SELECT owner_id, chat_id, max(sent_at) AS at FROM deliveries WHERE sent_at IS NOT NULL
      GROUP BY owner_id, chat_id) s
WHERE g.owner_id = s.owner_id AND g.chat_id = s.chat_id;
