//! The crate's one error type.

use alloy::primitives::{Address, SignatureError};

/// Everything that can go wrong in the protocol core.
///
/// There is no I/O here, so every variant is a property of the inputs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A signature was not exactly 65 bytes (`r ‖ s ‖ v`); holds the length seen.
    #[error("signature must be 65 bytes, got {0}")]
    SignatureLength(usize),
    /// The signature's `v` byte was not 27 or 28; holds the byte seen.
    #[error("signature v must be 27 or 28, got {0}")]
    SignatureV(u8),
    /// The signature's `s` is in the upper half of the curve order (malleable; the contract rejects it).
    #[error("signature s is not in the lower half of the curve order")]
    SignatureHighS,
    /// No public key could be recovered from the signature and digest.
    #[error(transparent)]
    Recovery(#[from] SignatureError),
    /// The signature is valid but was made by someone other than the expected signer.
    #[error("signed by {recovered}, expected {expected}")]
    WrongSigner {
        /// The address the caller required.
        expected: Address,
        /// The address the signature recovers to.
        recovered: Address,
    },
    /// The local signer failed to produce a signature.
    #[error(transparent)]
    Signing(#[from] alloy::signers::Error),
    /// A settlement sum exceeded `U256::MAX` (the contract reverts in the same case); names the sum.
    #[error("arithmetic overflow computing {0}")]
    Overflow(&'static str),
    /// The signature's `r` or `s` is zero or not below the curve order (`ecrecover` rejects it).
    #[error("signature r or s is zero or not below the curve order")]
    SignatureRange,
    /// The signature is well-formed but not one the contract would attribute to this key's
    /// address (wrong key or digest, or a `v` that makes `ecrecover` return another address);
    /// holds that address.
    #[error("signature is not valid for the key of {0}")]
    NotSignedByKey(Address),
    /// A batched receipt's Merkle path is longer than [`crate::receipts::MAX_PATH`]; holds
    /// its length.
    #[error("a receipt path of {0} steps (at most 32)")]
    ReceiptPathTooLong(usize),
}

/// Result with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
