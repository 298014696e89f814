//! Counters the tower exports for Prometheus at `GET /metrics` (text format 0.0.4), written by
//! hand: a handful of atomics needs no metrics framework.

use std::{
    collections::BTreeMap,
    fmt::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::Duration,
};

use crate::store::{Counts, Outcome};

/// What the tower counts.
#[derive(Debug, Default)]
pub struct Metrics {
    accepted: AtomicU64,
    refused: Mutex<BTreeMap<&'static str, u64>>,
    outcomes: Mutex<BTreeMap<&'static str, u64>>,
    /// Refutations mined, and the total time from the tower seeing the close to the receipt.
    mined: AtomicU64,
    mined_micros: AtomicU64,
    /// Lock steps mined (`registered`, `settled`, `unlocked`), by step.
    lock_steps: Mutex<BTreeMap<&'static str, u64>>,
}

impl Metrics {
    /// An appointment was accepted.
    pub fn accepted(&self) {
        self.accepted.fetch_add(1, Ordering::Relaxed);
    }

    /// An appointment or registration was refused with `code`.
    pub fn refused(&self, code: &'static str) {
        let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        let n = refused.entry(code).or_default();
        *n = n.saturating_add(1);
    }

    /// A response ended (so far) with `outcome`; `latency` from seeing the close, once mined.
    pub fn response(&self, outcome: Outcome, latency: Option<Duration>) {
        let mut outcomes = self.outcomes.lock().unwrap_or_else(|e| e.into_inner());
        let n = outcomes.entry(outcome.as_str()).or_default();
        *n = n.saturating_add(1);
        drop(outcomes);
        if let Some(latency) = latency {
            self.mined.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            self.mined_micros.fetch_add(micros, Ordering::Relaxed);
        }
    }

    /// A lock step's transaction (`registered`, `settled`, `unlocked`) was mined.
    pub fn lock_step(&self, step: &'static str) {
        let mut steps = self.lock_steps.lock().unwrap_or_else(|e| e.into_inner());
        let n = steps.entry(step).or_default();
        *n = n.saturating_add(1);
    }

    /// The exposition text, with the storage's sizes as gauges.
    pub fn render(&self, counts: &Counts) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let plain = |v: u64| vec![(String::new(), v)];
        metric(
            "keel_tower_appointments_accepted_total",
            "counter",
            "Appointments accepted.",
            &plain(self.accepted.load(Ordering::Relaxed)),
        );
        let labelled = |map: &Mutex<BTreeMap<&'static str, u64>>, label: &str| {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (format!("{{{label}=\"{k}\"}}"), *v))
                .collect::<Vec<_>>()
        };
        metric(
            "keel_tower_refusals_total",
            "counter",
            "Appointments and registrations refused, by reason.",
            &labelled(&self.refused, "reason"),
        );
        metric(
            "keel_tower_responses_total",
            "counter",
            "Refutation attempts, by outcome.",
            &labelled(&self.outcomes, "outcome"),
        );
        metric(
            "keel_tower_lock_steps_total",
            "counter",
            "Secrets registered, channels settled and locks unlocked for customers (transactions mined), by step.",
            &labelled(&self.lock_steps, "step"),
        );
        metric(
            "keel_tower_response_seconds_count",
            "counter",
            "Refutations mined.",
            &plain(self.mined.load(Ordering::Relaxed)),
        );
        let micros = self.mined_micros.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP keel_tower_response_seconds_sum Seconds from seeing a stale close to its refutation mined, summed.\n\
             # TYPE keel_tower_response_seconds_sum counter\nkeel_tower_response_seconds_sum {}.{:06}",
            micros / 1_000_000,
            micros % 1_000_000
        );
        let mut gauge = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "keel_tower_appointments",
            "Appointments held.",
            counts.appointments,
        );
        gauge(
            "keel_tower_channels_watched",
            "Channels watched.",
            counts.channels,
        );
        gauge(
            "keel_tower_customers",
            "Registered customers.",
            counts.customers,
        );
        gauge(
            "keel_tower_disputes",
            "Channels with a recorded dispute.",
            counts.disputes,
        );
        gauge(
            "keel_tower_storage_bytes",
            "Size of the database.",
            counts.bytes,
        );
        out
    }
}
