-- tgcast schema, version 1. Forward-only: later changes go in new files.

-- Bot users and their access. "Allowed" = status 'active' and (expires_at is null or in the future).
CREATE TABLE bot_users (
    user_id              BIGINT PRIMARY KEY,            -- Telegram user id
    username             TEXT,
    first_name           TEXT NOT NULL DEFAULT '',
    last_name            TEXT,
    language_code        TEXT,                          -- as Telegram reports it
    language             TEXT CHECK (language IN ('uz', 'ru', 'en')),  -- chosen with /lang
    status               TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'active', 'banned')),
    expires_at           TIMESTAMPTZ,                   -- null: permanent
    granted_notified_at  TIMESTAMPTZ,                   -- "access granted" sent for this grant
    profile_refreshed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX bot_users_status ON bot_users (status, expires_at);

-- The connected Telegram account of a bot user (at most one).
CREATE TABLE accounts (
    owner_id      BIGINT PRIMARY KEY REFERENCES bot_users (user_id) ON DELETE CASCADE,
    tg_user_id    BIGINT NOT NULL,
    phone         TEXT NOT NULL,
    session_enc   BYTEA NOT NULL,                       -- Fernet ciphertext, never the plain session
    status        TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    flood_until   TIMESTAMPTZ,                          -- account-wide pause asked by Telegram
    pause_reason  TEXT,                                 -- flood, peer_flood, frozen
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- One Telegram account belongs to one bot user at a time.
CREATE UNIQUE INDEX accounts_tg_user_active ON accounts (tg_user_id) WHERE status = 'active';
CREATE INDEX accounts_flood ON accounts (flood_until) WHERE flood_until IS NOT NULL;

-- Groups known for a user; `selected` ones are the broadcast's targets ("the list").
CREATE TABLE groups (
    owner_id      BIGINT NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    chat_id       BIGINT NOT NULL,
    title         TEXT NOT NULL,
    kind          TEXT NOT NULL CHECK (kind IN ('group', 'supergroup', 'forum', 'channel')),
    access_hash   BIGINT,
    topic_id      INTEGER,
    selected      BOOLEAN NOT NULL DEFAULT true,
    fail_streak   INTEGER NOT NULL DEFAULT 0,
    last_failure  TEXT,
    added_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, chat_id)
);
CREATE INDEX groups_selected ON groups (owner_id) WHERE selected;

-- Media files captured from the bot, kept until a worker uploads them through the account.
CREATE TABLE media (
    id            BIGSERIAL PRIMARY KEY,
    owner_id      BIGINT NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('photo', 'video')),
    bot_file_id   TEXT NOT NULL,
    file_name     TEXT NOT NULL,
    mime_type     TEXT NOT NULL,
    size          INTEGER NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL,
    data          BYTEA NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Message history; the config points at the current one. Soft-deleted so running cycles keep theirs.
CREATE TABLE messages (
    id            BIGSERIAL PRIMARY KEY,
    owner_id      BIGINT NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('text', 'photo', 'video')),
    text          TEXT NOT NULL DEFAULT '',             -- text, or the caption
    entities      JSONB NOT NULL DEFAULT '[]',          -- Bot API entities, UTF-16 offsets
    media_id      BIGINT REFERENCES media (id),
    content_hash  TEXT NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at    TIMESTAMPTZ,
    CHECK ((kind = 'text') = (media_id IS NULL))
);
CREATE INDEX messages_owner ON messages (owner_id, id DESC) WHERE deleted_at IS NULL;

-- One broadcast config per user.
CREATE TABLE configs (
    owner_id          BIGINT PRIMARY KEY REFERENCES bot_users (user_id) ON DELETE CASCADE,
    message_id        BIGINT REFERENCES messages (id),
    interval_minutes  INTEGER CHECK (interval_minutes > 0),
    active            BOOLEAN NOT NULL DEFAULT false,
    next_run_at       TIMESTAMPTZ,
    cycle             INTEGER NOT NULL DEFAULT 0,
    last_scheduled_at TIMESTAMPTZ,                      -- scheduled start of the latest cycle
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (NOT active OR (message_id IS NOT NULL AND interval_minutes IS NOT NULL AND next_run_at IS NOT NULL))
);
-- The scheduler's selection: cost follows the number due, not the number of configs.
CREATE INDEX configs_due ON configs (next_run_at) WHERE active;

-- One pass of a config's message over its selected groups.
CREATE TABLE cycles (
    id             BIGSERIAL PRIMARY KEY,
    owner_id       BIGINT NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    seq            INTEGER NOT NULL,                    -- configs.cycle at creation
    message_id     BIGINT NOT NULL REFERENCES messages (id),
    interval_minutes INTEGER NOT NULL,
    scheduled_at   TIMESTAMPTZ NOT NULL,
    run_at         TIMESTAMPTZ NOT NULL,                -- scheduled_at + deterministic jitter
    started_at     TIMESTAMPTZ,
    finished_at    TIMESTAMPTZ,
    status         TEXT NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done', 'cancelled')),
    outcome        TEXT CHECK (outcome IN ('sent', 'partial', 'failed', 'cancelled')),
    total          INTEGER NOT NULL DEFAULT 0,
    sent           INTEGER NOT NULL DEFAULT 0,
    failed         INTEGER NOT NULL DEFAULT 0,
    cancelled      INTEGER NOT NULL DEFAULT 0,
    reasons        JSONB NOT NULL DEFAULT '{}',         -- failure reason -> count, kept after pruning deliveries
    lag_ms         INTEGER,
    media_handle   TEXT,                                -- uploaded once per cycle, reused by every batch
    lock_busy      INTEGER NOT NULL DEFAULT 0,
    last_continuation TEXT,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (owner_id, seq)
);
CREATE INDEX cycles_running ON cycles (owner_id) WHERE status = 'running';
CREATE INDEX cycles_finished ON cycles (finished_at);

-- One (cycle, group) send. Rows of finished cycles are removed when the next cycle is created,
-- so live rows stay O(users x groups); the cycle row keeps the summary.
CREATE TABLE deliveries (
    id              BIGSERIAL PRIMARY KEY,
    cycle_id        BIGINT NOT NULL REFERENCES cycles (id) ON DELETE CASCADE,
    owner_id        BIGINT NOT NULL,
    chat_id         BIGINT NOT NULL,
    position        INTEGER NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'in_flight', 'sent', 'failed', 'cancelled')),
    retry           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_until     TIMESTAMPTZ,
    random_id       BIGINT NOT NULL,                    -- idempotency key sent to Telegram
    sent_at         TIMESTAMPTZ,
    tg_message_id   BIGINT,
    reason          TEXT,
    error           TEXT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (cycle_id, chat_id)
);
CREATE INDEX deliveries_due ON deliveries (cycle_id, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'in_flight';

-- Notices sent to a user by the system: at most once per (cause, ref).
CREATE TABLE notices (
    owner_id   BIGINT NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    cause      TEXT NOT NULL,
    ref        TEXT NOT NULL DEFAULT '',
    sent_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, cause, ref)
);

-- Admin announcements, run by a background job.
CREATE TABLE announcements (
    id               BIGSERIAL PRIMARY KEY,
    admin_id         BIGINT NOT NULL,
    from_chat_id     BIGINT NOT NULL,
    source_message_id BIGINT NOT NULL,
    progress_message_id BIGINT,
    status           TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done')),
    total            INTEGER NOT NULL DEFAULT 0,
    delivered        INTEGER NOT NULL DEFAULT 0,
    failed           INTEGER NOT NULL DEFAULT 0,
    blocked          INTEGER NOT NULL DEFAULT 0,
    last_user_id     BIGINT NOT NULL DEFAULT 0,         -- resume point after a crash
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    finished_at      TIMESTAMPTZ
);
