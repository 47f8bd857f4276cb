-- Several Telegram accounts per bot user (docs/bot.md, "Accounts"; docs/runtime.md, "Accounts").
--
-- An account gets an id of its own; the owner's existing account becomes their first one (accounts
-- are ordered by id). The same Telegram account appears at most once per owner: logging it in again
-- updates its row, and still at most one owner holds it while active (accounts_tg_user_active).
ALTER TABLE accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE accounts ADD COLUMN id BIGSERIAL;
ALTER TABLE accounts ADD PRIMARY KEY (id);
CREATE INDEX accounts_owner ON accounts (owner_id, id);
CREATE UNIQUE INDEX accounts_owner_tg ON accounts (owner_id, tg_user_id) WHERE tg_user_id IS NOT NULL;
-- The account's name at Telegram as of its last login, so the accounts screen tells them apart
-- (empty for an imported session until it logs in again).
ALTER TABLE accounts ADD COLUMN name TEXT NOT NULL DEFAULT '';

-- Each group is posted to from one account of its owner. A group whose account was logged out keeps
-- its place in the list (and its spacing) with no account until the user gives it one.
ALTER TABLE groups ADD COLUMN account_id BIGINT REFERENCES accounts (id) ON DELETE SET NULL;
UPDATE groups g SET account_id = a.id FROM accounts a WHERE a.owner_id = g.owner_id;
CREATE INDEX groups_account ON groups (account_id) WHERE account_id IS NOT NULL;

-- A delivery is sent from the account its group had when the round was created: each account's
-- share of a round is claimed, locked and paced on its own. No foreign key: the row outlives a
-- logged-out account only to be cancelled.
ALTER TABLE deliveries ADD COLUMN account_id BIGINT;
UPDATE deliveries d SET account_id = g.account_id
FROM groups g WHERE g.owner_id = d.owner_id AND g.chat_id = d.chat_id;

-- The import of the older bot's data brings every account of a user: each older account row names the
-- account it became. Rows imported so far were the user's only account.
UPDATE legacy_rows r SET target_id = a.id
FROM accounts a WHERE r.kind = 'account' AND r.target_id IS NULL AND a.owner_id = r.owner_id;
