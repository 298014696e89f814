-- The watchtower's storage (src/store/sqlite.rs). Every row carries `layout`, the version of its
-- byte encodings, so a later build can migrate rather than misread it. Addresses are 20-byte,
-- hashes 32-byte, amounts 32-byte big-endian BLOBs; nonces are 8-byte big-endian BLOBs (a u64
-- does not fit SQLite's signed integers, and big-endian bytes compare as the numbers do).

-- Customers who proved their address (a `TowerRegistration` signature) and how many channels
-- each may have watched.
CREATE TABLE customers (
    customer      BLOB PRIMARY KEY NOT NULL,
    quota         INTEGER NOT NULL,
    registered_at INTEGER NOT NULL,
    layout        INTEGER NOT NULL
) STRICT;

-- One row per (channel, customer): the newest balance proof the customer received, with the
-- sender's signature and the customer's TowerAuthorisation over it, and the receipt the tower
-- signed. A newer proof replaces the row; so storage is O(1) per watched channel.
CREATE TABLE appointments (
    channel_id        BLOB NOT NULL,
    customer          BLOB NOT NULL,
    participant_a     BLOB NOT NULL,
    participant_b     BLOB NOT NULL,
    token             BLOB NOT NULL,
    challenge_period  INTEGER NOT NULL,
    salt              BLOB NOT NULL,
    vault             BLOB NOT NULL,
    nonce             BLOB NOT NULL,
    transferred       BLOB NOT NULL,
    locked            BLOB NOT NULL,
    locks_root        BLOB NOT NULL,
    sender_signature  BLOB NOT NULL,
    authorisation     BLOB NOT NULL,
    accepted_at       INTEGER NOT NULL,
    watch_until       INTEGER NOT NULL,
    receipt_signature BLOB NOT NULL,
    layout            INTEGER NOT NULL,
    PRIMARY KEY (channel_id, customer)
) STRICT;
CREATE INDEX appointments_by_customer ON appointments (customer);

-- The dispute state a watched channel's last `Closed` or `Refuted` event published: what a
-- refutation passes back to the vault.
CREATE TABLE disputes (
    channel_id BLOB PRIMARY KEY NOT NULL,
    -- abi.encode(DisputeState), as the vault hashes it.
    state      BLOB NOT NULL,
    deadline   INTEGER NOT NULL,
    layout     INTEGER NOT NULL
) STRICT;

-- What the tower did for a customer in a dispute: the latest attempt's outcome.
CREATE TABLE responses (
    channel_id BLOB NOT NULL,
    customer   BLOB NOT NULL,
    nonce      BLOB NOT NULL,
    -- 'sent', 'mined', 'rejected', 'failed', 'missed'.
    outcome    TEXT NOT NULL,
    tx_hash    BLOB,
    detail     TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, customer)
) STRICT;

-- The chain follower's checkpoint (keel-chain's `monitor::Checkpoints`), one row per chain.
CREATE TABLE chain_checkpoints (
    chain_id INTEGER PRIMARY KEY NOT NULL,
    block    INTEGER NOT NULL,
    hash     BLOB NOT NULL
) STRICT;
