-- The channel store (src/store): per channel, an opening record and an append-only log of the
-- events applied to it. Both blobs start with a format version byte (src/store/codec.rs), so
-- their layout can change without a schema change.

-- One row per channel.
CREATE TABLE channels (
    -- The 32-byte channel id.
    id      BLOB PRIMARY KEY NOT NULL,
    -- version ‖ chain id, factory, implementation, parameters, our side, policy.
    opening BLOB NOT NULL
) STRICT;

-- Applied events, replayed in `seq` order (rows are never updated or deleted).
CREATE TABLE events (
    seq        INTEGER PRIMARY KEY,
    channel_id BLOB NOT NULL REFERENCES channels (id),
    -- version ‖ kind ‖ fields.
    body       BLOB NOT NULL
) STRICT;

CREATE INDEX events_by_channel ON events (channel_id, seq);
