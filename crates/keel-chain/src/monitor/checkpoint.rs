//! Where a monitor keeps its progress: [`Checkpoints`], a small interface, so the same follower
//! runs over the client's store or over a watchtower's own storage.

use std::{future::Future, pin::Pin};

use alloy::primitives::B256;

/// The last block whose events were delivered and processed, and its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Block number.
    pub block: u64,
    /// The block's hash, to tell whether a reorganisation has replaced it since.
    pub hash: B256,
}

/// A boxed future, as the trait's methods return (it is used as `dyn Checkpoints`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why loading or saving a checkpoint failed.
pub type CheckpointError = Box<dyn std::error::Error + Send + Sync>;

/// Durable storage of one checkpoint per chain. keel-client's `Store` implements it; a watchtower brings its own.
pub trait Checkpoints: Send + Sync {
    /// The checkpoint saved for `chain_id`, if any.
    fn load(&self, chain_id: u64) -> BoxFuture<'_, Result<Option<Checkpoint>, CheckpointError>>;
    /// Saves `checkpoint` for `chain_id`, replacing the previous one; durable once the future
    /// completes.
    fn save(
        &self,
        chain_id: u64,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'_, Result<(), CheckpointError>>;
}
