-- What the tower did for a customer's locks (issue 18): the latest transaction of each step
-- ('registered' its secrets, 'settled' the channel, 'unlocked' its locks), shown by
-- GET /v1/channels/{id} and pruned with the channel.
CREATE TABLE lock_steps (
    channel_id BYTEA NOT NULL,
    customer   BYTEA NOT NULL,
    step       TEXT NOT NULL,
    tx_hash    BYTEA NOT NULL,
    detail     TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (channel_id, customer, step)
);
