-- 0005: the compensation ledger (CPL Art. 53: interest on a prepayment and reasonable costs).
--
-- Kept apart from `refunds` on purpose: the refunds' cap triggers (pending + paid <= cash paid)
-- bound the price refund only, and compensation is paid on top of it, capped per ticket and kind
-- by the policy in config.yaml (checked by the rules before a row is written). Each row is a
-- payout of its own with an idempotency key saved before the money moves, like a refund.
CREATE TABLE compensations (
    idempotency_key TEXT PRIMARY KEY,
    ticket_no       TEXT NOT NULL,
    order_id        TEXT NOT NULL REFERENCES orders (order_id),
    kind            TEXT NOT NULL CHECK (kind IN ('interest', 'costs')),
    amount_fen      INTEGER NOT NULL CHECK (amount_fen > 0),
    channel         TEXT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN ('pending', 'paid', 'failed')),
    actor           TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    FOREIGN KEY (ticket_no, order_id) REFERENCES tickets (ticket_no, order_id)
) STRICT;

CREATE INDEX compensations_ticket ON compensations (ticket_no, created_at);
