//! The single writer task: group commit.
//!
//! Appends queue here; the task takes everything queued (up to [`MAX_BATCH`]), writes it in one
//! transaction, commits (one WAL fsync with `synchronous = FULL`), and only then answers each
//! waiter. While one commit is on disk the next batch queues up, so N concurrent appends cost
//! about one fsync, and no append returns before its row is durable.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use keel_core::B256;
use sqlx::{error::ErrorKind, Connection, SqliteConnection};
use tokio::sync::{mpsc, oneshot};

use super::{Result, StoreError};

/// Most writes committed in one transaction.
pub(super) const MAX_BATCH: usize = 1024;

/// One row to write.
#[derive(Debug)]
pub(super) enum Write {
    /// A channel's opening record.
    Channel {
        /// The channel id.
        id: B256,
        /// Its encoded opening.
        opening: Vec<u8>,
    },
    /// An event appended to a channel's log.
    Event {
        /// The channel id.
        channel_id: B256,
        /// The encoded event.
        body: Vec<u8>,
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

/// A write and who waits for it to be durable.
#[derive(Debug)]
pub(super) struct Request {
    /// The row.
    pub(super) write: Write,
    /// Answered once the row is committed (or refused).
    pub(super) done: oneshot::Sender<Result<()>>,
}

/// Runs until every sender is dropped, then closes the connection.
pub(super) async fn run(
    mut conn: SqliteConnection,
    mut queue: mpsc::Receiver<Request>,
    commits: Arc<AtomicU64>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let answers = commit(&mut conn, &batch).await;
        match answers {
            Ok(answers) => {
                commits.fetch_add(1, Ordering::Relaxed);
                for (request, answer) in batch.drain(..).zip(answers) {
                    // A waiter that gave up no longer needs the answer.
                    let _ = request.done.send(answer);
                }
            }
            Err(error) => {
                let error = Arc::new(error);
                for request in batch.drain(..) {
                    let _ = request.done.send(Err(StoreError::Commit(error.clone())));
                }
            }
        }
    }
    // Best effort: every answered write is committed already.
    let _ = conn.close().await;
}

/// Rows per multi-row `INSERT` of events: one statement (one trip to SQLite's thread) for many
/// events, within SQLite's limit of 32,766 bound parameters.
const EVENTS_PER_STATEMENT: usize = 256;

/// Writes `batch` in one transaction. A write refused by a constraint (unknown or duplicate
/// channel) gets its own error and the rest still commit; any other failure fails the batch.
///
/// Consecutive events go in multi-row statements; if one is refused (an event for an unknown
/// channel) SQLite undoes just that statement, and its rows are retried one by one so that only
/// the offending write fails.
async fn commit(
    conn: &mut SqliteConnection,
    batch: &[Request],
) -> Result<Vec<Result<()>>, sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut answers = Vec::with_capacity(batch.len());
    let mut start = 0;
    while start < batch.len() {
        let run = batch[start..]
            .iter()
            .take(EVENTS_PER_STATEMENT)
            .take_while(|r| matches!(r.write, Write::Event { .. }))
            .count();
        if run > 1 {
            let rows = &batch[start..start + run];
            match insert_events(&mut tx, rows).await {
                Ok(()) => {
                    answers.extend(rows.iter().map(|_| Ok(())));
                    start += run;
                    continue;
                }
                Err(sqlx::Error::Database(e)) if refusal(e.kind()) => {}
                Err(e) => return Err(e),
            }
            for request in rows {
                answers.push(write_one(&mut tx, &request.write).await?);
            }
            start += run;
        } else {
            answers.push(write_one(&mut tx, &batch[start].write).await?);
            start += 1;
        }
    }
    tx.commit().await?;
    Ok(answers)
}

/// Whether SQLite refused a row for a constraint (as opposed to failing).
fn refusal(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UniqueViolation | ErrorKind::ForeignKeyViolation
    )
}

/// Inserts event rows in one statement.
async fn insert_events(conn: &mut SqliteConnection, rows: &[Request]) -> Result<(), sqlx::Error> {
    let mut builder =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new("INSERT INTO events (channel_id, body) ");
    builder.push_values(rows, |mut row, request| {
        if let Write::Event { channel_id, body } = &request.write {
            row.push_bind(channel_id.as_slice())
                .push_bind(body.as_slice());
        }
    });
    builder.build().execute(&mut *conn).await?;
    Ok(())
}

/// Writes one row; a constraint refusal is that row's answer.
async fn write_one(conn: &mut SqliteConnection, write: &Write) -> Result<Result<()>, sqlx::Error> {
    let (query, id) = match write {
        Write::Barrier => return Ok(Ok(())),
        Write::Channel { id, opening } => (
            sqlx::query("INSERT INTO channels (id, opening) VALUES (?, ?)")
                .bind(id.as_slice())
                .bind(opening.as_slice()),
            *id,
        ),
        Write::Event { channel_id, body } => (
            sqlx::query("INSERT INTO events (channel_id, body) VALUES (?, ?)")
                .bind(channel_id.as_slice())
                .bind(body.as_slice()),
            *channel_id,
        ),
        // Writes are applied in queue order, so the channel's last event row is the last
        // event the snapshot covers.
        Write::Snapshot { channel_id, body } => (
            sqlx::query(
                "INSERT INTO snapshots (channel_id, seq, state) VALUES \
                 (?1, (SELECT COALESCE(MAX(seq), 0) FROM events WHERE channel_id = ?1), ?2) \
                 ON CONFLICT (channel_id) DO UPDATE SET seq = excluded.seq, state = excluded.state",
            )
            .bind(channel_id.as_slice())
            .bind(body.as_slice()),
            *channel_id,
        ),
    };
    // A failed statement leaves the transaction and the batch's earlier rows in place.
    Ok(match query.execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.kind() == ErrorKind::UniqueViolation => {
            Err(StoreError::ChannelExists(id))
        }
        Err(sqlx::Error::Database(e)) if e.kind() == ErrorKind::ForeignKeyViolation => {
            Err(StoreError::UnknownChannel(id))
        }
        Err(e) => return Err(e),
    })
}
