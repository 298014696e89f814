//! What nodes sign so that others can route through them, and what a payee signs so that a
//! payer can pay it: EIP-712 typed data like every other Keel signature, so a wallet
//! (`eth_signTypedData_v4`) can sign each, and no signature counts anywhere else.
//!
//! - [`ChannelAnnouncement`]: both participants declare their channel public. It carries the
//!   channel's parameters, so a reader recomputes the channel id (and the vault) from them and
//!   a pair cannot claim another pair's channel; signed under the channel's own domain (chain
//!   id, vault), so it names one channel on one chain. Its capacity is read from the chain, not
//!   signed, since deposits and withdrawals change it.
//! - [`ChannelUpdate`]: one participant's forwarding policy for sending over the channel (fee,
//!   expiry delta, minimum, enabled, rates from other assets), under the same domain; a newer
//!   `timestamp` replaces an older update.
//! - [`PaymentRequest`]: a payee asks to be paid `amount` of `token` on `chainId` under a
//!   payment hash until `expiry`. Signed under the domain of the Keel deployment on that chain
//!   (`verifyingContract` = the channel factory), since it belongs to no one channel.

use alloy::{
    primitives::{keccak256, Address, U256},
    sol_types::{Eip712Domain, SolStruct},
};

use super::{ForwardError, Rate};
use crate::{
    eip712::{ChannelDomain, Message},
    signing::{self, SIGNATURE_LEN},
    ChannelParams, B256,
};

mod messages {
    #![allow(missing_docs)] // the generated helper items carry no docs; the structs do.

    alloy::sol! {
        /// Both participants declare the channel public (see the module docs).
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct ChannelAnnouncement {
            bytes32 channelId;
            address participantA;
            address participantB;
            address token;
            uint32 challengePeriod;
            bytes32 salt;
        }

        /// A rate at which a node forwards from another asset: `upstream` units of `token` on
        /// `chainId` for every `downstream` units it pays into the channel.
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct ExchangeRate {
            uint256 chainId;
            address token;
            uint256 upstream;
            uint256 downstream;
        }

        /// `node`'s policy for forwarding into the channel (see the module docs).
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct ChannelUpdate {
            bytes32 channelId;
            address node;
            uint64 timestamp;
            uint256 feeBase;
            uint32 feeProportionalMillionths;
            uint64 expiryDelta;
            uint256 minAmount;
            bool enabled;
            ExchangeRate[] rates;
        }

        /// A payee's request to be paid (see the module docs).
        #[derive(Debug, PartialEq, Eq, Hash)]
        struct PaymentRequest {
            bytes32 paymentHash;
            address payee;
            uint256 chainId;
            address token;
            uint256 amount;
            uint64 expiry;
            uint64 minFinalLifetime;
            string description;
        }
    }
}

pub use messages::{ChannelAnnouncement, ChannelUpdate, ExchangeRate, PaymentRequest};

macro_rules! cached_type_hash {
    ($($message:ty),*) => {$(
        impl Message for $message {
            fn type_hash() -> B256 {
                static TYPE_HASH: std::sync::LazyLock<B256> = std::sync::LazyLock::new(|| {
                    keccak256(<$message>::eip712_encode_type().as_bytes())
                });
                *TYPE_HASH
            }
        }
    )*};
}

cached_type_hash!(ChannelAnnouncement, ChannelUpdate, PaymentRequest);

/// Longest payment request description, in bytes: it travels in peer messages and is shown to
/// people, so it is bounded.
pub const MAX_DESCRIPTION: usize = 256;

/// The domain of the Keel deployment whose factory is `factory` on `chain_id`: payment requests
/// are signed under it. The same shape as a channel's domain, with the factory in the vault's
/// place.
pub fn deployment_domain(chain_id: u64, factory: Address) -> Eip712Domain {
    crate::eip712::domain(chain_id, factory)
}

impl ChannelUpdate {
    /// The rate for forwarding from `token` on `chain_id`, if this update announces one.
    pub fn rate_from(&self, chain_id: u64, token: Address) -> Result<Option<Rate>, ForwardError> {
        self.rates
            .iter()
            .find(|rate| rate.chainId == U256::from(chain_id) && rate.token == token)
            .map(|rate| Rate::new(rate.upstream, rate.downstream))
            .transpose()
    }
}

impl PaymentRequest {
    /// The digest the payee signs.
    pub fn signing_hash(&self, factory: Address) -> Result<B256, ForwardError> {
        if self.description.len() > MAX_DESCRIPTION {
            return Err(ForwardError::Invalid(
                "a payment request description over 256 bytes",
            ));
        }
        let chain_id = u64::try_from(self.chainId)
            .map_err(|_| ForwardError::Invalid("a chain id beyond 64 bits"))?;
        Ok(self.eip712_signing_hash(&deployment_domain(chain_id, factory)))
    }

    /// Checks that the payee signed this request for the deployment at `factory`, and that it
    /// has not expired at `now`.
    pub fn verify(
        &self,
        factory: Address,
        signature: &[u8; SIGNATURE_LEN],
        now: u64,
    ) -> Result<(), AnnouncementError> {
        if self.expiry < now {
            return Err(AnnouncementError::Expired(self.expiry));
        }
        let digest = self.signing_hash(factory)?;
        signing::verify(&digest, signature, self.payee).map_err(AnnouncementError::Signature)
    }
}

/// Why a signed announcement, update or payment request was refused.
#[derive(Debug, thiserror::Error)]
pub enum AnnouncementError {
    /// A signature is malformed or by someone else.
    #[error("bad signature: {0}")]
    Signature(#[source] crate::Error),
    /// The update names a node that is not a participant of the channel.
    #[error("{0} is not a participant of the channel")]
    NotAParticipant(Address),
    /// The payment request has expired.
    #[error("the payment request expired at {0}")]
    Expired(u64),
    /// A field is out of range.
    #[error(transparent)]
    Invalid(#[from] ForwardError),
}

impl ChannelAnnouncement {
    /// The channel's parameters, from which its id and vault follow.
    pub fn params(&self) -> ChannelParams {
        ChannelParams {
            participant_a: self.participantA,
            participant_b: self.participantB,
            token: self.token,
            challenge_period: self.challengePeriod,
            salt: self.salt,
        }
    }
}

/// Checks both participants' signatures over an announcement of the channel whose domain is
/// `domain` (`signatures` in the order A, B).
pub fn verify_announcement(
    announcement: &ChannelAnnouncement,
    domain: &ChannelDomain,
    signatures: [&[u8; SIGNATURE_LEN]; 2],
) -> Result<(), AnnouncementError> {
    let digest = domain.signing_hash(announcement);
    signing::verify(&digest, signatures[0], announcement.participantA)
        .map_err(AnnouncementError::Signature)?;
    signing::verify(&digest, signatures[1], announcement.participantB)
        .map_err(AnnouncementError::Signature)
}

/// Checks an update's signature by its node, who must be a participant of the announced
/// channel.
pub fn verify_update(
    update: &ChannelUpdate,
    announcement: &ChannelAnnouncement,
    domain: &ChannelDomain,
    signature: &[u8; SIGNATURE_LEN],
) -> Result<(), AnnouncementError> {
    if update.channelId != announcement.channelId {
        return Err(AnnouncementError::Invalid(ForwardError::Invalid(
            "an update for another channel",
        )));
    }
    if update.node != announcement.participantA && update.node != announcement.participantB {
        return Err(AnnouncementError::NotAParticipant(update.node));
    }
    signing::verify(&domain.signing_hash(update), signature, update.node)
        .map_err(AnnouncementError::Signature)
}
