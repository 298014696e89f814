-- Receipts from a tower's batch endpoint are signed together: the tower signs the root of a
-- Merkle tree over the batch's receipt digests (keel_core::receipts), and each receipt comes
-- with its path to that root. NULL: `signature` is over the receipt alone, as before.
ALTER TABLE tower_receipts ADD COLUMN batch_path BLOB;
