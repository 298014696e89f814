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
    /// Time from the tower seeing a close to its refutation's receipt, per refutation mined.
    response_latency: Histogram,
    /// Lock steps mined (`released`, `registered`, `settled`, `unlocked`), by step.
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
            self.response_latency.observe(latency);
        }
    }

    /// A lock step's transaction (`released`, `registered`, `settled`, `unlocked`) was mined.
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
            "Lock releases recorded, secrets registered, channels settled and locks unlocked for customers (transactions mined), by step.",
            &labelled(&self.lock_steps, "step"),
        );
        self.response_latency.render(
            &mut out,
            "keel_tower_response_seconds",
            "Seconds from seeing a stale close to its refutation mined.",
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

/// Upper bounds of [`Histogram`]'s buckets, in seconds: from a refutation in the next block of
/// a fast chain to one that took most of a short challenge period.
const BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1_800.0, 3_600.0,
];

/// A Prometheus histogram of durations: cumulative buckets, a sum and a count, lock-free.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations at or under each of [`BUCKETS`] (not cumulative; summed when rendered).
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    fn observe(&self, d: Duration) {
        let seconds = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0u64;
        for (le, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative = cumulative.saturating_add(n.load(Ordering::Relaxed));
            let _ = writeln!(out, "{name}_bucket{{le=\"{le}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let micros = self.sum_micros.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}.{:06}\n{name}_count {count}",
            micros / 1_000_000,
            micros % 1_000_000
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_histogram_is_cumulative_with_its_sum_and_count() {
        let metrics = Metrics::default();
        for ms in [50, 300, 300, 4_000, 7_200_000] {
            metrics.response(Outcome::Mined, Some(Duration::from_millis(ms)));
        }
        metrics.response(Outcome::Failed, None);
        let text = metrics.render(&Counts::default());
        for line in [
            "# TYPE keel_tower_response_seconds histogram",
            "keel_tower_response_seconds_bucket{le=\"0.1\"} 1",
            "keel_tower_response_seconds_bucket{le=\"0.25\"} 1",
            "keel_tower_response_seconds_bucket{le=\"0.5\"} 3",
            "keel_tower_response_seconds_bucket{le=\"5\"} 4",
            "keel_tower_response_seconds_bucket{le=\"3600\"} 4",
            "keel_tower_response_seconds_bucket{le=\"+Inf\"} 5",
            "keel_tower_response_seconds_sum 7204.650000",
            "keel_tower_response_seconds_count 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
    }
}
