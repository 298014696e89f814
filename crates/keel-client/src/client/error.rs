//! Why a client operation failed.

use keel_core::{Address, ChannelError, B256, U256};

use crate::{store::StoreError, transport};

/// Why the peer refused one of our messages, as carried by `Message::Reject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectCode {
    /// The peer does not know the channel (yet).
    UnknownChannel,
    /// The channel is not one between the peer and us.
    NotYourChannel,
    /// The state machine refused the update, withdrawal or close.
    Refused,
    /// The signature is not ours over that message.
    BadSignature,
    /// The peer could not store the message.
    Storage,
    /// The peer claims a state we never had: one of us lost data.
    OutOfSync,
    /// A code this version does not know.
    Other(u16),
}

impl RejectCode {
    /// The code on the wire.
    pub const fn to_u16(self) -> u16 {
        match self {
            Self::UnknownChannel => 1,
            Self::NotYourChannel => 2,
            Self::Refused => 3,
            Self::BadSignature => 4,
            Self::Storage => 5,
            Self::OutOfSync => 6,
            Self::Other(code) => code,
        }
    }

    /// The code a wire value stands for.
    pub const fn from_u16(code: u16) -> Self {
        match code {
            1 => Self::UnknownChannel,
            2 => Self::NotYourChannel,
            3 => Self::Refused,
            4 => Self::BadSignature,
            5 => Self::Storage,
            6 => Self::OutOfSync,
            other => Self::Other(other),
        }
    }
}

/// A failed client operation. Unless the variant says otherwise, nothing was applied, stored
/// or sent, and the channel stays usable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No channel with this id is known to the client.
    #[error("unknown channel {0}")]
    UnknownChannel(B256),
    /// The channel state machine refused the operation.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// The store failed. The operation may have been applied in memory but not stored; the
    /// channel is marked failed until the client restarts and reloads it.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The peer transport failed.
    #[error(transparent)]
    Transport(#[from] transport::Error),
    /// The channel's peer is not connected, or has not resynchronised the channel yet.
    #[error("peer {0} is offline")]
    PeerOffline(Address),
    /// The peer refused our message.
    #[error("peer rejected the message in channel {channel_id}: {code:?}")]
    PeerRejected {
        /// The channel.
        channel_id: B256,
        /// The peer's reason.
        code: RejectCode,
    },
    /// The peer refused an update we had signed and stored, so the two sides no longer agree;
    /// the channel takes no more updates and should be closed on chain.
    #[error("channel {0} failed: the peer refused a signed update; close it on chain")]
    ChannelFailed(B256),
    /// Signing a message failed.
    #[error("signing: {0}")]
    Signing(keel_core::Error),
    /// The peer's signature over a withdrawal or close does not recover, or is not its own
    /// (the source says which).
    #[error("peer's signature is invalid")]
    BadPeerSignature(#[source] keel_core::Error),
    /// The peer did not answer in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The client is shutting down.
    #[error("client stopped")]
    Stopped,
    /// A chain transaction or query failed.
    #[error(transparent)]
    Chain(#[from] crate::chain::ChainError),
    /// The channel's chain is followed by the client's monitor, which alone reports deposits
    /// and withdrawals on it.
    #[error("chain {0} is followed by the monitor; it reports deposits and withdrawals")]
    ChainFollowed(u64),
    /// No chain with this id is configured.
    #[error("chain {0} is not configured")]
    NoChain(u64),
    /// The channel is not in the on-chain state the operation needs (closed unilaterally for
    /// `settle`, settled with retained locks for `unlock`).
    #[error("channel {0} is not in a dispute or settlement that allows this")]
    NotDisputed(B256),
    /// The channel was closed on chain: no more off-chain updates.
    #[error("channel {0} is closed on chain")]
    ChannelClosed(B256),
    /// A cooperative close was asked for while our payments are in flight (sent, not yet
    /// acknowledged by the peer): they would change the balances it pays. Retry once they
    /// complete.
    #[error("channel {channel_id}: {in_flight} payments in flight; close once they complete")]
    PaymentsInFlight {
        /// The channel.
        channel_id: B256,
        /// Our updates sent and not acknowledged.
        in_flight: usize,
    },
    /// A cooperative close was asked for while hash-locked payments are pending (either way):
    /// claim them, or remove the expired ones, first.
    #[error("channel {channel_id}: {pending} locked payments pending; settle them before closing")]
    LocksPending {
        /// The channel.
        channel_id: B256,
        /// Locks pending in both directions.
        pending: usize,
    },
    /// A cooperative close was asked for while a co-signed withdrawal has neither been
    /// confirmed on chain nor expired: wait for its `WithdrawalConfirmed` (or its expiry).
    #[error("channel {0}: a withdrawal is not confirmed yet; close once it is")]
    WithdrawalUnconfirmed(B256),
    /// The keystore file could not be read or decrypted (a wrong password is
    /// `LocalSignerError::EthKeystoreError(MacMismatch)`).
    #[error("keystore {path}: {source}")]
    Keystore {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: alloy::signers::local::LocalSignerError,
    },
    /// Re-applying a recorded operation did not reproduce it (a bug, or a tampered store).
    #[error("state inconsistent: {0}")]
    Inconsistent(&'static str),
    /// A multi-hop payment stopped at a hop: which node and channel, and why (relayed back by
    /// every hop before it). `hop` is its index on the route, if the node is on it.
    #[error("payment stopped at {} (channel {}): {:?}", failure.node, failure.channel, failure.reason)]
    PaymentFailed {
        /// The hop's report: the failing node, and the channel it could not use (the one it
        /// forwards into, or the one the lock reached it by).
        failure: keel_core::forwarding::HopFailure,
        /// The index among the route's hops of the hop that reached the failing node (`None`
        /// if the node is not on the route).
        hop: Option<usize>,
    },
    /// The cheapest route found costs more in fees than the caller allows: nothing was sent.
    #[error("the route's fees, {fee}, exceed the limit of {limit}")]
    FeeAboveLimit {
        /// What the route's hops would keep.
        fee: U256,
        /// The caller's limit.
        limit: U256,
    },
    /// No route to pay along, or the route given is unusable.
    #[error("routing: {0}")]
    Routing(String),
    /// An announcement, policy update or payment request that does not verify.
    #[error("refused: {0}")]
    Gossip(String),
    /// A route names a node whose key we do not know ([`Client::add_node_key`]).
    ///
    /// [`Client::add_node_key`]: super::Client::add_node_key
    #[error("no node key known for {0}")]
    UnknownNodeKey(Address),
    /// The onion could not be built.
    #[error(transparent)]
    Onion(#[from] keel_core::forwarding::onion::OnionError),
    /// An amount or expiry of a multi-hop payment out of range.
    #[error(transparent)]
    Forward(keel_core::forwarding::ForwardError),
    /// A forwarding policy that could not be announced (too many rates, two from one asset,
    /// one from the channel's own asset).
    #[error("forwarding policy refused: {0}")]
    BadPolicy(&'static str),
    /// A watchtower's client could not be set up.
    #[error("watchtower: {0}")]
    Tower(#[from] super::tower::TowerError),
}

/// Result with the client's [`ClientError`].
pub type Result<T, E = ClientError> = core::result::Result<T, E>;
