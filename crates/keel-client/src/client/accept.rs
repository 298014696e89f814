//! Which channels that a peer opens with us on chain the client takes.

use std::collections::HashSet;

use keel_core::{Address, U256};

/// The application's rule for channels a peer opens with us on chain
/// ([`Config::accept_channels`](super::Config::accept_channels)). The chain monitor reports
/// each such channel: `ClientEvent::ChannelOpened` if the rule accepted it (the client tracks
/// it from then on), `ClientEvent::ChannelDeclined` if not (the client ignores it). Channels
/// we open ourselves are always ours.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AcceptChannels {
    /// Every channel (the default: a payee that anyone may pay).
    #[default]
    All,
    /// None: only channels we open.
    None,
    /// Channels opened by these addresses.
    From(HashSet<Address>),
    /// Channels whose opener deposited at least this much (in the channel token's base
    /// units).
    MinDeposit(U256),
    /// Channels opened by these addresses with at least this deposit.
    FromWithMinDeposit(HashSet<Address>, U256),
}

impl AcceptChannels {
    /// Whether a channel `peer` opened with `deposit` is taken.
    pub fn accepts(&self, peer: Address, deposit: U256) -> bool {
        match self {
            Self::All => true,
            Self::None => false,
            Self::From(peers) => peers.contains(&peer),
            Self::MinDeposit(min) => deposit >= *min,
            Self::FromWithMinDeposit(peers, min) => peers.contains(&peer) && deposit >= *min,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_takes_only_what_it_says() {
        let (alice, bob) = (Address::repeat_byte(0xa), Address::repeat_byte(0xb));
        let (small, large) = (U256::from(1), U256::from(100));
        assert!(AcceptChannels::All.accepts(alice, small));
        assert!(!AcceptChannels::None.accepts(alice, large));
        let from = AcceptChannels::From([alice].into());
        assert!(from.accepts(alice, small) && !from.accepts(bob, large));
        let min = AcceptChannels::MinDeposit(large);
        assert!(min.accepts(bob, large) && !min.accepts(alice, small));
        let both = AcceptChannels::FromWithMinDeposit([alice].into(), large);
        assert!(both.accepts(alice, large));
        assert!(!both.accepts(alice, small) && !both.accepts(bob, large));
    }
}
