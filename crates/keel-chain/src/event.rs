//! What happened on chain to a channel: vault and factory logs decoded into [`ChainEvent`]s.

use alloy::{
    primitives::{Address, B256, U256},
    rpc::types::Log,
    sol_types::{SolEvent, SolEventInterface},
};
use keel_bindings::{ChannelFactory, ChannelVault::ChannelVaultEvents, SecretRegistry};
use keel_core::{ChannelParams, DisputeState, LockState, Side};

use super::{
    abi::{self, VaultAbi},
    error::{ChainError, Result},
    tx::TxReceipt,
};

/// One vault (or factory) event of a watched channel, with where it sits in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainEvent {
    /// The chain it happened on.
    pub chain_id: u64,
    /// The channel's vault.
    pub vault: Address,
    /// The channel.
    pub channel_id: B256,
    /// The block it is in.
    pub block: u64,
    /// That block's hash.
    pub block_hash: B256,
    /// The transaction that emitted it.
    pub tx_hash: B256,
    /// Its position among the block's logs: with `block`, its place in chain order.
    pub log_index: u64,
    /// What happened.
    pub kind: ChainEventKind,
}

/// What happened, with the event's fields. Totals are cumulative, so applying an event twice
/// changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainEventKind {
    /// The factory opened the channel (only when the monitor follows the factory).
    Opened {
        /// Its parameters.
        params: ChannelParams,
        /// Who opened it (and made the opening deposit).
        opener: Side,
        /// The opening deposit that arrived.
        deposit: U256,
    },
    /// `side`'s cumulative deposit grew to `total`.
    Deposited {
        /// Whose deposit.
        side: Side,
        /// The new cumulative deposit.
        total: U256,
    },
    /// `side`'s cumulative withdrawal grew to `total`.
    Withdrawn {
        /// Whose withdrawal.
        side: Side,
        /// The new cumulative withdrawal.
        total: U256,
    },
    /// Closed cooperatively and paid out: the channel is settled.
    CooperativelyClosed {
        /// Paid to A.
        payout_a: U256,
        /// Paid to B.
        payout_b: U256,
    },
    /// Closed unilaterally: the challenge period runs until the state's deadline.
    Closed(DisputeState),
    /// The closer's proof on record was replaced by a newer one.
    Refuted(DisputeState),
    /// Settled after the challenge period.
    Settled {
        /// Paid to A.
        payout_a: U256,
        /// Paid to B.
        payout_b: U256,
    },
    /// Settlement kept funds for pending locks; `unlock` takes this state back.
    LocksRetained(LockState),
    /// One direction's pending locks were resolved.
    Unlocked {
        /// Who sent the locks.
        sender: Side,
        /// What went to the receiver (locks whose secret was registered in time).
        to_receiver: U256,
        /// What went back to the sender.
        to_sender: U256,
        /// The lock state left; `unlock` takes it back for the other direction.
        state: LockState,
    },
    /// The receiver's releases of locks `sender` sent were recorded (`releaseLocks`):
    /// `unlock` returns those locks to `sender`.
    LocksReleased {
        /// Who sent the locks.
        sender: Side,
        /// The released locks' secret hashes.
        secret_hashes: Vec<B256>,
    },
    /// A payout was refused by its recipient (or token) and waits for `claim`.
    PayoutDeferred {
        /// Who is owed.
        to: Address,
        /// How much.
        amount: U256,
    },
    /// A deferred payout was claimed.
    Claimed {
        /// Who was owed.
        owner: Address,
        /// Where it went.
        to: Address,
        /// How much.
        amount: U256,
    },
    /// A secret the consumer asked for ([`Monitor::watch_secret`](super::Monitor::watch_secret))
    /// was registered in the deployment's SecretRegistry. Not a vault's event: the
    /// [`ChainEvent`]'s `vault` is the registry and its `channel_id` is zero.
    SecretRevealed {
        /// `sha256(secret)`, checked on decoding.
        secret_hash: B256,
        /// The secret.
        secret: B256,
    },
}

impl ChainEvent {
    /// The events `vault` (channel `channel_id`) emitted in a transaction, from its receipt:
    /// the effect of a [`Chain`](super::Chain) call without waiting for the monitor. They are
    /// unconfirmed.
    pub fn from_receipt(
        chain_id: u64,
        vault: Address,
        channel_id: B256,
        receipt: &TxReceipt,
    ) -> Result<Vec<Self>> {
        receipt
            .inner
            .logs()
            .iter()
            .filter(|log| log.address() == vault)
            .map(|log| Self::from_vault_log(chain_id, channel_id, log))
            .collect()
    }

    /// Decodes a log emitted by the vault of `channel_id`.
    pub(crate) fn from_vault_log(chain_id: u64, channel_id: B256, log: &Log) -> Result<Self> {
        let kind = vault_event(log)?;
        Self::at(chain_id, log.address(), channel_id, log, kind)
    }

    /// Decodes the factory's `ChannelOpened`.
    pub(crate) fn from_opened_log(chain_id: u64, log: &Log) -> Result<Self> {
        let e = ChannelFactory::ChannelOpened::decode_log_data(log.data())
            .map_err(|e| garbage(log, e))?;
        let kind = ChainEventKind::Opened {
            params: abi::params_from_opened(&e),
            opener: abi::side_from_index(e.openerSide)?,
            deposit: e.deposit,
        };
        Self::at(chain_id, e.vault, e.channelId, log, kind)
    }

    /// Decodes the SecretRegistry's `SecretRevealed`, refusing a secret that does not hash to
    /// the topic (a node could send any log).
    pub(crate) fn from_secret_log(chain_id: u64, log: &Log) -> Result<Self> {
        let (secret_hash, secret) = revealed_secret(log)?;
        let kind = ChainEventKind::SecretRevealed {
            secret_hash,
            secret,
        };
        Self::at(chain_id, log.address(), B256::ZERO, log, kind)
    }

    fn at(
        chain_id: u64,
        vault: Address,
        channel_id: B256,
        log: &Log,
        kind: ChainEventKind,
    ) -> Result<Self> {
        let missing = |field| ChainError::garbage(format!("log without {field}"));
        Ok(Self {
            chain_id,
            vault,
            channel_id,
            block: log.block_number.ok_or_else(|| missing("block number"))?,
            block_hash: log.block_hash.ok_or_else(|| missing("block hash"))?,
            tx_hash: log
                .transaction_hash
                .ok_or_else(|| missing("transaction hash"))?,
            log_index: log.log_index.ok_or_else(|| missing("log index"))?,
            kind,
        })
    }
}

fn vault_event(log: &Log) -> Result<ChainEventKind> {
    use ChainEventKind as K;
    let event = ChannelVaultEvents::decode_log(&log.inner).map_err(|e| garbage(log, e))?;
    Ok(match event.data {
        ChannelVaultEvents::Deposited(e) => K::Deposited {
            side: abi::side_from_index(e.side)?,
            total: e.totalDeposit,
        },
        ChannelVaultEvents::Withdrawn(e) => K::Withdrawn {
            side: abi::side_from_index(e.side)?,
            total: e.totalWithdrawn,
        },
        ChannelVaultEvents::CooperativelyClosed(e) => K::CooperativelyClosed {
            payout_a: e.payoutA,
            payout_b: e.payoutB,
        },
        ChannelVaultEvents::Closed(e) => K::Closed(DisputeState::from_abi(&e.state)?),
        ChannelVaultEvents::Refuted(e) => K::Refuted(DisputeState::from_abi(&e.state)?),
        ChannelVaultEvents::Settled(e) => K::Settled {
            payout_a: e.payoutA,
            payout_b: e.payoutB,
        },
        ChannelVaultEvents::LocksRetained(e) => K::LocksRetained(LockState::from_abi(&e.locks)?),
        ChannelVaultEvents::Unlocked(e) => K::Unlocked {
            sender: abi::side_from_index(e.senderSide)?,
            to_receiver: e.toReceiver,
            to_sender: e.toSender,
            state: LockState::from_abi(&e.locks)?,
        },
        ChannelVaultEvents::LocksReleased(e) => K::LocksReleased {
            sender: abi::side_from_index(e.senderSide)?,
            secret_hashes: e.secretHashes,
        },
        ChannelVaultEvents::PayoutDeferred(e) => K::PayoutDeferred {
            to: e.to,
            amount: e.amount,
        },
        ChannelVaultEvents::Claimed(e) => K::Claimed {
            owner: e.owner,
            to: e.to,
            amount: e.amount,
        },
    })
}

/// The hash and the secret of a `SecretRevealed` log, once the secret is checked against it.
pub(crate) fn revealed_secret(log: &Log) -> Result<(B256, B256)> {
    let e =
        SecretRegistry::SecretRevealed::decode_log_data(log.data()).map_err(|e| garbage(log, e))?;
    if keel_core::secret_hash(e.secret) != e.secretHash {
        return Err(ChainError::garbage(format!(
            "log {:?} of {}: a secret that does not hash to {}",
            log.log_index,
            log.address(),
            e.secretHash
        )));
    }
    Ok((e.secretHash, e.secret))
}

/// The topic of the SecretRegistry's `SecretRevealed`.
pub(crate) const SECRET_TOPIC: B256 = SecretRegistry::SecretRevealed::SIGNATURE_HASH;

/// The topic of the factory's `ChannelOpened`.
pub(crate) const OPENED_TOPIC: B256 = ChannelFactory::ChannelOpened::SIGNATURE_HASH;

fn garbage(log: &Log, e: alloy::sol_types::Error) -> ChainError {
    ChainError::Garbage {
        what: format!(
            "log {:?} of {} in block {:?}",
            log.log_index,
            log.address(),
            log.block_number
        ),
        source: Some(Box::new(e)),
    }
}
