//! One channel inside the client: its state machine, what we sent that the peer has not
//! acknowledged yet, and who is waiting for answers.

use std::{
    collections::{HashMap, VecDeque},
    sync::{atomic::AtomicBool, Arc, OnceLock},
};

use keel_core::{
    signing::KeyTable, wire::Signature, Address, ChannelDomain, ChannelState, Lock, Side, B256,
    U256,
};
use tokio::sync::{oneshot, watch, Mutex, Semaphore};

use super::{ClientError, Result};
use crate::{
    chain::TxReceipt,
    store::{ChainStatus, OwnRequests},
};

/// Answers a caller waiting on the peer.
pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A channel and everything the client tracks for it.
#[derive(Debug)]
pub(crate) struct Channel {
    /// Channel id.
    pub(crate) id: B256,
    /// Its chain.
    pub(crate) chain_id: u64,
    /// Its vault.
    pub(crate) vault: Address,
    /// Its EIP-712 domain (hashing a proof under it skips the separator).
    pub(crate) domain: ChannelDomain,
    /// The counterparty's address.
    pub(crate) peer: Address,
    /// Bounds the updates in flight (sent, not acknowledged).
    pub(crate) window: Semaphore,
    /// Whether the peer resynchronised this channel on the current connection; updates wait
    /// for it so that none overtakes a resend.
    pub(crate) synced: watch::Sender<bool>,
    /// Whether we sent our `Resync` for this channel on the current connection.
    pub(crate) resync_sent: AtomicBool,
    /// The peer's key table, once the state machine built one: the reader checks incoming
    /// signatures with it in parallel, before the update is applied.
    pub(crate) table: OnceLock<Arc<KeyTable>>,
    /// Submissions of our co-signed withdrawal and close: one at a time, so a caller's retry
    /// and the background retry do not race.
    pub(crate) submitting: Mutex<Submissions>,
    /// The state and waiters; held across apply-and-enqueue so log order is apply order.
    pub(crate) rt: Mutex<Runtime>,
}

/// What became of submitting our co-signed requests.
#[derive(Debug, Default)]
pub(crate) struct Submissions {
    /// Mined requests, by EIP-712 digest, with their receipts: not submitted again.
    pub(crate) mined: Vec<(B256, TxReceipt)>,
    /// Requests the chain refused (they can never execute), by digest.
    pub(crate) refused: Vec<B256>,
    /// Consecutive failed attempts; sets the background retry's back-off.
    pub(crate) failures: u32,
    /// No background retry before this.
    pub(crate) next_try: Option<tokio::time::Instant>,
}

/// One of our updates the peer has not acknowledged.
#[derive(Debug)]
pub(crate) struct Unacked {
    /// Its proof's nonce.
    pub(crate) nonce: u64,
    /// Its caller, answered on the acknowledgement.
    pub(crate) reply: Option<Reply<()>>,
}

/// The mutable part of a [`Channel`].
#[derive(Debug)]
pub(crate) struct Runtime {
    /// The state machine.
    pub(crate) state: ChannelState,
    /// Where the channel stands on chain.
    pub(crate) chain: ChainStatus,
    /// Our updates the peer has not acknowledged, oldest first.
    pub(crate) unacked: VecDeque<Unacked>,
    /// The highest of our nonces the peer acknowledged in this run (0 until its first
    /// Resync): the stored onions up to it are no longer needed.
    pub(crate) acknowledged: u64,
    /// Set once the channel stops taking updates.
    pub(crate) failed: Option<String>,
    /// Caller of `withdraw`, waiting for the peer's co-signature.
    pub(crate) withdrawal: Option<Reply<Signature>>,
    /// Caller of `close`, waiting for the peer's co-signature.
    pub(crate) close: Option<Reply<Signature>>,
    /// Callers of `claim_lock`, by secret hash, waiting for the peer to pay the lock out.
    pub(crate) claims: HashMap<B256, Reply<()>>,
    /// Events queued since the last snapshot (or since the start).
    pub(crate) since_snapshot: u64,
    /// Our withdrawal and close requests and the peer's signatures over them, as stored; an
    /// entry counts only while the state still holds the request ([`Runtime::own_withdrawal`],
    /// [`Runtime::own_close`]).
    pub(crate) requests: OwnRequests,
}

impl Channel {
    /// Whether an update can leave at once: the peer is connected and synchronised, and the
    /// window has room.
    pub(crate) fn ready(&self) -> bool {
        *self.synced.borrow() && self.window.available_permits() > 0
    }

    /// The locks the peer sent us that are pending.
    pub(crate) async fn incoming_locks(&self) -> Vec<Lock> {
        let rt = self.rt.lock().await;
        rt.state.direction(rt.state.me().other()).locks.clone()
    }

    /// The pending lock the peer sent us under `secret_hash`, if there is one.
    pub(crate) async fn incoming_lock(&self, secret_hash: B256) -> Option<Lock> {
        let rt = self.rt.lock().await;
        let locks = &rt.state.direction(rt.state.me().other()).locks;
        locks.iter().find(|l| l.secret_hash == secret_hash).copied()
    }

    /// The pending lock we sent the peer under `secret_hash`, if there is one.
    pub(crate) async fn outgoing_lock(&self, secret_hash: B256) -> Option<Lock> {
        let rt = self.rt.lock().await;
        let locks = &rt.state.direction(rt.state.me()).locks;
        locks.iter().find(|l| l.secret_hash == secret_hash).copied()
    }

    /// Wraps a new channel state; `window` updates may be in flight.
    pub(crate) fn new(state: ChannelState, window: usize) -> Self {
        Self::with_status(state, ChainStatus::Open, window)
    }

    /// Wraps a loaded channel state and its on-chain status.
    pub(crate) fn with_status(state: ChannelState, chain: ChainStatus, window: usize) -> Self {
        let me = state.me();
        Self {
            id: state.id(),
            chain_id: state.chain_id(),
            vault: state.vault(),
            domain: *state.domain(),
            peer: state.params().participant(me.other()),
            window: Semaphore::new(window),
            synced: watch::Sender::new(false),
            resync_sent: AtomicBool::new(false),
            table: OnceLock::new(),
            rt: Mutex::new(Runtime {
                state,
                chain,
                unacked: VecDeque::new(),
                acknowledged: 0,
                failed: None,
                withdrawal: None,
                close: None,
                claims: HashMap::new(),
                since_snapshot: 0,
                requests: OwnRequests::default(),
            }),
            submitting: Mutex::default(),
        }
    }
}

impl Runtime {
    /// Errors if the channel stopped taking updates.
    pub(crate) fn ensure_usable(&self) -> Result<()> {
        if !self.chain.is_open() {
            return Err(ClientError::ChannelClosed(self.state.id()));
        }
        match self.failed {
            Some(_) => Err(ClientError::ChannelFailed(self.state.id())),
            None => Ok(()),
        }
    }

    /// Our withdrawal that is still pending, with the peer's signature if it arrived.
    pub(crate) fn own_withdrawal(&self) -> Option<&(keel_core::Withdrawal, Option<Signature>)> {
        let pending = self.state.pending_withdrawal(self.state.me())?;
        self.requests
            .withdrawal
            .as_ref()
            .filter(|(w, _)| *w == pending.withdrawal)
    }

    /// The close we proposed while it may still execute, with the peer's signature if it
    /// arrived.
    pub(crate) fn own_close(&self) -> Option<&(keel_core::CooperativeClose, Option<Signature>)> {
        if !self.state.is_closing() || !self.chain.is_open() {
            return None;
        }
        let expiry = self.state.closing_expiry();
        self.requests
            .close
            .as_ref()
            .filter(|(c, _)| Some(c.expiry) == expiry)
    }

    /// Completes every waiter for a nonce up to `nonce`; returns how many updates that frees.
    pub(crate) fn acknowledge(&mut self, nonce: u64) -> usize {
        self.acknowledged = self.acknowledged.max(nonce);
        let mut freed = 0;
        while self.unacked.front().is_some_and(|u| u.nonce <= nonce) {
            if let Some(Unacked {
                reply: Some(reply), ..
            }) = self.unacked.pop_front()
            {
                // A caller that stopped waiting does not need the answer.
                let _ = reply.send(Ok(()));
            }
            freed += 1;
        }
        freed
    }

    /// Fails every waiter with `error()`: the channel failed or the client stops.
    pub(crate) fn fail_waiters(&mut self, error: impl Fn() -> ClientError) {
        for unacked in self.unacked.drain(..) {
            if let Some(reply) = unacked.reply {
                let _ = reply.send(Err(error()));
            }
        }
        self.fail_requests(error);
    }

    /// Fails the callers waiting for a co-signature or a claim (the peer went away; updates
    /// in flight are resent on reconnect, but requests are not).
    pub(crate) fn fail_requests(&mut self, error: impl Fn() -> ClientError) {
        for reply in [self.withdrawal.take(), self.close.take()]
            .into_iter()
            .flatten()
        {
            let _ = reply.send(Err(error()));
        }
        for (_, reply) in self.claims.drain() {
            let _ = reply.send(Err(error()));
        }
    }

    /// A summary for the application.
    pub(crate) fn info(&self) -> ChannelInfo {
        Self::info_of(&self.state, self.failed.clone(), self.chain)
    }

    /// A summary of `state`.
    pub(crate) fn info_of(
        state: &ChannelState,
        failed: Option<String>,
        chain: ChainStatus,
    ) -> ChannelInfo {
        let me = state.me();
        let params = state.params();
        ChannelInfo {
            id: state.id(),
            chain_id: state.chain_id(),
            vault: state.vault(),
            token: params.token,
            me,
            peer: params.participant(me.other()),
            balance: state.balance(me),
            peer_balance: state.balance(me.other()),
            capacity: state.capacity(me),
            sent_nonce: state.direction(me).nonce,
            received_nonce: state.direction(me.other()).nonce,
            outgoing_locks: state.direction(me).locks.clone(),
            incoming_locks: state.direction(me.other()).locks.clone(),
            deposits: [state.ledger(Side::A).0, state.ledger(Side::B).0],
            withdrawn: [state.ledger(Side::A).1, state.ledger(Side::B).1],
            withdrawing: [Side::A, Side::B].map(|side| {
                state
                    .pending_withdrawal(side)
                    .map_or(U256::ZERO, |p| p.amount)
            }),
            closing: state.is_closing(),
            failed,
            chain,
        }
    }
}

/// A snapshot of one channel, for display and decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelInfo {
    /// Channel id.
    pub id: B256,
    /// The chain it lives on.
    pub chain_id: u64,
    /// Its vault.
    pub vault: Address,
    /// Its token (`Address::ZERO` for ETH).
    pub token: Address,
    /// Our side.
    pub me: Side,
    /// The counterparty.
    pub peer: Address,
    /// Our off-chain balance.
    pub balance: U256,
    /// The counterparty's off-chain balance.
    pub peer_balance: U256,
    /// What we can still send (balance less a pending withdrawal).
    pub capacity: U256,
    /// Nonce of our latest proof.
    pub sent_nonce: u64,
    /// Nonce of the counterparty's latest proof we hold.
    pub received_nonce: u64,
    /// Locks we sent that are pending.
    pub outgoing_locks: Vec<Lock>,
    /// Locks the counterparty sent us that are pending.
    pub incoming_locks: Vec<Lock>,
    /// Cumulative deposits seen on chain, A then B.
    pub deposits: [U256; 2],
    /// Cumulative withdrawals seen on chain, A then B.
    pub withdrawn: [U256; 2],
    /// Amounts reserved for agreed withdrawals not yet seen on chain, A then B.
    pub withdrawing: [U256; 2],
    /// A cooperative close is signed and may execute: no updates meanwhile.
    pub closing: bool,
    /// Why the channel stopped taking updates, if it did.
    pub failed: Option<String>,
    /// Where it stands on chain.
    pub chain: ChainStatus,
}
