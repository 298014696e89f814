//! What a forwarding node charges, and how it converts between two channels' assets.

use alloy::primitives::U256;

use super::ForwardError;

/// Parts per million, the unit of [`FeePolicy::proportional_millionths`].
const MILLION: u64 = 1_000_000;

/// A node's fee for forwarding into one of its channels, in that channel's base units:
/// `base + forwarded × proportional_millionths / 1,000,000`, rounded down (as Lightning's
/// `fee_base_msat` and `fee_proportional_millionths`), so payer and node compute the same figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct FeePolicy {
    /// Charged once per forwarded lock.
    pub base: U256,
    /// Charged per million units forwarded.
    pub proportional_millionths: u32,
}

impl FeePolicy {
    /// The fee for forwarding `amount`.
    pub fn fee(&self, amount: U256) -> Result<U256, ForwardError> {
        let proportional = amount
            .checked_mul(U256::from(self.proportional_millionths))
            .ok_or(ForwardError::Overflow("the proportional fee"))?
            / U256::from(MILLION);
        self.base
            .checked_add(proportional)
            .ok_or(ForwardError::Overflow("the fee"))
    }
}

/// The exchange rate of a hop between two assets (two chains, or two tokens on one chain):
/// the node takes `upstream` units of the incoming channel's asset for every `downstream` units
/// it pays into the outgoing channel. [`Rate::PAR`] is 1:1, the only rate for the same asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    upstream: U256,
    downstream: U256,
}

impl Rate {
    /// One for one.
    pub const PAR: Self = Self {
        upstream: U256::from_limbs([1, 0, 0, 0]),
        downstream: U256::from_limbs([1, 0, 0, 0]),
    };

    /// `upstream` incoming units per `downstream` outgoing units; both must be positive.
    pub fn new(upstream: U256, downstream: U256) -> Result<Self, ForwardError> {
        if upstream.is_zero() || downstream.is_zero() {
            return Err(ForwardError::Invalid("a rate needs two positive amounts"));
        }
        Ok(Self {
            upstream,
            downstream,
        })
    }

    /// Incoming units per `downstream()` outgoing units.
    pub const fn upstream(&self) -> U256 {
        self.upstream
    }

    /// Outgoing units per `upstream()` incoming units.
    pub const fn downstream(&self) -> U256 {
        self.downstream
    }

    /// The incoming amount worth `outgoing`, rounded up: the node never forwards at a loss.
    pub fn upstream_for(&self, outgoing: U256) -> Result<U256, ForwardError> {
        let scaled = outgoing
            .checked_mul(self.upstream)
            .ok_or(ForwardError::Overflow("the rate conversion"))?;
        let (quotient, remainder) = scaled.div_rem(self.downstream);
        if remainder.is_zero() {
            Ok(quotient)
        } else {
            // quotient < scaled <= U256::MAX here, so adding one cannot overflow.
            Ok(quotient + U256::from(1))
        }
    }
}

impl Default for Rate {
    fn default() -> Self {
        Self::PAR
    }
}
