//! Why the store failed, and why a stored row could not be read.

use std::sync::Arc;

use keel_core::{wire::WireError, ChannelError, B256};

/// Result of a store operation.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A failed store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite failed (opening the file, reading).
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// The transaction holding this write failed: nothing in it is stored. Shared by every
    /// write of the batch.
    #[error("commit failed: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    /// An earlier commit failed, so the store takes no more writes until it is reopened: a
    /// later write that committed would be durable while one queued before it is not.
    #[error("the store stopped writing after a failed commit: {0}")]
    Failed(#[source] Arc<rusqlite::Error>),
    /// The writer's connection to the database could not be opened.
    #[error("store writer: {0}")]
    Writer(#[source] rusqlite::Error),
    /// The writer's thread could not be started.
    #[error("store writer thread: {0}")]
    Spawn(#[source] std::io::Error),
    /// The schema migrations failed.
    #[error(transparent)]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not decode (corrupted, or written by a newer version).
    #[error("channel {channel_id}, event {seq:?}: {source}")]
    Corrupt {
        /// The channel (zero if its id itself is unreadable).
        channel_id: B256,
        /// The event row, or `None` for the channel's opening record.
        seq: Option<i64>,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
    /// A stored notice (a durable client event) does not decode.
    #[error("notice {seq}: {source}")]
    CorruptNotice {
        /// The notice's sequence number.
        seq: u64,
        /// What is wrong with it.
        #[source]
        source: DecodeError,
    },
    /// The state machine refused a stored event on replay.
    #[error("channel {channel_id}, event {seq}: replay refused: {source}")]
    Replay {
        /// The channel.
        channel_id: B256,
        /// The event row.
        seq: i64,
        /// The state machine's refusal.
        #[source]
        source: ReplayError,
    },
    /// `open_channel` for a channel the store already holds.
    #[error("channel {0} is already stored")]
    ChannelExists(B256),
    /// `append` for a channel the store does not hold.
    #[error("channel {0} is not stored")]
    UnknownChannel(B256),
    /// The writer thread has stopped (the store is closing, or a commit panicked).
    #[error("the store's writer has stopped")]
    WriterStopped,
}

/// Why a stored event does not re-apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The state machine refused it.
    #[error(transparent)]
    Channel(#[from] ChannelError),
    /// It applied, but produced another proof or close than the one stored.
    #[error("state machine produced a different {0} than the stored one")]
    Mismatch(&'static str),
}

/// Why a stored blob is not a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The blob is empty or ends inside a field.
    #[error("truncated record")]
    Truncated,
    /// A format version this build does not know.
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u8),
    /// An unknown event kind.
    #[error("unknown event kind {0}")]
    UnknownKind(u8),
    /// A field holds a value out of its range.
    #[error("invalid {0}")]
    Invalid(&'static str),
    /// Bytes left after the record.
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
    /// A change or balance proof does not decode.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The opening record describes another channel than the row's id.
    #[error("opening record is for channel {0}")]
    WrongChannel(B256),
}
