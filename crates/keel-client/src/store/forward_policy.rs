//! The operator's forwarding policy per channel (`Client::set_forward_policy`), so a restarted
//! hub charges, announces and converts what it did before. Written straight through the pool,
//! as checkpoints and tower receipts are: a policy is not part of any channel's log, and it is
//! durable when the call returns. A newer policy for a channel replaces the older one, its
//! rates (table `forward_rates`) with it, in one transaction.

use std::collections::HashMap;

use keel_core::{
    forwarding::{FeePolicy, Rate},
    Address, B256, U256,
};
use keel_routing::Asset;

use super::{Result, Store, StoreError};

/// What a hub charges for forwarding into one of its channels and the assets it forwards from:
/// set per channel with [`Client::set_forward_policy`](crate::Client::set_forward_policy)
/// (or [`Config::forward_policy`](crate::Config::forward_policy) for every channel
/// without one) and announced with
/// [`Client::channel_update`](crate::Client::channel_update).
///
/// ```
/// use keel_client::client::ForwardPolicy;
/// use keel_core::{forwarding::{FeePolicy, Rate}, Address, U256};
/// use keel_routing::Asset;
///
/// // 0.1 % plus 1,000 base units, and ETH on chain 10 taken at 1:1 into this channel's ETH
/// // (say, on chain 1): a hop from chain 10 into this channel on chain 1.
/// let eth_on_10 = Asset { chain_id: 10, token: Address::ZERO };
/// let policy = ForwardPolicy::new(FeePolicy { base: U256::from(1_000), proportional_millionths: 1_000 }, 900)
///     .with_rate(eth_on_10, Rate::PAR);
/// let eth_on_1 = Asset { chain_id: 1, token: Address::ZERO };
/// assert_eq!(policy.rate(eth_on_10, eth_on_1), Some(Rate::PAR));
/// let on_5 = Asset { chain_id: 5, ..eth_on_10 };
/// assert_eq!(policy.rate(on_5, eth_on_1), None); // not announced: not forwarded
/// ```
///
/// Its rules (which rate applies, the expiry delta of a hop) are in keel-client's
/// `client/forward/policy.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ForwardPolicy {
    /// The fee, in the outgoing channel's asset, on what is forwarded.
    pub fee: FeePolicy,
    /// Seconds the incoming lock must outlive the outgoing one; the hub requires at least the
    /// delta derived from the two chains' timing, and announces the larger of the two.
    pub expiry_delta: u64,
    /// Rates at which the hub forwards from other assets into this channel: `upstream` units
    /// of the listed asset per `downstream` units of the channel's. At most 16, one per
    /// asset; the channel's own asset always goes 1:1 and is not listed.
    pub rates: Vec<(Asset, Rate)>,
}

/// One `forward_policies` row as read.
type Row = (Vec<u8>, Vec<u8>, i64, i64);
/// One `forward_rates` row as read.
type RateRow = (Vec<u8>, i64, Vec<u8>, Vec<u8>, Vec<u8>);

const COLUMNS: &str = "channel_id, fee_base, fee_millionths, expiry_delta";
const RATE_COLUMNS: &str = "channel_id, chain_id, token, upstream, downstream";

fn too_large(what: &str, value: u64) -> StoreError {
    StoreError::Database(sqlx::Error::Encode(
        format!("{what} {value} exceeds SQLite's integer range").into(),
    ))
}

impl Store {
    /// Stores `policy` as ours for forwarding into `channel_id`, replacing any before it.
    pub async fn save_forward_policy(
        &self,
        channel_id: B256,
        policy: &ForwardPolicy,
    ) -> Result<()> {
        let expiry_delta = i64::try_from(policy.expiry_delta)
            .map_err(|_| too_large("expiry delta", policy.expiry_delta))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "INSERT INTO forward_policies ({COLUMNS}) VALUES (?, ?, ?, ?) \
             ON CONFLICT (channel_id) DO UPDATE SET fee_base = excluded.fee_base, \
             fee_millionths = excluded.fee_millionths, expiry_delta = excluded.expiry_delta"
        ))
        .bind(channel_id.as_slice())
        .bind(policy.fee.base.to_be_bytes::<32>().to_vec())
        .bind(i64::from(policy.fee.proportional_millionths))
        .bind(expiry_delta)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM forward_rates WHERE channel_id = ?")
            .bind(channel_id.as_slice())
            .execute(&mut *tx)
            .await?;
        for (asset, rate) in &policy.rates {
            let chain_id =
                i64::try_from(asset.chain_id).map_err(|_| too_large("chain id", asset.chain_id))?;
            sqlx::query(&format!(
                "INSERT INTO forward_rates ({RATE_COLUMNS}) VALUES (?, ?, ?, ?, ?)"
            ))
            .bind(channel_id.as_slice())
            .bind(chain_id)
            .bind(asset.token.as_slice())
            .bind(rate.upstream().to_be_bytes::<32>().to_vec())
            .bind(rate.downstream().to_be_bytes::<32>().to_vec())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every stored policy, by channel, each with its rates in the order they were set.
    pub async fn forward_policies(&self) -> Result<Vec<(B256, ForwardPolicy)>> {
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM forward_policies ORDER BY channel_id"
        ))
        .fetch_all(&self.pool)
        .await?;
        let rate_rows: Vec<RateRow> = sqlx::query_as(&format!(
            "SELECT {RATE_COLUMNS} FROM forward_rates ORDER BY rowid"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut rates: HashMap<B256, Vec<(Asset, Rate)>> = HashMap::new();
        for row in rate_rows {
            let (channel_id, rate) = decode_rate(row)?;
            rates.entry(channel_id).or_default().push(rate);
        }
        rows.into_iter()
            .map(|row| {
                let (channel_id, mut policy) = decode(row)?;
                policy.rates = rates.remove(&channel_id).unwrap_or_default();
                Ok((channel_id, policy))
            })
            .collect()
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Database(sqlx::Error::Decode(
        format!("forward policy: invalid {what}").into(),
    ))
}

fn amount(bytes: &[u8], what: &str) -> Result<U256> {
    <[u8; 32]>::try_from(bytes)
        .map(U256::from_be_bytes)
        .map_err(|_| corrupt(what))
}

fn channel(bytes: &[u8]) -> Result<B256> {
    B256::try_from(bytes).map_err(|_| corrupt("channel id"))
}

fn decode(row: Row) -> Result<(B256, ForwardPolicy)> {
    let (channel_id, base, millionths, expiry_delta) = row;
    let fee = FeePolicy {
        base: amount(&base, "base fee")?,
        proportional_millionths: u32::try_from(millionths)
            .map_err(|_| corrupt("proportional fee"))?,
    };
    let expiry_delta = u64::try_from(expiry_delta).map_err(|_| corrupt("expiry delta"))?;
    Ok((channel(&channel_id)?, ForwardPolicy::new(fee, expiry_delta)))
}

fn decode_rate(row: RateRow) -> Result<(B256, (Asset, Rate))> {
    let (channel_id, chain_id, token, upstream, downstream) = row;
    let asset = Asset {
        chain_id: u64::try_from(chain_id).map_err(|_| corrupt("rate's chain id"))?,
        token: Address::try_from(token.as_slice()).map_err(|_| corrupt("rate's token"))?,
    };
    let rate = Rate::new(amount(&upstream, "rate")?, amount(&downstream, "rate")?)
        .map_err(|_| corrupt("rate"))?;
    Ok((channel(&channel_id)?, (asset, rate)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(base: u64, millionths: u32, delta: u64) -> ForwardPolicy {
        ForwardPolicy::new(
            FeePolicy {
                base: U256::from(base),
                proportional_millionths: millionths,
            },
            delta,
        )
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
        let asset = |chain_id, token| Asset {
            chain_id,
            token: Address::repeat_byte(token),
        };
        let rate = |up: u64, down: u64| Rate::new(U256::from(up), U256::from(down)).unwrap();
        // Rates from two assets, kept in the order set; a newer policy replaces them all.
        let cross = policy(u64::MAX, u32::MAX, 3_600)
            .with_rate(asset(7, 0), rate(3, 2))
            .with_rate(asset(1, 9), rate(1, 1_000_000_000_000));
        let c = B256::repeat_byte(3);
        store
            .save_forward_policy(c, &policy(1, 1, 1).with_rate(asset(5, 5), rate(2, 3)))
            .await?;
        store.save_forward_policy(c, &cross).await?;
        assert!(matches!(
            store.save_forward_policy(c, &policy(0, 0, u64::MAX)).await,
            Err(StoreError::Database(_))
        ));
        let far = policy(0, 0, 1).with_rate(asset(u64::MAX, 0), Rate::PAR);
        assert!(matches!(
            store.save_forward_policy(c, &far).await,
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
