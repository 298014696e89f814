//! Our Noise static key with its public half derived once.
//!
//! snow derives the public key from the private one each time a handshake is built (an X25519
//! multiplication); a listener pays that per accepted socket. [`StaticKeyResolver`] hands snow
//! a Diffie-Hellman object that knows the public half of our static key already, and does
//! everything else (ephemeral keys, the exchanges) exactly as snow's own X25519.

use curve25519_dalek::montgomery::MontgomeryPoint;
use snow::{
    params::{CipherChoice, DHChoice, HashChoice},
    resolvers::{CryptoResolver, DefaultResolver},
    types::{Cipher, Dh, Hash, Random},
};

/// X25519 key length.
const KEY_LEN: usize = 32;

/// Resolves snow's primitives as its default resolver does, except that X25519 knows our
/// static key pair.
pub(super) struct StaticKeyResolver {
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl StaticKeyResolver {
    /// A resolver for the static key pair (`private`, `public`), checked to belong together.
    pub(super) fn new(private: [u8; KEY_LEN], public: [u8; KEY_LEN]) -> Self {
        debug_assert_eq!(
            MontgomeryPoint::mul_base_clamped(private).to_bytes(),
            public
        );
        Self { private, public }
    }
}

impl CryptoResolver for StaticKeyResolver {
    fn resolve_rng(&self) -> Option<Box<dyn Random>> {
        DefaultResolver.resolve_rng()
    }

    fn resolve_dh(&self, choice: &DHChoice) -> Option<Box<dyn Dh>> {
        match choice {
            DHChoice::Curve25519 => Some(Box::new(X25519 {
                known: (self.private, self.public),
                private: [0; KEY_LEN],
                public: [0; KEY_LEN],
            })),
            other => DefaultResolver.resolve_dh(other),
        }
    }

    fn resolve_hash(&self, choice: &HashChoice) -> Option<Box<dyn Hash>> {
        DefaultResolver.resolve_hash(choice)
    }

    fn resolve_cipher(&self, choice: &CipherChoice) -> Option<Box<dyn Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// X25519 as snow's default, with the public half of one known key pair cached.
struct X25519 {
    known: ([u8; KEY_LEN], [u8; KEY_LEN]),
    private: [u8; KEY_LEN],
    public: [u8; KEY_LEN],
}

impl Dh for X25519 {
    fn name(&self) -> &'static str {
        "25519"
    }

    fn pub_len(&self) -> usize {
        KEY_LEN
    }

    fn priv_len(&self) -> usize {
        KEY_LEN
    }

    fn set(&mut self, privkey: &[u8]) {
        let mut private = [0; KEY_LEN];
        let n = privkey.len().min(KEY_LEN);
        private[..n].copy_from_slice(&privkey[..n]);
        self.private = private;
        self.public = if private == self.known.0 {
            self.known.1
        } else {
            MontgomeryPoint::mul_base_clamped(private).to_bytes()
        };
    }

    fn generate(&mut self, rng: &mut dyn Random) -> Result<(), snow::Error> {
        let mut private = [0; KEY_LEN];
        rng.try_fill_bytes(&mut private)?;
        self.private = private;
        self.public = MontgomeryPoint::mul_base_clamped(private).to_bytes();
        Ok(())
    }

    fn pubkey(&self) -> &[u8] {
        &self.public
    }

    fn privkey(&self) -> &[u8] {
        &self.private
    }

    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        let theirs: [u8; KEY_LEN] = pubkey
            .get(..KEY_LEN)
            .and_then(|k| k.try_into().ok())
            .ok_or(snow::Error::Dh)?;
        let shared = MontgomeryPoint(theirs).mul_clamped(self.private).to_bytes();
        out.get_mut(..KEY_LEN)
            .ok_or(snow::Error::Dh)?
            .copy_from_slice(&shared);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached key pair and a fresh one agree with snow's own X25519 on every exchange.
    #[test]
    fn matches_snows_x25519() {
        let builder = || snow::Builder::new(super::super::handshake::params());
        let ours = builder().generate_keypair().unwrap();
        let theirs = builder().generate_keypair().unwrap();
        let (private, public) = (
            <[u8; 32]>::try_from(ours.private.as_slice()).unwrap(),
            <[u8; 32]>::try_from(ours.public.as_slice()).unwrap(),
        );
        let resolver = StaticKeyResolver::new(private, public);
        let mut cached = resolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        cached.set(&private);
        assert_eq!(cached.pubkey(), ours.public.as_slice());
        let mut reference = DefaultResolver.resolve_dh(&DHChoice::Curve25519).unwrap();
        reference.set(&private);
        let (mut a, mut b) = ([0; 32], [0; 32]);
        cached.dh(&theirs.public, &mut a).unwrap();
        reference.dh(&theirs.public, &mut b).unwrap();
        assert_eq!(a, b);
        cached.set(&theirs.private);
        assert_eq!(cached.pubkey(), theirs.public.as_slice());
    }
}
