-- What the status tells a user must be what happened.

-- Each login is a session of its own: the "session ended" notice is remembered per login, so a user
-- who logs in again and loses that session too is told again (an account's id alone stays the same
-- across logins). The send batch also revokes only the session it found broken, never a newer login.
CREATE SEQUENCE account_logins;
ALTER TABLE accounts ADD COLUMN login_id BIGINT NOT NULL DEFAULT nextval('account_logins');

-- When a group's slow mode ends, for a post that failed because the wait outlasted the round:
-- the user is told the time Telegram gave, not a rounded duration.
ALTER TABLE deliveries ADD COLUMN wait_until TIMESTAMPTZ;

-- Why each group of a finished round was not posted to (chat id, title, reason, until, removed),
-- kept on the round because its delivery rows are pruned when the next round is created.
ALTER TABLE cycles ADD COLUMN failures JSONB NOT NULL DEFAULT '[]';

-- The Telegram language code of a super admin who has no access row (they need none): the notices
-- sent to them (access requests, payments) speak the language their updates carry, not the default.
-- A person with a row keeps it there (bot_users.language_code), which wins.
CREATE TABLE admin_languages (
    user_id        BIGINT PRIMARY KEY,
    language_code  TEXT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);
