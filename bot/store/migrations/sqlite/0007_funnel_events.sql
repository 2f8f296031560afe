-- 0007 (0009 once 0007 and 0008 are merged): the conversation funnel, for reports (issue 16).
--
-- One row each time a conversation reaches a step of the application (started, saw the pre-check,
-- uploaded evidence, submitted) or was handed to a person (step 'handoff', detail = why), written
-- by the engine in the turn's own transaction. Submitted → approved → paid is read from tickets.
CREATE TABLE funnel_events (
    event_id INTEGER PRIMARY KEY,
    channel  TEXT NOT NULL,
    user_id  TEXT NOT NULL,
    step     TEXT NOT NULL,
    detail   TEXT,
    at       TEXT NOT NULL
) STRICT;

CREATE INDEX funnel_events_at ON funnel_events (at);
