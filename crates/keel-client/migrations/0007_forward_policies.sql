-- What the operator charges for forwarding into each channel (Client::set_forward_policy), so a
-- restarted hub announces and applies the same fees. One row per channel; channels without a
-- row use Config::forward_policy.
CREATE TABLE forward_policies (
    -- The 32-byte channel id.
    channel_id       BLOB PRIMARY KEY,
    -- The fee's base, a 32-byte big-endian amount of the channel's asset.
    fee_base         BLOB NOT NULL,
    -- The proportional fee, in millionths of the amount forwarded.
    fee_millionths   INTEGER NOT NULL,
    -- The exchange rate: upstream units per downstream units, 32-byte big-endian each.
    rate_upstream    BLOB NOT NULL,
    rate_downstream  BLOB NOT NULL,
    -- Seconds the incoming lock must outlive the outgoing one.
    expiry_delta     INTEGER NOT NULL
) STRICT;
