-- The assets a hub forwards from into each channel, and at what rate (ForwardPolicy::rates):
-- a cross-chain or cross-token hop is forwarded only at a rate stored here. One row per channel
-- and incoming asset, written with the channel's forward_policies row; a channel's own asset
-- always goes 1:1 and has no row.
CREATE TABLE forward_rates (
    -- The 32-byte id of the channel forwarded into.
    channel_id  BLOB NOT NULL,
    -- The incoming asset: its chain id and its 20-byte token (zero for the native coin).
    chain_id    INTEGER NOT NULL,
    token       BLOB NOT NULL,
    -- Upstream units of the incoming asset per downstream units of the channel's, 32-byte
    -- big-endian each, both positive.
    upstream    BLOB NOT NULL,
    downstream  BLOB NOT NULL,
    PRIMARY KEY (channel_id, chain_id, token)
) STRICT;

-- 0007's single rate named no asset: a hop within one asset is always 1:1, and one across
-- assets takes its rate from forward_rates.
ALTER TABLE forward_policies DROP COLUMN rate_upstream;
ALTER TABLE forward_policies DROP COLUMN rate_downstream;
