-- The watchtower's storage in PostgreSQL (src/store/postgres.rs), the same tables as SQLite's
-- (../sqlite) with the same byte encodings, so one decoder reads both: every row carries
-- `layout`, the version of its byte encodings; addresses are 20-byte, hashes 32-byte, amounts
-- 32-byte big-endian BYTEA; nonces 8-byte big-endian BYTEA (a u64 does not fit BIGINT, and
-- big-endian bytes compare as the numbers do); times are BIGINT unix seconds (claims: ms).

-- Customers who proved their address (a `TowerRegistration` signature) and how many channels
-- each may have watched. `put` locks a customer's row while it checks the nonce and quota.
CREATE TABLE customers (
    customer      BYTEA PRIMARY KEY,
    quota         BIGINT NOT NULL,
    registered_at BIGINT NOT NULL,
    layout        BIGINT NOT NULL
);

-- One row per (channel, customer): the newest balance proof the customer received, with the
-- sender's signature and the customer's TowerAuthorisation over it, and the receipt the tower
-- signed. A newer proof replaces the row; so storage is O(1) per watched channel.
CREATE TABLE appointments (
    channel_id        BYTEA NOT NULL,
    customer          BYTEA NOT NULL,
    participant_a     BYTEA NOT NULL,
    participant_b     BYTEA NOT NULL,
    token             BYTEA NOT NULL,
    challenge_period  BIGINT NOT NULL,
    salt              BYTEA NOT NULL,
    vault             BYTEA NOT NULL,
    nonce             BYTEA NOT NULL,
    transferred       BYTEA NOT NULL,
    locked            BYTEA NOT NULL,
    locks_root        BYTEA NOT NULL,
    sender_signature  BYTEA NOT NULL,
    authorisation     BYTEA NOT NULL,
    accepted_at       BIGINT NOT NULL,
    watch_until       BIGINT NOT NULL,
    receipt_signature BYTEA NOT NULL,
    layout            BIGINT NOT NULL,
    PRIMARY KEY (channel_id, customer)
);
CREATE INDEX appointments_by_customer ON appointments (customer);

-- The dispute state a watched channel's last `Closed` or `Refuted` event published: what a
-- refutation passes back to the vault. Every instance's follower writes the same state.
CREATE TABLE disputes (
    channel_id BYTEA PRIMARY KEY,
    -- abi.encode(DisputeState), as the vault hashes it.
    state      BYTEA NOT NULL,
    deadline   BIGINT NOT NULL,
    layout     BIGINT NOT NULL
);

-- What the tower did for a customer in a dispute: the latest attempt's outcome.
CREATE TABLE responses (
    channel_id BYTEA NOT NULL,
    customer   BYTEA NOT NULL,
    nonce      BYTEA NOT NULL,
    -- 'sending', 'mined', 'rejected', 'failed', 'missed'.
    outcome    TEXT NOT NULL,
    tx_hash    BYTEA,
    detail     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, customer)
);

-- Which instance is responding for a customer in a dispute, until `expires_at` (unix ms): the
-- holder renews it while it works; once it runs out another instance may take the claim.
CREATE TABLE claims (
    channel_id BYTEA NOT NULL,
    customer   BYTEA NOT NULL,
    holder     TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, customer)
);

-- The chain follower's checkpoint (keel-chain's `monitor::Checkpoints`), one row per chain.
-- Every instance follows the chain itself; they share the row, so a restarted instance
-- starts from wherever the furthest one saved (each event it needs is already stored).
CREATE TABLE chain_checkpoints (
    chain_id BIGINT PRIMARY KEY,
    block    BIGINT NOT NULL,
    hash     BYTEA NOT NULL
);
