-- Super admins listed by username (ADMIN_USERNAMES) are resolved to a numeric id the first time an
-- account with that username writes to the bot. From then on the id decides, everywhere: the
-- handlers, the tick and the send batch (which never see a username) read it from here, and a
-- username that later changes hands grants nothing to its new holder (first seen wins).
-- No foreign key to bot_users: a super admin needs no access row, and the handlers skip creating one.
CREATE TABLE admin_usernames (
    username     TEXT PRIMARY KEY CHECK (username = lower(username) AND username <> ''),
    user_id      BIGINT NOT NULL,
    resolved_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX admin_usernames_user ON admin_usernames (user_id);
