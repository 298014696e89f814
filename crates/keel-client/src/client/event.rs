//! What the client tells the application, in the order it happened.

use keel_core::{Address, Lock, B256, U256};

use super::RejectCode;

/// Something that happened in one of the client's channels. Each is emitted after what it
/// reports is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The peer paid us `amount`.
    PaymentReceived {
        /// The channel.
        channel_id: B256,
        /// The amount, in token base units.
        amount: U256,
        /// Nonce of the proof that carries it.
        nonce: u64,
    },
    /// The peer locked `lock.amount` for us behind `lock.secret_hash`.
    LockReceived {
        /// The channel.
        channel_id: B256,
        /// The lock.
        lock: Lock,
    },
    /// A lock was paid out to its receiver: by the peer to us, or (`incoming: false`) by us
    /// after the peer revealed the secret.
    LockClaimed {
        /// The channel.
        channel_id: B256,
        /// The lock's secret hash.
        secret_hash: B256,
        /// The secret.
        secret: B256,
        /// The amount.
        amount: U256,
        /// Whether we were the receiver.
        incoming: bool,
    },
    /// The peer took back an expired lock it had sent us.
    LockExpired {
        /// The channel.
        channel_id: B256,
        /// The lock's secret hash.
        secret_hash: B256,
    },
    /// We co-signed a withdrawal the peer asked for.
    WithdrawalApproved {
        /// The channel.
        channel_id: B256,
        /// The peer's new cumulative withdrawal total.
        total_withdrawn: U256,
    },
    /// We co-signed the cooperative close the peer proposed.
    CloseApproved {
        /// The channel.
        channel_id: B256,
    },
    /// The peer connected and authenticated.
    PeerConnected(Address),
    /// The connection to the peer ended.
    PeerDisconnected(Address),
    /// The peer refused one of our messages.
    PeerRejected {
        /// The channel.
        channel_id: B256,
        /// The peer's reason.
        code: RejectCode,
    },
    /// A channel stopped taking updates (see [`super::ClientError::ChannelFailed`]).
    ChannelFailed {
        /// The channel.
        channel_id: B256,
        /// Why.
        reason: String,
    },
}
