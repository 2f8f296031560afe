-- 0006: evidence remembers how the messenger sent it, and order-number checks count per order.
-- PostgreSQL spelling of sqlite/0006 (see there for why).
ALTER TABLE evidence ADD COLUMN sent_as text
    CHECK (sent_as IN ('photo', 'document', 'video', 'video_note', 'audio', 'voice'));

CREATE TABLE link_attempts (
    order_id  text PRIMARY KEY REFERENCES orders (order_id) ON DELETE CASCADE,
    failures  bigint NOT NULL CHECK (failures >= 0),
    locked_at timestamptz
);
