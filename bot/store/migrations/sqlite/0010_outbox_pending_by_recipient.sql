-- 0010: a recipient's pending messages by an index of their own. The outbox lease reads one
-- recipient's queue on every delivery; through outbox_pending (every pending message, by time)
-- that read filtered the whole queue, and on PostgreSQL also walked the index entries of messages
-- sent since the last vacuum (an UPDATE of sent_at leaves them behind): 0.7 ms a read after
-- 3,000 deliveries. outbox_pending stays for the sweep, which reads every recipient's.
CREATE INDEX outbox_pending_recipient ON outbox (channel, recipient, created_at, outbox_id)
    WHERE sent_at IS NULL;
