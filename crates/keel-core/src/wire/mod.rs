//! Peer messages and their binary encoding (no I/O: the client frames them onto a socket).
//!
//! Every frame is `length: u32 BE ‖ version: u8 ‖ kind: u8 ‖ body`, where `length` counts the
//! bytes after itself and is at most [`MAX_FRAME_LEN`]. Bodies are fixed-layout big-endian
//! fields; decoding rejects unknown versions and kinds, short or oversized frames and trailing
//! bytes with a typed [`WireError`], and never panics (fuzzed: `tests/wire_fuzz.rs`).

mod codec;

pub use codec::{
    decode_change_proof, decode_changes_proof, decode_frame, encode_change_proof,
    encode_changes_proof, encode_frame, WireError,
};

use alloy::primitives::{Address, B256, U256};

use crate::{
    channel::Change,
    forwarding::{onion::Packet, ChannelAnnouncement, ChannelUpdate, HopFailure},
    BalanceProof, CooperativeClose, Withdrawal,
};

/// The wire version this build speaks (7: early lock release, `LockReleased` and the
/// `RemoveReleasedLock` change; 6: channel graph gossip, `ChannelAnnouncement`,
/// `ChannelUpdate` and `AnnouncementSignature`; 5: multi-hop payments, `LockOnion` and `LockFailed`;
/// 4: `Hello` lost its chain id, which no receiver could check; 3: withdrawals carry their destination and closes each side's deposit, as the signed
/// types do; 2 added batched updates).
pub const VERSION: u8 = 7;
/// Largest accepted frame body (after the length prefix), in bytes.
pub const MAX_FRAME_LEN: usize = 4096;
/// Most changes one [`Message::Update`] carries: even if every one is a lock (the largest
/// change, a released lock's removal of 98 bytes), the frame stays under [`MAX_FRAME_LEN`].
pub const MAX_UPDATE_CHANGES: usize = 32;
/// Most exchange rates one [`Message::ChannelUpdate`] carries (keel-routing refuses more
/// too): 16 rates of 116 bytes keep the frame under [`MAX_FRAME_LEN`].
pub const MAX_UPDATE_RATES: usize = 16;

/// A 65-byte `r ‖ s ‖ v` signature.
pub type Signature = [u8; 65];

/// What peers send each other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Changes to the sender's direction of a channel, one nonce each, and the signed proof
    /// the last one makes: one signature covers the whole batch.
    Update {
        /// The changes, in the order they apply (1 to [`MAX_UPDATE_CHANGES`]).
        changes: Vec<Change>,
        /// The balance proof after the last change.
        proof: BalanceProof,
        /// The sender's signature over it.
        signature: Signature,
    },
    /// The receiver stored the update with this nonce.
    Ack {
        /// The channel.
        channel_id: B256,
        /// The acknowledged nonce.
        nonce: u64,
    },
    /// A withdrawal signed by its proposer, asking the peer to co-sign it.
    WithdrawalRequest {
        /// The withdrawal.
        withdrawal: Withdrawal,
        /// The proposer's signature.
        signature: Signature,
    },
    /// The peer's co-signature of a requested withdrawal.
    WithdrawalApproval {
        /// The withdrawal.
        withdrawal: Withdrawal,
        /// The approver's signature.
        signature: Signature,
    },
    /// A cooperative close signed by its proposer.
    CloseRequest {
        /// The close.
        close: CooperativeClose,
        /// The proposer's signature.
        signature: Signature,
    },
    /// The peer's co-signature of a proposed close.
    CloseApproval {
        /// The close.
        close: CooperativeClose,
        /// The approver's signature.
        signature: Signature,
    },
    /// After a reconnect: the latest nonces this side holds for a channel, so both can resend
    /// what the other missed.
    Resync {
        /// The channel.
        channel_id: B256,
        /// Nonce of the latest proof this side sent.
        sent_nonce: u64,
        /// Nonce of the latest proof this side received and stored.
        received_nonce: u64,
    },
    /// A refusal of a previous message, with a reason for the log.
    Reject {
        /// The channel concerned (zero if none).
        channel_id: B256,
        /// A short machine-readable reason code.
        code: u16,
    },
    /// The receiver of a hash-time-locked payment reveals its secret to the sender, who then
    /// pays the lock out with a [`Change::ClaimLock`] update.
    RevealSecret {
        /// The channel holding the lock.
        channel_id: B256,
        /// The preimage of the lock's secret hash.
        secret: B256,
    },
    /// The route instructions of a multi-hop payment, for the lock with `secret_hash` that the
    /// sender adds in `channel_id` next: sent just before the update carrying the lock, so the
    /// receiver can peel its layer once the lock is stored.
    LockOnion {
        /// The channel the lock is added in.
        channel_id: B256,
        /// The lock's secret hash (the onion's HMAC covers it too).
        secret_hash: B256,
        /// The onion packet, this receiver's layer outermost.
        packet: Packet,
    },
    /// The receiver of a lock will not claim it: a hop on its way did not pass the payment on
    /// (`failure` says which and why, relayed unchanged by every hop back to the payer). The
    /// lock's sender takes it back once it expires.
    LockFailed {
        /// The channel holding the lock.
        channel_id: B256,
        /// The lock's secret hash.
        secret_hash: B256,
        /// Where and why the payment stopped.
        failure: HopFailure,
    },
    /// The receiver of a lock gives it up before it expires: `signature` is its
    /// [`LockRelease`](crate::LockRelease) over the lock with `secret_hash` in `channel_id`.
    /// The lock's sender checks it, keeps it (a dispute records it on chain) and removes the
    /// lock from its next proof ([`Change::RemoveReleasedLock`]). Sent before the
    /// [`Message::LockFailed`] it goes with, so a payer hears of the release first.
    LockReleased {
        /// The channel holding the lock.
        channel_id: B256,
        /// The lock's secret hash.
        secret_hash: B256,
        /// The receiver's signature over the lock's `LockRelease`.
        signature: Signature,
    },
    /// One participant's signature over the announcement of a channel it shares with the
    /// receiver: the channel becomes public once both have signed (each side then holds the
    /// whole announcement and gossips it). The receiver rebuilds the announcement from the
    /// channel it holds, so only the id and the signature travel.
    AnnouncementSignature {
        /// The channel.
        channel_id: B256,
        /// The sender's signature over the channel's `ChannelAnnouncement`.
        signature: Signature,
    },
    /// Gossip: a public channel, signed by both participants, on `chain_id` (which, with the
    /// parameters, fixes its id and vault). `capacity` is the relaying node's view of the
    /// channel's deposits: a routing hint the receiver bounds by what it knows, never a
    /// signed fact (deposits and withdrawals change it).
    ChannelAnnouncement {
        /// The channel's chain.
        chain_id: u64,
        /// The announcement.
        announcement: ChannelAnnouncement,
        /// The relayer's view of the channel's capacity.
        capacity: U256,
        /// A's and B's signatures over `announcement` under the channel's domain.
        signatures: [Signature; 2],
    },
    /// Gossip: a node's signed forwarding policy for one direction of a public channel.
    ChannelUpdate {
        /// The policy (at most [`MAX_UPDATE_RATES`] rates).
        update: ChannelUpdate,
        /// The node's signature under the channel's domain.
        signature: Signature,
    },
    /// First message on a connection, and the keep-alive: who the sender says it is (the
    /// transport authenticates it). It names no chain: a connection carries the channels of
    /// every chain the two peers share, and each channel names its chain (its id and its
    /// signatures' domain bind the chain id).
    Hello {
        /// The sender's Ethereum address.
        address: Address,
    },
}

/// The fuzz target for message decoding: must never panic, and whatever decodes must re-encode
/// to the same bytes (one encoding per message). Replayed over `fuzz/corpus/wire` by
/// `cargo test` (tests/wire_fuzz.rs); any coverage-guided fuzzer can drive it too.
pub fn fuzz_decode(data: &[u8]) {
    if let Ok(Some((msg, used))) = decode_frame(data) {
        let mut again = Vec::new();
        encode_frame(&msg, &mut again);
        assert_eq!(
            again,
            data[..used],
            "decoded message re-encodes differently"
        );
    }
}
