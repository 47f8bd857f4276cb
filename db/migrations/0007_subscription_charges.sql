-- Every Stars subscription a user has, not only the newest one (docs/payments.md).
--
-- A subscription is named at Telegram by the charge id of its first payment (the id
-- editUserStarSubscription takes), so that id becomes the key: a user may hold several (one bought
-- while another still renewed, or one bought after cancelling another), and cancelling renewal must
-- reach each of them. Existing rows (one per user) keep their first charge id and carry over as they are.
ALTER TABLE star_subscriptions DROP CONSTRAINT star_subscriptions_pkey;
ALTER TABLE star_subscriptions ADD PRIMARY KEY (charge_id);
CREATE INDEX star_subscriptions_user ON star_subscriptions (user_id, plan);

-- Which subscription a recurring payment belongs to (its first charge id): a refund cancels that
-- subscription, and a renewal of one the user cancelled is refunded. Until now a user had at most
-- one subscription, so every recurring payment of theirs is that one's.
ALTER TABLE payments ADD COLUMN subscription_id TEXT;
UPDATE payments p SET subscription_id = s.charge_id
FROM star_subscriptions s
WHERE p.recurring AND s.user_id = p.user_id;

