//! The rules a hub applies to one hop from its [`ForwardPolicy`] for the outgoing channel (the
//! record the store keeps) and both chains' timing: the same asset in and out
//! goes 1:1, another asset (another token, another chain) only at a rate the policy announces,
//! and the incoming lock must outlive the outgoing one by at least keel-core's
//! [`expiry_delta`] of the two chains, whatever delta the operator set.

use std::collections::HashMap;

use keel_core::forwarding::{expiry_delta, ChainTiming, FeePolicy, HopPolicy, Rate};
use keel_routing::{gossip::MAX_RATES, Asset};

use crate::chain::ChainConfig;
use crate::store::ForwardPolicy;

use super::super::MAINNET_TIMING;

/// A policy refused: more rates than an update may announce.
pub(crate) const TOO_MANY_RATES: &str = "more than 16 exchange rates";
/// A policy refused: two rates from one asset.
pub(crate) const DUPLICATE_RATE: &str = "two rates from one asset";
/// A policy refused: a rate from the channel's own asset, which always goes 1:1.
pub(crate) const OWN_ASSET_RATE: &str = "a rate from the channel's own asset (always 1:1)";

impl ForwardPolicy {
    /// A policy with `fee` and `expiry_delta` that forwards within the channel's asset only.
    pub fn new(fee: FeePolicy, expiry_delta: u64) -> Self {
        Self {
            fee,
            expiry_delta,
            rates: Vec::new(),
        }
    }

    /// The policy also forwarding from `from` at `rate` (replacing a rate from `from`).
    pub fn with_rate(mut self, from: Asset, rate: Rate) -> Self {
        self.rates.retain(|(asset, _)| *asset != from);
        self.rates.push((from, rate));
        self
    }

    /// The rate from a lock in `incoming` into a channel of `outgoing`: 1:1 for one asset,
    /// else the announced one, if any.
    pub fn rate(&self, incoming: Asset, outgoing: Asset) -> Option<Rate> {
        if incoming == outgoing {
            return Some(Rate::PAR);
        }
        self.rates
            .iter()
            .find(|(asset, _)| *asset == incoming)
            .map(|(_, rate)| *rate)
    }

    /// Whether the policy can be announced for a channel of `own` (keel-routing refuses an
    /// update with more rates, and the others would be ambiguous).
    pub(crate) fn check(&self, own: Asset) -> Result<(), &'static str> {
        if self.rates.len() > MAX_RATES {
            return Err(TOO_MANY_RATES);
        }
        for (i, (asset, _)) in self.rates.iter().enumerate() {
            if *asset == own {
                return Err(OWN_ASSET_RATE);
            }
            if self.rates[..i].iter().any(|(seen, _)| seen == asset) {
                return Err(DUPLICATE_RATE);
            }
        }
        Ok(())
    }

    /// The expiry delta for a hop from a chain timed `upstream` into one timed `downstream`:
    /// the operator's, raised to the derived one if that is larger.
    pub(crate) fn delta(
        &self,
        upstream: &ChainTiming,
        downstream: &ChainTiming,
    ) -> Result<u64, keel_core::forwarding::ForwardError> {
        Ok(self.expiry_delta.max(expiry_delta(upstream, downstream)?))
    }

    /// The rules for forwarding a lock from `incoming` into this channel of `outgoing`, the
    /// two chains timed `upstream` and `downstream`; `None` if no rate is announced.
    pub(crate) fn hop(
        &self,
        incoming: Asset,
        outgoing: Asset,
        upstream: &ChainTiming,
        downstream: &ChainTiming,
    ) -> Option<Result<HopPolicy, keel_core::forwarding::ForwardError>> {
        let rate = self.rate(incoming, outgoing)?;
        Some(
            self.delta(upstream, downstream)
                .map(|expiry_delta| HopPolicy {
                    fee: self.fee,
                    rate,
                    expiry_delta,
                }),
        )
    }
}

/// The timing of `chain` as the forwarding rules see it: the entry in `overrides` if there is
/// one, else the chain's own confirmation depth and poll interval (rounded up to a second)
/// with mainnet's block time, inclusion budget and margin.
pub(crate) fn chain_timing(
    chain: &ChainConfig,
    overrides: &HashMap<u64, ChainTiming>,
) -> ChainTiming {
    if let Some(timing) = overrides.get(&chain.chain_id()) {
        return *timing;
    }
    let poll = chain.poll_interval;
    ChainTiming {
        confirmations: chain.confirmations,
        poll_interval: poll.as_secs() + u64::from(poll.subsec_nanos() > 0),
        ..MAINNET_TIMING
    }
}

#[cfg(test)]
mod tests {
    use keel_core::{Address, U256};

    use super::*;

    fn asset(chain_id: u64, token: u8) -> Asset {
        Asset {
            chain_id,
            token: Address::repeat_byte(token),
        }
    }

    #[test]
    fn only_an_announced_rate_crosses_assets() {
        let rate = Rate::new(U256::from(3), U256::from(2)).unwrap();
        let policy = ForwardPolicy::default().with_rate(asset(1, 1), rate);
        assert_eq!(policy.rate(asset(2, 2), asset(2, 2)), Some(Rate::PAR));
        assert_eq!(policy.rate(asset(1, 1), asset(2, 2)), Some(rate));
        assert_eq!(policy.rate(asset(1, 2), asset(2, 2)), None);
        // A second rate from one asset replaces the first.
        let policy = policy.with_rate(asset(1, 1), Rate::PAR);
        assert_eq!(policy.rates, vec![(asset(1, 1), Rate::PAR)]);
    }

    #[test]
    fn a_policy_that_could_not_be_announced_is_refused() {
        let own = asset(2, 2);
        assert_eq!(ForwardPolicy::default().check(own), Ok(()));
        let mine = ForwardPolicy::default().with_rate(own, Rate::PAR);
        assert_eq!(mine.check(own), Err(OWN_ASSET_RATE));
        let mut twice = ForwardPolicy::default().with_rate(asset(1, 1), Rate::PAR);
        twice.rates.push((asset(1, 1), Rate::PAR));
        assert_eq!(twice.check(own), Err(DUPLICATE_RATE));
        let many = (0..=MAX_RATES as u64).fold(ForwardPolicy::default(), |p, chain| {
            p.with_rate(asset(100 + chain, 1), Rate::PAR)
        });
        assert_eq!(many.check(own), Err(TOO_MANY_RATES));
    }

    /// The hub never takes less than the derivation asks, nor less than its operator set.
    #[test]
    fn the_delta_is_the_larger_of_the_set_and_the_derived_one() {
        let fast = ChainTiming {
            block_time: 2,
            confirmations: 10,
            inclusion_blocks: 10,
            poll_interval: 1,
            margin: 60,
        };
        let slow = ChainTiming {
            block_time: 12,
            confirmations: 12,
            inclusion_blocks: 25,
            poll_interval: 12,
            margin: 300,
        };
        let policy = ForwardPolicy::new(FeePolicy::default(), 100);
        // Out on the fast chain: seen after 21 s; registered upstream on the slow one in 744 s.
        assert_eq!(policy.delta(&slow, &fast), Ok(21 + 744));
        // The other way: 156 s, then 100 s.
        assert_eq!(policy.delta(&fast, &slow), Ok(156 + 100));
        let patient = ForwardPolicy::new(FeePolicy::default(), 5_000);
        assert_eq!(patient.delta(&fast, &slow), Ok(5_000));
        let hop = policy
            .hop(asset(1, 0), asset(1, 0), &slow, &fast)
            .expect("one asset")
            .unwrap();
        assert_eq!((hop.rate, hop.expiry_delta), (Rate::PAR, 765));
        assert!(policy.hop(asset(1, 0), asset(2, 0), &slow, &fast).is_none());
    }

    /// A followed chain's own depth and poll (rounded up to whole seconds) enter its timing;
    /// an entry in `Config::chain_timing` replaces it.
    #[test]
    fn a_chains_timing_comes_from_how_it_is_followed() {
        let deployment = keel_bindings::Deployment {
            chain_id: 31_337,
            deployed_at_block: 0,
            channel_factory: Address::repeat_byte(1),
            vault_implementation: Address::repeat_byte(2),
            secret_registry: Address::repeat_byte(3),
            min_challenge_period: 3_600,
            max_challenge_period: 86_400,
        };
        let dev = ChainConfig::development("http://127.0.0.1:8545", deployment.clone());
        let timing = chain_timing(&dev, &HashMap::new());
        assert_eq!(
            (
                timing.confirmations,
                timing.poll_interval,
                timing.block_time
            ),
            (0, 1, 12)
        );
        // Seen at once (1 s), registered in 25 blocks of 12 s plus 300 s.
        assert_eq!(expiry_delta(&timing, &timing), Ok(1 + 600));
        let public = ChainConfig::new("http://127.0.0.1:8545", deployment);
        assert_eq!(chain_timing(&public, &HashMap::new()).poll_interval, 2);
        let own = ChainTiming {
            block_time: 2,
            ..MAINNET_TIMING
        };
        let overrides = HashMap::from([(31_337, own)]);
        assert_eq!(chain_timing(&public, &overrides), own);
    }
}
