-- The chain monitor (src/chain/monitor): per chain, the last block whose events were delivered
-- and processed, and that block's hash, so a restarted monitor resumes after it and can tell
-- whether a reorganisation replaced it in the meantime.
CREATE TABLE chain_checkpoints (
    chain_id INTEGER PRIMARY KEY NOT NULL,
    -- Block number.
    block    INTEGER NOT NULL,
    -- The block's 32-byte hash.
    hash     BLOB NOT NULL
) STRICT;
