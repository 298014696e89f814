//! Why a handshake or a connection failed.

use keel_core::{wire::WireError, Address};

/// Everything that can go wrong on the peer transport. Any error from a handshake or from
/// [`Receiver::recv`](super::Receiver::recv) ends the connection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket failed, or the peer hung up in the middle of a message.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// The Noise handshake failed (not a Keel peer, or a corrupted or forged message).
    #[error(transparent)]
    Noise(#[from] snow::Error),
    /// The handshake did not finish within the configured time.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// A handshake message had the wrong length (the peer does not speak this protocol).
    #[error("handshake message of {got} bytes, expected {expected}")]
    HandshakeLength {
        /// The length this protocol uses at that step.
        expected: usize,
        /// The length the peer announced.
        got: usize,
    },
    /// The peer's identity signature is malformed or recovers to no address.
    #[error("peer's identity signature is invalid: {0}")]
    BadSignature(keel_core::Error),
    /// The peer claims an address whose key did not sign its Noise key for this session.
    #[error("peer claims {claimed} but its key was signed by {signer}")]
    ClaimMismatch {
        /// The address the peer claimed.
        claimed: Address,
        /// The address the signature recovers to.
        signer: Address,
    },
    /// The peer authenticated as someone other than the address we dialled.
    #[error("expected peer {expected}, connected to {authenticated}")]
    UnexpectedPeer {
        /// The address we dialled.
        expected: Address,
        /// The address the peer proved it holds.
        authenticated: Address,
    },
    /// A transport message longer than any Keel frame can be; holds the announced length.
    #[error("message of {0} bytes exceeds the limit")]
    Oversized(usize),
    /// A transport message failed authentication (tampered, replayed, reordered or forged).
    #[error("message failed to decrypt")]
    Decrypt,
    /// A decrypted message is not exactly one valid Keel frame.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The connection is closed: the peer hung up between messages, or an earlier error (or a
    /// cancelled send) closed it.
    #[error("connection closed")]
    Closed,
}

/// Result with the transport's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
