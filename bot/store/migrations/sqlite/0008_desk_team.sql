-- 0008 (issue 15 numbers it 0008; renumbered at merge): the agent desk for a team (issue 15): the case's log (notes, messages both ways), who is
-- on duty, blocked customers and the customers' ratings. Conventions as in 0001.

-- One line of a case's history that is not a ticket event: an agents' note (never sent), a
-- message an agent sent to the customer, a customer's message copied to the agents.
CREATE TABLE desk_log (
    entry_id INTEGER PRIMARY KEY,
    case_id  INTEGER NOT NULL REFERENCES desk_cases (case_id),
    at       TEXT NOT NULL,
    actor    TEXT NOT NULL,
    kind     TEXT NOT NULL,
    text     TEXT NOT NULL
) STRICT;
CREATE INDEX desk_log_case ON desk_log (case_id, entry_id);

-- Agents on duty take new cases round-robin: the one assigned longest ago comes next.
ALTER TABLE desk_agents ADD COLUMN on_duty INTEGER NOT NULL DEFAULT 0 CHECK (on_duty IN (0, 1));
ALTER TABLE desk_agents ADD COLUMN assigned_at TEXT;

-- A blocked customer's chat gets a fixed polite answer and cannot start applications.
CREATE TABLE desk_blocks (
    channel TEXT NOT NULL,
    user_id TEXT NOT NULL,
    reason  TEXT NOT NULL,
    actor   TEXT NOT NULL,
    at      TEXT NOT NULL,
    PRIMARY KEY (channel, user_id)
) STRICT, WITHOUT ROWID;

-- A customer's rating of a ticket that ended (asked once per ticket), for the reports.
CREATE TABLE ratings (
    ticket_no TEXT PRIMARY KEY REFERENCES tickets (ticket_no),
    score     INTEGER NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment   TEXT,
    at        TEXT NOT NULL
) STRICT;
CREATE INDEX ratings_at ON ratings (at);
