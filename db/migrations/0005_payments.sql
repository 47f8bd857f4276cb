-- Self-serve access paid in Telegram Stars (docs/payments.md).

-- One row per successful payment Telegram reported. The charge id is Telegram's identifier of the
-- payment: unique, so a redelivered update or a replayed message finds its row and grants nothing.
-- `expires_before` / `expires_after` record what the payment did to the buyer's access, and a refund
-- records what it took back; a payment is refunded at most once (refunded_at is set once).
CREATE TABLE payments (
    id                          BIGSERIAL PRIMARY KEY,
    user_id                     BIGINT NOT NULL REFERENCES bot_users (user_id) ON DELETE CASCADE,
    telegram_payment_charge_id  TEXT NOT NULL UNIQUE CHECK (telegram_payment_charge_id <> ''),
    provider_payment_charge_id  TEXT NOT NULL DEFAULT '',
    plan                        TEXT NOT NULL,
    days                        INTEGER NOT NULL CHECK (days >= 0),  -- 0: a payload not ours, nothing granted
    stars                       INTEGER NOT NULL CHECK (stars > 0),
    currency                    TEXT NOT NULL,
    recurring                   BOOLEAN NOT NULL DEFAULT false,   -- a payment of a subscription
    expires_before              TIMESTAMPTZ,
    expires_after               TIMESTAMPTZ,
    paid_at                     TIMESTAMPTZ NOT NULL DEFAULT now(),
    refunded_at                 TIMESTAMPTZ,
    refunded_by                 BIGINT,                           -- the admin; null: reported by Telegram
    refund_expires_after        TIMESTAMPTZ,
    CHECK (refunded_at IS NOT NULL OR (refunded_by IS NULL AND refund_expires_after IS NULL))
);
CREATE INDEX payments_user ON payments (user_id, paid_at DESC);
CREATE INDEX payments_paid_at ON payments (paid_at);
CREATE INDEX payments_refunded_at ON payments (refunded_at) WHERE refunded_at IS NOT NULL;

-- A user's Stars subscription (a recurring plan): Telegram renews it every 30 days and reports each
-- renewal as a payment. `charge_id` is the first payment's, the one editUserStarSubscription names.
CREATE TABLE star_subscriptions (
    user_id          BIGINT PRIMARY KEY REFERENCES bot_users (user_id) ON DELETE CASCADE,
    plan             TEXT NOT NULL,
    charge_id        TEXT NOT NULL,
    last_charge_id   TEXT NOT NULL,
    renews_at        TIMESTAMPTZ,                  -- the end of the paid period: the next renewal
    canceled         BOOLEAN NOT NULL DEFAULT false,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX star_subscriptions_active ON star_subscriptions (renews_at) WHERE NOT canceled;
