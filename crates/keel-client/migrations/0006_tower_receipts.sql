-- The tower client (src/client/tower.rs): per watchtower and channel, the newest receipt the
-- tower signed for an appointment of ours, kept so we can prove what it promised. Overwritten
-- only by a receipt for a higher nonce, so the table grows with channels, not payments.
CREATE TABLE tower_receipts (
    -- The tower's 20-byte address (the receipt's signer).
    tower       BLOB NOT NULL,
    -- The 32-byte channel id.
    channel_id  BLOB NOT NULL,
    -- Our 20-byte address, as the receipt names it.
    customer    BLOB NOT NULL,
    -- The nonce of the proof the tower holds.
    nonce       INTEGER NOT NULL,
    -- Unix seconds.
    accepted_at INTEGER NOT NULL,
    -- Unix seconds: the last close the tower promised to answer.
    watch_until INTEGER NOT NULL,
    -- The tower's 65-byte signature under the channel's EIP-712 domain.
    signature   BLOB NOT NULL,
    PRIMARY KEY (tower, channel_id)
) STRICT;
