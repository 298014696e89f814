-- Multi-hop payments (src/store/forward.rs). `forwards`: per lock we received and forwarded,
-- the pairing with the lock we added downstream, written in the same transaction as that lock
-- (so a restarted hub finds every forward it made) and updated when the secret comes back or
-- the downstream lock fails. `invoices`: the payment requests we issued, with their secrets.
-- Both `body` blobs start with a format version byte.
CREATE TABLE forwards (
    -- The channel the incoming lock arrived on, and the lock's secret hash.
    incoming_channel BLOB NOT NULL,
    secret_hash      BLOB NOT NULL,
    -- version ‖ incoming lock ‖ outgoing channel and lock ‖ state (pending, settled, failed).
    body             BLOB NOT NULL,
    PRIMARY KEY (incoming_channel, secret_hash)
) STRICT;

CREATE TABLE invoices (
    -- The payment hash (sha256 of the secret).
    payment_hash BLOB PRIMARY KEY NOT NULL,
    -- version ‖ secret ‖ amount ‖ expiry ‖ paid.
    body         BLOB NOT NULL
) STRICT;
