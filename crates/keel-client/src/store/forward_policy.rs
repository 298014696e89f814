//! The operator's forwarding policy per channel (`Client::set_forward_policy`), so a restarted
//! hub charges and announces what it did before. Written straight through the pool, as
//! checkpoints and tower receipts are: a policy is not part of any channel's log, and it is
//! durable when the call returns. A newer policy for a channel replaces the older one.

use keel_core::{
    forwarding::{FeePolicy, HopPolicy, Rate},
    B256, U256,
};

use super::{Result, Store, StoreError};

/// One `forward_policies` row as read.
type Row = (Vec<u8>, Vec<u8>, i64, Vec<u8>, Vec<u8>, i64);

const COLUMNS: &str =
    "channel_id, fee_base, fee_millionths, rate_upstream, rate_downstream, expiry_delta";

impl Store {
    /// Stores `policy` as ours for forwarding into `channel_id`, replacing any before it.
    pub async fn save_forward_policy(&self, channel_id: B256, policy: &HopPolicy) -> Result<()> {
        let expiry_delta = i64::try_from(policy.expiry_delta).map_err(|_| {
            StoreError::Database(sqlx::Error::Encode(
                format!(
                    "expiry delta {} exceeds SQLite's integer range",
                    policy.expiry_delta
                )
                .into(),
            ))
        })?;
        sqlx::query(&format!(
            "INSERT INTO forward_policies ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (channel_id) DO UPDATE SET fee_base = excluded.fee_base, \
             fee_millionths = excluded.fee_millionths, rate_upstream = excluded.rate_upstream, \
             rate_downstream = excluded.rate_downstream, expiry_delta = excluded.expiry_delta"
        ))
        .bind(channel_id.as_slice())
        .bind(policy.fee.base.to_be_bytes::<32>().to_vec())
        .bind(i64::from(policy.fee.proportional_millionths))
        .bind(policy.rate.upstream().to_be_bytes::<32>().to_vec())
        .bind(policy.rate.downstream().to_be_bytes::<32>().to_vec())
        .bind(expiry_delta)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Every stored policy, by channel.
    pub async fn forward_policies(&self) -> Result<Vec<(B256, HopPolicy)>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM forward_policies ORDER BY channel_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(decode).collect()
    }
}

fn decode(row: Row) -> Result<(B256, HopPolicy)> {
    let (channel_id, base, millionths, upstream, downstream, expiry_delta) = row;
    let corrupt = |what: &str| {
        StoreError::Database(sqlx::Error::Decode(
            format!("forward policy: invalid {what}").into(),
        ))
    };
    let amount = |bytes: &[u8], what: &str| {
        <[u8; 32]>::try_from(bytes)
            .map(U256::from_be_bytes)
            .map_err(|_| corrupt(what))
    };
    let rate = Rate::new(amount(&upstream, "rate")?, amount(&downstream, "rate")?)
        .map_err(|_| corrupt("rate"))?;
    let policy = HopPolicy {
        fee: FeePolicy {
            base: amount(&base, "base fee")?,
            proportional_millionths: u32::try_from(millionths)
                .map_err(|_| corrupt("proportional fee"))?,
        },
        rate,
        expiry_delta: u64::try_from(expiry_delta).map_err(|_| corrupt("expiry delta"))?,
    };
    let channel_id = B256::try_from(channel_id.as_slice()).map_err(|_| corrupt("channel id"))?;
    Ok((channel_id, policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: u64, millionths: u32, delta: u64) -> HopPolicy {
        HopPolicy {
            fee: FeePolicy {
                base: U256::from(base),
                proportional_millionths: millionths,
            },
            rate: Rate::PAR,
            expiry_delta: delta,
        }
    }

    #[tokio::test]
    async fn the_newest_policy_per_channel_is_kept_across_a_restart() -> Result<()> {
        let path = std::env::temp_dir().join(format!("keel-policies-{}.db", std::process::id()));
        let store = Store::open(&path).await?;
        assert_eq!(store.forward_policies().await?, vec![]);
        let a = B256::repeat_byte(1);
        let b = B256::repeat_byte(2);
        store
            .save_forward_policy(a, &policy(1_000, 2_500, 900))
            .await?;
        store.save_forward_policy(b, &policy(0, 1, 1_200)).await?;
        store.save_forward_policy(a, &policy(7, 100, 901)).await?;
        let cross = HopPolicy {
            rate: Rate::new(U256::from(3), U256::from(2)).expect("a valid rate"),
            ..policy(u64::MAX, u32::MAX, 3_600)
        };
        let c = B256::repeat_byte(3);
        store.save_forward_policy(c, &cross).await?;
        assert!(matches!(
            store.save_forward_policy(c, &policy(0, 0, u64::MAX)).await,
            Err(StoreError::Database(_))
        ));
        store.close().await;

        let store = Store::open(&path).await?;
        assert_eq!(
            store.forward_policies().await?,
            vec![
                (a, policy(7, 100, 901)),
                (b, policy(0, 1, 1_200)),
                (c, cross)
            ]
        );
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        Ok(())
    }
}
