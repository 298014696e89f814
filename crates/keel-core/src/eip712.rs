//! The four messages participants sign, and their EIP-712 domain.
//!
//! Declared once, with `sol!`, so the Rust type strings cannot drift from the Solidity ones;
//! `tests` below pins each `encodeType` string, and `tests/vectors.rs` pins the digests that
//! the contracts' tests check too.

use alloy::{
    primitives::{Address, B256, U256},
    sol_types::{Eip712Domain, SolStruct},
};

// `sol!` generates the structs with their Solidity (camelCase) field names plus ABI and
// EIP-712 impls; the wrapper module keeps the generated helper items out of the docs lints.
mod messages {
    #![allow(missing_docs)] // the generated helper items carry no docs; the structs do.

    alloy::sol! {
        /// Cumulative state of one direction of a channel, signed by that direction's sender.
        ///
        /// `transferredAmount` only grows; `lockedAmount` is the sum of the pending locks
        /// committed to by `locksRoot` (see [`crate::locks_root`]). A higher `nonce` wins.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct BalanceProof {
            bytes32 channelId;
            uint64 nonce;
            uint256 transferredAmount;
            uint256 lockedAmount;
            bytes32 locksRoot;
        }

        /// Signed by the NON-closing participant over the balance proof it received, so a
        /// third party (a watchtower) may submit that proof in a refutation on its behalf.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct TowerAuthorisation {
            BalanceProof balanceProof;
        }

        /// Lets `participant` take its funds out up to a cumulative `totalWithdrawn` while
        /// the channel stays open; signed by both participants, void after `expiry` (unix s).
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct Withdrawal {
            bytes32 channelId;
            address participant;
            uint256 totalWithdrawn;
            uint64 expiry;
        }

        /// Closes the channel at once with these payouts; signed by both participants.
        /// `totalDeposited` and `totalWithdrawn` are both sides' sums as the vault records them
        /// when signing: any later deposit or withdrawal invalidates the close. After `expiry`
        /// (unix seconds) it is dead, so a signer may safely resume payments.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct CooperativeClose {
            bytes32 channelId;
            uint256 payoutA;
            uint256 payoutB;
            uint256 totalDeposited;
            uint256 totalWithdrawn;
            uint64 expiry;
        }
    }
}

pub use messages::{BalanceProof, CooperativeClose, TowerAuthorisation, Withdrawal};

/// EIP-712 domain `name`.
pub const DOMAIN_NAME: &str = "Keel";
/// EIP-712 domain `version`; bump it whenever a message layout changes.
pub const DOMAIN_VERSION: &str = "1";

/// The domain `EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)`.
///
/// `verifyingContract` is the channel's own vault, so a signature is valid for one channel
/// on one chain only, even before the `channelId` field inside the message is checked.
pub fn domain(chain_id: u64, vault: Address) -> Eip712Domain {
    Eip712Domain::new(
        Some(DOMAIN_NAME.into()),
        Some(DOMAIN_VERSION.into()),
        Some(U256::from(chain_id)),
        Some(vault),
        None,
    )
}

/// The digest a participant signs: `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(msg))`.
pub fn signing_hash<T: SolStruct>(msg: &T, chain_id: u64, vault: Address) -> B256 {
    msg.eip712_signing_hash(&domain(chain_id, vault))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_strings_match_the_contract() {
        const BP: &str = "BalanceProof(bytes32 channelId,uint64 nonce,uint256 transferredAmount,uint256 lockedAmount,bytes32 locksRoot)";
        assert_eq!(BalanceProof::eip712_encode_type(), BP);
        assert_eq!(
            TowerAuthorisation::eip712_encode_type(),
            format!("TowerAuthorisation(BalanceProof balanceProof){BP}")
        );
        assert_eq!(
            Withdrawal::eip712_encode_type(),
            "Withdrawal(bytes32 channelId,address participant,uint256 totalWithdrawn,uint64 expiry)"
        );
        assert_eq!(
            CooperativeClose::eip712_encode_type(),
            "CooperativeClose(bytes32 channelId,uint256 payoutA,uint256 payoutB,uint256 totalDeposited,uint256 totalWithdrawn,uint64 expiry)"
        );
        assert_eq!(
            domain(1, Address::ZERO).encode_type(),
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        );
    }
}
