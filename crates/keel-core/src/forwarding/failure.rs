//! Why a multi-hop payment did not go through, as it travels back from the hop that stopped it
//! to the payer: which node, which channel it was to forward into (or received on, for the
//! payee), and a reason code. Each hop relays it unchanged upstream, so the payer learns where
//! its route broke and can route around it.

use alloy::primitives::{Address, B256};

use super::ForwardError;

/// Why a hop did not pass a payment on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// The onion did not open with the node's key, or was not for this lock.
    BadOnion,
    /// The lock carried no onion: the node cannot tell where it goes.
    NoOnion,
    /// The instructed outgoing channel is not one of the node's usable channels.
    UnknownNextChannel,
    /// The incoming lock does not pay the node's announced fee.
    FeeTooLow,
    /// The incoming lock does not outlive the outgoing one by the node's expiry delta.
    ExpiryTooSoon,
    /// The outgoing lock would expire before the next node's minimum lock lifetime.
    OutgoingTooShort,
    /// The outgoing channel lacks the balance, or refused the lock.
    Liquidity,
    /// The next node is not connected, or its channel is not in sync.
    PeerOffline,
    /// The payee knows no request with this payment hash, or it was paid or expired.
    UnknownPayment,
    /// The payee's lock holds less than the onion or the request says.
    WrongAmount,
    /// The payee's lock expires before the expiration the payer gave it.
    WrongExpiry,
    /// The downstream lock expired unclaimed.
    Expired,
    /// The outgoing channel holds another asset (another token, another chain) and the node
    /// announces no rate from the incoming lock's asset into it.
    NoRate,
    /// A reason code this build does not know, relayed as it came.
    Other(u16),
}

impl FailureReason {
    /// The wire code of this reason.
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::BadOnion => 1,
            Self::NoOnion => 2,
            Self::UnknownNextChannel => 3,
            Self::FeeTooLow => 4,
            Self::ExpiryTooSoon => 5,
            Self::OutgoingTooShort => 6,
            Self::Liquidity => 7,
            Self::PeerOffline => 8,
            Self::UnknownPayment => 9,
            Self::WrongAmount => 10,
            Self::WrongExpiry => 11,
            Self::Expired => 12,
            Self::NoRate => 13,
            Self::Other(code) => code,
        }
    }

    /// The reason with wire code `code`; unknown codes are kept as [`FailureReason::Other`],
    /// so a relayed failure leaves each hop exactly as it came.
    pub const fn from_u16(code: u16) -> Self {
        match code {
            1 => Self::BadOnion,
            2 => Self::NoOnion,
            3 => Self::UnknownNextChannel,
            4 => Self::FeeTooLow,
            5 => Self::ExpiryTooSoon,
            6 => Self::OutgoingTooShort,
            7 => Self::Liquidity,
            8 => Self::PeerOffline,
            9 => Self::UnknownPayment,
            10 => Self::WrongAmount,
            11 => Self::WrongExpiry,
            12 => Self::Expired,
            13 => Self::NoRate,
            other => Self::Other(other),
        }
    }

    /// Whether the hop lacked balance (the payer's scorer learns a bound) rather than refused.
    pub const fn is_liquidity(self) -> bool {
        matches!(self, Self::Liquidity)
    }
}

impl From<&ForwardError> for FailureReason {
    fn from(e: &ForwardError) -> Self {
        match e {
            ForwardError::FeeTooLow { .. } => Self::FeeTooLow,
            ForwardError::ExpiryTooSoon { .. } => Self::ExpiryTooSoon,
            ForwardError::OutgoingTooShort { .. } => Self::OutgoingTooShort,
            ForwardError::Overflow(_) | ForwardError::Invalid(_) => Self::WrongAmount,
        }
    }
}

/// A hop's report that it did not pass a payment on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HopFailure {
    /// The node that stopped the payment.
    pub node: Address,
    /// The channel it was to forward into, or (for the payee, or an onion it could not read)
    /// the channel the lock arrived on.
    pub channel: B256,
    /// Why.
    pub reason: FailureReason,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in 0..=u16::MAX {
            assert_eq!(FailureReason::from_u16(code).to_u16(), code);
        }
        assert_eq!(FailureReason::from_u16(4), FailureReason::FeeTooLow);
        assert_eq!(FailureReason::from_u16(13), FailureReason::NoRate);
        assert_eq!(FailureReason::from_u16(0), FailureReason::Other(0));
    }
}
