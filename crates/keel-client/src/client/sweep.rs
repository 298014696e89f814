//! What a unilateral close leaves on chain, collected without the application
//! ([`Config::settle_automatically`]): once a disputed channel's challenge period is over, the
//! client settles it; once settlement kept funds for pending locks, it unlocks each direction
//! whose locks it holds ([`Client::unlock`]), so the locks whose secret was registered in time
//! pay their receivers and the others go back to their senders. Looked at once a second; an
//! attempt that fails (the chain's clock behind ours, an RPC outage, a lock neither registered
//! nor expired yet) is made again [`RETRY_AFTER`] later, and one that is on its way is not
//! repeated until the monitor reports its effect or the retry time passes.
//!
//! [`Config::settle_automatically`]: super::Config::settle_automatically

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use keel_core::B256;
use tokio::time::Instant;

use super::{Client, Inner};
use crate::store::ChainStatus;

/// How long after an attempt the same step is tried again if the monitor has not reported it
/// done.
pub(crate) const RETRY_AFTER: Duration = Duration::from_secs(30);

/// Which step of a channel's sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    Settle,
    Unlock,
}

/// When each channel's step was last attempted, for the attempts of the last [`RETRY_AFTER`]:
/// older ones are dropped, so the map holds only the channels being swept now.
#[derive(Debug, Default)]
pub(crate) struct Sweeps(Mutex<HashMap<(B256, Step), Instant>>);

impl Sweeps {
    /// Claims an attempt at `step` in `channel`: false if one was made less than
    /// [`RETRY_AFTER`] ago.
    fn attempt(&self, channel: B256, step: Step) -> bool {
        let mut last = self.0.lock().expect("sweeps poisoned");
        let now = Instant::now();
        match last.get(&(channel, step)) {
            Some(at) if now.duration_since(*at) < RETRY_AFTER => false,
            _ => {
                last.insert((channel, step), now);
                true
            }
        }
    }

    /// Drops the attempts made [`RETRY_AFTER`] ago or longer: they no longer hold anything
    /// back, and the channels they were for may be long settled.
    fn forget_expired(&self) {
        let now = Instant::now();
        self.0
            .lock()
            .expect("sweeps poisoned")
            .retain(|_, at| now.duration_since(*at) < RETRY_AFTER);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.lock().expect("sweeps poisoned").len()
    }
}

/// Settles and unlocks what is due in every channel (see the module docs).
pub(crate) async fn sweep(inner: &Arc<Inner>) {
    if !inner.config.settle_automatically {
        return;
    }
    inner.sweeps.forget_expired();
    let now = inner.config.clock.now();
    for channel in inner.channel_list() {
        let status = channel.rt.lock().await.chain;
        let step = match status {
            ChainStatus::Disputed(dispute) if now > dispute.deadline => Step::Settle,
            ChainStatus::Settled {
                locks: Some(locks), ..
            } if !(locks.retained_a.is_zero() && locks.retained_b.is_zero()) => Step::Unlock,
            _ => continue,
        };
        if !inner.sweeps.attempt(channel.id, step) {
            continue;
        }
        let client = Client {
            inner: Arc::clone(inner),
        };
        let id = channel.id;
        tokio::spawn(async move {
            let done = match step {
                Step::Settle => client.settle(id).await.map(|_| ()),
                Step::Unlock => client.unlock(id).await.map(|_| ()),
            };
            match done {
                Ok(()) => tracing::info!(channel = %id, ?step, "swept on chain"),
                Err(e) => {
                    tracing::warn!(channel = %id, ?step, error = %e, "sweep failed; retrying")
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An attempt holds the same step back for [`RETRY_AFTER`] and is then forgotten, so a
    /// client that swept many channels over its life keeps none of them.
    #[tokio::test(start_paused = true)]
    async fn attempts_hold_back_a_retry_and_are_then_forgotten() {
        let sweeps = Sweeps::default();
        for n in 0..100u8 {
            assert!(sweeps.attempt(B256::repeat_byte(n), Step::Settle));
        }
        assert!(!sweeps.attempt(B256::repeat_byte(7), Step::Settle));
        assert!(sweeps.attempt(B256::repeat_byte(7), Step::Unlock));
        tokio::time::advance(RETRY_AFTER - Duration::from_millis(1)).await;
        sweeps.forget_expired();
        assert_eq!(sweeps.len(), 101);
        assert!(!sweeps.attempt(B256::repeat_byte(7), Step::Settle));
        tokio::time::advance(Duration::from_millis(1)).await;
        sweeps.forget_expired();
        assert_eq!(sweeps.len(), 0);
        assert!(sweeps.attempt(B256::repeat_byte(7), Step::Settle));
    }
}
