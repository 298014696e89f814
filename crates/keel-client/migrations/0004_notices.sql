-- The durable event log (src/client/events.rs): every `ClientEvent` about a channel, written in
-- the same transaction as the store event it reports, numbered by `seq`; and per named
-- consumer the last `seq` it handled, so a consumer that lagged or restarted resumes after it.
CREATE TABLE notices (
    -- The event's sequence number: increasing, never reused.
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    -- version ‖ kind ‖ fields (src/client/notice.rs).
    body BLOB NOT NULL
) STRICT;

-- One row per named consumer.
CREATE TABLE cursors (
    name TEXT PRIMARY KEY NOT NULL,
    -- The last event it handled.
    seq  INTEGER NOT NULL
) STRICT;
