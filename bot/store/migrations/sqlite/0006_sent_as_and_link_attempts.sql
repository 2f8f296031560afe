-- 0006: evidence remembers how the messenger sent it, and order-number checks count per order.
--
-- sent_as: Telegram refuses to send a document's file_id as a photo, so a screenshot sent "as a
-- file" (an image document) must be re-sent as a document, whatever its evidence kind. NULL for
-- evidence stored before: it is re-sent by its kind, as it was.
-- link_attempts: failed order-number + phone-digit checks per order, across every account, so a
-- new account does not get five more guesses at the same order; locked_at starts the pause.
ALTER TABLE evidence ADD COLUMN sent_as TEXT
    CHECK (sent_as IN ('photo', 'document', 'video', 'video_note', 'audio', 'voice'));

CREATE TABLE link_attempts (
    order_id  TEXT PRIMARY KEY REFERENCES orders (order_id) ON DELETE CASCADE,
    failures  INTEGER NOT NULL CHECK (failures >= 0),
    locked_at TEXT
) STRICT;
