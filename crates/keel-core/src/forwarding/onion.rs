//! Route instructions in layers (an onion, as Lightning's Sphinx packets), so that each hop
//! learns only what it must: that it received a lock, and where and what to forward, or that
//! it is the payee. It does not learn the payer, the payee (unless it is one), the route's
//! length or its position on it: every hop sees a packet of the same size.
//!
//! The payer draws a session key and, for each hop's node key, derives a shared secret by
//! ECDH on secp256k1; from it, a key for the ChaCha20 layer (`rho`) and one for the HMAC over
//! the packet (`mu`). The ephemeral public key in the packet is blinded at each hop, so two
//! hops cannot tell they carry the same payment from the packet. The HMAC covers the payment
//! hash too (the associated data), so a packet cannot be moved onto another lock. A hop that
//! changes a byte of what it forwards makes the next hop's HMAC check fail.
//!
//! The point arithmetic runs in libsecp256k1, about three times as fast as k256 for the
//! multiplications of points the node did not choose; the API keeps k256's key types.
//!
//! Layout: `ephemeral key (33) ‖ routing info (MAX_HOPS × 112) ‖ HMAC (32)`, 1,409 bytes.
//! Each hop's frame is its 80-byte payload ([`HopPayload`]) and the HMAC of the packet it
//! forwards (all zeros for the payee).

use alloy::primitives::{B256, U256};
use chacha20::{
    cipher::{KeyIvInit, StreamCipher},
    ChaCha20,
};
use hmac::{Hmac, Mac};
use k256::{elliptic_curve::sec1::ToEncodedPoint, PublicKey, SecretKey};
use secp256k1::{ecdh::SharedSecret, Scalar};
use sha2::{Digest, Sha256};

use super::ForwardInstruction;
use crate::signing::CONTEXT;

/// Most hops a route may have.
pub const MAX_HOPS: usize = 12;
/// Bytes of one hop's payload.
pub const PAYLOAD_LEN: usize = 80;
const HMAC_LEN: usize = 32;
const FRAME_LEN: usize = PAYLOAD_LEN + HMAC_LEN;
const ROUTING_LEN: usize = MAX_HOPS * FRAME_LEN;
const KEY_LEN: usize = 33;
/// Bytes of a packet.
pub const PACKET_LEN: usize = KEY_LEN + ROUTING_LEN + HMAC_LEN;

/// What one hop is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HopPayload {
    /// Forward under the same secret hash as instructed.
    Forward(ForwardInstruction),
    /// This node is the payee: it should receive `amount` in a lock expiring at `expiration`
    /// (so a hop that kept a fee too many or shortened the lock is caught).
    Receive {
        /// The amount the payer meant to deliver.
        amount: U256,
        /// The expiration the payer gave the last lock.
        expiration: u64,
    },
}

/// An onion packet, as it travels with a lock.
#[derive(Clone, PartialEq, Eq)]
pub struct Packet(pub Box<[u8; PACKET_LEN]>);

impl std::fmt::Debug for Packet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Packet({}…)",
            alloy::primitives::hex::encode(&self.0[..8])
        )
    }
}

/// What a hop finds in its layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peeled {
    /// Forward the lock as instructed, with `next` as the packet for the next hop.
    Forward(ForwardInstruction, Packet),
    /// This node is the payee.
    Receive {
        /// See [`HopPayload::Receive`].
        amount: U256,
        /// See [`HopPayload::Receive`].
        expiration: u64,
    },
}

/// Why a packet could not be built or peeled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OnionError {
    /// No hops, more than [`MAX_HOPS`], or a payee that is not last.
    #[error("a route needs 1 to 12 hops, only the last receiving")]
    BadRoute,
    /// The session key is not a valid secp256k1 scalar.
    #[error("the session key is not a valid secret key")]
    BadSessionKey,
    /// The packet's ephemeral key is not a point on the curve.
    #[error("the packet's ephemeral key is invalid")]
    BadKey,
    /// The HMAC does not match: the packet was changed, or is not for this node or this lock.
    #[error("the packet's HMAC does not match")]
    BadHmac,
    /// The layer decrypted to a payload this version does not know.
    #[error("unknown hop payload kind {0}")]
    UnknownPayload(u8),
    /// An amount does not fit the payload's 128 bits.
    #[error("an amount beyond 128 bits")]
    AmountTooLarge,
}

struct HopKeys {
    rho: [u8; 32],
    mu: [u8; 32],
}

fn derive(kind: &[u8], secret: &[u8; 32]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(kind).expect("HMAC takes any key length");
    mac.update(secret);
    mac.finalize().into_bytes().into()
}

fn keys(secret: &[u8; 32]) -> HopKeys {
    HopKeys {
        rho: derive(b"rho", secret),
        mu: derive(b"mu", secret),
    }
}

fn xor_stream(key: &[u8; 32], data: &mut [u8]) {
    let mut cipher = ChaCha20::new(key.into(), &[0u8; 12].into());
    cipher.apply_keystream(data);
}

fn hmac(key: &[u8; 32], routing: &[u8], associated: &B256) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(routing);
    mac.update(associated.as_slice());
    mac.finalize().into_bytes().into()
}

/// `sha256` of the compressed ECDH point (parity included, so a packet whose ephemeral key is
/// negated derives another secret and fails its HMAC): libsecp256k1's own ECDH hash.
fn shared_secret(secret: &secp256k1::SecretKey, public: &secp256k1::PublicKey) -> [u8; 32] {
    SharedSecret::new(public, secret).secret_bytes()
}

/// A k256 key as libsecp256k1's, from its uncompressed encoding (no square root to take).
fn to_secp(key: &PublicKey) -> Result<secp256k1::PublicKey, OnionError> {
    secp256k1::PublicKey::from_slice(key.to_encoded_point(false).as_bytes())
        .map_err(|_| OnionError::BadKey)
}

/// The scalar a hop's ephemeral key is blinded by: `sha256(key ‖ secret)`, 1 if that is not
/// below the curve order.
fn blinding(ephemeral: &[u8; KEY_LEN], secret: &[u8; 32]) -> Scalar {
    let mut hasher = Sha256::new();
    hasher.update(ephemeral);
    hasher.update(secret);
    let digest: [u8; 32] = hasher.finalize().into();
    Scalar::from_be_bytes(digest).unwrap_or(Scalar::ONE)
}

fn encode(payload: &HopPayload) -> Result<[u8; PAYLOAD_LEN], OnionError> {
    let mut out = [0u8; PAYLOAD_LEN];
    let amount = |value: U256| -> Result<[u8; 16], OnionError> {
        let value: u128 = value.try_into().map_err(|_| OnionError::AmountTooLarge)?;
        Ok(value.to_be_bytes())
    };
    match payload {
        HopPayload::Forward(instruction) => {
            out[0] = 1;
            out[1..9].copy_from_slice(&instruction.next_chain_id.to_be_bytes());
            out[9..41].copy_from_slice(instruction.next_channel.as_slice());
            out[41..57].copy_from_slice(&amount(instruction.amount)?);
            out[57..65].copy_from_slice(&instruction.expiration.to_be_bytes());
        }
        HopPayload::Receive {
            amount: value,
            expiration,
        } => {
            out[0] = 2;
            out[41..57].copy_from_slice(&amount(*value)?);
            out[57..65].copy_from_slice(&expiration.to_be_bytes());
        }
    }
    Ok(out)
}

fn decode(bytes: &[u8]) -> Result<HopPayload, OnionError> {
    let u64_at = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
    let amount = U256::from(u128::from_be_bytes(
        bytes[41..57].try_into().expect("16 bytes"),
    ));
    match bytes[0] {
        1 => Ok(HopPayload::Forward(ForwardInstruction {
            next_chain_id: u64_at(1),
            next_channel: B256::from_slice(&bytes[9..41]),
            amount,
            expiration: u64_at(57),
        })),
        2 => Ok(HopPayload::Receive {
            amount,
            expiration: u64_at(57),
        }),
        kind => Err(OnionError::UnknownPayload(kind)),
    }
}

/// Builds the packet for a route: `hops[i]` is the node key of the `i`-th node after the payer
/// with its payload (every one a `Forward` but the last, a `Receive`). `session_key` must be
/// fresh random bytes for each packet; `payment_hash` is the locks' secret hash.
pub fn build(
    session_key: &[u8; 32],
    hops: &[(PublicKey, HopPayload)],
    payment_hash: &B256,
) -> Result<Packet, OnionError> {
    let n = hops.len();
    let receives_last = hops
        .iter()
        .enumerate()
        .all(|(i, (_, p))| matches!(p, HopPayload::Receive { .. }) == (i + 1 == n));
    if n == 0 || n > MAX_HOPS || !receives_last {
        return Err(OnionError::BadRoute);
    }
    let mut ephemeral = secp256k1::SecretKey::from_byte_array(*session_key)
        .map_err(|_| OnionError::BadSessionKey)?;
    let mut first_key = None;
    let mut secrets = Vec::with_capacity(n);
    for (node, _) in hops {
        // From libsecp256k1's precomputed base-point tables.
        let public = secp256k1::PublicKey::from_secret_key(&CONTEXT, &ephemeral).serialize();
        first_key.get_or_insert(public);
        let secret = shared_secret(&ephemeral, &to_secp(node)?);
        ephemeral = ephemeral
            .mul_tweak(&blinding(&public, &secret))
            .map_err(|_| OnionError::BadSessionKey)?;
        secrets.push(keys(&secret));
    }
    let first_key = first_key.expect("at least one hop");

    // What the hops before the last shift into the end of the routing info, which the last
    // layer must already account for so every HMAC holds.
    let mut filler = Vec::with_capacity((n - 1) * FRAME_LEN);
    for keys in &secrets[..n - 1] {
        filler.extend_from_slice(&[0u8; FRAME_LEN]);
        let mut stream = vec![0u8; ROUTING_LEN + FRAME_LEN];
        xor_stream(&keys.rho, &mut stream);
        let offset = stream.len() - filler.len();
        for (byte, key) in filler.iter_mut().zip(&stream[offset..]) {
            *byte ^= key;
        }
    }

    let mut routing = [0u8; ROUTING_LEN];
    // The unused tail starts as noise from the session key, not zeros a hop could count.
    xor_stream(&derive(b"pad", session_key), &mut routing);
    let mut next_hmac = [0u8; HMAC_LEN];
    for (i, (keys, (_, payload))) in secrets.iter().zip(hops).enumerate().rev() {
        routing.copy_within(..ROUTING_LEN - FRAME_LEN, FRAME_LEN);
        routing[..PAYLOAD_LEN].copy_from_slice(&encode(payload)?);
        routing[PAYLOAD_LEN..FRAME_LEN].copy_from_slice(&next_hmac);
        xor_stream(&keys.rho, &mut routing);
        if i + 1 == n {
            routing[ROUTING_LEN - filler.len()..].copy_from_slice(&filler);
        }
        next_hmac = hmac(&keys.mu, &routing, payment_hash);
    }

    let mut packet = Box::new([0u8; PACKET_LEN]);
    packet[..KEY_LEN].copy_from_slice(&first_key);
    packet[KEY_LEN..KEY_LEN + ROUTING_LEN].copy_from_slice(&routing);
    packet[KEY_LEN + ROUTING_LEN..].copy_from_slice(&next_hmac);
    Ok(Packet(packet))
}

/// Opens this node's layer of `packet`, carried by a lock with secret hash `payment_hash`.
pub fn peel(
    node_key: &SecretKey,
    packet: &Packet,
    payment_hash: &B256,
) -> Result<Peeled, OnionError> {
    let bytes = &packet.0;
    // Only the compressed encoding: SEC1 also has a "compact" x-only tag (0x05), which would
    // give one key two encodings.
    if !matches!(bytes[0], 0x02 | 0x03) {
        return Err(OnionError::BadKey);
    }
    let encoded: [u8; KEY_LEN] = bytes[..KEY_LEN].try_into().expect("33 bytes");
    let ephemeral = secp256k1::PublicKey::from_slice(&encoded).map_err(|_| OnionError::BadKey)?;
    let node_secret = secp256k1::SecretKey::from_byte_array(node_key.to_bytes().into())
        .map_err(|_| OnionError::BadKey)?;
    let secret = shared_secret(&node_secret, &ephemeral);
    let keys = keys(&secret);
    let routing = &bytes[KEY_LEN..KEY_LEN + ROUTING_LEN];
    // Constant time: the comparison must not tell an attacker how many bytes matched.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&keys.mu).expect("any key length");
    mac.update(routing);
    mac.update(payment_hash.as_slice());
    mac.verify_slice(&bytes[KEY_LEN + ROUTING_LEN..])
        .map_err(|_| OnionError::BadHmac)?;

    let mut opened = vec![0u8; ROUTING_LEN + FRAME_LEN];
    opened[..ROUTING_LEN].copy_from_slice(routing);
    xor_stream(&keys.rho, &mut opened);
    let payload = decode(&opened[..PAYLOAD_LEN])?;
    let next_hmac = &opened[PAYLOAD_LEN..FRAME_LEN];
    match payload {
        HopPayload::Receive { amount, expiration } => {
            if next_hmac.iter().any(|&b| b != 0) {
                return Err(OnionError::BadRoute);
            }
            Ok(Peeled::Receive { amount, expiration })
        }
        HopPayload::Forward(instruction) => {
            let next_key = ephemeral
                .mul_tweak(&CONTEXT, &blinding(&encoded, &secret))
                .map_err(|_| OnionError::BadKey)?;
            let mut next = Box::new([0u8; PACKET_LEN]);
            next[..KEY_LEN].copy_from_slice(&next_key.serialize());
            next[KEY_LEN..KEY_LEN + ROUTING_LEN].copy_from_slice(&opened[FRAME_LEN..]);
            next[KEY_LEN + ROUTING_LEN..].copy_from_slice(next_hmac);
            Ok(Peeled::Forward(instruction, Packet(next)))
        }
    }
}
