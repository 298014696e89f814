//! The Noise XX handshake and the binding of each side's Noise static key to its Ethereum
//! address.
//!
//! Handshake messages are `length: u16 BE ‖ noise message` with empty payloads, so each has one
//! fixed length and anything else is refused before it is read. Once XX completes, each side
//! sends one transport message (nonce 0), `address ‖ signature`, where the signature is by that
//! address's key over the EIP-712 typed data `PeerHandshake(own Noise static key, handshake
//! hash)` under [`keel_core::transport_domain`] ([`identity_digest`]): what a wallet's
//! `eth_signTypedData_v4` signs. The handshake hash covers both ephemeral and both static keys,
//! so the signature holds for this session only. The responder proves itself first: the
//! initiator reveals its address only to the peer it meant to dial.

use keel_core::{
    signing::{sign_hash, SIGNATURE_LEN},
    Address, B256,
};
use snow::{HandshakeState, StatelessTransportState};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use super::{
    identity_digest, identity_signer, keys::StaticKeyResolver, Error, Result, Transport, PROTOCOL,
    TAG_LEN,
};

/// The Noise protocol name.
pub(super) const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";

/// X25519 public key length.
const DH_LEN: usize = 32;
/// `-> e`
const MSG1_LEN: usize = DH_LEN;
/// `<- e, ee, s, es` (encrypted static key and empty payload each carry a tag).
const MSG2_LEN: usize = DH_LEN + DH_LEN + TAG_LEN + TAG_LEN;
/// `-> s, se`
const MSG3_LEN: usize = DH_LEN + TAG_LEN + TAG_LEN;
/// `address ‖ signature`, sealed.
const AUTH_LEN: usize = 20 + SIGNATURE_LEN + TAG_LEN;

/// A completed, authenticated handshake.
pub(super) struct Session {
    pub(super) noise: StatelessTransportState,
    pub(super) peer: Address,
}

/// What the two sides learn from XX before they exchange signatures.
struct Keys {
    noise: StatelessTransportState,
    hash: B256,
    local_static: [u8; DH_LEN],
    remote_static: [u8; DH_LEN],
}

/// Runs the initiator's side and checks the responder is `expected`.
pub(super) async fn initiate(
    stream: &mut TcpStream,
    local: &Transport,
    expected: Address,
) -> Result<Session> {
    let mut hs = builder(local)
        .local_private_key(local.noise_private())?
        .prologue(PROTOCOL)?
        .build_initiator()?;
    write_handshake(stream, &mut hs, MSG1_LEN).await?;
    read_handshake(stream, &mut hs, MSG2_LEN).await?;
    write_handshake(stream, &mut hs, MSG3_LEN).await?;
    let keys = finish(hs, local)?;

    let peer = open_auth(&keys, &read_exact_prefixed(stream, AUTH_LEN).await?)?;
    if peer != expected {
        return Err(Error::UnexpectedPeer {
            expected,
            authenticated: peer,
        });
    }
    write_prefixed(stream, &seal_auth(&keys, local)?).await?;
    Ok(Session {
        noise: keys.noise,
        peer,
    })
}

/// Runs the responder's side; returns the address the initiator proved it holds.
pub(super) async fn respond(stream: &mut TcpStream, local: &Transport) -> Result<Session> {
    // Read before any work: a socket that sends nothing, or not a handshake, costs no
    // cryptography.
    let first = read_exact_prefixed(stream, MSG1_LEN).await?;
    let mut hs = builder(local)
        .local_private_key(local.noise_private())?
        .prologue(PROTOCOL)?
        .build_responder()?;
    hs.read_message(&first, &mut [0; MSG2_LEN])?;
    write_handshake(stream, &mut hs, MSG2_LEN).await?;
    read_handshake(stream, &mut hs, MSG3_LEN).await?;
    let keys = finish(hs, local)?;

    write_prefixed(stream, &seal_auth(&keys, local)?).await?;
    let peer = open_auth(&keys, &read_exact_prefixed(stream, AUTH_LEN).await?)?;
    Ok(Session {
        noise: keys.noise,
        peer,
    })
}

/// A handshake builder whose X25519 knows our static public key already.
fn builder(local: &Transport) -> snow::Builder<'_> {
    snow::Builder::with_resolver(
        params(),
        Box::new(StaticKeyResolver::new(
            local.noise_private,
            local.noise_public,
        )),
    )
}

pub(super) fn params() -> snow::params::NoiseParams {
    NOISE_PARAMS.parse().expect("a valid Noise protocol name")
}

fn finish(hs: HandshakeState, local: &Transport) -> Result<Keys> {
    let hash = B256::try_from(hs.get_handshake_hash()).map_err(|_| snow::Error::Input)?;
    let remote_static = hs
        .get_remote_static()
        .and_then(|k| k.try_into().ok())
        .ok_or(snow::Error::Input)?;
    Ok(Keys {
        noise: hs.into_stateless_transport_mode()?,
        hash,
        local_static: local.noise_public,
        remote_static,
    })
}

/// Our `address ‖ signature`, sealed as transport message 0.
fn seal_auth(keys: &Keys, local: &Transport) -> Result<Vec<u8>> {
    let signature = sign_hash(
        &local.signer,
        &identity_digest(&keys.local_static, &keys.hash),
    )
    .map_err(Error::BadSignature)?;
    let mut plain = Vec::with_capacity(AUTH_LEN - TAG_LEN);
    plain.extend_from_slice(local.claimed.as_slice());
    plain.extend_from_slice(&signature);
    let mut sealed = vec![0; AUTH_LEN];
    keys.noise.write_message(0, &plain, &mut sealed)?;
    Ok(sealed)
}

/// Checks the peer's sealed `address ‖ signature`; returns the address.
fn open_auth(keys: &Keys, sealed: &[u8]) -> Result<Address> {
    let mut plain = [0; AUTH_LEN - TAG_LEN];
    keys.noise
        .read_message(0, sealed, &mut plain)
        .map_err(|_| Error::Decrypt)?;
    let (claimed, signature) = plain.split_at(20);
    let claimed = Address::from_slice(claimed);
    let signer = identity_signer(&keys.remote_static, &keys.hash, signature)?;
    if signer != claimed {
        return Err(Error::ClaimMismatch { claimed, signer });
    }
    Ok(claimed)
}

async fn write_handshake(
    stream: &mut TcpStream,
    hs: &mut HandshakeState,
    len: usize,
) -> Result<()> {
    let mut msg = [0; MSG2_LEN];
    let written = hs.write_message(&[], &mut msg)?;
    debug_assert_eq!(written, len);
    write_prefixed(stream, &msg[..written]).await
}

async fn read_handshake(stream: &mut TcpStream, hs: &mut HandshakeState, len: usize) -> Result<()> {
    let msg = read_exact_prefixed(stream, len).await?;
    let mut payload = [0; MSG2_LEN];
    hs.read_message(&msg, &mut payload)?;
    Ok(())
}

/// Writes `length: u16 BE ‖ msg` in one call.
async fn write_prefixed(stream: &mut TcpStream, msg: &[u8]) -> Result<()> {
    let mut out = Vec::with_capacity(2 + msg.len());
    // Handshake messages are at most a few hundred bytes.
    out.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    out.extend_from_slice(msg);
    stream.write_all(&out).await?;
    Ok(())
}

/// Reads a length-prefixed message that must be exactly `expected` bytes long.
async fn read_exact_prefixed(stream: &mut TcpStream, expected: usize) -> Result<Vec<u8>> {
    let mut prefix = [0; 2];
    stream.read_exact(&mut prefix).await?;
    let got = usize::from(u16::from_be_bytes(prefix));
    if got != expected {
        return Err(Error::HandshakeLength { expected, got });
    }
    let mut msg = vec![0; got];
    stream.read_exact(&mut msg).await?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_lengths_match_snow() {
        let builder = || snow::Builder::new(params());
        let (ik, rk) = (
            builder().generate_keypair().unwrap(),
            builder().generate_keypair().unwrap(),
        );
        let mut i = builder()
            .local_private_key(&ik.private)
            .unwrap()
            .build_initiator()
            .unwrap();
        let mut r = builder()
            .local_private_key(&rk.private)
            .unwrap()
            .build_responder()
            .unwrap();
        fn step(from: &mut HandshakeState, to: &mut HandshakeState, len: usize) {
            let (mut buf, mut payload) = ([0; 256], [0; 256]);
            let n = from.write_message(&[], &mut buf).unwrap();
            assert_eq!(n, len);
            to.read_message(&buf[..n], &mut payload).unwrap();
        }
        step(&mut i, &mut r, MSG1_LEN);
        step(&mut r, &mut i, MSG2_LEN);
        step(&mut i, &mut r, MSG3_LEN);
        assert_eq!(i.get_handshake_hash(), r.get_handshake_hash());
    }
}
