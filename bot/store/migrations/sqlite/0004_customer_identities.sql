-- 0004: a customer is found by a channel-neutral identity (channel, the user's id in it), so that
-- the engine need not know which messenger it serves. Telegram's links move over as they are.
CREATE TABLE customer_identities (
    channel     TEXT NOT NULL CHECK (channel <> ''),
    user_id     TEXT NOT NULL CHECK (user_id <> ''),
    customer_id INTEGER NOT NULL REFERENCES customers (customer_id) ON DELETE CASCADE,
    PRIMARY KEY (channel, user_id)
) STRICT;

INSERT INTO customer_identities (channel, user_id, customer_id)
    SELECT 'telegram', CAST(telegram_user_id AS TEXT), customer_id FROM telegram_links;

DROP TABLE telegram_links;

CREATE INDEX customer_identities_customer ON customer_identities (customer_id);
