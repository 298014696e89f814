//! What the client tells the application, in the order it happened.

use keel_core::{Address, Lock, Side, B256, U256};

use super::RejectCode;

/// Something that happened in one of the client's channels. Each is emitted after what it
/// reports is stored.
///
/// Events about a channel's history are durable: written to the store in the same
/// transaction as what they report, numbered, and read back from any point with
/// [`Client::events`](super::Client::events) (each exactly once, resuming after a lag or a
/// restart). The live-only ones describe the running process and are only broadcast to
/// [`Client::subscribe`](super::Client::subscribe)rs: `PeerConnected`, `PeerDisconnected`,
/// `PeerRejected`, `ChainTrouble`, `ChainRecovered`, `TowerTrouble`, `TowerRecovered` and
/// `ChannelFailed`.
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
    /// The peer took back a lock it had sent us, which we released before it expired (the
    /// payment failed further on).
    LockReleased {
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
    /// The chain monitor found a channel the peer opened with us, and
    /// [`Config::accept_channels`](super::Config::accept_channels) let us take it: the client
    /// tracks it from now on.
    ChannelOpened {
        /// The channel.
        channel_id: B256,
        /// The peer.
        peer: Address,
    },
    /// The chain monitor found a channel a peer opened with us that
    /// [`Config::accept_channels`](super::Config::accept_channels) refuses: the client does not
    /// track it (the opener gets its deposit back by closing it alone). Reported again if the
    /// monitor sees the opening again (after a restart before its checkpoint moved on).
    ChannelDeclined {
        /// The channel.
        channel_id: B256,
        /// The opener.
        peer: Address,
        /// The opener's deposit.
        deposit: U256,
    },
    /// We forwarded a multi-hop payment and it completed: the secret came back from
    /// `outgoing_channel`, and the lock on `incoming_channel` is being claimed.
    PaymentForwarded {
        /// The channel the payment arrived on.
        incoming_channel: B256,
        /// The channel we forwarded it into.
        outgoing_channel: B256,
        /// The payment's secret hash.
        secret_hash: B256,
        /// What we earned: the incoming lock less the outgoing one, in base units (across
        /// assets, a difference of two units: see [`Forward::fee`](crate::store::Forward::fee)).
        fee: U256,
    },
    /// A payment we forwarded stopped downstream (or its lock there expired unclaimed); the
    /// failure went upstream, and the downstream lock comes back once it expires.
    ForwardFailed {
        /// The channel the payment arrived on.
        incoming_channel: B256,
        /// The payment's secret hash.
        secret_hash: B256,
        /// Where and why it stopped.
        failure: keel_core::forwarding::HopFailure,
    },
    /// A lock paying one of our invoices arrived, checked against it and the payer's onion: the
    /// invoice is paid and its secret revealed to claim the lock (again until the lock is paid
    /// out). Not for a hold invoice, which the application claims itself.
    InvoicePaid {
        /// The invoice's payment hash.
        payment_hash: B256,
        /// The channel it arrived on.
        channel_id: B256,
        /// The amount of the lock claimed.
        amount: U256,
    },
    /// A multi-hop payment we sent reached its payee: it revealed the secret.
    PaymentSent {
        /// The payment hash.
        payment_hash: B256,
        /// What the payee received.
        amount: U256,
        /// What the hops on the way kept.
        fees: U256,
        /// Channels on the route taken.
        hops: u64,
    },
    /// A deposit reached its confirmation depth.
    DepositConfirmed {
        /// The channel.
        channel_id: B256,
        /// Whose deposit.
        side: Side,
        /// The new cumulative deposit.
        total: U256,
    },
    /// A withdrawal reached its confirmation depth.
    WithdrawalConfirmed {
        /// The channel.
        channel_id: B256,
        /// Whose withdrawal.
        side: Side,
        /// The new cumulative withdrawal.
        total: U256,
    },
    /// The peer closed the channel unilaterally; the client refutes by itself if it holds a
    /// newer proof.
    ClosedByPeer {
        /// The channel.
        channel_id: B256,
        /// Last second a refutation is accepted.
        deadline: u64,
    },
    /// We submitted the closer's newer proof.
    RefutationSubmitted {
        /// The channel.
        channel_id: B256,
        /// Nonce of the proof submitted.
        nonce: u64,
        /// The transaction.
        tx_hash: B256,
    },
    /// In a dispute, we recorded in the vault the releases the peer signed for our locks
    /// (`releaseLocks`): `unlock` returns those locks to us whatever proof is on record.
    LocksReleasedOnChain {
        /// The channel.
        channel_id: B256,
        /// How many releases the transaction recorded.
        count: u64,
        /// The transaction.
        tx_hash: B256,
    },
    /// A refutation was confirmed: the closer's proof on record now has this nonce.
    DisputeAnswered {
        /// The channel.
        channel_id: B256,
        /// The closer's nonce on record.
        closer_nonce: u64,
    },
    /// The vault paid out (cooperative close or settlement).
    Settled {
        /// The channel.
        channel_id: B256,
        /// Paid to A.
        payout_a: U256,
        /// Paid to B.
        payout_b: U256,
    },
    /// Following a chain ran into trouble (the monitor retries by itself).
    ChainTrouble {
        /// The chain.
        chain_id: u64,
        /// What went wrong.
        reason: String,
    },
    /// The chain's monitor is healthy again after [`ClientEvent::ChainTrouble`] reported it
    /// unhealthy ([`crate::chain::Health::is_healthy`]).
    ChainRecovered {
        /// The chain.
        chain_id: u64,
    },
    /// A configured watchtower did not answer, refused an appointment, or answered with a
    /// wrong receipt (the tower client retries by itself; see
    /// [`Client::tower_health`](super::Client::tower_health)). Until
    /// [`ClientEvent::TowerRecovered`], it may not hold our newest proofs.
    TowerTrouble {
        /// The tower's address.
        tower: Address,
        /// What went wrong.
        reason: String,
    },
    /// The tower answers correctly again after [`ClientEvent::TowerTrouble`].
    TowerRecovered {
        /// The tower's address.
        tower: Address,
    },
    /// A channel stopped taking updates (see [`super::ClientError::ChannelFailed`]).
    ChannelFailed {
        /// The channel.
        channel_id: B256,
        /// Why.
        reason: String,
    },
}
