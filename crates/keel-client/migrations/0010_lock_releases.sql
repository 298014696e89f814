-- Locks given up before they expired (keel-core's LockRelease, src/store/release.rs). A row
-- with `outgoing` = 1 is a release of a lock we sent, signed by its receiver: what a dispute
-- submits to the vault's releaseLocks so an older proof holding the lock cannot pay for it. A
-- row with `outgoing` = 0 is one we signed for a lock we received: we never claim that lock.
CREATE TABLE lock_releases (
    -- The 32-byte channel id and the lock's secret hash.
    channel_id  BLOB NOT NULL,
    secret_hash BLOB NOT NULL,
    -- 1: our lock, released by the peer; 0: the peer's lock, released by us.
    outgoing    INTEGER NOT NULL,
    -- The lock: its amount (32-byte big-endian) and expiration (unix s).
    amount      BLOB NOT NULL,
    expiration  INTEGER NOT NULL,
    -- The receiver's 65-byte signature over the LockRelease.
    signature   BLOB NOT NULL,
    PRIMARY KEY (channel_id, secret_hash, outgoing)
) STRICT;
