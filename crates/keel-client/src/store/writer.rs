//! The single writer thread: group commit.
//!
//! Appends queue here; the thread takes everything queued (up to [`MAX_BATCH`]), writes it in
//! one transaction, commits (one WAL fsync with `synchronous = FULL`), and only then answers each
//! waiter. While one commit is on disk the next batch queues up, so N concurrent appends cost
//! about one fsync, and no append returns before its row is durable.
//!
//! Commits are paced: one starts at most once per [`MIN_COMMIT_INTERVAL`] (configurable), and
//! a write that arrives sooner waits for the interval to run out, together with whatever
//! arrives meanwhile. An fsync is not only wall time: on a virtual machine it costs about 55 µs
//! of processor time (the disk notification and completion interrupts leave the guest), more
//! than checking a signature. Committing as soon as anything is queued makes batches small
//! exactly when load is high, and the fsyncs then take a large share of the processor from the
//! payments (docs/benchmarks.md). A write after a quiet spell is committed at once, so the
//! pacing adds no latency to an idle store.
//!
//! Durability is a prefix of the queue: writes commit in queue order, and after a commit fails
//! the writer refuses every later write ([`StoreError::Failed`]) until the store is reopened.
//! So once a write is durable, every write queued before it is too (or was refused by its own
//! constraint), and a caller that queued A then B may act on A once B is durable without
//! waiting for A on its own: a hub queues the lock it received and the lock it forwards, and
//! sends the second once it is durable. LDK and Core Lightning likewise stop on a failed write.
//!
//! The writer is a plain thread with a synchronous connection rather than a task on an async
//! driver: a commit is then one wake-up (the queue's) and one run of SQLite, where an async
//! driver hands each statement (begin, inserts, commit) to its own worker thread and back, and
//! the thread can sleep out the pacing interval with microsecond precision (tokio's timers tick
//! in milliseconds).

use std::{
    path::PathBuf,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use keel_core::B256;
use rusqlite::{ffi, params, Connection, ErrorCode, TransactionBehavior};
use tokio::sync::{mpsc, oneshot, watch};

use super::{pacing::Pacing, Result, StoreError};

/// Most writes committed in one transaction.
pub(super) const MAX_BATCH: usize = 1024;

/// The default shortest time between the starts of two commits: at most 2,000 fsyncs a second.
pub const MIN_COMMIT_INTERVAL: Duration = Duration::from_micros(500);

/// One row to write.
#[derive(Debug)]
pub(super) enum Write {
    /// A channel's opening record.
    Channel {
        /// The channel id.
        id: B256,
        /// Its encoded opening.
        opening: Vec<u8>,
        /// Encoded notices for the application, written with it (or not at all).
        notices: Vec<Vec<u8>>,
    },
    /// An event appended to a channel's log.
    Event {
        /// The channel id.
        channel_id: B256,
        /// The encoded event.
        body: Vec<u8>,
        /// Encoded notices for the application, written with it (or not at all).
        notices: Vec<Vec<u8>>,
        /// A forward record written with it (or not at all): the pairing of the lock it adds
        /// with the lock that pays for it.
        forward: Option<ForwardRow>,
        /// The onion of the lock the event (ours) adds, written with it (or not at all).
        onion: Option<OnionRow>,
    },
    /// A forward record on its own (its state changed).
    Forward {
        /// The record.
        row: ForwardRow,
        /// Encoded notices for the application, written with it (or not at all).
        notices: Vec<Vec<u8>>,
    },
    /// An invoice, inserted or replaced.
    Invoice {
        /// The payment hash.
        payment_hash: B256,
        /// The encoded invoice.
        body: Vec<u8>,
        /// Encoded notices for the application, written with it (or not at all).
        notices: Vec<Vec<u8>>,
    },
    /// A notice for the application on its own.
    Notice {
        /// The encoded notice.
        body: Vec<u8>,
    },
    /// A named consumer's position in the notices.
    Cursor {
        /// The consumer.
        name: String,
        /// The last notice it handled.
        seq: u64,
    },
    /// A channel's snapshot, covering every event written before it.
    Snapshot {
        /// The channel id.
        channel_id: B256,
        /// The encoded snapshot.
        body: Vec<u8>,
    },
    /// Writes nothing: answered once everything queued before it is committed.
    Barrier,
}

/// A forward record, keyed by the incoming channel and the secret hash.
#[derive(Debug)]
pub(super) struct ForwardRow {
    /// The channel the forwarded lock arrived on.
    pub(super) incoming_channel: B256,
    /// The lock's secret hash.
    pub(super) secret_hash: B256,
    /// The encoded forward.
    pub(super) body: Vec<u8>,
}

/// The onion of a lock we send, stored with the update adding it.
#[derive(Debug)]
pub(super) struct OnionRow {
    /// Our proof's nonce for that update.
    pub(super) nonce: u64,
    /// The packet.
    pub(super) packet: Vec<u8>,
    /// The peer acknowledged our updates up to this nonce: their onions are dropped.
    pub(super) acknowledged: u64,
}

/// Stores `row` for `channel_id`, dropping the onions the peer no longer needs.
fn write_onion(conn: &Connection, channel_id: &B256, row: &OnionRow) -> rusqlite::Result<()> {
    let nonce = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    conn.prepare_cached("DELETE FROM lock_onions WHERE channel_id = ?1 AND nonce <= ?2")?
        .execute(params![channel_id.as_slice(), nonce(row.acknowledged)])?;
    conn.prepare_cached(
        "INSERT INTO lock_onions (channel_id, nonce, packet) VALUES (?1, ?2, ?3) \
         ON CONFLICT (channel_id, nonce) DO UPDATE SET packet = excluded.packet",
    )?
    .execute(params![
        channel_id.as_slice(),
        nonce(row.nonce),
        row.packet.as_slice()
    ])?;
    Ok(())
}

/// Drops the stored onion of the peer's lock with `secret_hash` in `channel_id`: the lock was
/// forwarded.
fn drop_received(conn: &Connection, secret_hash: &B256, channel_id: &B256) -> rusqlite::Result<()> {
    conn.prepare_cached("DELETE FROM incoming_onions WHERE secret_hash = ?1 AND channel_id = ?2")?
        .execute(params![secret_hash.as_slice(), channel_id.as_slice()])?;
    Ok(())
}

/// Inserts or replaces a forward record.
fn write_forward(conn: &Connection, row: &ForwardRow) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO forwards (incoming_channel, secret_hash, body) VALUES (?1, ?2, ?3) \
         ON CONFLICT (incoming_channel, secret_hash) DO UPDATE SET body = excluded.body",
    )?
    .execute(params![
        row.incoming_channel.as_slice(),
        row.secret_hash.as_slice(),
        row.body.as_slice()
    ])?;
    Ok(())
}

/// A write and who waits for it to be durable.
#[derive(Debug)]
pub(super) struct Request {
    /// The row.
    pub(super) write: Write,
    /// Answered once the row is committed (or refused).
    pub(super) done: oneshot::Sender<Result<()>>,
}

/// The running writer: dropping every queue sender stops it once the queue is drained.
#[derive(Debug)]
pub(super) struct Writer {
    /// Closed (its sender dropped) when the thread has finished and closed its connection.
    finished: oneshot::Receiver<()>,
}

impl Writer {
    /// Opens a connection to the (already migrated) database at `path` and starts the thread,
    /// which starts a commit at most once per `interval`.
    pub(super) async fn start(
        path: PathBuf,
        queue: mpsc::Receiver<Request>,
        interval: Duration,
        pacing: Arc<dyn Pacing>,
        commits: Arc<AtomicU64>,
        notices: watch::Sender<u64>,
    ) -> Result<Self> {
        let (opened, open_result) = oneshot::channel();
        let (finished_tx, finished) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("keel-store-writer".into())
            .spawn(move || {
                // Dropped when the thread ends, even by a panic: that is what `stopped` awaits.
                let _finished = finished_tx;
                let conn = match connect(&path) {
                    Ok(conn) => {
                        let _ = opened.send(Ok(()));
                        conn
                    }
                    Err(error) => {
                        let _ = opened.send(Err(error));
                        return;
                    }
                };
                run(conn, queue, interval, &*pacing, &commits, &notices);
            })
            .map_err(StoreError::Spawn)?;
        open_result
            .await
            .map_err(|_| StoreError::WriterStopped)?
            .map_err(StoreError::Writer)?;
        Ok(Self { finished })
    }

    /// Waits until the thread has committed everything queued and closed its connection. Only
    /// returns once every queue sender is dropped.
    pub(super) async fn stopped(self) {
        let _ = self.finished.await;
    }
}

/// The writer's connection: the same settings as the store's pool (WAL is a property of the
/// file, set when the store opened it).
fn connect(path: &std::path::Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(conn)
}

/// Commits batches until every sender is dropped and the queue is empty.
fn run(
    mut conn: Connection,
    mut queue: mpsc::Receiver<Request>,
    interval: Duration,
    pacing: &dyn Pacing,
    commits: &AtomicU64,
    notices: &watch::Sender<u64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut last_commit: Option<Instant> = None;
    // Set by the first failed commit: every later write is refused with it, so a write that
    // is durable proves every write queued before it is too (see the module's docs).
    let mut failed: Option<Arc<rusqlite::Error>> = None;
    while let Some(first) = queue.blocking_recv() {
        if let Some(error) = &failed {
            let _ = first.done.send(Err(StoreError::Failed(error.clone())));
            continue;
        }
        // Under load, wait out the interval so that what arrives meanwhile shares this commit;
        // a write arriving after a quiet spell is committed at once.
        let now = pacing.now();
        if let Some(wait) = last_commit.and_then(|last| interval.checked_sub(now - last)) {
            pacing.sleep(wait);
        }
        last_commit = Some(pacing.now());
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        match commit(&mut conn, &batch) {
            Ok((answers, last_notice)) => {
                commits.fetch_add(1, Ordering::Relaxed);
                if let Some(seq) = last_notice {
                    // Readers of the notices wake up once they are committed.
                    notices.send_replace(seq);
                }
                for (request, answer) in batch.drain(..).zip(answers) {
                    // A waiter that gave up no longer needs the answer.
                    let _ = request.done.send(answer);
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                tracing::error!(%error, "store commit failed: refusing every later write");
                for request in batch.drain(..) {
                    let _ = request.done.send(Err(StoreError::Commit(error.clone())));
                }
                failed = Some(error);
            }
        }
    }
}

/// Writes `batch` in one transaction, and returns each write's answer and the sequence number
/// of the last notice written. A write refused by a constraint (unknown or duplicate channel)
/// gets its own error — SQLite undoes just that statement, and its notices are not written —
/// and the rest still commit; any other failure fails (and rolls back) the whole batch.
fn commit(
    conn: &mut Connection,
    batch: &[Request],
) -> rusqlite::Result<(Vec<Result<()>>, Option<u64>)> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut last_notice = None;
    let answers = batch
        .iter()
        .map(|request| write_one(&tx, &request.write, &mut last_notice))
        .collect::<rusqlite::Result<_>>()?;
    tx.commit()?;
    Ok((answers, last_notice))
}

/// Writes one row, then its notices if the row was written; a constraint refusal is that
/// row's answer.
fn write_one(
    conn: &Connection,
    write: &Write,
    last_notice: &mut Option<u64>,
) -> rusqlite::Result<Result<()>> {
    let mut write_notices = |notices: &[Vec<u8>]| -> rusqlite::Result<()> {
        for body in notices {
            conn.prepare_cached("INSERT INTO notices (body) VALUES (?1)")?
                .execute(params![body.as_slice()])?;
            // Row ids are positive.
            *last_notice = Some(conn.last_insert_rowid().unsigned_abs());
        }
        Ok(())
    };
    let mut forward = None;
    let mut onion = None;
    let (sql, id, body, notices) = match write {
        Write::Barrier => return Ok(Ok(())),
        Write::Forward { row, notices } => {
            write_forward(conn, row)?;
            write_notices(notices)?;
            return Ok(Ok(()));
        }
        Write::Invoice {
            payment_hash,
            body,
            notices,
        } => {
            conn.prepare_cached(
                "INSERT INTO invoices (payment_hash, body) VALUES (?1, ?2) \
                 ON CONFLICT (payment_hash) DO UPDATE SET body = excluded.body",
            )?
            .execute(params![payment_hash.as_slice(), body.as_slice()])?;
            write_notices(notices)?;
            return Ok(Ok(()));
        }
        Write::Notice { body } => {
            write_notices(std::slice::from_ref(body))?;
            return Ok(Ok(()));
        }
        Write::Cursor { name, seq } => {
            conn.prepare_cached(
                "INSERT INTO cursors (name, seq) VALUES (?1, ?2) \
                 ON CONFLICT (name) DO UPDATE SET seq = excluded.seq",
            )?
            .execute(params![name, i64::try_from(*seq).unwrap_or(i64::MAX)])?;
            return Ok(Ok(()));
        }
        Write::Channel {
            id,
            opening,
            notices,
        } => (
            "INSERT INTO channels (id, opening) VALUES (?1, ?2)",
            id,
            opening,
            notices.as_slice(),
        ),
        Write::Event {
            channel_id,
            body,
            notices,
            forward: row,
            onion: lock_onion,
        } => {
            forward = row.as_ref();
            onion = lock_onion.as_ref();
            (
                "INSERT INTO events (channel_id, body) VALUES (?1, ?2)",
                channel_id,
                body,
                notices.as_slice(),
            )
        }
        // Writes are applied in queue order, so the channel's last event row is the last
        // event the snapshot covers.
        Write::Snapshot { channel_id, body } => (
            "INSERT INTO snapshots (channel_id, seq, state) VALUES \
             (?1, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE channel_id = ?1), ?2) \
             ON CONFLICT (channel_id) DO UPDATE SET seq = excluded.seq, state = excluded.state",
            channel_id,
            body,
            &[][..],
        ),
    };
    let result = conn
        .prepare_cached(sql)?
        .execute(params![id.as_slice(), body.as_slice()]);
    Ok(match result {
        Ok(_) => {
            write_notices(notices)?;
            if let Some(row) = forward {
                write_forward(conn, row)?;
                // The incoming lock is forwarded: its onion is not needed again.
                drop_received(conn, &row.secret_hash, &row.incoming_channel)?;
            }
            if let Some(row) = onion {
                write_onion(conn, id, row)?;
            }
            Ok(())
        }
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == ErrorCode::ConstraintViolation => {
            match e.extended_code {
                ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Err(StoreError::UnknownChannel(*id)),
                ffi::SQLITE_CONSTRAINT_PRIMARYKEY | ffi::SQLITE_CONSTRAINT_UNIQUE => {
                    Err(StoreError::ChannelExists(*id))
                }
                _ => return Err(rusqlite::Error::SqliteFailure(e, None)),
            }
        }
        Err(e) => return Err(e),
    })
}
