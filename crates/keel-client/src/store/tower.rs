//! The receipts watchtowers signed for our appointments: per tower and channel, the newest.
//!
//! Written straight through the pool, as checkpoints are: a receipt is not part of any
//! channel's log, arrives at most once per tower request, and SQLite serialises it with the
//! writer's commits. A receipt replaces the stored one only if its nonce is higher, so a late
//! answer to an older request cannot overwrite a newer promise.

use keel_core::{wire::Signature, Address, TowerReceipt, B256};

use super::{Result, Store, StoreError};

/// A tower's receipt and its signature (over the receipt under the channel's EIP-712 domain,
/// or over the root of the batch it came in): what the customer shows to prove what the tower
/// promised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTowerReceipt {
    /// The promise.
    pub receipt: TowerReceipt,
    /// The tower's signature.
    pub signature: Signature,
    /// The receipt's Merkle path to the root the tower signed (`keel_core::receipts`), if it
    /// was signed in a batch.
    pub batch_path: Option<Vec<B256>>,
}

/// One `tower_receipts` row as read.
type Row = (
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    i64,
    i64,
    i64,
    Vec<u8>,
    Option<Vec<u8>>,
);

const COLUMNS: &str =
    "tower, channel_id, customer, nonce, accepted_at, watch_until, signature, batch_path";

impl Store {
    /// Stores `signed` unless a receipt of the same tower for the same channel with an equal or
    /// higher nonce is stored already; true if it was stored. Durable when it returns.
    pub async fn save_tower_receipt(&self, signed: &SignedTowerReceipt) -> Result<bool> {
        let r = &signed.receipt;
        let done = sqlx::query(&format!(
            "INSERT INTO tower_receipts ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (tower, channel_id) DO UPDATE SET customer = excluded.customer, \
             nonce = excluded.nonce, accepted_at = excluded.accepted_at, \
             watch_until = excluded.watch_until, signature = excluded.signature, \
             batch_path = excluded.batch_path \
             WHERE excluded.nonce > tower_receipts.nonce"
        ))
        .bind(r.tower.as_slice())
        .bind(r.channelId.as_slice())
        .bind(r.customer.as_slice())
        .bind(to_sql(r.nonce)?)
        .bind(to_sql(r.acceptedAt)?)
        .bind(to_sql(r.watchUntil)?)
        .bind(signed.signature.as_slice())
        .bind(signed.batch_path.as_ref().map(|path| path.concat()))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The newest receipt `tower` signed for `channel_id`, if any.
    pub async fn tower_receipt(
        &self,
        tower: Address,
        channel_id: B256,
    ) -> Result<Option<SignedTowerReceipt>> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM tower_receipts WHERE tower = ? AND channel_id = ?"
        ))
        .bind(tower.as_slice())
        .bind(channel_id.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        row.map(decode).transpose()
    }

    /// The newest receipt of `tower` for each channel it accepted an appointment for.
    pub async fn tower_receipts(&self, tower: Address) -> Result<Vec<SignedTowerReceipt>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM tower_receipts WHERE tower = ? ORDER BY channel_id"
        ))
        .bind(tower.as_slice())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }
}

fn decode(row: Row) -> Result<SignedTowerReceipt> {
    let (tower, channel_id, customer, nonce, accepted_at, watch_until, signature, batch_path) = row;
    let corrupt = |what: &str| {
        StoreError::Database(sqlx::Error::Decode(
            format!("tower receipt: invalid {what}").into(),
        ))
    };
    let number = |v: i64, what: &str| u64::try_from(v).map_err(|_| corrupt(what));
    Ok(SignedTowerReceipt {
        receipt: TowerReceipt {
            tower: Address::try_from(tower.as_slice()).map_err(|_| corrupt("tower"))?,
            customer: Address::try_from(customer.as_slice()).map_err(|_| corrupt("customer"))?,
            channelId: B256::try_from(channel_id.as_slice()).map_err(|_| corrupt("channel id"))?,
            nonce: number(nonce, "nonce")?,
            acceptedAt: number(accepted_at, "acceptance time")?,
            watchUntil: number(watch_until, "watch end")?,
        },
        signature: signature
            .as_slice()
            .try_into()
            .map_err(|_| corrupt("signature"))?,
        batch_path: batch_path
            .map(|bytes| {
                if bytes.len() % 32 != 0 || bytes.len() / 32 > keel_core::receipts::MAX_PATH {
                    return Err(corrupt("batch path"));
                }
                Ok(bytes.chunks_exact(32).map(B256::from_slice).collect())
            })
            .transpose()?,
    })
}

/// SQLite integers are signed 64-bit: a value beyond is refused rather than wrapped.
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

    fn signed(tower: u8, channel: u8, nonce: u64) -> SignedTowerReceipt {
        SignedTowerReceipt {
            receipt: TowerReceipt {
                tower: Address::repeat_byte(tower),
                customer: Address::repeat_byte(0xb),
                channelId: B256::repeat_byte(channel),
                nonce,
                acceptedAt: 100,
                watchUntil: 1_000,
            },
            signature: [nonce.to_le_bytes()[0]; 65],
            // Every other receipt came in a batch, with a path of `nonce % 4` steps.
            batch_path: channel
                .is_multiple_of(2)
                .then(|| vec![B256::repeat_byte(nonce as u8); nonce as usize % 4]),
        }
    }

    #[tokio::test]
    async fn the_newest_receipt_per_tower_and_channel_is_kept_across_a_restart() -> Result<()> {
        let path = std::env::temp_dir().join(format!("keel-receipts-{}.db", std::process::id()));
        let store = Store::open(&path).await?;
        assert_eq!(
            store
                .tower_receipt(Address::repeat_byte(1), B256::ZERO)
                .await?,
            None
        );
        assert!(store.save_tower_receipt(&signed(1, 7, 3)).await?);
        assert!(store.save_tower_receipt(&signed(1, 7, 5)).await?);
        // A late answer to an older request does not replace the newer promise; nor does the
        // same one twice.
        assert!(!store.save_tower_receipt(&signed(1, 7, 4)).await?);
        assert!(!store.save_tower_receipt(&signed(1, 7, 5)).await?);
        assert!(store.save_tower_receipt(&signed(1, 8, 2)).await?);
        assert!(store.save_tower_receipt(&signed(2, 7, 1)).await?);
        store.close().await;

        let store = Store::open(&path).await?;
        let tower = Address::repeat_byte(1);
        assert_eq!(
            store.tower_receipt(tower, B256::repeat_byte(7)).await?,
            Some(signed(1, 7, 5))
        );
        assert_eq!(
            store.tower_receipts(tower).await?,
            vec![signed(1, 7, 5), signed(1, 8, 2)]
        );
        assert_eq!(
            store.tower_receipts(Address::repeat_byte(2)).await?,
            vec![signed(2, 7, 1)]
        );
        assert!(matches!(
            store.save_tower_receipt(&signed(1, 9, u64::MAX)).await,
            Err(StoreError::Database(_))
        ));
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(())
    }
}
