-- Snapshots (src/store): per channel, its state after the event `seq`, so a restart replays
-- only the events after it. `state` starts with a format version byte (src/store/codec.rs).
CREATE TABLE snapshots (
    channel_id BLOB PRIMARY KEY NOT NULL REFERENCES channels (id),
    -- The last event the snapshot includes.
    seq        INTEGER NOT NULL,
    -- version ‖ progress ‖ chain status.
    state      BLOB NOT NULL
) STRICT;
