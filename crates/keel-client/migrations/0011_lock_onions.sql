-- The onion of each lock we send (src/store, `Store::enqueue_sent`), written in the same
-- transaction as the update that adds the lock. A peer that lost the update (a dropped
-- connection, or our restart before it left) asks for it again on its next Resync and gets the
-- onion with it; without the onion it would hold a lock it cannot forward or claim until it
-- expires. Rows the peer has acknowledged are pruned when the next onion is written, so a
-- channel keeps at most its window of unacknowledged updates.
CREATE TABLE lock_onions (
    channel_id BLOB NOT NULL REFERENCES channels (id),
    -- Our proof's nonce for the update adding the lock.
    nonce      INTEGER NOT NULL,
    -- The packet as the next hop receives it (keel-core's onion::PACKET_LEN bytes).
    packet     BLOB NOT NULL,
    PRIMARY KEY (channel_id, nonce)
) STRICT;
