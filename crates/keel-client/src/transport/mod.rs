//! The peer transport: TCP, encrypted and mutually authenticated with Noise XX
//! (`Noise_XX_25519_ChaChaPoly_BLAKE2s`), each peer identified by its Ethereum address.
//!
//! **Handshake.** XX with empty payloads, each message prefixed by its length (`u16` BE); the
//! prologue is [`PROTOCOL`], so peers of another transport version fail the handshake. Then
//! each side sends, encrypted, its address and a 65-byte signature by that address's key over
//! the EIP-712 typed data `PeerHandshake(bytes32 noiseKey,bytes32 handshakeHash)` (its Noise
//! static key, the handshake hash) under the domain `{name: "Keel transport", version: "3"}`
//! ([`keel_core::PeerHandshake`], [`keel_core::transport_domain`]), checked with
//! [`keel_core::signing::recover`]. A wallet signs it with `eth_signTypedData_v4`. The
//! handshake hash is unique to the session, so a binding cannot be replayed; its own domain
//! and type keep it from being any channel message's digest.
//! The responder proves itself first; the initiator checks it is the address it dialled
//! before revealing its own.
//!
//! **Messages.** Keel wire frames ([`keel_core::wire::encode_frame`], ≤ 4 KiB each) travel in
//! Noise transport messages, `length: u16 BE ‖ ciphertext`, whose plaintext is one or more whole
//! frames: frames queued together share one encryption (its fixed cost, not the bytes, is what
//! a small frame pays) and never span two messages. A length above [`MAX_MESSAGE_LEN`], a
//! failed decryption, an empty plaintext or a malformed or cut frame is a typed [`Error`] and
//! shuts the socket down. Sends wait for the socket, so a slow reader slows
//! its writer (TCP flow control is the back-pressure); a receiver reads only when asked.

mod connection;
mod error;
mod handshake;
mod keys;

pub use connection::{Connection, Receiver, Sender};
pub use error::{Error, Result};

use std::{fmt, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use keel_core::{wire::MAX_FRAME_LEN, Address, B256};
use tokio::net::{TcpStream, ToSocketAddrs};

/// Transport version, the Noise prologue: peers of another version fail the handshake. v3 signs
/// the identity binding as EIP-712 typed data (v2 signed a raw `keccak256`, which wallets
/// refuse to sign); [`keel_core::eip712::TRANSPORT_DOMAIN_VERSION`] follows it.
pub const PROTOCOL: &[u8] = b"keel-transport-v3";

/// The EIP-712 digest a peer signs in the handshake to bind its Noise static key `noise_key`
/// to its address for the session whose Noise handshake hash is `handshake_hash`: typed data
/// [`keel_core::PeerHandshake`] under [`keel_core::transport_domain`], what a wallet signs
/// with `eth_signTypedData_v4`.
pub fn identity_digest(noise_key: &[u8; 32], handshake_hash: &B256) -> B256 {
    keel_core::PeerHandshake {
        noiseKey: B256::from(*noise_key),
        handshakeHash: *handshake_hash,
    }
    .signing_hash()
}

/// The address whose key made `signature` over [`identity_digest`]: what the handshake checks
/// against the address the peer claims. Fails with [`Error::BadSignature`] if the signature is
/// malformed or recovers to no address.
pub fn identity_signer(
    noise_key: &[u8; 32],
    handshake_hash: &B256,
    signature: &[u8],
) -> Result<Address> {
    keel_core::signing::recover(&identity_digest(noise_key, handshake_hash), signature)
        .map_err(Error::BadSignature)
}

/// Authentication tag added to every Noise message.
const TAG_LEN: usize = 16;

/// Longest transport message accepted: room for the largest Keel frame, or for several smaller
/// ones.
pub const MAX_MESSAGE_LEN: usize = 4 + MAX_FRAME_LEN + TAG_LEN;

/// How long a handshake may take unless configured otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One local identity on the transport: the Ethereum key peers know us by, and the Noise static
/// key (random, made by [`Transport::new`]) that each handshake binds to it.
///
/// Cheap to clone; use one for every connection.
#[derive(Clone)]
pub struct Transport {
    signer: PrivateKeySigner,
    /// The address sent in the handshake: the signer's, except in forgery tests.
    claimed: Address,
    noise_private: [u8; 32],
    noise_public: [u8; 32],
    handshake_timeout: Duration,
}

impl fmt::Debug for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transport")
            .field("address", &self.claimed)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl Transport {
    /// A transport identified by `signer`'s address, with a fresh Noise static key.
    pub fn new(signer: PrivateKeySigner) -> Result<Self> {
        let keypair = snow::Builder::new(handshake::params()).generate_keypair()?;
        let key = |k: Vec<u8>| <[u8; 32]>::try_from(k).map_err(|_| snow::Error::Input);
        Ok(Self {
            claimed: signer.address(),
            signer,
            noise_private: key(keypair.private)?,
            noise_public: key(keypair.public)?,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
        })
    }

    /// Sets how long a handshake (connecting excluded) may take before it fails with
    /// [`Error::HandshakeTimeout`].
    pub fn with_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// A transport that claims `claimed` while signing with `signer`: peers must reject it.
    #[cfg(feature = "test-utils")]
    pub fn forged(signer: PrivateKeySigner, claimed: Address) -> Result<Self> {
        Ok(Self {
            claimed,
            ..Self::new(signer)?
        })
    }

    /// The Ethereum address peers know us by.
    pub fn address(&self) -> Address {
        self.claimed
    }

    /// Connects to `addr` and runs the handshake; fails with [`Error::UnexpectedPeer`] unless
    /// the peer proves it holds `expected`.
    pub async fn connect(&self, addr: impl ToSocketAddrs, expected: Address) -> Result<Connection> {
        self.initiate(TcpStream::connect(addr).await?, expected)
            .await
    }

    /// Runs the initiator's handshake on a connected stream (see [`Transport::connect`]).
    /// Turns Nagle's algorithm off: peer messages are small and latency-bound.
    pub async fn initiate(&self, mut stream: TcpStream, expected: Address) -> Result<Connection> {
        stream.set_nodelay(true)?;
        let session = tokio::time::timeout(
            self.handshake_timeout,
            handshake::initiate(&mut stream, self, expected),
        )
        .await
        .map_err(|_| Error::HandshakeTimeout)??;
        Ok(Connection::new(stream, session))
    }

    /// Runs the responder's handshake on an accepted stream. Any Keel peer may complete it:
    /// check [`Connection::peer`], the address it proved it holds, before trusting it.
    pub async fn accept(&self, mut stream: TcpStream) -> Result<Connection> {
        stream.set_nodelay(true)?;
        let session = tokio::time::timeout(
            self.handshake_timeout,
            handshake::respond(&mut stream, self),
        )
        .await
        .map_err(|_| Error::HandshakeTimeout)??;
        Ok(Connection::new(stream, session))
    }

    fn noise_private(&self) -> &[u8] {
        &self.noise_private
    }
}
