"""Stars payments and subscriptions (migrations 0005, 0007); the rules that use them live in services.payments."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import AsyncConnection
from psycopg.rows import class_row


@dataclass(slots=True)
class Payment:
    id: int
    user_id: int
    telegram_payment_charge_id: str
    provider_payment_charge_id: str
    plan: str
    days: int
    stars: int
    currency: str
    recurring: bool
    expires_before: datetime | None
    expires_after: datetime | None
    paid_at: datetime
    refunded_at: datetime | None
    refunded_by: int | None
    refund_expires_after: datetime | None
    subscription_id: str | None  # a recurring payment's subscription (its first charge id)


@dataclass(slots=True)
class Subscription:
    user_id: int
    plan: str
    charge_id: str
    last_charge_id: str
    renews_at: datetime | None
    canceled: bool
    updated_at: datetime

    def renews(self, now: datetime) -> bool:
        """Telegram will charge again at `renews_at` (the bot has not cancelled it, and it has not lapsed)."""
        return not self.canceled and self.renews_at is not None and self.renews_at > now


async def insert(conn: AsyncConnection, *, user_id: int, charge_id: str, provider_charge_id: str, plan: str,
                 days: int, stars: int, currency: str, recurring: bool) -> Payment | None:
    """The new row, or None when this charge id is already recorded (a redelivery: nothing to grant).
    A concurrent insert of the same charge waits on the unique index and then finds it taken."""
    cur = conn.cursor(row_factory=class_row(Payment))
    await cur.execute(
        """
        INSERT INTO payments (user_id, telegram_payment_charge_id, provider_payment_charge_id, plan, days, stars,
                              currency, recurring)
        VALUES (%(user)s, %(charge)s, %(provider)s, %(plan)s, %(days)s, %(stars)s, %(currency)s, %(recurring)s)
        ON CONFLICT (telegram_payment_charge_id) DO NOTHING
        RETURNING *
        """,
        {"user": user_id, "charge": charge_id, "provider": provider_charge_id, "plan": plan, "days": days,
         "stars": stars, "currency": currency, "recurring": recurring},
    )
    return await cur.fetchone()


async def set_effect(conn: AsyncConnection, payment_id: int, *, before: datetime | None,
                     after: datetime | None) -> None:
    await conn.execute(
        "UPDATE payments SET expires_before = %(before)s, expires_after = %(after)s WHERE id = %(id)s",
        {"id": payment_id, "before": before, "after": after},
    )


async def get(conn: AsyncConnection, payment_id: int) -> Payment | None:
    cur = conn.cursor(row_factory=class_row(Payment))
    await cur.execute("SELECT * FROM payments WHERE id = %(id)s", {"id": payment_id})
    return await cur.fetchone()


async def lock(conn: AsyncConnection, payment_id: int) -> Payment | None:
    """Locked until the caller's transaction ends: two refunds of one payment run one after the other."""
    cur = conn.cursor(row_factory=class_row(Payment))
    await cur.execute("SELECT * FROM payments WHERE id = %(id)s FOR UPDATE", {"id": payment_id})
    return await cur.fetchone()


async def lock_by_charge(conn: AsyncConnection, charge_id: str) -> Payment | None:
    cur = conn.cursor(row_factory=class_row(Payment))
    await cur.execute(
        "SELECT * FROM payments WHERE telegram_payment_charge_id = %(charge)s FOR UPDATE", {"charge": charge_id}
    )
    return await cur.fetchone()


async def mark_refunded(conn: AsyncConnection, payment_id: int, *, by: int | None,
                        expires_after: datetime | None, now: datetime) -> Payment | None:
    """Set once: None when the payment was refunded already."""
    cur = conn.cursor(row_factory=class_row(Payment))
    await cur.execute(
        """
        UPDATE payments SET refunded_at = %(now)s, refunded_by = %(by)s, refund_expires_after = %(after)s
        WHERE id = %(id)s AND refunded_at IS NULL
        RETURNING *
        """,
        {"id": payment_id, "by": by, "after": expires_after, "now": now},
    )
    return await cur.fetchone()


async def recent(conn: AsyncConnection, user_id: int, limit: int) -> list[Payment]:
    cur = conn.cursor(row_factory=class_row(Payment))
    await cur.execute(
        "SELECT * FROM payments WHERE user_id = %(user)s ORDER BY paid_at DESC, id DESC LIMIT %(limit)s",
        {"user": user_id, "limit": limit},
    )
    return await cur.fetchall()


@dataclass(frozen=True, slots=True)
class UserTotals:
    payments: int
    stars: int  # paid and not refunded
    refunded: int


async def user_totals(conn: AsyncConnection, user_id: int) -> UserTotals:
    cur = await conn.execute(
        """
        SELECT count(*), COALESCE(sum(stars) FILTER (WHERE refunded_at IS NULL), 0),
               count(*) FILTER (WHERE refunded_at IS NOT NULL)
        FROM payments WHERE user_id = %(user)s
        """,
        {"user": user_id},
    )
    row = await cur.fetchone()
    assert row is not None
    return UserTotals(int(row[0]), int(row[1]), int(row[2]))


# ---- subscriptions ---------------------------------------------------------------------------------
# A user may hold several subscriptions; each is keyed by its first charge id (what Telegram names it by).


async def subscriptions(conn: AsyncConnection, user_id: int) -> list[Subscription]:
    """Every subscription of the user, the one renewing last first."""
    cur = conn.cursor(row_factory=class_row(Subscription))
    await cur.execute(
        "SELECT * FROM star_subscriptions WHERE user_id = %(user)s ORDER BY renews_at DESC NULLS LAST, charge_id",
        {"user": user_id},
    )
    return await cur.fetchall()


async def renewing(conn: AsyncConnection, user_id: int, now: datetime) -> list[Subscription]:
    """The subscriptions Telegram will charge again, the next renewal first."""
    cur = conn.cursor(row_factory=class_row(Subscription))
    await cur.execute(
        """
        SELECT * FROM star_subscriptions WHERE user_id = %(user)s AND NOT canceled AND renews_at > %(now)s
        ORDER BY renews_at, charge_id
        """,
        {"user": user_id, "now": now},
    )
    return await cur.fetchall()


async def get_subscription(conn: AsyncConnection, charge_id: str) -> Subscription | None:
    cur = conn.cursor(row_factory=class_row(Subscription))
    await cur.execute("SELECT * FROM star_subscriptions WHERE charge_id = %(charge)s", {"charge": charge_id})
    return await cur.fetchone()


async def lock_subscriptions(conn: AsyncConnection, user_id: int, plan: str) -> list[Subscription]:
    """The user's subscriptions of one plan, locked until the caller's transaction ends (a renewal
    picks among them, and a cancel running at once waits)."""
    cur = conn.cursor(row_factory=class_row(Subscription))
    await cur.execute(
        "SELECT * FROM star_subscriptions WHERE user_id = %(user)s AND plan = %(plan)s ORDER BY charge_id FOR UPDATE",
        {"user": user_id, "plan": plan},
    )
    return await cur.fetchall()


async def start_subscription(conn: AsyncConnection, user_id: int, *, plan: str, charge_id: str,
                             renews_at: datetime | None) -> None:
    """A first recurring payment: a new subscription beside any the user has."""
    await conn.execute(
        """
        INSERT INTO star_subscriptions (user_id, plan, charge_id, last_charge_id, renews_at)
        VALUES (%(user)s, %(plan)s, %(charge)s, %(charge)s, %(renews)s)
        ON CONFLICT (charge_id) DO NOTHING
        """,
        {"user": user_id, "plan": plan, "charge": charge_id, "renews": renews_at},
    )


async def renew_subscription(conn: AsyncConnection, charge_id: str, *, last_charge_id: str,
                             renews_at: datetime | None) -> None:
    """A renewal of the subscription `charge_id`: its period moves on (never back)."""
    await conn.execute(
        """
        UPDATE star_subscriptions SET last_charge_id = %(last)s,
            renews_at = GREATEST(renews_at, %(renews)s), updated_at = now()
        WHERE charge_id = %(charge)s
        """,
        {"charge": charge_id, "last": last_charge_id, "renews": renews_at},
    )


async def set_canceled(conn: AsyncConnection, charge_id: str) -> None:
    await conn.execute(
        "UPDATE star_subscriptions SET canceled = true, updated_at = now() WHERE charge_id = %(charge)s",
        {"charge": charge_id},
    )


async def link_subscription(conn: AsyncConnection, payment_id: int, subscription_id: str) -> None:
    await conn.execute(
        "UPDATE payments SET subscription_id = %(sub)s WHERE id = %(id)s", {"id": payment_id, "sub": subscription_id}
    )


# ---- statistics ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Totals:
    payments: int
    stars: int  # paid in the window and not refunded
    refunds: int  # refunded in the window
    refunded_stars: int
    subscriptions: int  # renewing now


async def totals_since(conn: AsyncConnection, since: datetime, now: datetime) -> Totals:
    cur = await conn.execute(
        """
        SELECT (SELECT count(*) FROM payments WHERE paid_at >= %(since)s),
               (SELECT COALESCE(sum(stars), 0) FROM payments WHERE paid_at >= %(since)s AND refunded_at IS NULL),
               (SELECT count(*) FROM payments WHERE refunded_at >= %(since)s),
               (SELECT COALESCE(sum(stars), 0) FROM payments WHERE refunded_at >= %(since)s),
               (SELECT count(*) FROM star_subscriptions WHERE NOT canceled AND renews_at > %(now)s)
        """,
        {"since": since, "now": now},
    )
    row = await cur.fetchone()
    assert row is not None
    return Totals(*(int(v) for v in row))


async def stars_per_day(conn: AsyncConnection, now: datetime, days: int = 30) -> list[int]:
    """Stars paid per UTC day and not refunded, oldest first; the last bucket is today."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=days - 1)
    cur = await conn.execute(
        """
        SELECT floor(extract(epoch FROM paid_at - %(start)s) / 86400)::int AS bucket, sum(stars)
        FROM payments WHERE paid_at >= %(start)s AND paid_at <= %(now)s AND refunded_at IS NULL
        GROUP BY bucket
        """,
        {"start": start, "now": now},
    )
    buckets = [0] * days
    for bucket, total in await cur.fetchall():
        if 0 <= bucket < days:
            buckets[bucket] = int(total)
    return buckets


@dataclass(frozen=True, slots=True)
class PlanTotals:
    """All-time figures of one plan (counters only grow: a refund is counted, the payment stays)."""

    plan: str
    payments: int
    stars: int  # received, refunded ones included
    refunds: int
    refunded_stars: int
    renewing: int  # subscriptions Telegram will charge again


async def totals_by_plan(conn: AsyncConnection, now: datetime) -> list[PlanTotals]:
    cur = conn.cursor(row_factory=class_row(PlanTotals))
    await cur.execute(
        """
        WITH paid AS (
            SELECT plan, count(*)::int AS payments, COALESCE(sum(stars), 0)::int AS stars,
                   (count(*) FILTER (WHERE refunded_at IS NOT NULL))::int AS refunds,
                   COALESCE(sum(stars) FILTER (WHERE refunded_at IS NOT NULL), 0)::int AS refunded_stars
            FROM payments GROUP BY plan
        ), subs AS (
            SELECT plan, count(*)::int AS renewing FROM star_subscriptions
            WHERE NOT canceled AND renews_at > %(now)s GROUP BY plan
        )
        SELECT plan, COALESCE(paid.payments, 0) AS payments, COALESCE(paid.stars, 0) AS stars,
               COALESCE(paid.refunds, 0) AS refunds, COALESCE(paid.refunded_stars, 0) AS refunded_stars,
               COALESCE(subs.renewing, 0) AS renewing
        FROM paid FULL JOIN subs USING (plan)
        ORDER BY plan
        """,
        {"now": now},
    )
    return await cur.fetchall()
