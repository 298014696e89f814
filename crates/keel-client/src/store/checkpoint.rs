//! How far the chain monitor has got on each chain.
//!
//! One row per chain, overwritten as the monitor advances. Written straight through the pool
//! rather than the event writer: a checkpoint is not part of any channel's log, is written at
//! most once per monitor batch, and SQLite serialises it with the writer's commits.

use keel_core::B256;

use super::{Result, Store, StoreError};
pub use crate::chain::monitor::Checkpoint;
use crate::chain::monitor::{BoxFuture, CheckpointError, Checkpoints};

impl Store {
    /// The checkpoint saved for `chain_id`, if any.
    pub async fn checkpoint(&self, chain_id: u64) -> Result<Option<Checkpoint>> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT block, hash FROM chain_checkpoints WHERE chain_id = ?")
                .bind(to_sql(chain_id)?)
                .fetch_optional(&self.pool)
                .await?;
        let Some((block, hash)) = row else {
            return Ok(None);
        };
        let corrupt = |what: &str| {
            StoreError::Database(sqlx::Error::Decode(
                format!("chain {chain_id} checkpoint: invalid {what}").into(),
            ))
        };
        Ok(Some(Checkpoint {
            block: u64::try_from(block).map_err(|_| corrupt("block number"))?,
            hash: B256::try_from(hash.as_slice()).map_err(|_| corrupt("block hash"))?,
        }))
    }

    /// Saves `cp` as `chain_id`'s checkpoint, replacing the previous one; durable when it
    /// returns.
    pub async fn save_checkpoint(&self, chain_id: u64, cp: Checkpoint) -> Result<()> {
        sqlx::query(
            "INSERT INTO chain_checkpoints (chain_id, block, hash) VALUES (?, ?, ?) \
             ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block, hash = excluded.hash",
        )
        .bind(to_sql(chain_id)?)
        .bind(to_sql(cp.block)?)
        .bind(cp.hash.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// The monitor's checkpoints live in the client's store.
impl Checkpoints for Store {
    fn load(&self, chain_id: u64) -> BoxFuture<'_, Result<Option<Checkpoint>, CheckpointError>> {
        Box::pin(async move { Ok(self.checkpoint(chain_id).await?) })
    }

    fn save(
        &self,
        chain_id: u64,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'_, Result<(), CheckpointError>> {
        Box::pin(async move { Ok(self.save_checkpoint(chain_id, checkpoint).await?) })
    }
}

/// SQLite integers are signed 64-bit; chain ids and block numbers fit in practice, and a value
/// that does not is refused rather than wrapped.
fn to_sql(value: u64) -> Result<i64> {
    i64::try_from(value).map_err(|_| {
        StoreError::Database(sqlx::Error::Encode(
            format!("{value} exceeds SQLite's integer range").into(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn checkpoints_are_per_chain_overwritten_and_durable() -> Result<()> {
        let path = std::env::temp_dir().join(format!("keel-checkpoint-{}.db", std::process::id()));
        let store = Store::open(&path).await?;
        assert_eq!(store.checkpoint(1).await?, None);
        let first = Checkpoint {
            block: 7,
            hash: B256::repeat_byte(7),
        };
        let second = Checkpoint {
            block: 9,
            hash: B256::repeat_byte(9),
        };
        store.save_checkpoint(1, first).await?;
        store.save_checkpoint(2, second).await?;
        store.save_checkpoint(1, second).await?;
        store.close().await;

        let store = Store::open(&path).await?;
        assert_eq!(store.checkpoint(1).await?, Some(second));
        assert_eq!(store.checkpoint(2).await?, Some(second));
        assert_eq!(store.checkpoint(3).await?, None);
        assert!(matches!(
            store.save_checkpoint(u64::MAX, first).await,
            Err(StoreError::Database(_))
        ));
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(())
    }
}
