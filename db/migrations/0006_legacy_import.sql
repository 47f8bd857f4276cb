-- The import of the older bot's data (`tgcast import-legacy`, docs/migrating.md).

-- Every row the import wrote, by its id in the older database, with a fingerprint of what was read
-- there. A second run writes only rows whose fingerprint changed (the older bot ran longer), and
-- never touches a user who was already using tgcast before (no row here).
CREATE TABLE legacy_rows (
    kind         TEXT NOT NULL CHECK (kind IN ('user', 'account', 'group', 'config', 'message')),
    legacy_id    TEXT NOT NULL,
    owner_id     BIGINT NOT NULL,
    target_id    BIGINT,                                -- messages: the tgcast message id
    fingerprint  TEXT NOT NULL,
    imported_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    verified_at  TIMESTAMPTZ,                           -- accounts: the session answered online
    PRIMARY KEY (kind, legacy_id)
);
CREATE INDEX legacy_rows_owner ON legacy_rows (owner_id, kind);

-- Each run, dry or not, with its report: what an operator reads back, and how "the first run is a
-- dry run" is known.
CREATE TABLE legacy_runs (
    id           BIGSERIAL PRIMARY KEY,
    source       TEXT NOT NULL,                         -- host:port/database?schema, no credentials
    flavour      TEXT NOT NULL CHECK (flavour IN ('node', 'python')),
    dry_run      BOOLEAN NOT NULL,
    report       JSONB NOT NULL,
    started_at   TIMESTAMPTZ NOT NULL,
    finished_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Session strings of the Node version carry no Telegram user id; it is learnt when the session is
-- first used online (`tgcast import-legacy --verify-sessions`). Unknown ids never collide in the
-- unique index of active accounts.
ALTER TABLE accounts ALTER COLUMN tg_user_id DROP NOT NULL;
