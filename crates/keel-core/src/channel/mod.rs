//! The channel state machine: what each side may send or accept next.
//!
//! Both participants hold a [`ChannelState`] of the same channel. A payment, a new lock, a claim
//! or the removal of an expired lock is a [`Change`] to the sender's [`Direction`]; the sender
//! applies it with [`ChannelState::send`] (one nonce each) and transmits the change with the
//! resulting proof. Changes made in a row may travel together: the receiver applies them in
//! order with [`ChannelState::receive`], which accepts only the exact proof the last one
//! produces, signed. One signature then covers them all — the intermediate proofs are never
//! signed, sent or needed, as the latest proof supersedes them on chain. Both sides therefore
//! hold identical directions, and every check (capacity, nonce, lock rules) runs on both sides.
//! No I/O happens here: the client persists the state the calls return before it sends or
//! acknowledges anything.

mod direction;
mod error;

pub use direction::{Change, Direction};
pub use error::{ChannelError, SignatureFault};

use std::sync::Arc;

use alloy::primitives::{Address, B256, U256};

use crate::{
    channel_id,
    settlement::Direction as SettledDirection,
    signing::{self, KeyTable, Verified, VerifyingKey},
    types::Side,
    vault_address, BalanceProof, ChannelDomain, ChannelParams, CooperativeClose, LockRelease,
    Withdrawal,
};

/// Limits both sides enforce on locks and withdrawals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Shortest time, in seconds, a new lock may have before it expires: the receiver's window to
    /// learn the secret and, if needed, register it on chain.
    pub min_lock_lifetime: u64,
    /// Longest time a new lock may have; bounds how long funds can be tied up.
    pub max_lock_lifetime: u64,
    /// Most pending locks per direction; bounds the gas of unlocking them on chain.
    pub max_pending_locks: usize,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            min_lock_lifetime: 600,
            max_lock_lifetime: 7 * 86_400,
            max_pending_locks: 32,
        }
    }
}

/// A withdrawal both sides have agreed to and which has not executed or expired yet; its amount
/// is reserved from the withdrawing side's capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingWithdrawal {
    /// The signed message.
    pub withdrawal: Withdrawal,
    /// Amount it takes out now: `totalWithdrawn` less what was withdrawn before.
    pub amount: U256,
}

/// What a channel's state holds beyond its opening: what a store keeps as a snapshot, so a
/// restart replays only the events after it ([`ChannelState::progress`],
/// [`ChannelState::resume`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Cumulative on-chain deposits, A then B.
    pub deposits: [U256; 2],
    /// Cumulative on-chain withdrawals, A then B.
    pub withdrawn: [U256; 2],
    /// Agreed withdrawals not yet executed or expired, A then B.
    pub pending_withdrawals: [Option<PendingWithdrawal>; 2],
    /// Each direction's latest state, indexed by sender (A then B).
    pub directions: [Direction; 2],
    /// The counterparty's signature over its latest proof, if it sent one.
    pub counterparty_signature: Option<[u8; 65]>,
    /// Expiry of the cooperative close this side signed, while it may still execute.
    pub closing: Option<u64>,
}

/// Proofs checked against the counterparty's plain key before its [`KeyTable`] is built: a
/// short-lived channel never pays the table's ~90 KB and half a millisecond.
const KEY_TABLE_AFTER: u32 = 16;

/// The counterparty's [`KeyTable`], once it has signed [`KEY_TABLE_AFTER`] proofs. Derived
/// from the key, so equal whenever the keys are: states compare equal with or without it.
#[derive(Debug, Clone, Default)]
struct KeyTableCache {
    checked: u32,
    table: Option<Arc<KeyTable>>,
}

impl PartialEq for KeyTableCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for KeyTableCache {}

impl KeyTableCache {
    /// Checks `signature` over `digest` is `key`'s, through the table once it exists.
    fn verify(&mut self, key: &VerifyingKey, digest: &B256, signature: &[u8]) -> crate::Result<()> {
        if let Some(table) = &self.table {
            return table.verify(digest, signature);
        }
        signing::verify_with_key(key, digest, signature)?;
        self.checked += 1;
        if self.checked >= KEY_TABLE_AFTER {
            self.table = Some(Arc::new(KeyTable::new(*key)));
        }
        Ok(())
    }
}

/// One participant's view of a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelState {
    params: ChannelParams,
    chain_id: u64,
    id: B256,
    vault: Address,
    /// The EIP-712 domain every proof of this channel is signed under (derived from `vault`).
    domain: ChannelDomain,
    me: Side,
    policy: Policy,
    /// Indexed by side (A = 0): cumulative on-chain deposits.
    deposits: [U256; 2],
    /// Cumulative on-chain withdrawals.
    withdrawn: [U256; 2],
    pending_withdrawals: [Option<PendingWithdrawal>; 2],
    /// Indexed by sending side.
    directions: [Direction; 2],
    /// The counterparty's signature over its latest proof: what a close submits.
    counterparty_signature: Option<[u8; 65]>,
    /// The counterparty's public key, recovered from its first signature: later proofs are
    /// checked against it directly, which is twice as fast as recovering each time.
    counterparty_key: Option<VerifyingKey>,
    /// Speeds up checking that key once it has signed often (a cache: never compared).
    key_table: KeyTableCache,
    /// Expiry of the cooperative close this side signed, while it may still execute.
    closing: Option<u64>,
}

impl ChannelState {
    /// A freshly opened channel as `me` sees it, before any deposit is known.
    pub fn new(
        params: ChannelParams,
        chain_id: u64,
        factory: Address,
        implementation: Address,
        me: Side,
        policy: Policy,
    ) -> Self {
        let id = channel_id(chain_id, factory, &params);
        let vault = vault_address(factory, implementation, id, params.token);
        Self {
            params,
            chain_id,
            id,
            vault,
            domain: ChannelDomain::new(chain_id, vault),
            me,
            policy,
            deposits: [U256::ZERO; 2],
            withdrawn: [U256::ZERO; 2],
            pending_withdrawals: [None, None],
            directions: [Direction::default(), Direction::default()],
            counterparty_signature: None,
            counterparty_key: None,
            key_table: KeyTableCache::default(),
            closing: None,
        }
    }

    /// Everything this state holds beyond its opening.
    pub fn progress(&self) -> Progress {
        Progress {
            deposits: self.deposits,
            withdrawn: self.withdrawn,
            pending_withdrawals: self.pending_withdrawals.clone(),
            directions: self.directions.clone(),
            counterparty_signature: self.counterparty_signature,
            closing: self.closing,
        }
    }

    /// The state `progress` describes for the channel `new` would create. The counterparty's
    /// signature is checked again over its latest proof (its key is recovered from it), and
    /// every side's commitments must be covered by its funds, so a damaged snapshot is refused
    /// rather than trusted.
    pub fn resume(
        params: ChannelParams,
        chain_id: u64,
        factory: Address,
        implementation: Address,
        me: Side,
        policy: Policy,
        progress: Progress,
    ) -> Result<Self, ChannelError> {
        let mut state = Self::new(params, chain_id, factory, implementation, me, policy);
        state.deposits = progress.deposits;
        state.withdrawn = progress.withdrawn;
        state.pending_withdrawals = progress.pending_withdrawals;
        state.directions = progress.directions;
        state.closing = progress.closing;
        for side in [Side::A, Side::B] {
            let own = &state.directions[side.index()];
            let other = &state.directions[side.other().index()];
            let credit = state.deposits[side.index()].checked_add(other.transferred);
            let debit = state.withdrawn[side.index()]
                .checked_add(own.transferred)
                .and_then(|d| d.checked_add(own.locked()));
            if !matches!((credit, debit), (Some(c), Some(d)) if d <= c) {
                return Err(ChannelError::InsufficientCapacity {
                    needed: debit.unwrap_or(U256::MAX),
                    available: credit.unwrap_or(U256::MAX),
                });
            }
        }
        let them = me.other();
        match progress.counterparty_signature {
            Some(signature) => {
                let proof = state.directions[them.index()].proof(state.id);
                let digest = state.domain.signing_hash(&proof);
                let key = state.check_counterparty_signature(&digest, &signature)?;
                state.counterparty_key = Some(key);
                state.counterparty_signature = Some(signature);
            }
            None if state.directions[them.index()].nonce != 0 => {
                return Err(ChannelError::BadSignature(SignatureFault::Missing));
            }
            None => {}
        }
        Ok(state)
    }

    /// The channel id.
    pub const fn id(&self) -> B256 {
        self.id
    }

    /// The channel's vault (the EIP-712 verifying contract).
    pub const fn vault(&self) -> Address {
        self.vault
    }

    /// The channel's EIP-712 domain, its separator hashed once.
    pub const fn domain(&self) -> &ChannelDomain {
        &self.domain
    }

    /// Which side this view belongs to.
    pub const fn me(&self) -> Side {
        self.me
    }

    /// The chain the channel lives on (part of every signature's EIP-712 domain).
    pub const fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// Whether a cooperative close this side signed may still execute: no updates until it
    /// executes or expires.
    pub const fn is_closing(&self) -> bool {
        self.closing.is_some()
    }

    /// The expiry of the cooperative close this side signed, while the channel is closing.
    pub const fn closing_expiry(&self) -> Option<u64> {
        self.closing
    }

    /// The cooperative close this side signed (proposed or approved), while the channel is
    /// closing: the balances are frozen meanwhile, so it is the close that pays them.
    pub fn signed_close(&self) -> Option<CooperativeClose> {
        let expiry = self.closing?;
        let mut open = self.clone();
        open.closing = None;
        open.final_close(expiry).ok()
    }

    /// The withdrawal `side` has pending, if any.
    pub fn pending_withdrawal(&self, side: Side) -> Option<&PendingWithdrawal> {
        self.pending_withdrawals[side.index()].as_ref()
    }

    /// The channel's parameters.
    pub const fn params(&self) -> &ChannelParams {
        &self.params
    }

    /// The limits both sides enforce on this channel's locks and withdrawals.
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The direction `sender` sends in.
    pub fn direction(&self, sender: Side) -> &Direction {
        &self.directions[sender.index()]
    }

    /// The counterparty's latest proof and signature, if it ever sent one: what a close submits.
    pub fn latest_counterparty_proof(&self) -> Option<(BalanceProof, [u8; 65])> {
        let sig = self.counterparty_signature?;
        Some((self.direction(self.me.other()).proof(self.id), sig))
    }

    /// `side`'s off-chain balance: deposit − withdrawn − sent − locked + received.
    pub fn balance(&self, side: Side) -> U256 {
        let own = &self.directions[side.index()];
        let other = &self.directions[side.other().index()];
        let credit = self.deposits[side.index()] + other.transferred;
        let debit = self.withdrawn[side.index()] + own.transferred + own.locked();
        // The checks in send/receive/withdrawals keep debit <= credit; saturate rather than
        // panic if an on-chain report ever broke that.
        credit.saturating_sub(debit)
    }

    /// What `side` can still commit: its balance less any pending withdrawal.
    pub fn capacity(&self, side: Side) -> U256 {
        let reserved = self.pending_withdrawals[side.index()]
            .as_ref()
            .map_or(U256::ZERO, |p| p.amount);
        self.balance(side).saturating_sub(reserved)
    }

    /// Applies `change` to this side's outgoing direction and returns the proof to sign.
    pub fn send(&mut self, change: &Change, now: u64) -> Result<BalanceProof, ChannelError> {
        self.ensure_open()?;
        self.check_change(self.me, change)?;
        let me = self.me.index();
        let next = self.directions[me].apply(change, self.capacity(self.me), now, &self.policy)?;
        let proof = next.proof(self.id);
        self.directions[me] = next;
        Ok(proof)
    }

    /// Accepts the counterparty's `changes`, applied in order, if `proof` is exactly what the
    /// last one produces and `signature` over it is the counterparty's; otherwise nothing
    /// changes (a batch is taken whole or not at all).
    pub fn receive(
        &mut self,
        changes: &[Change],
        proof: &BalanceProof,
        signature: &[u8],
        now: u64,
    ) -> Result<(), ChannelError> {
        self.receive_checked(changes, proof, now, |state, digest| {
            let key = state.check_counterparty_signature(digest, signature)?;
            let signature: [u8; 65] = signature.try_into().map_err(|_| {
                ChannelError::BadSignature(crate::Error::SignatureLength(signature.len()).into())
            })?;
            Ok((key, signature))
        })
    }

    /// [`ChannelState::receive`] with the signature checked beforehand, possibly on another
    /// thread, against the counterparty's [`KeyTable`] ([`ChannelState::counterparty_table`]).
    /// Accepted only if `verified` covers exactly this proof's digest and is by the
    /// counterparty's key.
    pub fn receive_verified(
        &mut self,
        changes: &[Change],
        proof: &BalanceProof,
        verified: &Verified,
        now: u64,
    ) -> Result<(), ChannelError> {
        self.receive_checked(changes, proof, now, |state, digest| {
            if state.counterparty_key.as_ref() != Some(verified.key()) {
                return Err(ChannelError::BadSignature(SignatureFault::OtherKey));
            }
            if verified.digest() != digest {
                return Err(ChannelError::BadSignature(SignatureFault::OtherMessage));
            }
            Ok((*verified.key(), *verified.signature()))
        })
    }

    /// The counterparty's key table, once its key is known and it has signed often enough to
    /// build one: for checking its proofs off the thread that holds this state.
    pub fn counterparty_table(&self) -> Option<Arc<KeyTable>> {
        self.key_table.table.clone()
    }

    /// The shared part of `receive`: `check` vouches for the signature over the digest.
    fn receive_checked(
        &mut self,
        changes: &[Change],
        proof: &BalanceProof,
        now: u64,
        check: impl FnOnce(&mut Self, &B256) -> Result<(VerifyingKey, [u8; 65]), ChannelError>,
    ) -> Result<(), ChannelError> {
        self.ensure_open()?;
        if changes.is_empty() || changes.len() > crate::wire::MAX_UPDATE_CHANGES {
            return Err(ChannelError::ChangeCount(changes.len()));
        }
        if proof.channelId != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                found: proof.channelId,
            });
        }
        let them = self.me.other().index();
        let before = self.directions[them].clone();
        // Each change is checked against the capacity the ones before it left.
        let result = self.apply_received(changes, proof, now).and_then(|()| {
            let digest = self.domain.signing_hash(proof);
            check(self, &digest)
        });
        match result {
            Ok((key, signature)) => {
                self.counterparty_signature = Some(signature);
                self.counterparty_key = Some(key);
                Ok(())
            }
            Err(e) => {
                self.directions[them] = before;
                Err(e)
            }
        }
    }

    /// Applies `changes` to the counterparty's direction and checks that the result is `proof`;
    /// the caller restores the direction on error.
    fn apply_received(
        &mut self,
        changes: &[Change],
        proof: &BalanceProof,
        now: u64,
    ) -> Result<(), ChannelError> {
        let them = self.me.other();
        for change in changes {
            self.check_change(them, change)?;
            let next = self.directions[them.index()].apply(
                change,
                self.capacity(them),
                now,
                &self.policy,
            )?;
            self.directions[them.index()] = next;
        }
        let direction = &self.directions[them.index()];
        if direction.proof(self.id) != *proof {
            return Err(ChannelError::ProofMismatch {
                expected_nonce: direction.nonce,
            });
        }
        Ok(())
    }

    /// The [`LockRelease`] that gives up the pending lock with `secret_hash` which `sender`
    /// sent: what the lock's receiver signs ([`Message::LockReleased`](crate::wire::Message)).
    pub fn lock_release(
        &self,
        sender: Side,
        secret_hash: B256,
    ) -> Result<LockRelease, ChannelError> {
        let lock = self.directions[sender.index()]
            .locks
            .iter()
            .find(|l| l.secret_hash == secret_hash)
            .ok_or(ChannelError::UnknownLock(secret_hash))?;
        Ok(LockRelease {
            channelId: self.id,
            secretHash: secret_hash,
            amount: lock.amount,
            expiration: lock.expiration,
        })
    }

    /// Checks that `signature` is the receiver's release of the pending lock with
    /// `secret_hash` which `sender` sent, and returns what it signed.
    pub fn check_release(
        &self,
        sender: Side,
        secret_hash: B256,
        signature: &[u8],
    ) -> Result<LockRelease, ChannelError> {
        let release = self.lock_release(sender, secret_hash)?;
        let digest = self.domain.signing_hash(&release);
        let bad = |e: crate::Error| ChannelError::BadSignature(e.into());
        let recovered = signing::recover(&digest, signature).map_err(bad)?;
        let expected = self.params.participant(sender.other());
        if recovered != expected {
            return Err(bad(crate::Error::WrongSigner {
                expected,
                recovered,
            }));
        }
        Ok(release)
    }

    /// The checks a change needs beyond its direction's: a released lock's removal carries
    /// the receiver's signature.
    fn check_change(&self, sender: Side, change: &Change) -> Result<(), ChannelError> {
        if let Change::RemoveReleasedLock {
            secret_hash,
            release,
        } = change
        {
            self.check_release(sender, *secret_hash, release)?;
        }
        Ok(())
    }

    /// Records a deposit total seen on chain (deposits only grow).
    pub fn deposit_confirmed(&mut self, side: Side, total: U256) -> Result<(), ChannelError> {
        let slot = &mut self.deposits[side.index()];
        if total < *slot {
            return Err(ChannelError::TotalWentBackwards(
                self.params.participant(side),
            ));
        }
        *slot = total;
        Ok(())
    }

    /// Agrees to a withdrawal by `withdrawal.participant` (either side: this side proposing it,
    /// or co-signing the counterparty's) and reserves its amount until it executes or expires.
    pub fn approve_withdrawal(
        &mut self,
        withdrawal: &Withdrawal,
        now: u64,
    ) -> Result<(), ChannelError> {
        self.ensure_open()?;
        if withdrawal.channelId != self.id {
            return Err(ChannelError::WrongChannel {
                expected: self.id,
                found: withdrawal.channelId,
            });
        }
        let side =
            self.params
                .side_of(withdrawal.participant)
                .ok_or(ChannelError::InvalidWithdrawal(
                    "participant is not in the channel",
                ))?;
        if withdrawal.expiry <= now {
            return Err(ChannelError::InvalidWithdrawal("already expired"));
        }
        // The vault refuses these destinations too; refusing them here keeps a reservation from
        // being made for a withdrawal that could never execute.
        if withdrawal.targetSide > 1 {
            return Err(ChannelError::InvalidWithdrawal(
                "target side is neither A nor B",
            ));
        }
        if withdrawal.target.is_zero() && withdrawal.targetSide != 0 {
            return Err(ChannelError::InvalidWithdrawal(
                "a payout to the participant names a target side",
            ));
        }
        if withdrawal.target == self.vault {
            return Err(ChannelError::InvalidWithdrawal(
                "target is this channel's own vault",
            ));
        }
        if self.pending_withdrawals[side.index()].is_some() {
            return Err(ChannelError::WithdrawalPending(withdrawal.participant));
        }
        let done = self.withdrawn[side.index()];
        if withdrawal.totalWithdrawn <= done {
            return Err(ChannelError::InvalidWithdrawal("total does not grow"));
        }
        let amount = withdrawal.totalWithdrawn - done;
        let available = self.capacity(side);
        if amount > available {
            return Err(ChannelError::InsufficientCapacity {
                needed: amount,
                available,
            });
        }
        self.pending_withdrawals[side.index()] = Some(PendingWithdrawal {
            withdrawal: withdrawal.clone(),
            amount,
        });
        Ok(())
    }

    /// Records a withdrawal total seen on chain and releases the matching reservation.
    pub fn withdrawal_confirmed(&mut self, side: Side, total: U256) -> Result<(), ChannelError> {
        let slot = &mut self.withdrawn[side.index()];
        if total < *slot {
            return Err(ChannelError::TotalWentBackwards(
                self.params.participant(side),
            ));
        }
        *slot = total;
        let pending = &mut self.pending_withdrawals[side.index()];
        if pending
            .as_ref()
            .is_some_and(|p| p.withdrawal.totalWithdrawn <= total)
        {
            *pending = None;
        }
        Ok(())
    }

    /// Releases reservations of withdrawals that expired unexecuted (`now` past their expiry).
    pub fn expire_withdrawals(&mut self, now: u64) {
        for pending in &mut self.pending_withdrawals {
            if pending.as_ref().is_some_and(|p| p.withdrawal.expiry < now) {
                *pending = None;
            }
        }
    }

    /// The cooperative close paying both current balances, valid until `expiry`; freezes the
    /// channel. Needs no pending locks or withdrawals, so the balances are final.
    pub fn propose_close(&mut self, expiry: u64) -> Result<CooperativeClose, ChannelError> {
        let close = self.final_close(expiry)?;
        self.closing = Some(expiry);
        Ok(close)
    }

    /// Accepts the counterparty's proposed close if it pays exactly the balances held here;
    /// freezes the channel.
    pub fn approve_close(&mut self, close: &CooperativeClose) -> Result<(), ChannelError> {
        if self.final_close(close.expiry)? != *close {
            return Err(ChannelError::CloseMismatch);
        }
        self.closing = Some(close.expiry);
        Ok(())
    }

    /// Re-opens the channel for updates once the close this side signed has expired unexecuted
    /// (`now` past its expiry), when it can no longer be submitted. Returns whether it re-opened.
    pub fn close_expired(&mut self, now: u64) -> bool {
        if self.closing.is_some_and(|expiry| expiry < now) {
            self.closing = None;
        }
        self.closing.is_none()
    }

    /// What settlement on chain would pay from the latest proofs, per keel-core's formula.
    pub fn settlement_directions(&self) -> (SettledDirection, SettledDirection) {
        let d = |side: Side| {
            let dir = self.direction(side);
            SettledDirection {
                transferred: dir.transferred,
                locked: dir.locked(),
            }
        };
        (d(Side::A), d(Side::B))
    }

    /// Cumulative deposits and withdrawals of `side` as last seen on chain.
    pub fn ledger(&self, side: Side) -> (U256, U256) {
        (self.deposits[side.index()], self.withdrawn[side.index()])
    }

    fn final_close(&self, expiry: u64) -> Result<CooperativeClose, ChannelError> {
        self.ensure_open()?;
        let settled = self.directions.iter().all(|d| d.locks.is_empty())
            && self.pending_withdrawals.iter().all(Option::is_none);
        if !settled {
            return Err(ChannelError::CloseMismatch);
        }
        Ok(CooperativeClose {
            channelId: self.id,
            payoutA: self.balance(Side::A),
            payoutB: self.balance(Side::B),
            depositA: self.deposits[0],
            depositB: self.deposits[1],
            totalWithdrawn: self.withdrawn[0] + self.withdrawn[1],
            expiry,
        })
    }

    /// Checks `signature` over `digest` is the counterparty's; returns its key.
    fn check_counterparty_signature(
        &mut self,
        digest: &B256,
        signature: &[u8],
    ) -> Result<VerifyingKey, ChannelError> {
        let bad = |e: crate::Error| ChannelError::BadSignature(e.into());
        if let Some(key) = self.counterparty_key {
            self.key_table
                .verify(&key, digest, signature)
                .map_err(bad)?;
            return Ok(key);
        }
        let key = signing::recover_key(digest, signature).map_err(bad)?;
        let expected = self.params.participant(self.me.other());
        let recovered = Address::from_public_key(&key);
        if recovered != expected {
            return Err(ChannelError::BadSignature(
                crate::Error::WrongSigner {
                    expected,
                    recovered,
                }
                .into(),
            ));
        }
        Ok(key)
    }

    fn ensure_open(&self) -> Result<(), ChannelError> {
        if self.closing.is_some() {
            Err(ChannelError::NotOpen)
        } else {
            Ok(())
        }
    }
}
