-- Lock releases: an appointment may carry releases of the customer's outgoing locks, signed by
-- the counterparty (137 bytes each: the lock as in `locks`, 72 bytes, then the 65-byte
-- signature), which the tower records in the vault once the channel is closed; empty when none
-- were sent. A newer appointment keeps the releases held. Rows written before this migration
-- have none: the layout is unchanged.
ALTER TABLE appointments ADD COLUMN releases BYTEA NOT NULL DEFAULT ''::bytea;
