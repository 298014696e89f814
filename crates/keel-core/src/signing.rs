//! Signing and verifying Keel messages as the contracts do (`ecrecover` on a 65-byte
//! `r ‖ s ‖ v` signature, `v` ∈ {27, 28}, low `s` only).
//!
//! Two ways to check a signature: [`verify`] recovers the signer's address (what the contract
//! does; needs nothing but the address), [`verify_with_key`] checks against a public key already
//! known, about twice as fast. A peer recovers its counterparty's key once ([`recover_key`]),
//! then checks every later message with it.

use crate::{
    eip712::{signing_hash, Message},
    error::{Error, Result},
};
use alloy::{
    primitives::{Address, Signature, B256, U256},
    signers::{local::PrivateKeySigner, SignerSync},
};
use k256::elliptic_curve::zeroize::Zeroize;
use k256::{
    elliptic_curve::{
        group::Group,
        ops::{BatchInvert, Invert, Reduce},
        point::AffineCoordinates,
        BatchNormalize,
    },
    AffinePoint, ProjectivePoint, Scalar,
};

mod multiples;

use multiples::Multiples;

/// A secp256k1 public key, as [`verify_with_key`] takes it (re-exported so callers need no
/// direct `k256` dependency).
pub use k256::ecdsa::VerifyingKey;

/// Length of an encoded signature.
pub const SIGNATURE_LEN: usize = 65;

/// Half the secp256k1 group order; a valid `s` must not exceed it (EIP-2, as OpenZeppelin's
/// `ECDSA` enforces), otherwise `(r, n - s)` would be a second valid signature.
const HALF_ORDER: U256 = U256::from_be_slice(&alloy::primitives::hex!(
    "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
));

/// Signs a 32-byte digest; returns `r ‖ s ‖ v` with `v` ∈ {27, 28}.
pub fn sign_hash(signer: &PrivateKeySigner, digest: &B256) -> Result<[u8; SIGNATURE_LEN]> {
    // libsecp256k1 signs in about half k256's time and makes the same signature byte for byte
    // (RFC 6979 nonces, low s: a property test holds the two to it), so the result passes
    // `recover` as alloy's signer's did.
    let mut secret_bytes: [u8; 32] = signer.credential().to_bytes().into();
    let secret = secp256k1::SecretKey::from_byte_array(secret_bytes);
    secret_bytes.zeroize();
    let Ok(mut secret) = secret else {
        // A k256 key is always in range; alloy's signer answers if that ever changes.
        return Ok(signer.sign_hash_sync(digest)?.as_bytes());
    };
    let signature = CONTEXT
        .sign_ecdsa_recoverable(secp256k1::Message::from_digest(digest.0), &secret)
        .serialize_compact();
    secret.non_secure_erase();
    let (id, rs) = signature;
    let mut out = [0u8; SIGNATURE_LEN];
    out[..64].copy_from_slice(&rs);
    // The recovery id's low bit is `R`'s y parity (its high bit, `R.x` above the order, is
    // never set in practice and not expressible in `v`).
    out[64] = 27 + u8::from(i32::from(id) & 1 == 1);
    Ok(out)
}

/// libsecp256k1's context, blinded once with fresh randomness (its defence against side
/// channels; signatures stay deterministic): for signing, and for the onion's point arithmetic.
pub(crate) static CONTEXT: std::sync::LazyLock<secp256k1::Secp256k1<secp256k1::All>> =
    std::sync::LazyLock::new(|| {
        let mut context = secp256k1::Secp256k1::new();
        // 32 bytes from the OS, by way of the one random source alloy's signer already has.
        let mut seed: [u8; 32] = PrivateKeySigner::random().credential().to_bytes().into();
        context.seeded_randomize(&seed);
        seed.zeroize();
        context
    });

/// Signs `msg` under the domain of the channel whose vault is `vault` on `chain_id`.
pub fn sign_message<T: Message>(
    signer: &PrivateKeySigner,
    msg: &T,
    chain_id: u64,
    vault: Address,
) -> Result<[u8; SIGNATURE_LEN]> {
    sign_hash(signer, &signing_hash(msg, chain_id, vault))
}

/// Checks length, `v` and low `s` as the contract does; returns the signature and `v`'s parity.
fn parse(signature: &[u8]) -> Result<(Signature, bool)> {
    let bytes: &[u8; SIGNATURE_LEN] = signature
        .try_into()
        .map_err(|_| Error::SignatureLength(signature.len()))?;
    let v = bytes[64];
    if v != 27 && v != 28 {
        // Stricter than alloy's parser, which also takes 0/1 and EIP-155 values.
        return Err(Error::SignatureV(v));
    }
    let sig = Signature::from_bytes_and_parity(&bytes[..64], v == 28);
    if sig.s() > HALF_ORDER {
        return Err(Error::SignatureHighS);
    }
    Ok((sig, v == 28))
}

/// Recovers the signer of `digest` from `signature`, rejecting anything the contract would.
///
/// Recovery runs in libsecp256k1, about five times as fast as k256 (a property test holds it
/// to k256's answers, [`recover_key`]'s).
pub fn recover(digest: &B256, signature: &[u8]) -> Result<Address> {
    let (_, odd) = parse(signature)?;
    let key = recover_point(digest, signature, odd)
        .ok_or_else(|| Error::Recovery(k256::ecdsa::Error::new().into()))?;
    Ok(Address::from_raw_public_key(
        &key.serialize_uncompressed()[1..],
    ))
}

/// `ecrecover` in libsecp256k1, for a signature that passed [`parse`] (`odd`: `v` = 28).
fn recover_point(digest: &B256, signature: &[u8], odd: bool) -> Option<secp256k1::PublicKey> {
    let id = secp256k1::ecdsa::RecoveryId::try_from(i32::from(odd)).ok()?;
    let signature =
        secp256k1::ecdsa::RecoverableSignature::from_compact(&signature[..64], id).ok()?;
    CONTEXT
        .recover_ecdsa(secp256k1::Message::from_digest(digest.0), &signature)
        .ok()
}

/// Recovers the signer's public key, with the same checks as [`recover`]; keep it to check the
/// same signer's later messages with [`verify_with_key`].
///
/// ```
/// use alloy::{primitives::B256, signers::local::PrivateKeySigner};
/// use keel_core::signing::{recover_key, sign_hash, verify_with_key, verifying_key};
///
/// let peer = PrivateKeySigner::random();
/// let hello = sign_hash(&peer, &B256::repeat_byte(1))?;
/// let key = recover_key(&B256::repeat_byte(1), &hello)?; // once, at the handshake
/// assert_eq!(key, verifying_key(&peer));
///
/// let digest = B256::repeat_byte(2);
/// verify_with_key(&key, &digest, &sign_hash(&peer, &digest)?)?; // every later message
/// # Ok::<(), keel_core::Error>(())
/// ```
pub fn recover_key(digest: &B256, signature: &[u8]) -> Result<VerifyingKey> {
    Ok(parse(signature)?.0.recover_from_prehash(digest)?)
}

/// The public key of a local signer.
pub fn verifying_key(signer: &PrivateKeySigner) -> VerifyingKey {
    *signer.credential().verifying_key()
}

/// Checks that `signature` over `digest` was made by `key`, accepting exactly the signatures
/// the contract accepts for `key`'s address: those for which `ecrecover` returns that address.
///
/// Beyond the checks of [`recover`] and plain ECDSA verification, `v` must name the point
/// `R = u1·G + u2·Q` that verification computes: `x(R)` must equal `r` (not merely modulo the
/// curve order) and `y(R)`'s parity must be `v - 27`. Otherwise `ecrecover`, which rebuilds
/// `R` from `r` and `v`, would return a different address, and the contract would refuse a
/// signature that ECDSA alone accepts (e.g. any valid signature with `v` flipped).
///
/// It recovers the signer as `ecrecover` does, in libsecp256k1, and compares keys: in a third
/// of the time k256 takes for the one double-scalar multiplication of a plain check
/// (docs/benchmarks.md), and the contract's rule by construction.
pub fn verify_with_key(key: &VerifyingKey, digest: &B256, signature: &[u8]) -> Result<()> {
    let (_, odd) = parse(signature)?;
    // Rejects r or s equal to zero or not below the order, as `ecrecover` does.
    k256::ecdsa::Signature::from_slice(&signature[..64]).map_err(|_| Error::SignatureRange)?;
    let signed_by_key = recover_point(digest, signature, odd).is_some_and(|recovered| {
        recovered.serialize_uncompressed()[..] == *key.to_encoded_point(false).as_bytes()
    });
    if !signed_by_key {
        return Err(Error::NotSignedByKey(Address::from_public_key(key)));
    }
    Ok(())
}

/// A public key with a precomputed multiples table, for checking many signatures by the same
/// key: [`KeyTable::verify`] accepts exactly what [`verify_with_key`] accepts, a fifth faster
/// alone and twice as fast in a batch ([`verify_many`]), because `u1·G + u2·Q` becomes about
/// 76 table additions (from a shared table for `G` and this one for `Q`) instead of 256
/// doublings and additions. The table holds 1,376 points, ~120 KB: build one for a key that
/// signs often, such as a channel counterparty's.
#[derive(Clone)]
pub struct KeyTable {
    key: VerifyingKey,
    /// The key's multiples.
    rows: Multiples,
}

impl core::fmt::Debug for KeyTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyTable")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl PartialEq for KeyTable {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for KeyTable {}

impl KeyTable {
    /// Precomputes the table for `key` (about half a millisecond).
    pub fn new(key: VerifyingKey) -> Self {
        Self {
            key,
            rows: Multiples::new(ProjectivePoint::from(*key.as_affine()), KEY_WINDOW),
        }
    }

    /// The key.
    pub const fn key(&self) -> &VerifyingKey {
        &self.key
    }

    /// [`KeyTable::verify`], returning a [`Verified`] that records what was checked, so the
    /// check can run on another thread than the one that applies the message.
    pub fn verify_token(&self, digest: &B256, signature: &[u8]) -> Result<Verified> {
        self.verify(digest, signature)?;
        let signature = signature
            .try_into()
            .map_err(|_| Error::SignatureLength(signature.len()))?;
        Ok(Verified {
            digest: *digest,
            signature,
            key: self.key,
        })
    }

    /// Checks `signature` over `digest` was made by this key, exactly as [`verify_with_key`].
    pub fn verify(&self, digest: &B256, signature: &[u8]) -> Result<()> {
        let parts = Parts::parse(digest, signature)?;
        let point = self.point(&parts, &parts.s.invert_vartime().unwrap_or(Scalar::ZERO));
        self.judge(&parts, &point, &point.to_affine())
    }

    /// `u1·G + u2·Q` for a signature whose `s⁻¹` is given. k256's own generator multiplication
    /// is constant-time, which verification does not need; the same variable-time table as for
    /// the key is faster.
    fn point(&self, parts: &Parts, s_inv: &Scalar) -> ProjectivePoint {
        GENERATOR_MULTIPLES.mul(&(parts.e * s_inv)) + self.rows.mul(&(parts.r * s_inv))
    }

    /// Whether `point` (with its affine form) is the `R` the signature names.
    fn judge(&self, parts: &Parts, point: &ProjectivePoint, affine: &AffinePoint) -> Result<()> {
        let valid = !bool::from(point.is_identity())
            && affine.x() == parts.r.to_bytes()
            && bool::from(affine.y_is_odd()) == parts.odd;
        if !valid {
            return Err(Error::NotSignedByKey(Address::from_public_key(&self.key)));
        }
        Ok(())
    }
}

/// A signature's scalars and the digest's, once its format is checked.
struct Parts {
    r: Scalar,
    s: Scalar,
    e: Scalar,
    odd: bool,
}

impl Parts {
    fn parse(digest: &B256, signature: &[u8]) -> Result<Self> {
        let (_, odd) = parse(signature)?;
        let sig = k256::ecdsa::Signature::from_slice(&signature[..64])
            .map_err(|_| Error::SignatureRange)?;
        let (r, s) = sig.split_scalars();
        Ok(Self {
            r: *r,
            s: *s,
            e: <Scalar as Reduce<k256::U256>>::reduce_bytes(&digest.0.into()),
            odd,
        })
    }
}

/// Many [`KeyTable::verify`] checks at once, each answered exactly as on its own, in order. Each
/// check needs two inversions, `s⁻¹` and the result's `Z⁻¹` to compare it with `r`; here each
/// is done once for the whole batch (Montgomery's trick: one inversion and three
/// multiplications per element), which saves about a third of a table check's time.
pub fn verify_many(checks: &[(&KeyTable, B256, &[u8])]) -> Vec<Result<()>> {
    let mut answers = Vec::with_capacity(checks.len());
    let mut parsed = Vec::with_capacity(checks.len());
    for (i, (_, digest, signature)) in checks.iter().enumerate() {
        match Parts::parse(digest, signature) {
            Ok(parts) => {
                parsed.push((i, parts));
                answers.push(Ok(()));
            }
            Err(e) => answers.push(Err(e)),
        }
    }
    let s: Vec<Scalar> = parsed.iter().map(|(_, p)| p.s).collect();
    // A parsed `s` is never zero (k256 refuses it), so the batch inverts.
    let Some(s_inv) = Option::<Vec<Scalar>>::from(<Scalar as BatchInvert<[Scalar]>>::batch_invert(
        s.as_slice(),
    )) else {
        return checks.iter().map(|(t, d, sig)| t.verify(d, sig)).collect();
    };
    let points: Vec<ProjectivePoint> = parsed
        .iter()
        .zip(&s_inv)
        .map(|((i, parts), s_inv)| checks[*i].0.point(parts, s_inv))
        .collect();
    let affine = <ProjectivePoint as BatchNormalize<[ProjectivePoint]>>::batch_normalize(&points);
    for (((i, parts), point), affine) in parsed.iter().zip(&points).zip(&affine) {
        answers[*i] = checks[*i].0.judge(parts, point, affine);
    }
    answers
}

/// A signature that [`KeyTable::verify_token`] found valid: over `digest`, by `key`. Only that
/// function makes one, so holding it proves the check was done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    digest: B256,
    signature: [u8; SIGNATURE_LEN],
    key: VerifyingKey,
}

impl Verified {
    /// The digest that was signed.
    pub const fn digest(&self) -> &B256 {
        &self.digest
    }

    /// The signature.
    pub const fn signature(&self) -> &[u8; SIGNATURE_LEN] {
        &self.signature
    }

    /// The key that signed.
    pub const fn key(&self) -> &VerifyingKey {
        &self.key
    }
}

/// Digit width of the generator's table: shared by every key table, so it can be wide
/// (33 rows of 128 points, ~370 KB, built once): 33 additions for `u1·G`.
const GENERATOR_WINDOW: u32 = 8;

/// Digit width of a key's table: 43 rows of 32 points (~120 KB per key): 43 additions for
/// `u2·Q`, where 4-bit unsigned digits took about 60 with 1,024 points.
const KEY_WINDOW: u32 = 6;

/// The generator's multiples, built on first use.
static GENERATOR_MULTIPLES: std::sync::LazyLock<Multiples> =
    std::sync::LazyLock::new(|| Multiples::new(ProjectivePoint::GENERATOR, GENERATOR_WINDOW));

/// Checks that `signature` over `digest` was made by `expected`.
pub fn verify(digest: &B256, signature: &[u8], expected: Address) -> Result<()> {
    let recovered = recover(digest, signature)?;
    if recovered != expected {
        return Err(Error::WrongSigner {
            expected,
            recovered,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::SignatureError;
    use k256::ecdsa::signature::hazmat::PrehashVerifier;

    const SECP256K1N: U256 = U256::from_be_slice(&alloy::primitives::hex!(
        "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141"
    ));

    fn fixture() -> (PrivateKeySigner, B256, [u8; 65]) {
        let signer = PrivateKeySigner::from_bytes(&B256::repeat_byte(0x42)).unwrap();
        let digest = B256::repeat_byte(0x07);
        let sig = sign_hash(&signer, &digest).unwrap();
        (signer, digest, sig)
    }

    #[test]
    fn round_trip() {
        let (signer, digest, sig) = fixture();
        assert!(sig[64] == 27 || sig[64] == 28);
        verify(&digest, &sig, signer.address()).unwrap();
        assert!(matches!(
            verify(&B256::ZERO, &sig, signer.address()),
            Err(Error::WrongSigner { .. }) | Err(Error::Recovery(_))
        ));
    }

    #[test]
    fn half_order_constant() {
        assert_eq!(HALF_ORDER, SECP256K1N >> 1);
    }

    #[test]
    fn rejects_high_s_twin() {
        let (_, digest, mut sig) = fixture();
        // The malleable twin (r, n - s, flipped v) recovers the same key; we must refuse it.
        let s = U256::from_be_slice(&sig[32..64]);
        sig[32..64].copy_from_slice(&(SECP256K1N - s).to_be_bytes::<32>());
        sig[64] ^= 27 ^ 28;
        assert!(matches!(recover(&digest, &sig), Err(Error::SignatureHighS)));
    }

    #[test]
    fn rejects_bad_length_and_v() {
        let (_, digest, sig) = fixture();
        assert!(matches!(
            recover(&digest, &sig[..64]),
            Err(Error::SignatureLength(64))
        ));
        assert!(matches!(
            recover(&digest, &[0; 66]),
            Err(Error::SignatureLength(66))
        ));
        let mut v0 = sig;
        v0[64] = 0;
        assert!(matches!(recover(&digest, &v0), Err(Error::SignatureV(0))));
    }

    /// `verify_with_key` and `KeyTable::verify` with `key` must accept exactly when `verify`
    /// with `key`'s address does.
    fn agree(key: &VerifyingKey, digest: &B256, sig: &[u8]) -> bool {
        // libsecp256k1's recovery names whom k256's names, or fails where it fails.
        assert_eq!(
            recover(digest, sig).ok(),
            recover_key(digest, sig)
                .ok()
                .map(|k| Address::from_public_key(&k)),
            "libsecp256k1 and k256 recover differently from {sig:02x?}"
        );
        let by_address = verify(digest, sig, Address::from_public_key(key)).is_ok();
        let by_key = verify_with_key(key, digest, sig).is_ok();
        assert_eq!(
            by_address, by_key,
            "verify and verify_with_key disagree on {sig:02x?}"
        );
        let table = KeyTable::new(*key);
        let by_table = table.verify(digest, sig).is_ok();
        assert_eq!(
            by_address, by_table,
            "verify and KeyTable::verify disagree on {sig:02x?}"
        );
        // In a batch, after a malformed signature (which takes no part in the shared
        // inversions) and a valid one, it is judged the same.
        let (other, other_digest, good) = fixture();
        let other_table = KeyTable::new(verifying_key(&other));
        let batch = verify_many(&[
            (&other_table, other_digest, &good[..10]),
            (&other_table, other_digest, &good),
            (&table, *digest, sig),
        ]);
        assert!(batch[0].is_err() && batch[1].is_ok());
        assert_eq!(
            by_address,
            batch[2].is_ok(),
            "verify and verify_many disagree on {sig:02x?}"
        );
        by_key
    }

    proptest::proptest! {
        #[test]
        fn verify_with_key_accepts_exactly_what_verify_accepts(
            key in proptest::array::uniform32(proptest::num::u8::ANY),
            other in proptest::array::uniform32(proptest::num::u8::ANY),
            digest in proptest::array::uniform32(proptest::num::u8::ANY),
            garbage in proptest::collection::vec(proptest::num::u8::ANY, 65),
        ) {
            let (Ok(signer), Ok(other)) = (
                PrivateKeySigner::from_bytes(&key.into()),
                PrivateKeySigner::from_bytes(&other.into()),
            ) else {
                return Err(proptest::test_runner::TestCaseError::reject("not a valid key"));
            };
            proptest::prop_assume!(signer.address() != other.address());
            let digest = B256::from(digest);
            let key = verifying_key(&signer);
            let sig = sign_hash(&signer, &digest).unwrap();
            // libsecp256k1's signature is alloy's (k256's), byte for byte.
            assert_eq!(sig, signer.sign_hash_sync(&digest).unwrap().as_bytes());

            assert!(agree(&key, &digest, &sig));
            assert_eq!(recover_key(&digest, &sig).unwrap(), key);

            // v flipped: still a valid ECDSA signature for the key, but ecrecover names another.
            let mut flipped = sig;
            flipped[64] ^= 27 ^ 28;
            assert!(!agree(&key, &digest, &flipped));
            let k256_sig = k256::ecdsa::Signature::from_slice(&sig[..64]).unwrap();
            assert!(key.verify_prehash(digest.as_slice(), &k256_sig).is_ok());
            assert!(matches!(
                verify_with_key(&key, &digest, &flipped),
                Err(Error::NotSignedByKey(a)) if a == signer.address()
            ));

            // High-s twin: the same point, so ecrecover would accept it; the contract does not.
            let mut twin = flipped;
            let s = U256::from_be_slice(&sig[32..64]);
            twin[32..64].copy_from_slice(&(SECP256K1N - s).to_be_bytes::<32>());
            assert!(!agree(&key, &digest, &twin));
            assert!(matches!(verify_with_key(&key, &digest, &twin), Err(Error::SignatureHighS)));

            assert!(!agree(&verifying_key(&other), &digest, &sig));
            let mut wrong_digest = digest;
            wrong_digest[0] ^= 1;
            assert!(!agree(&key, &wrong_digest, &sig));
            assert!(!agree(&key, &digest, &sig[..64]));
            assert!(matches!(
                verify_with_key(&key, &digest, &sig[..64]),
                Err(Error::SignatureLength(64))
            ));
            for v in [0, 1] {
                let mut raw = sig;
                raw[64] = sig[64] - 27 + v;
                assert!(!agree(&key, &digest, &raw));
                assert!(matches!(verify_with_key(&key, &digest, &raw), Err(Error::SignatureV(_))));
            }
            assert!(!agree(&key, &digest, &garbage));
        }
    }

    proptest::proptest! {
        /// Well-formed signatures that no signer made: random `r`, `v` ∈ {27, 28} and a random
        /// low `s`, so every case passes the format checks and reaches the curve arithmetic of
        /// all three checks (random bytes almost never do: only 2 values of `v` in 256 pass).
        /// Against a random key all three refuse alike, after the arithmetic. When `r` is the
        /// `x` of a point `R` (about half the cases), the key the signature is valid for is
        /// solved, `Q = r⁻¹·(s·R − e·G)` with `R`'s `y` parity from `v`, as `ecrecover` rebuilds
        /// it: all three accept, and all three refuse the same signature with `v` flipped.
        #[test]
        fn well_formed_random_signatures_are_judged_alike(
            r in proptest::array::uniform32(proptest::num::u8::ANY),
            s in proptest::array::uniform32(proptest::num::u8::ANY),
            odd in proptest::bool::ANY,
            digest in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            use k256::{
                elliptic_curve::{point::DecompressPoint, PrimeField},
                AffinePoint,
            };
            let low_s = U256::from_be_bytes(s) % HALF_ORDER + U256::from(1);
            let mut sig = [0u8; 65];
            sig[..32].copy_from_slice(&r);
            sig[32..64].copy_from_slice(&low_s.to_be_bytes::<32>());
            sig[64] = 27 + u8::from(odd);
            let digest = B256::from(digest);

            let (signer, _, _) = fixture();
            let random_key = verifying_key(&signer);
            assert!(!agree(&random_key, &digest, &sig));
            let refused = verify_with_key(&random_key, &digest, &sig).unwrap_err();
            assert!(
                matches!(refused, Error::NotSignedByKey(_) | Error::SignatureRange),
                "refused before the arithmetic: {refused:?}"
            );

            let point = AffinePoint::decompress(&r.into(), u8::from(odd).into());
            let r_scalar = Scalar::from_repr(r.into());
            if let (Some(point), Some(r_scalar)) = (
                Option::<AffinePoint>::from(point),
                Option::<Scalar>::from(r_scalar).filter(|r| *r != Scalar::ZERO),
            ) {
                let e = <Scalar as Reduce<k256::U256>>::reduce_bytes(&digest.0.into());
                let s_scalar = Scalar::from_repr(low_s.to_be_bytes::<32>().into()).unwrap();
                let q = (ProjectivePoint::from(point) * s_scalar - ProjectivePoint::GENERATOR * e)
                    * r_scalar.invert().unwrap();
                let key = VerifyingKey::from_affine(q.to_affine()).unwrap();
                assert!(agree(&key, &digest, &sig), "solved key refused {sig:02x?}");
                let mut flipped = sig;
                flipped[64] ^= 27 ^ 28;
                assert!(!agree(&key, &digest, &flipped));
            }
        }
    }

    /// Sets `r` (and keeps `s`, `v`) to values `ecrecover` rejects: 0, n and above.
    #[test]
    fn rejects_r_and_s_out_of_range() {
        let (signer, digest, sig) = fixture();
        let key = verifying_key(&signer);
        for (range, value) in [
            (0..32, U256::ZERO),
            (0..32, SECP256K1N),
            (0..32, U256::MAX),
            (32..64, U256::ZERO),
        ] {
            let mut bad = sig;
            bad[range].copy_from_slice(&value.to_be_bytes::<32>());
            assert!(!agree(&key, &digest, &bad));
            assert!(matches!(
                verify_with_key(&key, &digest, &bad),
                Err(Error::SignatureRange)
            ));
        }
    }

    /// A signature whose `R` has `x ≥ n`, so `r = x - n`: ECDSA (which compares `x mod n`)
    /// accepts it, but `ecrecover` rebuilds `R` from `x = r` and gets another key.
    #[test]
    fn rejects_r_reduced_modulo_the_order() {
        use k256::{
            elliptic_curve::{point::DecompressPoint, PrimeField},
            AffinePoint, FieldBytes,
        };
        // The first x in (n, p) on the curve (x = n would make r zero).
        let (x, point) = (1u64..)
            .find_map(|k| {
                let x = SECP256K1N + U256::from(k);
                let p = AffinePoint::decompress(&FieldBytes::from(x.to_be_bytes::<32>()), 0.into());
                Option::<AffinePoint>::from(p).map(|p| (x, ProjectivePoint::from(p)))
            })
            .unwrap();
        let r = x - SECP256K1N;
        let r_scalar = Scalar::from_repr(r.to_be_bytes::<32>().into()).unwrap();
        let s = Scalar::ONE;
        let digest = B256::repeat_byte(0x5a);
        let e = <Scalar as Reduce<k256::U256>>::reduce_bytes(&digest.0.into());
        // Q = r⁻¹·(s·R − e·G), the key for which (r, s) verifies over `digest`.
        let q = (point * s - ProjectivePoint::GENERATOR * e) * r_scalar.invert().unwrap();
        let key = VerifyingKey::from_affine(q.to_affine()).unwrap();

        let mut sig = [0u8; 65];
        sig[..32].copy_from_slice(&r.to_be_bytes::<32>());
        sig[32..64].copy_from_slice(&U256::from(1).to_be_bytes::<32>());
        sig[64] = 27; // R was decompressed with even y.
        let k256_sig = k256::ecdsa::Signature::from_slice(&sig[..64]).unwrap();
        assert!(key.verify_prehash(digest.as_slice(), &k256_sig).is_ok());
        assert!(!agree(&key, &digest, &sig));
        sig[64] = 28;
        assert!(!agree(&key, &digest, &sig));
    }

    #[test]
    fn rejects_zero_signature() {
        let mut zero = [0u8; 65];
        zero[64] = 27;
        assert!(matches!(
            recover(&B256::ZERO, &zero),
            Err(Error::Recovery(SignatureError::K256(_)))
        ));
    }
}
