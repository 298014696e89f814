-- The onion of a lock the peer sent us that we are waiting to forward (the next peer offline,
-- or its window full), stored before the wait (src/store, `Store::put_incoming_onion`): a
-- restart meanwhile finds it and forwards the lock then, instead of holding a lock it can
-- neither forward nor claim until it expires. A lock forwarded at once is written right behind
-- the incoming one (usually in the same commit) and needs no row. A row goes in the same
-- transaction as the forward record or our release of the lock, and at start for locks no
-- longer pending.
CREATE TABLE incoming_onions (
    secret_hash BLOB NOT NULL,
    channel_id  BLOB NOT NULL REFERENCES channels (id),
    -- The packet as it reached us (keel-core's onion::PACKET_LEN bytes).
    packet      BLOB NOT NULL,
    PRIMARY KEY (secret_hash, channel_id)
) STRICT;
