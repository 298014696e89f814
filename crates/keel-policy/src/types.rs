//! What the policy reads: amounts, channels, per-channel policy, gas.

use std::fmt;

use crate::error::{Error, Result};

/// An amount in base units of the channel's asset (wei for ETH channels, the token's smallest
/// unit for ERC-20 channels). Money is never a float here; arithmetic on it is checked.
pub type Amount = u128;

/// Parts per million: 1,000,000 ppm is the whole.
pub const PPM: u128 = 1_000_000;

/// `amount * ppm / 1,000,000`, rounded down; `None` on overflow.
pub fn mul_ppm(amount: Amount, ppm: u32) -> Option<Amount> {
    let product = amount.checked_mul(u128::from(ppm))?;
    // Most products fit 64 bits, where division is one instruction instead of a u128 call
    // (the simulator's route searches spend a tenth of their time here otherwise).
    Some(match u64::try_from(product) {
        Ok(p) => u128::from(p / PPM as u64),
        Err(_) => product / PPM,
    })
}

/// `part / whole` in ppm, rounded down (0 when `whole` is 0, capped at `u32::MAX`).
pub fn share_ppm(part: Amount, whole: Amount) -> u32 {
    if whole == 0 {
        return 0;
    }
    let ppm = part.saturating_mul(PPM) / whole;
    u32::try_from(ppm).unwrap_or(u32::MAX)
}

/// A chain (EIP-155 chain id). Channels on different chains cannot move funds between each
/// other on chain, and each chain has its own gas price and wallet balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChainId(pub u64);

/// A node of the graph, as a dense index (`0..node_count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// One of the node's own channels, by the caller's identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ChannelId(pub u64);

impl fmt::Display for ChannelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// A routing fee: `base + amount * ppm / 1,000,000`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fee {
    /// Fixed part, in base units.
    pub base: Amount,
    /// Proportional part, in millionths of the amount forwarded.
    pub ppm: u32,
}

impl Fee {
    /// The fee for forwarding `amount`; `None` on overflow.
    pub fn for_amount(&self, amount: Amount) -> Option<Amount> {
        self.base.checked_add(mul_ppm(amount, self.ppm)?)
    }
}

/// The operator's rules for one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// The local share to restore a channel to, in ppm of capacity.
    pub target_local_ppm: u32,
    /// Below this local share the channel is depleted and the policy looks for liquidity.
    pub low_ppm: u32,
    /// Above this local share the channel holds surplus that may be moved out or withdrawn.
    pub high_ppm: u32,
    /// No action moves less than this.
    pub min_amount: Amount,
    /// The most an action restoring this channel may cost (fees plus gas), in ppm of the amount
    /// it moves.
    pub max_fee_ppm: u32,
    /// The most the node spends on this channel per budget period (fees plus gas).
    pub budget_per_period: Amount,
    /// After an action touches this channel, no other action touches it for this many seconds.
    pub cooldown_secs: u64,
    /// What one unit of restored outbound flow earns the node, in ppm: its forwarding fee for a
    /// router, or what a failed payment costs a payer. An action runs only if the expected
    /// earnings from the flow it restores exceed its cost.
    pub value_ppm: u32,
    /// Whether surplus above `high` that recent demand does not use goes back to the wallet
    /// (capital the operator would rather hold than keep in the channel). Off by default: it
    /// costs gas and restores no outbound liquidity.
    pub withdraw_idle: bool,
}

impl Default for ChannelPolicy {
    /// Half local, act below 20 % or above 80 %, pay at most 0.5 % of the amount moved.
    fn default() -> Self {
        Self {
            target_local_ppm: 500_000,
            low_ppm: 200_000,
            high_ppm: 800_000,
            min_amount: 1,
            max_fee_ppm: 5_000,
            budget_per_period: Amount::MAX,
            cooldown_secs: 3_600,
            value_ppm: 10_000,
            withdraw_idle: false,
        }
    }
}

impl ChannelPolicy {
    /// Checks `low <= target <= high <= 1,000,000`.
    pub fn validate(&self, channel: ChannelId) -> Result<()> {
        let ordered = self.low_ppm <= self.target_local_ppm
            && self.target_local_ppm <= self.high_ppm
            && u128::from(self.high_ppm) <= PPM;
        if ordered {
            Ok(())
        } else {
            Err(Error::InvalidPolicy(channel))
        }
    }
}

/// One of the node's channels as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// The caller's identifier.
    pub id: ChannelId,
    /// The chain the vault lives on.
    pub chain: ChainId,
    /// The counterparty, as a node of the graph.
    pub peer: NodeId,
    /// Total deposits in the vault, in base units.
    pub capacity: Amount,
    /// The node's spendable balance.
    pub local: Amount,
    /// The peer's spendable balance.
    pub remote: Amount,
    /// Amounts in pending locks offered by the node (neither side can spend them yet).
    pub pending_out: Amount,
    /// Amounts in pending locks offered by the peer.
    pub pending_in: Amount,
    /// What the node sent through this channel in the caller's last measuring window.
    pub flow_out: Amount,
    /// What the node received through this channel in the same window.
    pub flow_in: Amount,
    /// Outbound payments the channel refused for lack of local balance in the same window:
    /// demand that depletion turned away (a node sees every forward it fails).
    pub failed_out: Amount,
    /// What the peer charges to forward to the node over this channel (the last hop of a
    /// circular rebalance that ends here).
    pub peer_fee: Fee,
    /// When an action last touched this channel (seconds, the caller's clock), if ever.
    pub last_action: Option<u64>,
    /// The operator's rules for this channel.
    pub policy: ChannelPolicy,
}

impl Channel {
    /// The local share in ppm of capacity.
    pub fn local_ppm(&self) -> u32 {
        share_ppm(self.local, self.capacity)
    }

    /// The local balance the target share asks for.
    pub fn target_local(&self) -> Result<Amount> {
        mul_ppm(self.capacity, self.policy.target_local_ppm).ok_or(Error::Overflow)
    }

    /// Checks the balances fit the capacity and the policy is well formed.
    pub fn validate(&self) -> Result<()> {
        self.policy.validate(self.id)?;
        let held = self
            .local
            .checked_add(self.remote)
            .and_then(|x| x.checked_add(self.pending_out))
            .and_then(|x| x.checked_add(self.pending_in))
            .ok_or(Error::Overflow)?;
        if held > self.capacity {
            return Err(Error::InconsistentChannel(self.id));
        }
        Ok(())
    }

    /// Whether an action may touch this channel at `now`.
    pub fn cooling_down(&self, now: u64) -> bool {
        self.last_action
            .is_some_and(|t| now < t.saturating_add(self.policy.cooldown_secs))
    }

    /// Outbound demand seen last period: what went out plus what was refused for lack of balance.
    pub fn demand_out(&self) -> Amount {
        self.flow_out.saturating_add(self.failed_out)
    }
}

/// Gas used by each on-chain operation the policy can choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GasTable {
    /// A later deposit into an open channel (top-up from the wallet).
    pub deposit: u64,
    /// A withdrawal to the wallet while the channel stays open.
    pub withdraw: u64,
    /// `withdrawInto`: a withdrawal whose signed destination is another of the node's vaults.
    pub withdraw_into: u64,
}

impl GasTable {
    /// ETH channels, as docs/gas.md measures them: top-up 31,880, withdraw 73,040, move into
    /// another channel (`withdrawInto`) 68,790 (`tests/gas_table.rs` reads docs/gas.md and
    /// fails when they drift apart).
    pub const ETH: GasTable = GasTable {
        deposit: 31_902,
        withdraw: 73_062,
        withdraw_into: 68_856,
    };

    /// ERC-20 channels, from docs/gas.md: top-up 51,209, withdraw 81,631, `withdrawInto`
    /// 87,181.
    pub const ERC20: GasTable = GasTable {
        deposit: 51_231,
        withdraw: 81_653,
        withdraw_into: 87_247,
    };
}
