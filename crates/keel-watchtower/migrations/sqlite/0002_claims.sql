-- Who is responding for a customer in a dispute: one tower instance at a time holds the claim
-- until `expires_at` (unix ms) and renews it while it works; once the lease runs out another
-- instance may take it. With SQLite (one instance) the row only mirrors PostgreSQL's.
CREATE TABLE claims (
    channel_id BLOB NOT NULL,
    customer   BLOB NOT NULL,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, customer)
) STRICT;
