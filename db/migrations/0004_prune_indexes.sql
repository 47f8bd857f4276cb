-- What the tick's prunes look for (db/tick.py, `prune`), found through indexes of the candidates
-- only, so a tick's cost follows what there is to remove rather than the size of the tables.
CREATE INDEX messages_deleted ON messages (deleted_at) WHERE deleted_at IS NOT NULL;
CREATE INDEX notices_sent ON notices (sent_at);
-- The references checked before a message or a media row goes (by the prune, and by the foreign keys
-- themselves on delete): without these every removed row would scan the table that points at it.
CREATE INDEX cycles_message ON cycles (message_id);
CREATE INDEX configs_message ON configs (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX messages_media ON messages (media_id) WHERE media_id IS NOT NULL;
