-- 0005: the compensation ledger (CPL Art. 53: interest on a prepayment and reasonable costs).
-- PostgreSQL spelling of sqlite/0005: apart from `refunds` and their cap on purpose; capped per
-- ticket and kind by the policy (checked by the rules before a row is written).
CREATE TABLE compensations (
    idempotency_key text PRIMARY KEY,
    ticket_no       text NOT NULL,
    order_id        text NOT NULL REFERENCES orders (order_id),
    kind            text NOT NULL CHECK (kind IN ('interest', 'costs')),
    amount_fen      bigint NOT NULL CHECK (amount_fen > 0),
    channel         text NOT NULL,
    state           text NOT NULL CHECK (state IN ('pending', 'paid', 'failed')),
    actor           text NOT NULL,
    created_at      timestamptz NOT NULL,
    FOREIGN KEY (ticket_no, order_id) REFERENCES tickets (ticket_no, order_id)
);

CREATE INDEX compensations_ticket ON compensations (ticket_no, created_at);
