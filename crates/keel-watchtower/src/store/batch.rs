//! The rules of [`Store::put_many`](super::Store::put_many) apart from any database.
//!
//! Given what the store holds for a batch's customers and channels, [`plan`] decides in order,
//! as if each appointment were put one after the other, which are taken and which are refused
//! and why, and which rows to write (the last taken per channel and customer). Both backends read
//! what it needs in three queries (quotas, channels held, stored rows), apply it, and write in
//! multi-row statements: a handful of statements per batch instead of four per appointment.

use std::collections::HashMap;

use keel_core::{Address, B256};

use super::{codec, Appointment, PutError};
use crate::error::StoreError;

/// What the store holds that a batch's checks read.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Each registered customer's quota, as stored.
    pub quota: HashMap<Address, i64>,
    /// How many channels each customer has watched (absent: none).
    pub channels: HashMap<Address, i64>,
    /// The appointments stored under the batch's channels and customers, by channel and
    /// customer (a backend may read more, such as every row of the batch's channels).
    pub stored: HashMap<(B256, Address), Appointment>,
}

/// What a batch does.
#[derive(Debug)]
pub(super) struct Plan {
    /// Per appointment, in order: taken, or why not.
    pub results: Vec<Result<(), PutError>>,
    /// The rows to write, one per channel and customer, in key order (channel, then customer):
    /// the index pages they land on are then visited in order, not at random. Each is the
    /// last appointment taken, with the releases of the one it replaced
    /// ([`Appointment::keeping_releases_of`]).
    pub writes: Vec<Appointment>,
}

/// Applies the put rules to `appointments` in order over `held`. A quota the store holds out
/// of range is an error for the whole batch, as it would be for a single put.
pub(super) fn plan(appointments: &[Appointment], mut held: Held) -> Result<Plan, StoreError> {
    let mut results = Vec::with_capacity(appointments.len());
    // The last appointment taken per key, with the releases of those it replaced.
    let mut taken: HashMap<(B256, Address), Appointment> = HashMap::new();
    for a in appointments {
        let Some(&quota) = held.quota.get(&a.customer) else {
            results.push(Err(PutError::UnknownCustomer));
            continue;
        };
        let key = (a.channel_id, a.customer);
        let current = taken.get(&key).or_else(|| held.stored.get(&key));
        let next = match current {
            Some(current) => {
                if let Err(nonce) = a.replaces(current) {
                    results.push(Err(PutError::Stale(nonce)));
                    continue;
                }
                a.clone().keeping_releases_of(current)
            }
            None => {
                let count = held.channels.entry(a.customer).or_insert(0);
                if *count >= quota {
                    results.push(Err(PutError::Quota(codec::quota(quota)?)));
                    continue;
                }
                *count += 1;
                a.clone()
            }
        };
        taken.insert(key, next);
        results.push(Ok(()));
    }
    let mut writes: Vec<Appointment> = taken.into_values().collect();
    writes.sort_unstable_by_key(|a| (a.channel_id, a.customer));
    Ok(Plan { results, writes })
}

/// The batch's customers, each once, in order (the order PostgreSQL locks their rows in).
pub(super) fn customers(appointments: &[Appointment]) -> Vec<Address> {
    let mut customers: Vec<Address> = appointments.iter().map(|a| a.customer).collect();
    customers.sort_unstable();
    customers.dedup();
    customers
}

/// The batch's channels, each once.
pub(super) fn channels(appointments: &[Appointment]) -> Vec<B256> {
    let mut channels: Vec<B256> = appointments.iter().map(|a| a.channel_id).collect();
    channels.sort_unstable();
    channels.dedup();
    channels
}
