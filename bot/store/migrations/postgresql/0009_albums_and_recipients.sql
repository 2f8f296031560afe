-- 0009: what the Telegram adapter kept per worker moves to the database (issue 13), PostgreSQL
-- spelling of sqlite/0009.

CREATE TABLE album_parts (
    channel     text NOT NULL,
    chat        text NOT NULL,
    group_id    text NOT NULL,
    update_id   bigint NOT NULL,
    dedupe_key  text NOT NULL,
    payload     text NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (channel, update_id)
);
CREATE INDEX album_parts_chat ON album_parts (channel, chat);

CREATE TABLE recipient_state (
    channel        text NOT NULL,
    recipient      text NOT NULL,
    reply_keyboard boolean NOT NULL DEFAULT false,
    PRIMARY KEY (channel, recipient)
);
