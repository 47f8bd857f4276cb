-- Posts that never pile up in a group (docs/runtime.md, "No pile-up"). Per broadcast, the user
-- chooses: 'off' (post every round, as before), 'skip' (skip a group whose last message is still this
-- broadcast's previous post there) or 'replace' (delete that previous post before posting the new one).
ALTER TABLE configs ADD COLUMN pile_up TEXT NOT NULL DEFAULT 'off' CHECK (pile_up IN ('off', 'skip', 'replace'));

-- The broadcast's previous post in each group, by Telegram's message id: what 'skip' compares with the
-- group's last message and what 'replace' deletes. Kept on the group row, like last_sent_at, because
-- the delivery rows of finished rounds are pruned.
ALTER TABLE groups ADD COLUMN last_message_id BIGINT;

-- A group skipped because the previous post is still on top: neither sent nor failed.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'in_flight', 'sent', 'failed', 'cancelled', 'skipped'));
ALTER TABLE cycles ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
