"""An aged database, filled in SQL: what `python -m bench.retention` measures sending beside, and what
tests/e2e/test_retention.py purges. Every row's age follows from its number `g` in
`generate_series`, so what must go and what must stay is known without reading it back.

Apart from bench.retention so that the test imports it without the benchmark's process tools.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

# Row g of a table is (g % 90) days and 12 hours old: with 90 ages per cycle, a retention of D days
# keeps the rows whose g % 90 < D. Every 97th message with g % 90 >= 60 still has a recipient
# waiting for a retry (tomorrow): queued mail is never expired, however old.
AGE = "now() - make_interval(hours => (g % 90) * 24 + 12)"
WAITING = "(g % 97 = 0 AND g % 90 >= 60)"
MESSAGE_ID = "('00000000-0000-4000-8000-' || lpad(to_hex(CAST(:sid AS bigint) * 10000000 + g), 12, '0'))::uuid"
INBOUND_ID = "('00000000-0000-4000-9000-' || lpad(to_hex(CAST(:sid AS bigint) * 10000000 + g), 12, '0'))::uuid"
BULK_ID = "('00000000-0000-4000-a000-' || lpad(to_hex(CAST(:sid AS bigint) * 10000000 + g), 12, '0'))::uuid"

STATEMENTS = (
    f"""
    INSERT INTO messages (id, server_id, message_stream, source, status, from_header, from_email, envelope_from, subject, tag,
                          "to", cc, bcc, recipients, metadata, attachments, track_opens, track_links, sandboxed,
                          list_unsubscribe, tracked_links, raw_mime, created_at)
    SELECT {MESSAGE_ID}, CAST(:sid AS bigint), 'outbound', 'api', 'Sent', 'Aged <aged@example.com>', 'aged@example.com', '', 'Aged ' || g, 'aged',
           '[{{"Email": "r@example.net", "Name": ""}}]', '[]', '[]', ARRAY['r' || g || '@example.net'], '{{}}', '{{}}', false, 'None',
           false, false, 0, convert_to('Subject: Aged ' || g || E'\\r\\n\\r\\n' || repeat('x', 300), 'UTF8'), {AGE}
      FROM generate_series(1, CAST(:n AS integer)) AS g
    """,
    f"""
    INSERT INTO message_recipients (message_id, email, kind, status, attempts, last_response, next_attempt_at, delivered_at, created_at)
    SELECT {MESSAGE_ID}, 'r' || g || '@example.net', 'to', CASE WHEN {WAITING} THEN 'deferred' ELSE 'delivered' END, 1, '250 2.0.0 Ok',
           CASE WHEN {WAITING} THEN now() + interval '1 day' END, CASE WHEN NOT {WAITING} THEN {AGE} END, {AGE}
      FROM generate_series(1, CAST(:n AS integer)) AS g
    """,
    f"""
    INSERT INTO message_events (message_id, recipient, type, details, created_at)
    SELECT {MESSAGE_ID}, 'r' || g || '@example.net', 'Delivered', '{{"DeliveryMessage": "250 2.0.0 Ok"}}', {AGE}
      FROM generate_series(1, CAST(:n AS integer)) AS g
    """,
    f"""
    INSERT INTO message_opens (server_id, message_id, message_stream, tag, recipient, first_open, user_agent, client_name, client_company,
                               client_family, os_name, os_company, os_family, platform, read_seconds, ip, country, region, city, created_at)
    SELECT CAST(:sid AS bigint), {MESSAGE_ID}, 'outbound', 'aged', 'r' || g || '@example.net', true, 'UA', '', '', '', '', '', '', 'Desktop', 3, '', '', '', '',
           {AGE}
      FROM generate_series(10, CAST(:n AS integer), 10) AS g
    """,
    f"""
    INSERT INTO bounces (server_id, message_stream, type, type_code, email, from_email, subject, tag, details, inactive, can_activate, bounced_at)
    SELECT CAST(:sid AS bigint), 'outbound', 'HardBounce', 1, 'b' || g || '@example.net', 'aged@example.com', '', '', 'smtp;550 no such user', true, true, {AGE}
      FROM generate_series(1, CAST(:n AS integer) / 10) AS g
    """,
    f"""
    INSERT INTO bounce_dumps (server_id, body, created_at)
    SELECT CAST(:sid AS bigint), convert_to('Subject: DSN ' || g, 'UTF8'), {AGE} FROM generate_series(1, CAST(:n AS integer) / 20) AS g
    """,
    # One in three webhook requests is still pending (its next attempt tomorrow): it stays.
    f"""
    INSERT INTO webhook_deliveries (server_id, record_type, url, http_auth_username, http_auth_password, http_headers, payload, status,
                                    attempts, next_attempt_at, last_error, created_at)
    SELECT CAST(:sid AS bigint), 'Delivery', 'https://hooks.example.com/d', '', '', '[]', '{{}}',
           (ARRAY['pending', 'delivered', 'failed'])[g % 3 + 1], 1, now() + interval '1 day', '', {AGE}
      FROM generate_series(1, CAST(:n AS integer) / 4) AS g
    """,
    # One in five inbound messages still waits for its hook (Queued): it stays.
    f"""
    INSERT INTO inbound_messages (id, server_id, message_stream, status, blocked_reason, envelope_from, original_recipient, from_email,
                                  recipients, subject, mailbox_hash, tag, details, raw_mime, created_at)
    SELECT {INBOUND_ID}, CAST(:sid AS bigint), 'inbound', CASE WHEN g % 5 = 0 THEN 'Queued' ELSE 'Processed' END, '', 'in@example.org', 'x@inbound.test',
           'in@example.org', '{{}}', 'In ' || g, '', '', '{{}}', convert_to('Subject: In ' || g, 'UTF8'), {AGE}
      FROM generate_series(1, CAST(:n AS integer) / 8) AS g
    """,
    f"""
    INSERT INTO bulk_requests (id, server_id, status, message_stream, content, total, position, released, failed, progressed_at, completed_at,
                               created_at)
    SELECT {BULK_ID}, CAST(:sid AS bigint), 'Completed', 'outbound', '{{}}', 1, 1, 1, 0, {AGE}, {AGE}, {AGE} FROM generate_series(1, CAST(:n AS integer) / 100) AS g
    """,
    # Idempotency keys are g % 48 hours and 30 minutes old: those of 24 hours or more are past the window.
    """
    INSERT INTO idempotency_keys (server_id, endpoint, key, request_sha256, response_status, created_at)
    SELECT CAST(:sid AS bigint), 'email', 'aged-' || g, repeat('0', 64), 200, now() - make_interval(hours => g % 48, mins => 30)
      FROM generate_series(1, CAST(:n AS integer) / 4) AS g
    """,
    # Suppressions are not expired by retention (Postmark keeps them until reactivated).
    f"""
    INSERT INTO suppressions (server_id, message_stream, email, reason, origin, created_at)
    SELECT CAST(:sid AS bigint), 'outbound', 's' || g || '@example.net', 'HardBounce', 'Recipient', {AGE} FROM generate_series(1, 50) AS g
    """,
)


@dataclass(frozen=True, slots=True)
class Kept:
    """What retention of `days` leaves of one server's `populate(n)` rows."""

    messages: int
    waiting: int  # expired by age, kept because a recipient is still queued
    bounces: int
    dumps: int
    webhooks: int
    inbound: int
    bulk: int
    keys: int


def kept(*, n: int, days: int) -> Kept:
    def young(g: int) -> bool:
        return g % 90 < days

    waiting = sum(1 for g in range(1, n + 1) if g % 97 == 0 and g % 90 >= 60 and not young(g))
    return Kept(
        messages=sum(1 for g in range(1, n + 1) if young(g)) + waiting,
        waiting=waiting,
        bounces=sum(1 for g in range(1, n // 10 + 1) if young(g)),
        dumps=sum(1 for g in range(1, n // 20 + 1) if young(g)),
        webhooks=sum(1 for g in range(1, n // 4 + 1) if young(g) or g % 3 == 0),
        inbound=sum(1 for g in range(1, n // 8 + 1) if young(g) or g % 5 == 0),
        bulk=sum(1 for g in range(1, n // 100 + 1) if young(g)),
        keys=sum(1 for g in range(1, n // 4 + 1) if g % 48 < 24),
    )


def rows_per_server(n: int) -> int:
    """How many rows `populate` writes for one server."""
    return 3 * n + n // 10 + n // 10 + n // 20 + n // 4 + n // 8 + n // 100 + n // 4 + 50


async def populate(conn: AsyncConnection, *, server_ids: list[int], n: int) -> None:
    """`n` messages per server (with a recipient and an event each, an open for one in ten) spread
    over 90 days, and bounces, dumps, webhook requests, inbound messages, bulk requests and
    idempotency keys in proportion; then ANALYZE, as autovacuum would after a load this size."""
    for server_id in server_ids:
        for statement in STATEMENTS:
            await conn.execute(text(statement), {"sid": server_id, "n": n})
    await conn.execute(text("ANALYZE"))
