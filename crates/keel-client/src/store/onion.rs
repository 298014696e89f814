//! The onions of locks in flight, kept so that a restart loses none (docs/protocol.md,
//! "Multi-hop payments over the wire"): each onion we send, stored with the update that adds
//! its lock (`lock_onions`, written by the writer with the update; see [`Store::enqueue_sent`])
//! and dropped once the peer acknowledged it; and the onion of a lock we received and wait to
//! forward (`incoming_onions`), dropped with the forward record or our release of the lock.

use std::collections::HashMap;

use keel_core::{
    forwarding::onion::{Packet, PACKET_LEN},
    B256,
};

use super::{DecodeError, Result, Store, StoreError};

/// A stored onion packet, if it has a packet's length.
fn packet_of(bytes: Vec<u8>) -> std::result::Result<Packet, ()> {
    <Box<[u8; PACKET_LEN]>>::try_from(bytes.into_boxed_slice())
        .map(Packet)
        .map_err(|_| ())
}

impl Store {
    /// The onions stored with our updates in `channel_id` with a nonce above `after`, by
    /// nonce: what leads each of those updates when a peer asks for it again. Reads committed
    /// rows only, like [`Store::sent_since`].
    pub async fn lock_onions(&self, channel_id: B256, after: u64) -> Result<HashMap<u64, Packet>> {
        let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
            "SELECT nonce, packet FROM lock_onions WHERE channel_id = ? AND nonce > ?",
        )
        .bind(channel_id.as_slice())
        .bind(i64::try_from(after).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(nonce, packet)| {
                let packet = packet_of(packet).map_err(|()| StoreError::Corrupt {
                    channel_id,
                    seq: None,
                    source: DecodeError::Invalid("lock onion length"),
                })?;
                Ok((nonce.unsigned_abs(), packet))
            })
            .collect()
    }

    /// Stores the onion of the peer's lock with `secret_hash` in `channel_id`, before a hop
    /// waits to forward it: a restart meanwhile finds it ([`Store::incoming_onions`]). The
    /// forward record, or our release of the lock, drops it in the same transaction. Durable
    /// when it returns.
    pub async fn put_incoming_onion(
        &self,
        channel_id: B256,
        secret_hash: B256,
        packet: &Packet,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO incoming_onions (secret_hash, channel_id, packet) VALUES (?, ?, ?) \
             ON CONFLICT (secret_hash, channel_id) DO UPDATE SET packet = excluded.packet",
        )
        .bind(secret_hash.as_slice())
        .bind(channel_id.as_slice())
        .bind(packet.0.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every stored onion of a lock the peer sent us that we had not forwarded yet, as
    /// (channel, secret hash, packet): what a restarted hop forwards. Committed rows only.
    pub async fn incoming_onions(&self) -> Result<Vec<(B256, B256, Packet)>> {
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT channel_id, secret_hash, packet FROM incoming_onions")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(channel, hash, packet)| {
                let channel_id = B256::try_from(channel.as_slice()).unwrap_or_default();
                let corrupt = |what| StoreError::Corrupt {
                    channel_id,
                    seq: None,
                    source: DecodeError::Invalid(what),
                };
                let hash = B256::try_from(hash.as_slice()).map_err(|_| corrupt("secret hash"))?;
                if channel.len() != 32 {
                    return Err(corrupt("channel id"));
                }
                let packet = packet_of(packet).map_err(|()| corrupt("onion length"))?;
                Ok((channel_id, hash, packet))
            })
            .collect()
    }

    /// Drops the stored onion of the peer's lock with `secret_hash` in `channel_id`: the lock
    /// is gone, or was acted on. Durable when it returns.
    pub async fn drop_incoming_onion(&self, channel_id: B256, secret_hash: B256) -> Result<()> {
        sqlx::query("DELETE FROM incoming_onions WHERE secret_hash = ? AND channel_id = ?")
            .bind(secret_hash.as_slice())
            .bind(channel_id.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
