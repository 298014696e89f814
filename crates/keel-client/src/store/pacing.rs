//! The clock the store's writer paces commits by: the system's, or, for tests, one moved by
//! hand ([`ManualPacing`], feature `test-utils`), so that what the pacing does can be checked
//! without depending on how fast the machine runs the test.

use std::{
    fmt::Debug,
    time::{Duration, Instant},
};

/// What the writer thread reads the time from and sleeps on.
pub(super) trait Pacing: Debug + Send + Sync {
    /// The current time.
    fn now(&self) -> Instant;
    /// Blocks the calling thread for `duration`.
    fn sleep(&self, duration: Duration);
}

/// The system clock.
#[derive(Debug)]
pub(super) struct SystemPacing;

impl Pacing for SystemPacing {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

#[cfg(feature = "test-utils")]
pub use manual::ManualPacing;

#[cfg(feature = "test-utils")]
mod manual {
    use std::{
        sync::{Condvar, Mutex, MutexGuard},
        time::{Duration, Instant},
    };

    use super::Pacing;

    /// A pacing clock that only moves when [`ManualPacing::advance`] moves it; the writer's
    /// waits for the commit interval last until then. For tests
    /// ([`crate::store::Store::open_manually_paced`]).
    #[derive(Debug)]
    pub struct ManualPacing {
        start: Instant,
        state: Mutex<State>,
        moved: Condvar,
    }

    #[derive(Debug, Default)]
    struct State {
        /// How far the clock has been moved.
        elapsed: Duration,
        /// Whether the writer is waiting out the interval now.
        sleeping: bool,
        /// How many waits the writer has started.
        sleeps: u64,
    }

    impl Default for ManualPacing {
        fn default() -> Self {
            Self::new()
        }
    }

    impl ManualPacing {
        /// A clock at an arbitrary start.
        pub fn new() -> Self {
            Self {
                start: Instant::now(),
                state: Mutex::default(),
                moved: Condvar::new(),
            }
        }

        /// Moves the clock forward by `by`, waking the writer if its wait is over.
        pub fn advance(&self, by: Duration) {
            self.lock().elapsed += by;
            self.moved.notify_all();
        }

        /// Whether the writer is waiting out the commit interval (with the write that made it
        /// wait in hand).
        pub fn sleeping(&self) -> bool {
            self.lock().sleeping
        }

        /// How many times the writer has waited for the commit interval.
        pub fn sleeps(&self) -> u64 {
            self.lock().sleeps
        }

        fn lock(&self) -> MutexGuard<'_, State> {
            // Nothing panics while holding the lock.
            self.state.lock().unwrap_or_else(|e| e.into_inner())
        }
    }

    impl Pacing for ManualPacing {
        fn now(&self) -> Instant {
            self.start + self.lock().elapsed
        }

        fn sleep(&self, duration: Duration) {
            let mut state = self.lock();
            let until = state.elapsed + duration;
            state.sleeping = true;
            state.sleeps += 1;
            while state.elapsed < until {
                state = self.moved.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            state.sleeping = false;
        }
    }
}
