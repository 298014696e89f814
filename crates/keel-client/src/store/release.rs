//! Locks given up before they expired (keel-core's `LockRelease`), both ways: releases of our
//! locks signed by their receiver, which a dispute submits to the vault, and releases we signed,
//! which keep us from claiming those locks. Written straight through the pool, like forward
//! policies: a release is not part of any channel's log, and it is durable when the call
//! returns, before the release is sent or acted on.

use keel_core::{wire::Signature, LockRelease, B256, U256};

use super::{Result, Store, StoreError};

/// Which way a stored release goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    /// A lock we sent, released by the peer (we hold its signature).
    Outgoing,
    /// A lock the peer sent, released by us.
    Incoming,
}

impl Released {
    const fn flag(self) -> i64 {
        match self {
            Self::Outgoing => 1,
            Self::Incoming => 0,
        }
    }
}

type Row = (Vec<u8>, Vec<u8>, i64, Vec<u8>);

impl Store {
    /// Stores `release` of a lock in `channelId` with its receiver's `signature`; durable when
    /// it returns. Storing the same release again changes nothing.
    pub async fn put_release(
        &self,
        way: Released,
        release: &LockRelease,
        signature: &Signature,
    ) -> Result<()> {
        let expiration = i64::try_from(release.expiration).map_err(|_| {
            StoreError::Database(sqlx::Error::Encode(
                format!(
                    "lock expiration {} exceeds SQLite's range",
                    release.expiration
                )
                .into(),
            ))
        })?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO lock_releases \
             (channel_id, secret_hash, outgoing, amount, expiration, signature) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(release.channelId.as_slice())
        .bind(release.secretHash.as_slice())
        .bind(way.flag())
        .bind(release.amount.to_be_bytes::<32>().to_vec())
        .bind(expiration)
        .bind(signature.as_slice())
        .execute(&mut *tx)
        .await?;
        if way == Released::Incoming {
            // We will never claim the lock: its onion is not needed again.
            sqlx::query("DELETE FROM incoming_onions WHERE secret_hash = ? AND channel_id = ?")
                .bind(release.secretHash.as_slice())
                .bind(release.channelId.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether the lock with `secret_hash` in `channel_id` was released (`way`).
    pub async fn is_released(
        &self,
        way: Released,
        channel_id: B256,
        secret_hash: B256,
    ) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT 1 FROM lock_releases WHERE channel_id = ? AND secret_hash = ? AND outgoing = ?",
        )
        .bind(channel_id.as_slice())
        .bind(secret_hash.as_slice())
        .bind(way.flag())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    /// The releases of our locks in `channel_id` that the peer signed, oldest first.
    pub async fn outgoing_releases(
        &self,
        channel_id: B256,
    ) -> Result<Vec<(LockRelease, Signature)>> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT secret_hash, amount, expiration, signature FROM lock_releases \
             WHERE channel_id = ? AND outgoing = 1 ORDER BY rowid",
        )
        .bind(channel_id.as_slice())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(hash, amount, expiration, signature)| {
                let corrupt = |what: &str| {
                    StoreError::Database(sqlx::Error::Decode(
                        format!("lock release in {channel_id}: invalid {what}").into(),
                    ))
                };
                Ok((
                    LockRelease {
                        channelId: channel_id,
                        secretHash: B256::try_from(hash.as_slice())
                            .map_err(|_| corrupt("secret hash"))?,
                        amount: <[u8; 32]>::try_from(amount.as_slice())
                            .map(U256::from_be_bytes)
                            .map_err(|_| corrupt("amount"))?,
                        expiration: u64::try_from(expiration).map_err(|_| corrupt("expiration"))?,
                    },
                    Signature::try_from(signature.as_slice()).map_err(|_| corrupt("signature"))?,
                ))
            })
            .collect()
    }
}
