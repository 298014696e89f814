//! The durable event log: every [`ClientEvent`] about a channel's history is stored in the
//! same transaction as what it reports, under an increasing sequence number, and read back
//! from any point. A consumer that lags or restarts resumes from its cursor and gets each event
//! exactly once; [`Client::subscribe`](super::Client::subscribe)'s broadcast is fed from the
//! same log (plus the live-only events), and a subscriber that falls behind it can catch up
//! here.

use std::{collections::VecDeque, sync::Arc};

use tokio::sync::{broadcast, watch};

use super::{notice, ClientError, ClientEvent, Result};
use crate::store::{Store, StoreError};

/// Events read from the store per query: what a reader holds in memory at most.
const PAGE: u32 = 256;

/// A durable event and its place in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its sequence number: increasing, never reused. Pass it to [`Events::handled`].
    pub seq: u64,
    /// The event.
    pub event: ClientEvent,
}

/// A reader of the durable event log from a cursor ([`Client::events`](super::Client::events),
/// [`Client::events_after`](super::Client::events_after)).
///
/// [`Events::next`] hands out the events after the cursor one by one, in order, waiting for
/// new ones; [`Events::handled`] moves the cursor. A named consumer's cursor is stored (durable
/// when `handled` returns): after a restart it starts again after the last event it marked
/// handled, so each event is handled exactly once as long as the application marks it after
/// acting on it (an event handed out but not marked when the process died is handed out
/// again). An application that keeps the cursor itself, in the same transaction as its own
/// effects, reads with [`Client::events_after`](super::Client::events_after) instead.
#[derive(Debug)]
pub struct Events {
    store: Arc<Store>,
    consumer: Option<String>,
    /// The last event handed out.
    position: u64,
    /// Read from the store, not handed out yet (at most one page).
    buffered: VecDeque<StoredEvent>,
    latest: watch::Receiver<u64>,
    stopping: watch::Receiver<bool>,
}

impl Events {
    pub(crate) fn new(
        store: Arc<Store>,
        consumer: Option<String>,
        after: u64,
        stopping: watch::Receiver<bool>,
    ) -> Self {
        let latest = store.last_notice();
        Self {
            store,
            consumer,
            position: after,
            buffered: VecDeque::new(),
            latest,
            stopping,
        }
    }

    /// The next event after the last one handed out: at once if it is stored, otherwise when
    /// it is. Fails with [`ClientError::Stopped`] once the client stopped and every stored
    /// event was handed out, or with a store error.
    pub async fn next(&mut self) -> Result<StoredEvent> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                self.position = event.seq;
                return Ok(event);
            }
            // Marked seen before reading, so a commit after the read wakes the wait below.
            let latest = *self.latest.borrow_and_update();
            if latest > self.position {
                self.buffered = read(&self.store, self.position).await?.into();
                if !self.buffered.is_empty() {
                    continue;
                }
            }
            if *self.stopping.borrow() {
                return Err(ClientError::Stopped);
            }
            tokio::select! {
                changed = self.latest.changed() => {
                    if changed.is_err() {
                        // The store's writer is gone: nothing more will come.
                        return Err(ClientError::Stopped);
                    }
                }
                _ = self.stopping.wait_for(|s| *s) => {}
            }
        }
    }

    /// Marks every event up to `seq` handled: a named consumer's cursor is stored (durable when
    /// this returns), and after a restart it resumes after `seq`. One call after a batch of
    /// events covers them all.
    pub async fn handled(&mut self, seq: u64) -> Result<()> {
        if let Some(name) = &self.consumer {
            self.store.set_cursor(name, seq).await?;
        }
        Ok(())
    }

    /// The sequence number of the last event handed out (the cursor it started from before
    /// the first).
    pub const fn position(&self) -> u64 {
        self.position
    }
}

/// Up to a page of durable events after `after`.
async fn read(store: &Store, after: u64) -> Result<Vec<StoredEvent>> {
    let rows = store.notices_after(after, PAGE).await?;
    rows.into_iter()
        .map(|(seq, body)| {
            notice::decode(&body)
                .map(|event| StoredEvent { seq, event })
                .map_err(|source| StoreError::CorruptNotice { seq, source }.into())
        })
        .collect()
}

/// Feeds the broadcast from the log: each durable event once it is committed, in order. Reads
/// only while someone subscribes. Ends when the client stops.
pub(crate) async fn forward(
    store: Arc<Store>,
    events: broadcast::Sender<ClientEvent>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut latest = store.last_notice();
    let mut position = *latest.borrow_and_update();
    loop {
        tokio::select! {
            changed = latest.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = stopping.wait_for(|s| *s) => return,
        }
        let last = *latest.borrow_and_update();
        while position < last {
            if events.receiver_count() == 0 {
                position = last;
                break;
            }
            let Ok(page) = read(&store, position).await else {
                // An unreadable event stays in the log for [`Events`] to report; the
                // broadcast skips it.
                position += 1;
                continue;
            };
            if page.is_empty() {
                break;
            }
            for event in page {
                position = event.seq;
                let _ = events.send(event.event);
            }
        }
    }
}
