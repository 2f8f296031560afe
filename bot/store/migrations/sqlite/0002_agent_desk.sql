-- 0002: the agent desk (SPEC §4).
--
-- A case is what the agents see of one ticket (or of one customer without a ticket): the forum
-- topic it lives in and its case card, kept so that a later handoff of the same ticket reuses the
-- topic. Conventions as in 0001 (UTC ISO-8601 text moments, no CHECK on enum-like text).

CREATE TABLE desk_cases (
    case_id         INTEGER PRIMARY KEY,
    ticket_no       TEXT UNIQUE REFERENCES tickets (ticket_no),
    customer_id     INTEGER REFERENCES customers (customer_id),
    -- the customer's conversation the case talks to (NULL until one is known)
    channel         TEXT,
    user_id         TEXT,
    reason          TEXT NOT NULL,
    -- where the card was posted: the agent chat, its forum topic (NULL: the group has no topics)
    chat_id         INTEGER,
    thread_id       INTEGER,
    card_message_id INTEGER,
    -- a fresh card is to be posted (a new case, a new handoff, an agent asked to open it)
    card_due        INTEGER NOT NULL CHECK (card_due IN (0, 1)),
    -- the agent who joined the customer's current handoff (NULL: nobody yet)
    joined_by       INTEGER,
    handoff_at      TEXT,
    opened_at       TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    CHECK ((channel IS NULL) = (user_id IS NULL))
) STRICT;

-- A customer without a ticket has one case: by customer once linked, by conversation before.
CREATE UNIQUE INDEX desk_cases_customer ON desk_cases (customer_id)
    WHERE ticket_no IS NULL AND customer_id IS NOT NULL;
CREATE UNIQUE INDEX desk_cases_anonymous ON desk_cases (channel, user_id)
    WHERE ticket_no IS NULL AND customer_id IS NULL;
CREATE INDEX desk_cases_conversation ON desk_cases (channel, user_id, handoff_at);
CREATE INDEX desk_cases_thread ON desk_cases (chat_id, thread_id) WHERE thread_id IS NOT NULL;
CREATE INDEX desk_cases_due ON desk_cases (case_id) WHERE card_due = 1;

-- Messages in the agent chat that belong to a case. A group without topics has no thread to tell
-- the cases apart: an agent's reply to one of these messages is the conversation of its case.
CREATE TABLE desk_messages (
    chat_id    INTEGER NOT NULL,
    message_id INTEGER NOT NULL,
    case_id    INTEGER NOT NULL REFERENCES desk_cases (case_id),
    PRIMARY KEY (chat_id, message_id)
) STRICT, WITHOUT ROWID;

-- The agents' display names as Telegram last showed them (the queue says who holds a ticket).
CREATE TABLE desk_agents (
    user_id INTEGER PRIMARY KEY,
    name    TEXT NOT NULL
) STRICT;
