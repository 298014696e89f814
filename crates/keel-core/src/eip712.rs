//! The four messages participants sign and their EIP-712 domain; the two a watchtower and its
//! customers exchange; and the peer handshake's binding of a Noise key to an address, under a
//! domain of its own. The last three never go on chain.
//!
//! Declared once, with `sol!`, so the Rust type strings cannot drift from the Solidity ones;
//! `tests` below pins each `encodeType` string, and `tests/vectors.rs` pins the digests that
//! the contracts' tests check too.

use std::sync::LazyLock;

use alloy::{
    primitives::{keccak256, Address, Keccak256, B256, U256},
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

        /// Signed by a lock's RECEIVER under the channel's domain: it gives up the pending lock
        /// of `amount` with `secretHash`, expiring at `expiration` (unix s), that the other
        /// participant sent it in `channelId`, before it expires (the payment failed further
        /// on). The sender may then drop the lock from its next proof at once
        /// ([`Change::RemoveReleasedLock`](crate::Change::RemoveReleasedLock)); in a dispute the
        /// vault's `releaseLocks` records it, and `unlock` returns the lock to its sender even
        /// if the secret was registered in time, so an older proof still holding the lock can
        /// no longer pay the receiver for it.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct LockRelease {
            bytes32 channelId;
            bytes32 secretHash;
            uint256 amount;
            uint64 expiration;
        }

        /// Signed by the NON-closing participant over the balance proof it received, so a
        /// third party (a watchtower) may submit that proof in a refutation on its behalf.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct TowerAuthorisation {
            BalanceProof balanceProof;
        }

        /// Lets `participant` take its funds out up to a cumulative `totalWithdrawn` while
        /// the channel stays open; signed by both participants, void after `expiry` (unix s).
        /// The destination is signed too: `target` zero pays `participant` (the vault's
        /// `withdraw`); otherwise the funds move into side `targetSide` of the vault `target`
        /// (`withdrawInto`, a hub's on-chain rebalancing step), and only there.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct Withdrawal {
            bytes32 channelId;
            address participant;
            uint256 totalWithdrawn;
            uint64 expiry;
            address target;
            uint8 targetSide;
        }

        /// Closes the channel at once with these payouts; signed by both participants.
        /// `depositA`, `depositB` and `totalWithdrawn` (both sides' sum) are the vault's ledger
        /// when signing. A later withdrawal invalidates the close; a later deposit (anyone may
        /// make one) does not: the vault pays it back to its side on top of the payout. After
        /// `expiry` (unix seconds) it is dead, so a signer may safely resume payments.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct CooperativeClose {
            bytes32 channelId;
            uint256 payoutA;
            uint256 payoutB;
            uint256 depositA;
            uint256 depositB;
            uint256 totalWithdrawn;
            uint64 expiry;
        }

        /// Binds a peer's Noise static key to its Ethereum address for one transport session:
        /// signed by that address's key in the peer handshake (docs/protocol.md), under
        /// [`transport_domain`](crate::eip712::transport_domain), and checked by the other
        /// peer only; no contract takes it. `handshakeHash` is the Noise handshake hash,
        /// which covers both sides' ephemeral and static keys, so the signature holds for
        /// that session alone.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct PeerHandshake {
            bytes32 noiseKey;
            bytes32 handshakeHash;
        }

        /// A watchtower's promise about one appointment, signed by the tower under the
        /// channel's domain: it holds `customer`'s authorisation over the proof numbered
        /// `nonce` of channel `channelId` since `acceptedAt` (unix s), and for any unilateral
        /// close of the channel made at or before `watchUntil` it will have that proof (or a
        /// newer one) on chain before the close's deadline. The chain shows whether it did, so
        /// the customer can prove a broken promise. No contract checks it.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct TowerReceipt {
            address tower;
            address customer;
            bytes32 channelId;
            uint64 nonce;
            uint64 acceptedAt;
            uint64 watchUntil;
        }

        /// A watchtower's signature over many receipts at once, signed under the domain whose
        /// verifying contract is the tower's address. `receiptsRoot` is the root of the
        /// Merkle tree ([`crate::receipts`]) whose leaves are the receipts' EIP-712 digests,
        /// each under its own channel's domain; a receipt with its path to the root and this
        /// signature proves the same promise as a receipt signed on its own.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct TowerReceiptBatch {
            address tower;
            bytes32 receiptsRoot;
        }

        /// A customer's request to be served by `tower`, signed by `customer` under the domain
        /// whose verifying contract is the tower's address: proves the customer holds the key
        /// of the address it registers. Replaying it only registers the same address again.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct TowerRegistration {
            address customer;
            address tower;
        }
    }
}

pub use messages::{
    BalanceProof, CooperativeClose, LockRelease, PeerHandshake, TowerAuthorisation, TowerReceipt,
    TowerReceiptBatch, TowerRegistration, Withdrawal,
};

/// EIP-712 domain `name`.
pub const DOMAIN_NAME: &str = "Keel";
/// EIP-712 domain `version`; bump it whenever a message layout changes.
pub const DOMAIN_VERSION: &str = "2";

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

/// EIP-712 domain `name` of the peer handshake ([`PeerHandshake`]).
pub const TRANSPORT_DOMAIN_NAME: &str = "Keel transport";
/// EIP-712 domain `version` of the peer handshake: the transport version (`keel-transport-v3`),
/// bumped with it.
pub const TRANSPORT_DOMAIN_VERSION: &str = "3";

/// The peer handshake's domain, `EIP712Domain(string name,string version)`: Keel's transport,
/// and nothing else.
///
/// It names no chain and no contract, on purpose. A connection is not on a chain: it carries
/// the channels of every chain two peers share (or none yet), so any one chain id would be
/// arbitrary; and a wallet that checks `chainId` against its selected network (MetaMask does)
/// would make its user switch networks just to connect. No contract verifies the signature
/// (the peer does), so there is no `verifyingContract` either. Replay is prevented by the
/// message itself: its `handshakeHash` is unique to one session. A channel's domain always
/// has a chain id and a vault, so the two domains never hash alike.
pub fn transport_domain() -> Eip712Domain {
    Eip712Domain::new(
        Some(TRANSPORT_DOMAIN_NAME.into()),
        Some(TRANSPORT_DOMAIN_VERSION.into()),
        None,
        None,
        None,
    )
}

impl PeerHandshake {
    /// The digest a peer signs in the handshake:
    /// `keccak256(0x1901 ‖ separator(transport_domain()) ‖ hashStruct(self))`.
    pub fn signing_hash(&self) -> B256 {
        static SEPARATOR: LazyLock<B256> = LazyLock::new(|| transport_domain().separator());
        let mut input = [0u8; 2 + 32 + 32];
        input[..2].copy_from_slice(&[0x19, 0x01]);
        input[2..34].copy_from_slice(SEPARATOR.as_slice());
        // Not a [`Message`]: those are signed under a channel's domain.
        input[34..].copy_from_slice(self.eip712_hash_struct().as_slice());
        keccak256(input)
    }
}

/// The digest a participant signs: `keccak256(0x1901 ‖ domainSeparator ‖ hashStruct(msg))`.
pub fn signing_hash<T: Message>(msg: &T, chain_id: u64, vault: Address) -> B256 {
    ChannelDomain::new(chain_id, vault).signing_hash(msg)
}

/// One channel's domain with its separator hashed once. Hashing a message under it then costs
/// three Keccak permutations instead of about nine (the separator alone takes five, counting
/// the hashes of the name, version and type strings), which matters once per payment on each
/// side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelDomain {
    separator: B256,
}

impl ChannelDomain {
    /// The domain of the channel whose vault is `vault` on `chain_id`.
    pub fn new(chain_id: u64, vault: Address) -> Self {
        Self {
            separator: domain(chain_id, vault).separator(),
        }
    }

    /// The EIP-712 domain separator.
    pub const fn separator(&self) -> B256 {
        self.separator
    }

    /// [`signing_hash`] under this domain.
    pub fn signing_hash<T: Message>(&self, msg: &T) -> B256 {
        let mut input = [0u8; 2 + 32 + 32];
        input[..2].copy_from_slice(&[0x19, 0x01]);
        input[2..34].copy_from_slice(self.separator.as_slice());
        input[34..].copy_from_slice(msg.hash_struct().as_slice());
        keccak256(input)
    }
}

/// A message Keel signs: one of the types above, whose EIP-712 type hash is computed
/// once per process instead of once per message (alloy rebuilds the type string and hashes it
/// each time).
pub trait Message: SolStruct {
    /// `keccak256(encodeType)`, cached.
    fn type_hash() -> B256;

    /// EIP-712 `hashStruct(msg)`: equal to alloy's `eip712_hash_struct`.
    fn hash_struct(&self) -> B256 {
        let mut hasher = Keccak256::new();
        hasher.update(Self::type_hash());
        hasher.update(self.eip712_encode_data());
        hasher.finalize()
    }
}

macro_rules! cached_type_hash {
    ($($message:ty),*) => {$(
        impl Message for $message {
            fn type_hash() -> B256 {
                static TYPE_HASH: LazyLock<B256> =
                    LazyLock::new(|| keccak256(<$message>::eip712_encode_type().as_bytes()));
                *TYPE_HASH
            }
        }
    )*};
}

cached_type_hash!(
    BalanceProof,
    LockRelease,
    TowerAuthorisation,
    Withdrawal,
    CooperativeClose,
    TowerReceipt,
    TowerReceiptBatch,
    TowerRegistration
);

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached path hashes exactly as alloy's own EIP-712 implementation.
    #[test]
    fn cached_hashes_equal_alloys() {
        let chain_id = 31337;
        let vault = Address::repeat_byte(0x44);
        let alloy_domain = domain(chain_id, vault);
        let domain = ChannelDomain::new(chain_id, vault);
        assert_eq!(domain.separator(), alloy_domain.separator());
        let proof = BalanceProof {
            channelId: B256::repeat_byte(1),
            nonce: 7,
            transferredAmount: U256::from(1_000u64),
            lockedAmount: U256::from(5u64),
            locksRoot: B256::repeat_byte(2),
        };
        let check = |cached: B256, expected: B256| assert_eq!(cached, expected);
        check(
            domain.signing_hash(&proof),
            proof.eip712_signing_hash(&alloy_domain),
        );
        let tower = TowerAuthorisation {
            balanceProof: proof.clone(),
        };
        check(
            domain.signing_hash(&tower),
            tower.eip712_signing_hash(&alloy_domain),
        );
        let withdrawal = Withdrawal {
            channelId: B256::repeat_byte(1),
            participant: Address::repeat_byte(0xa),
            totalWithdrawn: U256::from(3u64),
            expiry: 9,
            target: Address::repeat_byte(0xb),
            targetSide: 1,
        };
        check(
            domain.signing_hash(&withdrawal),
            withdrawal.eip712_signing_hash(&alloy_domain),
        );
        let close = CooperativeClose {
            channelId: B256::repeat_byte(1),
            payoutA: U256::from(1u64),
            payoutB: U256::from(2u64),
            depositA: U256::from(3u64),
            depositB: U256::from(4u64),
            totalWithdrawn: U256::ZERO,
            expiry: 9,
        };
        check(
            domain.signing_hash(&close),
            close.eip712_signing_hash(&alloy_domain),
        );
        check(
            signing_hash(&close, chain_id, vault),
            close.eip712_signing_hash(&alloy_domain),
        );
        let receipt = TowerReceipt {
            tower: Address::repeat_byte(0xc),
            customer: Address::repeat_byte(0xb),
            channelId: B256::repeat_byte(1),
            nonce: 7,
            acceptedAt: 1_000,
            watchUntil: 2_000,
        };
        check(
            domain.signing_hash(&receipt),
            receipt.eip712_signing_hash(&alloy_domain),
        );
        let registration = TowerRegistration {
            customer: Address::repeat_byte(0xb),
            tower: Address::repeat_byte(0xc),
        };
        check(
            domain.signing_hash(&registration),
            registration.eip712_signing_hash(&alloy_domain),
        );
        let batch = TowerReceiptBatch {
            tower: Address::repeat_byte(0xc),
            receiptsRoot: B256::repeat_byte(9),
        };
        check(
            domain.signing_hash(&batch),
            batch.eip712_signing_hash(&alloy_domain),
        );
    }

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
            "Withdrawal(bytes32 channelId,address participant,uint256 totalWithdrawn,uint64 expiry,address target,uint8 targetSide)"
        );
        assert_eq!(
            CooperativeClose::eip712_encode_type(),
            "CooperativeClose(bytes32 channelId,uint256 payoutA,uint256 payoutB,uint256 depositA,uint256 depositB,uint256 totalWithdrawn,uint64 expiry)"
        );
        assert_eq!(
            TowerReceipt::eip712_encode_type(),
            "TowerReceipt(address tower,address customer,bytes32 channelId,uint64 nonce,uint64 acceptedAt,uint64 watchUntil)"
        );
        assert_eq!(
            TowerReceiptBatch::eip712_encode_type(),
            "TowerReceiptBatch(address tower,bytes32 receiptsRoot)"
        );
        assert_eq!(
            TowerRegistration::eip712_encode_type(),
            "TowerRegistration(address customer,address tower)"
        );
        assert_eq!(
            domain(1, Address::ZERO).encode_type(),
            "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
        );
        assert_eq!(
            PeerHandshake::eip712_encode_type(),
            "PeerHandshake(bytes32 noiseKey,bytes32 handshakeHash)"
        );
        assert_eq!(
            transport_domain().encode_type(),
            "EIP712Domain(string name,string version)"
        );
    }

    /// The handshake digest is alloy's EIP-712 digest under the transport domain, and differs
    /// from any channel domain's.
    #[test]
    fn peer_handshake_hashes_as_eip712() {
        let binding = PeerHandshake {
            noiseKey: B256::repeat_byte(0x25),
            handshakeHash: B256::repeat_byte(0x48),
        };
        assert_eq!(
            binding.signing_hash(),
            binding.eip712_signing_hash(&transport_domain())
        );
        assert_ne!(
            transport_domain().separator(),
            domain(31337, Address::ZERO).separator()
        );
    }
}
