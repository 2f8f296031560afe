-- 0001: the first schema of the refund assistant's store.
--
-- Conventions (bot/store/_sqlite.py relies on them):
--   * money is integer fen;
--   * moments are UTC ISO-8601 text with microseconds, 'YYYY-MM-DDTHH:MM:SS.ffffffZ', so that text
--     order is time order; dates are 'YYYY-MM-DD';
--   * enum-like columns carry no CHECK (SQLite cannot change a CHECK without rebuilding the table,
--     and the domain models validate every value read back), except where a rule below depends on
--     the exact values (refunds.state, the open-ticket index).
-- Rules the database enforces itself, whatever code writes to it:
--   * at most one open ticket per order (partial unique index; its list is domain OPEN_STATUSES);
--   * pending + paid refunds of an order never exceed the order's cash paid (triggers);
--   * the ticket audit trail is append only (triggers).

CREATE TABLE customers (
    customer_id INTEGER PRIMARY KEY,
    -- E.164: '+', a non-zero digit, at most 15 digits in all
    phone       TEXT NOT NULL UNIQUE CHECK (
                    phone GLOB '+[1-9]*'
                    AND substr(phone, 2) NOT GLOB '*[^0-9]*'
                    AND length(phone) BETWEEN 3 AND 16
                ),
    name        TEXT NOT NULL,
    locale      TEXT
) STRICT;

CREATE TABLE telegram_links (
    telegram_user_id INTEGER PRIMARY KEY,
    customer_id      INTEGER NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE
) STRICT;

CREATE INDEX telegram_links_customer ON telegram_links (customer_id);

CREATE TABLE orders (
    order_id                       TEXT PRIMARY KEY,
    -- orders belong to a customer by phone: the import knows phones, not customer ids
    phone                          TEXT NOT NULL REFERENCES customers (phone),
    customer_name                  TEXT NOT NULL,
    product_name                   TEXT NOT NULL,
    category                       TEXT NOT NULL,
    list_price_fen                 INTEGER NOT NULL CHECK (list_price_fen >= 0),
    cash_paid_fen                  INTEGER NOT NULL CHECK (cash_paid_fen >= 0),
    coupon_fen                     INTEGER NOT NULL CHECK (coupon_fen >= 0),
    coupon_refundable              INTEGER NOT NULL CHECK (coupon_refundable IN (0, 1)),
    paid_at                        TEXT NOT NULL,
    service_start                  TEXT NOT NULL,
    service_end                    TEXT NOT NULL,
    activated_at                   TEXT,
    activation_exclusion_confirmed INTEGER NOT NULL CHECK (activation_exclusion_confirmed IN (0, 1)),
    used_days                      INTEGER NOT NULL CHECK (used_days >= 0),
    payment_channel                TEXT NOT NULL,
    seven_day_supported            INTEGER NOT NULL CHECK (seven_day_supported IN (0, 1)),
    merchant_status                TEXT NOT NULL,
    CHECK (cash_paid_fen + coupon_fen <= list_price_fen)
) STRICT;

CREATE INDEX orders_phone ON orders (phone, paid_at);

CREATE TABLE tickets (
    ticket_no     TEXT PRIMARY KEY,
    order_id      TEXT NOT NULL REFERENCES orders (order_id),
    customer_id   INTEGER NOT NULL REFERENCES customers (customer_id),
    reason        TEXT NOT NULL,
    sub_reason    TEXT,
    status        TEXT NOT NULL,
    priority      TEXT NOT NULL,
    requested_fen INTEGER NOT NULL CHECK (requested_fen >= 0),
    approved_fen  INTEGER CHECK (approved_fen >= 0),
    quote         TEXT NOT NULL, -- Quote.model_dump_json()
    review_due    TEXT,
    payout_due    TEXT,
    appeal_count  INTEGER NOT NULL CHECK (appeal_count >= 0),
    assignee      INTEGER,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    version       INTEGER NOT NULL, -- optimistic locking: +1 on every update
    -- the target of the refunds' (ticket_no, order_id) foreign key: a refund's order is its ticket's
    UNIQUE (ticket_no, order_id)
) STRICT;

-- One open ticket per order. Keep the list equal to bot.domain.OPEN_STATUSES (a test checks it).
CREATE UNIQUE INDEX tickets_one_open_per_order ON tickets (order_id)
    WHERE status IN ('submitted', 'in_review', 'needs_info', 'approved', 'refunding', 'appealed',
                     'refund_failed');

CREATE INDEX tickets_customer ON tickets (customer_id, created_at);
CREATE INDEX tickets_order ON tickets (order_id, created_at);

-- Ticket numbers T{YYYYMMDD}-{NNNN}: one counter per Shanghai calendar day.
CREATE TABLE ticket_counters (
    day     TEXT PRIMARY KEY,
    last_no INTEGER NOT NULL CHECK (last_no >= 1)
) STRICT, WITHOUT ROWID;

CREATE TABLE evidence (
    evidence_id    INTEGER PRIMARY KEY,
    ticket_no      TEXT REFERENCES tickets (ticket_no),
    kind           TEXT NOT NULL,
    file_id        TEXT NOT NULL,
    file_unique_id TEXT NOT NULL,
    size_bytes     INTEGER NOT NULL CHECK (size_bytes >= 0),
    mime_type      TEXT,
    caption        TEXT,
    sha256         TEXT,
    added_at       TEXT NOT NULL
) STRICT;

CREATE INDEX evidence_ticket ON evidence (ticket_no, evidence_id);

CREATE TABLE ticket_events (
    event_id    INTEGER PRIMARY KEY,
    ticket_no   TEXT NOT NULL REFERENCES tickets (ticket_no),
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT,
    data        TEXT NOT NULL -- JSON object
) STRICT;

CREATE INDEX ticket_events_ticket ON ticket_events (ticket_no, at, event_id);

-- The audit trail is evidence in a dispute: no code path may rewrite or drop a line of it.
CREATE TRIGGER ticket_events_no_update BEFORE UPDATE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket_events_append_only');
END;

CREATE TRIGGER ticket_events_no_delete BEFORE DELETE ON ticket_events
BEGIN
    SELECT RAISE(ABORT, 'ticket_events_append_only');
END;

-- The refunds ledger. The idempotency key is saved before the money moves; a retry reuses it.
CREATE TABLE refunds (
    idempotency_key TEXT PRIMARY KEY,
    ticket_no       TEXT NOT NULL,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    channel         TEXT NOT NULL,
    -- the cap triggers count 'pending' and 'paid': no other spelling may slip past them
    state           TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'failed')),
    created_at      TEXT NOT NULL,
    FOREIGN KEY (ticket_no, order_id) REFERENCES tickets (ticket_no, order_id)
) STRICT;

CREATE INDEX refunds_order ON refunds (order_id, state);

-- The cap: pending + paid refunds of an order <= its cash paid. A retry with a key already in the
-- ledger is not a new refund (INSERT ... ON CONFLICT DO NOTHING must answer "already there", and
-- BEFORE INSERT triggers run before the conflict is detected), hence the NOT EXISTS.
CREATE TRIGGER refunds_cap_insert BEFORE INSERT ON refunds
WHEN NEW.state IN ('pending', 'paid')
    AND NOT EXISTS (SELECT 1 FROM refunds WHERE idempotency_key = NEW.idempotency_key)
    AND NEW.amount_fen + (
        SELECT coalesce(sum(amount_fen), 0) FROM refunds
        WHERE order_id = NEW.order_id AND state IN ('pending', 'paid')
    ) > (SELECT cash_paid_fen FROM orders WHERE order_id = NEW.order_id)
BEGIN
    SELECT RAISE(ABORT, 'refund_exceeds_cash_paid');
END;

CREATE TRIGGER refunds_cap_update BEFORE UPDATE OF state, amount_fen, order_id ON refunds
WHEN NEW.state IN ('pending', 'paid')
    AND NEW.amount_fen + (
        SELECT coalesce(sum(amount_fen), 0) FROM refunds
        WHERE order_id = NEW.order_id AND state IN ('pending', 'paid')
            AND idempotency_key <> OLD.idempotency_key
    ) > (SELECT cash_paid_fen FROM orders WHERE order_id = NEW.order_id)
BEGIN
    SELECT RAISE(ABORT, 'refund_exceeds_cash_paid');
END;

-- A re-import may correct an order's cash paid, but never below what is already refunded.
CREATE TRIGGER orders_cap_update BEFORE UPDATE OF cash_paid_fen ON orders
WHEN NEW.cash_paid_fen < (
    SELECT coalesce(sum(amount_fen), 0) FROM refunds
    WHERE order_id = NEW.order_id AND state IN ('pending', 'paid')
)
BEGIN
    SELECT RAISE(ABORT, 'refund_exceeds_cash_paid');
END;

CREATE TABLE conversations (
    channel     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    flow        TEXT NOT NULL,
    state       TEXT NOT NULL,
    data        TEXT NOT NULL, -- JSON object
    locale      TEXT,
    customer_id INTEGER REFERENCES customers (customer_id) ON DELETE SET NULL,
    version     INTEGER NOT NULL CHECK (version >= 1),
    updated_at  TEXT NOT NULL,
    remind_at   TEXT,
    PRIMARY KEY (channel, user_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX conversations_remind ON conversations (remind_at) WHERE remind_at IS NOT NULL;

-- Exactly once: an update seen twice (Telegram retries, a restart mid-turn) has effect once.
CREATE TABLE processed_updates (
    dedupe_key TEXT PRIMARY KEY,
    at         TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX processed_updates_at ON processed_updates (at);

-- Messages to deliver once the turn that produced them has committed.
CREATE TABLE outbox (
    outbox_id  INTEGER PRIMARY KEY,
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    payload    TEXT NOT NULL, -- JSON object, transport neutral
    created_at TEXT NOT NULL,
    sent_at    TEXT
) STRICT;

CREATE INDEX outbox_pending ON outbox (created_at, outbox_id) WHERE sent_at IS NULL;
