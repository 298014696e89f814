//! Token buckets keyed by customer or by source address: the API's answer to floods.
//!
//! A key's bucket holds up to `burst` tokens and refills at `per_second`; each appointment (or
//! request, for a registration or a query) takes one. A key without a bucket has a full one, so
//! buckets that refilled are dropped when the table grows, and the table never holds more than
//! [`MAX_KEYS`] buckets: beyond that, new keys are refused until old ones refill (under a flood
//! from that many sources the tower stays up rather than growing without bound).
//!
//! Hand-written rather than a crate: one map under a mutex and a few lines of arithmetic. The
//! time is a parameter ([`RateLimiter::take_at`]), so tests step it instead of sleeping.

use std::{
    collections::HashMap,
    hash::Hash,
    net::{IpAddr, SocketAddr},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::request::Parts,
};

/// Most keys one limiter tracks at once.
pub const MAX_KEYS: usize = 100_000;

/// A sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: u32,
    /// Tokens a key may hold (and spend at once).
    pub burst: u32,
}

/// Token buckets per key.
#[derive(Debug)]
pub struct RateLimiter<K> {
    rate: Rate,
    buckets: Mutex<HashMap<K, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refilled(self, rate: Rate, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        (self.tokens + elapsed * f64::from(rate.per_second)).min(f64::from(rate.burst))
    }
}

impl<K: Hash + Eq + Copy> RateLimiter<K> {
    /// A limiter granting `rate` to each key.
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            buckets: Mutex::default(),
        }
    }

    /// Takes `cost` tokens from `key`'s bucket; `Err` with the wait until they would be there
    /// (a cost above the burst is never granted, and costs nothing).
    pub fn take(&self, key: K, cost: u32) -> Result<(), Duration> {
        self.take_at(key, cost, Instant::now())
    }

    /// [`take`](Self::take) at `now`.
    pub fn take_at(&self, key: K, cost: u32, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key) {
            let burst = f64::from(rate.burst);
            buckets.retain(|_, b| b.refilled(rate, now) < burst);
            if buckets.len() >= MAX_KEYS {
                return Err(Duration::from_secs(1));
            }
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: f64::from(rate.burst),
            at: now,
        });
        let tokens = bucket.refilled(rate, now);
        let cost = f64::from(cost);
        if tokens < cost {
            let missing = cost - tokens;
            let wait = if rate.per_second == 0 || cost > f64::from(rate.burst) {
                Duration::MAX
            } else {
                Duration::from_secs_f64(missing / f64::from(rate.per_second))
            };
            return Err(wait);
        }
        *bucket = Bucket {
            tokens: tokens - cost,
            at: now,
        };
        Ok(())
    }

    /// Buckets held (for tests and metrics).
    pub fn keys(&self) -> usize {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The source address of a request, when the server records it (`axum::serve` with
/// `into_make_service_with_connect_info`; absent when a router is driven in-process).
#[derive(Debug, Clone, Copy)]
pub struct Source(pub Option<IpAddr>);

impl<St: Send + Sync> FromRequestParts<St> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &St) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip()),
        ))
    }
}

/// The per-source limiter the API's handlers share (`None`: unlimited).
#[derive(Debug, Clone, Default)]
pub struct SourceLimit(pub Option<Arc<RateLimiter<IpAddr>>>);

impl SourceLimit {
    /// Takes `cost` tokens (appointments, or one per request) from `source`'s bucket.
    pub fn take(&self, source: Source, cost: usize) -> Result<(), Duration> {
        match (&self.0, source.0) {
            (Some(limiter), Some(ip)) => {
                limiter.take(ip, u32::try_from(cost.max(1)).unwrap_or(u32::MAX))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATE: Rate = Rate {
        per_second: 10,
        burst: 5,
    };

    #[test]
    fn a_key_spends_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(RATE);
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        for _ in 0..5 {
            limiter.take_at(1, 1, at(0)).unwrap();
        }
        assert_eq!(
            limiter.take_at(1, 1, at(0)),
            Err(Duration::from_millis(100))
        );
        // Another key has its own bucket.
        limiter.take_at(2, 5, at(0)).unwrap();
        limiter.take_at(1, 1, at(100)).unwrap();
        assert!(limiter.take_at(1, 1, at(100)).is_err());
        // Never more than the burst, however long the pause.
        limiter.take_at(1, 5, at(60_000)).unwrap();
        assert!(limiter.take_at(1, 1, at(60_000)).is_err());
        // A cost above the burst is never granted and takes nothing.
        assert_eq!(limiter.take_at(1, 6, at(61_000)), Err(Duration::MAX));
        limiter.take_at(1, 5, at(61_000)).unwrap();
    }

    #[test]
    fn the_table_is_bounded_and_drops_refilled_buckets() {
        let limiter = RateLimiter::new(RATE);
        let start = Instant::now();
        for key in 0..MAX_KEYS {
            limiter.take_at(key, 1, start).unwrap();
        }
        // Full of partly spent buckets: a new key waits rather than growing the table.
        assert!(limiter.take_at(MAX_KEYS, 1, start).is_err());
        assert_eq!(limiter.keys(), MAX_KEYS);
        // Once they refilled, they are dropped and the new key gets in.
        limiter
            .take_at(MAX_KEYS, 1, start + Duration::from_secs(1))
            .unwrap();
        assert_eq!(limiter.keys(), 1);
    }
}
