-- 0009: what the Telegram adapter kept per worker moves to the database (issue 13), so that
-- several workers on one database behave as one. Conventions as in 0001.

-- The parts of an album (a media group: one update per file) waiting to be handed to the engine
-- as one turn, stored before the update is acknowledged. `payload` is the update as received
-- (JSON text), parsed again by whichever worker hands the album over; `dedupe_key` is its
-- update's key in processed_updates, recorded when the part is handed over.
CREATE TABLE album_parts (
    channel     TEXT NOT NULL,
    chat        TEXT NOT NULL,
    group_id    TEXT NOT NULL,
    update_id   INTEGER NOT NULL,
    dedupe_key  TEXT NOT NULL,
    payload     TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (channel, update_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX album_parts_chat ON album_parts (channel, chat);

-- What a recipient's chat may still show, read and written by the holder of its outbox lease:
-- a contact-request reply keyboard, which the next reply without buttons takes away.
CREATE TABLE recipient_state (
    channel        TEXT NOT NULL,
    recipient      TEXT NOT NULL,
    reply_keyboard INTEGER NOT NULL DEFAULT 0 CHECK (reply_keyboard IN (0, 1)),
    PRIMARY KEY (channel, recipient)
) STRICT, WITHOUT ROWID;
