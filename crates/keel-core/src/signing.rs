//! Signing and verifying Keel messages as the contracts do (`ecrecover` on a 65-byte
//! `r ‖ s ‖ v` signature, `v` ∈ {27, 28}, low `s` only).

use crate::{
    eip712::domain,
    error::{Error, Result},
};
use alloy::{
    primitives::{Address, Signature, B256, U256},
    signers::{local::PrivateKeySigner, SignerSync},
    sol_types::SolStruct,
};

/// Length of an encoded signature.
pub const SIGNATURE_LEN: usize = 65;

/// Half the secp256k1 group order; a valid `s` must not exceed it (EIP-2, as OpenZeppelin's
/// `ECDSA` enforces), otherwise `(r, n - s)` would be a second valid signature.
const HALF_ORDER: U256 = U256::from_be_slice(&alloy::primitives::hex!(
    "7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0"
));

/// Signs a 32-byte digest; returns `r ‖ s ‖ v` with `v` ∈ {27, 28}.
pub fn sign_hash(signer: &PrivateKeySigner, digest: &B256) -> Result<[u8; SIGNATURE_LEN]> {
    // k256 always produces low-s signatures, so the result passes `recover`.
    Ok(signer.sign_hash_sync(digest)?.as_bytes())
}

/// Signs `msg` under the domain of the channel whose vault is `vault` on `chain_id`.
pub fn sign_message<T: SolStruct>(
    signer: &PrivateKeySigner,
    msg: &T,
    chain_id: u64,
    vault: Address,
) -> Result<[u8; SIGNATURE_LEN]> {
    sign_hash(signer, &msg.eip712_signing_hash(&domain(chain_id, vault)))
}

/// Recovers the signer of `digest` from `signature`, rejecting anything the contract would.
pub fn recover(digest: &B256, signature: &[u8]) -> Result<Address> {
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
    Ok(sig.recover_address_from_prehash(digest)?)
}

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
