//! Crash-safe persistence of channel state in SQLite.
//!
//! The store is event-sourced: per channel it keeps the [`ChannelOpening`] (everything
//! [`ChannelState::new`] takes) and an append-only log of the [`Event`]s applied since, each the
//! arguments of one state-machine call. [`Store::load_all`] rebuilds every channel by replaying
//! its log through those same calls ([`Event::apply`]), so a restarted client resumes exactly
//! where it stopped; received proofs are re-verified on the way. Rows are binary records that
//! start with a format version byte (layout in `src/store/codec.rs`; changes and proofs keep
//! their [`keel_core::wire`] layout); an unreadable row is a typed [`StoreError`], never a
//! panic.
//!
//! The rule callers follow: apply an operation to the [`ChannelState`], [`Store::append`] the
//! event, and only when `append` returns send the proof (or acknowledge the received one). So a
//! proof that ever left the process is on disk, and after a crash the next proof's nonce is one
//! past every nonce sent. If `append` fails, the in-memory state is ahead of the disk: drop it
//! and reload. Appends to one channel must be made in the order the events were applied (hold
//! the channel's lock across apply and append); appends to different channels may race freely.
//!
//! Durability without one fsync per payment: the database runs in WAL mode with
//! `synchronous = FULL`, and a single writer thread commits whatever appends are queued in one
//! transaction (group commit), answering each waiter only after that commit. Under load it
//! starts a commit at most once per [`MIN_COMMIT_INTERVAL`] so that batches grow instead of
//! fsyncs (see `src/store/writer.rs`); reads go through a small sqlx pool. Durability is a
//! prefix of the queue: writes commit in queue order and a failed commit stops the writer
//! ([`StoreError::Failed`] for every later write), so a caller may act on an event once any
//! write queued after it is durable.
//! [`Store::commits`] counts the transactions.
//!
//! One process owns a store file at a time.

mod checkpoint;
pub(crate) mod codec;
mod error;
mod event;
mod forward;
mod forward_policy;
mod fresh;
mod onion;
mod pacing;
mod release;
mod tower;
mod writer;

pub use checkpoint::Checkpoint;
pub use error::{DecodeError, ReplayError, Result, StoreError};
pub use event::{ChainStatus, ChannelOpening, Event};
pub use forward::{Forward, ForwardState, Invoice};
pub use forward_policy::ForwardPolicy;
#[cfg(feature = "test-utils")]
pub use pacing::ManualPacing;
pub use release::Released;
pub use tower::SignedTowerReceipt;
pub use writer::MIN_COMMIT_INTERVAL;

/// Our latest withdrawal and close requests in a channel, each with the counterparty's
/// signature if it arrived ([`Store::own_requests`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnRequests {
    /// Our withdrawal, and the counterparty's signature over it.
    pub withdrawal: Option<(Withdrawal, Option<Signature>)>,
    /// The close we proposed, and the counterparty's signature over it.
    pub close: Option<(CooperativeClose, Option<Signature>)>,
}

use std::{
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use keel_core::{
    forwarding::onion::Packet, wire::Signature, Address, ChannelState, CooperativeClose,
    Withdrawal, B256,
};
use sqlx::{
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
};
use tokio::sync::{mpsc, oneshot, watch};

use writer::{ForwardRow, OnionRow, Request, Write, Writer};

/// The schema, embedded from `crates/keel-client/migrations`.
static MIGRATOR: Migrator = sqlx::migrate!();

/// Appends waiting for the writer before `append` itself waits for room.
const QUEUE_LEN: usize = 4 * writer::MAX_BATCH;

/// The channel store: one SQLite file, one writer thread. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct Store {
    queue: mpsc::Sender<Request>,
    pool: SqlitePool,
    commits: Arc<AtomicU64>,
    /// The sequence number of the last committed notice.
    notices: watch::Receiver<u64>,
    writer: Writer,
    /// Invoices issued here and unchanged since, so a payee need not read them back.
    fresh: std::sync::Mutex<fresh::FreshInvoices>,
}

impl Store {
    /// Opens (creating if needed) the store at `path`, brings its schema up to date and starts
    /// the writer thread. Must be called inside a tokio runtime.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> keel_client::store::Result<()> {
    /// use keel_client::store::{ChannelOpening, Event, Store};
    /// use keel_core::{Address, ChannelParams, Policy, Side, B256, U256};
    ///
    /// let path = std::env::temp_dir().join(format!("keel-doctest-{}.db", std::process::id()));
    /// let store = Store::open(&path).await?;
    /// let opening = ChannelOpening {
    ///     params: ChannelParams {
    ///         participant_a: Address::repeat_byte(0xa),
    ///         participant_b: Address::repeat_byte(0xb),
    ///         token: Address::ZERO,
    ///         challenge_period: 86_400,
    ///         salt: B256::ZERO,
    ///     },
    ///     chain_id: 31337,
    ///     factory: Address::repeat_byte(0xfa),
    ///     implementation: Address::repeat_byte(0x1e),
    ///     me: Side::A,
    ///     policy: Policy::default(),
    /// };
    /// let mut state = store.open_channel(&opening).await?;
    ///
    /// // Apply, persist, then act.
    /// let event = Event::DepositConfirmed { side: Side::A, total: U256::from(100) };
    /// event.apply(&mut state).expect("valid");
    /// store.append(state.id(), &event).await?;
    ///
    /// store.close().await;
    /// let store = Store::open(&path).await?;
    /// assert_eq!(store.load_all().await?, vec![state]);
    /// # store.close().await;
    /// # for suffix in ["", "-wal", "-shm"] {
    /// #     let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    /// # }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_paced(path, MIN_COMMIT_INTERVAL).await
    }

    /// [`Store::open`], with commits starting at most once per `min_commit_interval` (see
    /// [`MIN_COMMIT_INTERVAL`]; zero commits as soon as anything is queued).
    pub async fn open_paced(path: impl AsRef<Path>, min_commit_interval: Duration) -> Result<Self> {
        Self::open_with(path, min_commit_interval, Arc::new(pacing::SystemPacing)).await
    }

    /// [`Store::open_paced`], with the interval measured on `pacing`, a clock the test moves:
    /// the writer's waits last until [`ManualPacing::advance`] ends them.
    #[cfg(feature = "test-utils")]
    pub async fn open_manually_paced(
        path: impl AsRef<Path>,
        min_commit_interval: Duration,
        pacing: Arc<ManualPacing>,
    ) -> Result<Self> {
        Self::open_with(path, min_commit_interval, pacing).await
    }

    async fn open_with(
        path: impl AsRef<Path>,
        min_commit_interval: Duration,
        pacing: Arc<dyn pacing::Pacing>,
    ) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await?;
        MIGRATOR.run(&pool).await?;
        let (queue, rx) = mpsc::channel(QUEUE_LEN);
        let commits = Arc::new(AtomicU64::new(0));
        let (last, _): (i64, i64) = sqlx::query_as("SELECT COALESCE(MAX(seq), 0), 0 FROM notices")
            .fetch_one(&pool)
            .await?;
        let (published, notices) = watch::channel(last.unsigned_abs());
        let writer = Writer::start(
            path.as_ref().to_path_buf(),
            rx,
            min_commit_interval,
            pacing,
            commits.clone(),
            published,
        )
        .await?;
        Ok(Self {
            queue,
            pool,
            commits,
            notices,
            writer,
            fresh: std::sync::Mutex::default(),
        })
    }

    /// Records a new channel and returns its initial state; durable when it returns.
    pub async fn open_channel(&self, opening: &ChannelOpening) -> Result<ChannelState> {
        self.open_channel_noted(opening, Vec::new()).await
    }

    /// [`Store::open_channel`], with `notices` (encoded notices for the application) written in
    /// the same transaction.
    pub async fn open_channel_noted(
        &self,
        opening: &ChannelOpening,
        notices: Vec<Vec<u8>>,
    ) -> Result<ChannelState> {
        let (state, commit) = self.enqueue_channel(opening, notices).await?;
        commit.durable().await?;
        Ok(state)
    }

    /// Queues a new channel's record (with `notices`) and returns its initial state without
    /// waiting for the commit: events for the channel queued after it are written after it.
    pub async fn enqueue_channel(
        &self,
        opening: &ChannelOpening,
        notices: Vec<Vec<u8>>,
    ) -> Result<(ChannelState, Commit)> {
        let state = opening.state();
        let commit = self
            .enqueue_write(Write::Channel {
                id: state.id(),
                opening: codec::encode_opening(opening),
                notices,
            })
            .await?;
        Ok((state, commit))
    }

    /// Appends `event`, already applied to `channel_id`'s state, to its log. Returns only once
    /// the event is durable on disk; concurrent appends share one commit.
    pub async fn append(&self, channel_id: B256, event: &Event) -> Result<()> {
        self.enqueue(channel_id, event).await?.durable().await
    }

    /// Queues `event` behind every event queued before it and returns without waiting for the
    /// commit: a pipelining caller applies and enqueues events one by one, in order, and awaits
    /// each [`Commit`] before sending or acknowledging what that event records. Events queued
    /// while a commit is on disk share the next one.
    pub async fn enqueue(&self, channel_id: B256, event: &Event) -> Result<Commit> {
        self.enqueue_noted(channel_id, event, Vec::new()).await
    }

    /// [`Store::enqueue`], with `notices` (encoded notices for the application, the client's
    /// durable events) committed in the same transaction as the event: both or neither.
    pub async fn enqueue_noted(
        &self,
        channel_id: B256,
        event: &Event,
        notices: Vec<Vec<u8>>,
    ) -> Result<Commit> {
        self.enqueue_write(Write::Event {
            channel_id,
            body: codec::encode_event(event),
            notices,
            forward: None,
            onion: None,
        })
        .await
    }

    /// [`Store::enqueue`] for an update we send (`event` is [`Event::Sent`]), with what must be
    /// stored in the same transaction, both or neither:
    /// - `forward`: the lock a hub adds downstream and the record of which incoming lock it
    ///   forwards, so a restart finds every forward whose lock the peer may hold;
    /// - `onion`: the onion of the lock the update adds, so a peer that lost the update gets
    ///   it again with the onion ([`Store::lock_onions`]). The onions of updates the peer has
    ///   acknowledged (nonces up to `acknowledged`) are dropped in the same write.
    pub async fn enqueue_sent(
        &self,
        channel_id: B256,
        event: &Event,
        forward: Option<&Forward>,
        onion: Option<(&Packet, u64)>,
    ) -> Result<Commit> {
        let onion = match (event, onion) {
            (Event::Sent { proof, .. }, Some((packet, acknowledged))) => Some(OnionRow {
                nonce: proof.nonce,
                packet: packet.0.to_vec(),
                acknowledged,
            }),
            _ => None,
        };
        self.enqueue_write(Write::Event {
            channel_id,
            body: codec::encode_event(event),
            notices: Vec::new(),
            forward: forward.map(forward_row),
            onion,
        })
        .await
    }

    /// Stores a forward's new state; durable when it returns.
    pub async fn update_forward(&self, forward: &Forward) -> Result<()> {
        self.enqueue_forward(forward, Vec::new())
            .await?
            .durable()
            .await
    }

    /// Queues a forward's new state, with `notices` for the application in the same
    /// transaction; durable once the returned [`Commit`] is.
    pub async fn enqueue_forward(
        &self,
        forward: &Forward,
        notices: Vec<Vec<u8>>,
    ) -> Result<Commit> {
        self.enqueue_write(Write::Forward {
            row: forward_row(forward),
            notices,
        })
        .await
    }

    /// Every forward record.
    pub async fn forwards(&self) -> Result<Vec<Forward>> {
        let rows: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT incoming_channel, secret_hash, body FROM forwards")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(channel, hash, body)| {
                let channel = B256::try_from(channel.as_slice()).unwrap_or_default();
                let hash = B256::try_from(hash.as_slice()).unwrap_or_default();
                forward::decode_forward(channel, hash, &body).map_err(|source| {
                    StoreError::Corrupt {
                        channel_id: channel,
                        seq: None,
                        source,
                    }
                })
            })
            .collect()
    }

    /// Stores a new invoice for `payment_hash`; durable when it returns, and looked up without
    /// reading the database until it is written again.
    ///
    /// It is kept in memory before it is durable, so a write that follows it (marking it paid)
    /// always finds and drops it; whatever acts on a lookup before then writes after it, and
    /// the store commits that only with the invoice (`store::writer`).
    pub async fn insert_invoice(&self, payment_hash: B256, invoice: &Invoice) -> Result<()> {
        self.fresh
            .lock()
            .expect("invoice cache poisoned")
            .insert(payment_hash, *invoice);
        let stored = self
            .write(Write::Invoice {
                payment_hash,
                body: forward::encode_invoice(invoice),
                notices: Vec::new(),
            })
            .await;
        if stored.is_err() {
            self.fresh
                .lock()
                .expect("invoice cache poisoned")
                .remove(&payment_hash);
        }
        stored
    }

    /// Stores (or replaces) the invoice for `payment_hash`; durable when it returns.
    pub async fn put_invoice(&self, payment_hash: B256, invoice: &Invoice) -> Result<()> {
        self.put_invoice_noted(payment_hash, invoice, Vec::new())
            .await
    }

    /// [`Store::put_invoice`], with `notices` for the application in the same transaction.
    pub async fn put_invoice_noted(
        &self,
        payment_hash: B256,
        invoice: &Invoice,
        notices: Vec<Vec<u8>>,
    ) -> Result<()> {
        // Before the write is queued: a lookup from now on reads the database, which holds
        // the old row until this commits and the new one after.
        self.fresh
            .lock()
            .expect("invoice cache poisoned")
            .remove(&payment_hash);
        self.write(Write::Invoice {
            payment_hash,
            body: forward::encode_invoice(invoice),
            notices,
        })
        .await
    }

    /// The invoice for `payment_hash`, if we issued one.
    pub async fn invoice(&self, payment_hash: B256) -> Result<Option<Invoice>> {
        let fresh = self
            .fresh
            .lock()
            .expect("invoice cache poisoned")
            .get(&payment_hash);
        if let Some(invoice) = fresh {
            return Ok(Some(invoice));
        }
        let row: Option<(Vec<u8>,)> =
            sqlx::query_as("SELECT body FROM invoices WHERE payment_hash = ?")
                .bind(payment_hash.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        row.map(|(body,)| {
            forward::decode_invoice(&body).map_err(|source| StoreError::Corrupt {
                channel_id: B256::ZERO,
                seq: None,
                source,
            })
        })
        .transpose()
    }

    /// Queues a notice for the application on its own (one that no channel event carries).
    pub async fn enqueue_notice(&self, body: Vec<u8>) -> Result<Commit> {
        self.enqueue_write(Write::Notice { body }).await
    }

    /// Up to `limit` notices with a sequence number above `after`, oldest first. Reads
    /// committed rows only.
    pub async fn notices_after(&self, after: u64, limit: u32) -> Result<Vec<(u64, Vec<u8>)>> {
        let rows: Vec<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT seq, body FROM notices WHERE seq > ? ORDER BY seq LIMIT ?")
                .bind(i64::try_from(after).unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, body)| (seq.unsigned_abs(), body))
            .collect())
    }

    /// The sequence number of the last committed notice (0: none yet); it changes after every
    /// commit that writes notices.
    pub fn last_notice(&self) -> watch::Receiver<u64> {
        self.notices.clone()
    }

    /// The last notice the consumer `name` handled (0 for a new consumer).
    pub async fn cursor(&self, name: &str) -> Result<u64> {
        let seq: Option<(i64,)> = sqlx::query_as("SELECT seq FROM cursors WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(seq.map_or(0, |(seq,)| seq.unsigned_abs()))
    }

    /// Records that the consumer `name` handled every notice up to `seq`; durable when it
    /// returns.
    pub async fn set_cursor(&self, name: &str, seq: u64) -> Result<()> {
        self.write(Write::Cursor {
            name: name.to_owned(),
            seq,
        })
        .await
    }

    /// Queues a snapshot of `state` (and its on-chain `status`) behind every event queued
    /// before it for the channel: a restart then replays only the events after it. The caller
    /// queues it under the same lock as the events, so it covers exactly those.
    pub async fn snapshot(&self, state: &ChannelState, status: &ChainStatus) -> Result<Commit> {
        self.enqueue_write(Write::Snapshot {
            channel_id: state.id(),
            body: codec::encode_snapshot(&state.progress(), status),
        })
        .await
    }

    /// Waits until every event queued before this call is durable: a barrier for callers that
    /// must read back what they enqueued.
    pub async fn flush(&self) -> Result<()> {
        self.write(Write::Barrier).await
    }

    /// The proofs this side sent in `channel_id` with a nonce above `after`, oldest first, with
    /// the changes that made them: what a peer that missed them needs resent. Reads committed
    /// rows only; [`Store::flush`] first to include queued ones.
    pub async fn sent_since(
        &self,
        channel_id: B256,
        after: u64,
    ) -> Result<Vec<(keel_core::Change, keel_core::BalanceProof)>> {
        const PAGE: i64 = 256;
        let mut sent = Vec::new();
        let mut before = i64::MAX;
        // Newest first, a page at a time: stop at the first proof the peer has, so only the
        // unacknowledged tail of the log is read.
        'pages: loop {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, body FROM events WHERE channel_id = ? AND seq < ? \
                 ORDER BY seq DESC LIMIT ?",
            )
            .bind(channel_id.as_slice())
            .bind(before)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(&(last, _)) = rows.last() else {
                break;
            };
            for (seq, body) in rows {
                let event = codec::decode_event(&body).map_err(|source| StoreError::Corrupt {
                    channel_id,
                    seq: Some(seq),
                    source,
                })?;
                if let Event::Sent { change, proof, .. } = event {
                    if proof.nonce <= after {
                        break 'pages;
                    }
                    sent.push((change, proof));
                }
            }
            before = last;
        }
        sent.reverse();
        Ok(sent)
    }

    /// The locks of the proof we sent in `channel_id` whose locks root is `root`, newest such
    /// proof first, rebuilt from the log: what `unlock` needs when the peer closed with an
    /// older proof of ours than our latest (one still holding locks since released, claimed
    /// or expired). `None` if no proof of ours has that root.
    pub async fn own_locks_with_root(
        &self,
        channel_id: B256,
        root: B256,
    ) -> Result<Option<Vec<keel_core::Lock>>> {
        use keel_core::Change;
        let mut locks: Vec<keel_core::Lock> = Vec::new();
        let mut found = None;
        for (change, proof) in self.sent_since(channel_id, 0).await? {
            let gone = match change {
                Change::AddLock(lock) => {
                    locks.push(lock);
                    None
                }
                Change::ClaimLock { secret } => Some(keel_core::secret_hash(secret)),
                Change::RemoveExpiredLock { secret_hash }
                | Change::RemoveReleasedLock { secret_hash, .. } => Some(secret_hash),
                Change::Pay { .. } => None,
            };
            if let Some(hash) = gone {
                locks.retain(|l| l.secret_hash != hash);
            }
            if proof.locksRoot == root {
                found = Some(locks.clone());
            }
        }
        Ok(found)
    }

    /// Our latest withdrawal (`withdrawal`) and close (`close`) requests in `channel_id`, where
    /// `me` is our address, each with the counterparty's signature if it arrived: what a
    /// restarted client submits, or asks the peer to sign again. Reads the log newest first and
    /// stops once both are found (or known to be none: our latest close is one we approved).
    pub async fn own_requests(
        &self,
        channel_id: B256,
        me: Address,
        mut withdrawal: bool,
        mut close: bool,
    ) -> Result<OwnRequests> {
        const PAGE: i64 = 256;
        let mut found = OwnRequests::default();
        let (mut withdrawal_sig, mut close_sig) = (None, None);
        let mut before = i64::MAX;
        while withdrawal || close {
            let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, body FROM events WHERE channel_id = ? AND seq < ? \
                 ORDER BY seq DESC LIMIT ?",
            )
            .bind(channel_id.as_slice())
            .bind(before)
            .bind(PAGE)
            .fetch_all(&self.pool)
            .await?;
            let Some(&(last, _)) = rows.last() else {
                break;
            };
            for (seq, body) in rows {
                let event = codec::decode_event(&body).map_err(|source| StoreError::Corrupt {
                    channel_id,
                    seq: Some(seq),
                    source,
                })?;
                match event {
                    Event::WithdrawalCoSigned { signature } if withdrawal => {
                        withdrawal_sig.get_or_insert(signature);
                    }
                    Event::WithdrawalApproved { withdrawal: w, .. }
                        if withdrawal && w.participant == me =>
                    {
                        found.withdrawal = Some((w, withdrawal_sig));
                        withdrawal = false;
                    }
                    Event::CloseCoSigned { signature } if close => {
                        close_sig.get_or_insert(signature);
                    }
                    Event::CloseProposed { close: c } if close => {
                        found.close = Some((c, close_sig));
                        close = false;
                    }
                    Event::CloseApproved { .. } | Event::CloseExpired { .. } => close = false,
                    _ => {}
                }
            }
            before = last;
        }
        Ok(found)
    }

    /// Every stored channel, rebuilt by replaying its log, in the order they were opened.
    pub async fn load_all(&self) -> Result<Vec<ChannelState>> {
        Ok(self
            .load_channels()
            .await?
            .into_iter()
            .map(|(state, _)| state)
            .collect())
    }

    /// Every stored channel with where it stands on chain, rebuilt by replaying its log, in
    /// the order they were opened.
    pub async fn load_channels(&self) -> Result<Vec<(ChannelState, ChainStatus)>> {
        let channels: Vec<(Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT id, opening FROM channels ORDER BY rowid")
                .fetch_all(&self.pool)
                .await?;
        let mut states = Vec::with_capacity(channels.len());
        for (id, opening) in channels {
            let id = B256::try_from(id.as_slice()).map_err(|_| StoreError::Corrupt {
                channel_id: B256::ZERO,
                seq: None,
                source: DecodeError::Invalid("channel id"),
            })?;
            let corrupt = |seq, source| StoreError::Corrupt {
                channel_id: id,
                seq,
                source,
            };
            let opening = codec::decode_opening(&opening).map_err(|e| corrupt(None, e))?;
            let mut state = opening.state();
            let mut status = ChainStatus::default();
            if state.id() != id {
                return Err(corrupt(None, DecodeError::WrongChannel(state.id())));
            }
            let snapshot: Option<(i64, Vec<u8>)> =
                sqlx::query_as("SELECT seq, state FROM snapshots WHERE channel_id = ?")
                    .bind(id.as_slice())
                    .fetch_optional(&self.pool)
                    .await?;
            let mut after = 0;
            if let Some((seq, body)) = snapshot {
                let (progress, chain) =
                    codec::decode_snapshot(&body).map_err(|e| corrupt(Some(seq), e))?;
                state = ChannelState::resume(
                    opening.params,
                    opening.chain_id,
                    opening.factory,
                    opening.implementation,
                    opening.me,
                    opening.policy,
                    progress,
                )
                .map_err(|e| StoreError::Replay {
                    channel_id: id,
                    seq,
                    source: e.into(),
                })?;
                status = chain;
                after = seq;
            }
            let events: Vec<(i64, Vec<u8>)> = sqlx::query_as(
                "SELECT seq, body FROM events WHERE channel_id = ? AND seq > ? ORDER BY seq",
            )
            .bind(id.as_slice())
            .bind(after)
            .fetch_all(&self.pool)
            .await?;
            for (seq, body) in events {
                let event = codec::decode_event(&body).map_err(|e| corrupt(Some(seq), e))?;
                event
                    .apply(&mut state)
                    .map_err(|source| StoreError::Replay {
                        channel_id: id,
                        seq,
                        source,
                    })?;
                status.apply(&event);
            }
            states.push((state, status));
        }
        Ok(states)
    }

    /// How many transactions the writer has committed since this store was opened.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Stops the writer once every queued append is committed, and closes the database.
    /// Dropping the store instead is safe too: every append that returned is already durable.
    pub async fn close(self) {
        drop(self.queue);
        // The writer only ends when its queue is drained.
        self.writer.stopped().await;
        self.pool.close().await;
    }

    async fn write(&self, write: Write) -> Result<()> {
        self.enqueue_write(write).await?.durable().await
    }

    async fn enqueue_write(&self, write: Write) -> Result<Commit> {
        let (done, answer) = oneshot::channel();
        self.queue
            .send(Request { write, done })
            .await
            .map_err(|_| StoreError::WriterStopped)?;
        Ok(Commit(answer))
    }
}

fn forward_row(forward: &Forward) -> ForwardRow {
    ForwardRow {
        incoming_channel: forward.incoming_channel,
        secret_hash: forward.incoming.secret_hash,
        body: forward::encode_forward(forward),
    }
}

/// An event in the writer's queue that may not be on disk yet.
#[derive(Debug)]
#[must_use = "an event is durable only once Commit::durable returns Ok"]
pub struct Commit(oneshot::Receiver<Result<()>>);

impl Commit {
    /// The answer if the writer gave it already; `None` while the event is still queued or on
    /// its way to disk (then [`Commit::durable`] waits for it).
    pub fn try_durable(&mut self) -> Option<Result<()>> {
        match self.0.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(StoreError::WriterStopped)),
        }
    }

    /// Waits until the event is committed (or refused).
    pub async fn durable(self) -> Result<()> {
        self.0.await.map_err(|_| StoreError::WriterStopped)?
    }
}
