//! How long each hop's lock must outlive the next one, derived from the chains' timing.
//!
//! A forwarding node's worst case: the next node keeps the secret until its lock's last second
//! and reveals it only by registering it on the downstream chain's SecretRegistry, mined at the
//! downstream expiration `T_out` at the latest. The node sees that registration once it is
//! `confirmations` deep and its follower polls again, then registers the same secret on the
//! upstream chain, where the registration must be mined (and survive a reorganisation of up to
//! `confirmations` blocks, after which it is mined again, later) at or before the upstream
//! expiration `T_in`, since a lock pays only if its secret was registered by its expiration. So
//!
//! ```text
//! T_in - T_out >= detection_delay(downstream) + registration_time(upstream)
//! detection_delay   = confirmations × block_time + poll_interval
//! registration_time = (inclusion_blocks + confirmations) × block_time + margin
//! ```
//!
//! With the secret registered, the upstream lock is the node's even if the upstream peer never
//! cooperates: the node closes the channel and unlocks after the challenge period, which the
//! registration already decided. Each chain contributes its own figures, so a cross-chain hop
//! uses the downstream chain's detection delay and the upstream chain's registration time.

use super::ForwardError;

/// The timing of one chain as a node follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChainTiming {
    /// Seconds per block (12 on Ethereum mainnet; the upper end where block times vary).
    pub block_time: u64,
    /// Depth at which the node trusts a block (the follower's confirmation depth).
    pub confirmations: u64,
    /// Blocks budgeted for a transaction to be included once sent, fee bumps included.
    pub inclusion_blocks: u64,
    /// Seconds between the follower's polls of the chain.
    pub poll_interval: u64,
    /// Seconds added for everything else: the node's own reaction, clock skew, RPC delays.
    pub margin: u64,
}

impl ChainTiming {
    /// Seconds after a registration is mined on this chain until the node has seen it.
    pub fn detection_delay(&self) -> Result<u64, ForwardError> {
        self.confirmations
            .checked_mul(self.block_time)
            .and_then(|t| t.checked_add(self.poll_interval))
            .ok_or(ForwardError::Overflow("the detection delay"))
    }

    /// Seconds from sending a registration on this chain until it is mined for good.
    pub fn registration_time(&self) -> Result<u64, ForwardError> {
        self.inclusion_blocks
            .checked_add(self.confirmations)
            .and_then(|blocks| blocks.checked_mul(self.block_time))
            .and_then(|t| t.checked_add(self.margin))
            .ok_or(ForwardError::Overflow("the registration time"))
    }
}

/// The least a forwarding node's incoming lock (on `upstream`) must outlive its outgoing lock
/// (on `downstream`), in seconds; see the module docs for the derivation.
pub fn expiry_delta(upstream: &ChainTiming, downstream: &ChainTiming) -> Result<u64, ForwardError> {
    downstream
        .detection_delay()?
        .checked_add(upstream.registration_time()?)
        .ok_or(ForwardError::Overflow("the expiry delta"))
}
