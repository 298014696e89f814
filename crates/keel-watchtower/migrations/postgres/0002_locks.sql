-- Locks (issue 18): an appointment may carry the locks behind its proof's locks root (72 bytes
-- each: expiration 8 big-endian, amount 32, secret hash 32) and the secrets the customer knows
-- for them (32 bytes each); both empty when not sent. Still one row per (channel, customer).
ALTER TABLE appointments ADD COLUMN locks BYTEA NOT NULL DEFAULT ''::bytea;
ALTER TABLE appointments ADD COLUMN secrets BYTEA NOT NULL DEFAULT ''::bytea;

-- The lock state a settled channel's last `LocksRetained` or `Unlocked` event published: what
-- `unlock` passes back to the vault. Pruned with the channel once nothing the tower holds is
-- left to unlock.
CREATE TABLE lock_states (
    channel_id BYTEA PRIMARY KEY,
    -- abi.encode(LockState), as the vault hashes it.
    state      BYTEA NOT NULL,
    layout     BIGINT NOT NULL
);
