//! Rows to values and back, shared by both backends: both store addresses, hashes, amounts,
//! nonces and signatures as the same big-endian byte strings (BLOB in SQLite, BYTEA in
//! PostgreSQL) and times as signed 64-bit integers, so one decoder reads either's rows.

use alloy::sol_types::SolValue;
use keel_bindings::ChannelVault;
use keel_chain::VaultAbi;
use keel_core::{Address, BalanceProof, ChannelParams, DisputeState, Lock, LockState, B256, U256};
use sqlx::{ColumnIndex, Decode, Row, Type};

use super::{Appointment, LockStep, LockStepKind, Outcome, Release, Response, StoreError};

/// The byte layout of the rows this build writes (see the migrations' headers).
pub(super) const LAYOUT: i64 = 1;

/// A row of either backend whose columns decode as bytes, integers and text.
pub(super) trait BytesRow {
    fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError>;
    fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn int(&self, name: &str) -> Result<i64, StoreError>;
    fn text(&self, name: &str) -> Result<String, StoreError>;
}

impl<R: Row> BytesRow for R
where
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    fn bytes(&self, name: &str) -> Result<Vec<u8>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn opt_bytes(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn int(&self, name: &str) -> Result<i64, StoreError> {
        Ok(self.try_get(name)?)
    }

    fn text(&self, name: &str) -> Result<String, StoreError> {
        Ok(self.try_get(name)?)
    }
}

pub(super) fn appointment(row: &impl BytesRow) -> Result<Appointment, StoreError> {
    let layout = row.int("layout")?;
    if layout != LAYOUT {
        return Err(StoreError::Corrupt(format!("appointment layout {layout}")));
    }
    let channel_id = b256(&row.bytes("channel_id")?)?;
    Ok(Appointment {
        params: ChannelParams {
            participant_a: address(&row.bytes("participant_a")?)?,
            participant_b: address(&row.bytes("participant_b")?)?,
            token: address(&row.bytes("token")?)?,
            challenge_period: u32::try_from(row.int("challenge_period")?)
                .map_err(|_| StoreError::Corrupt("challenge period".into()))?,
            salt: b256(&row.bytes("salt")?)?,
        },
        channel_id,
        vault: address(&row.bytes("vault")?)?,
        customer: address(&row.bytes("customer")?)?,
        proof: BalanceProof {
            channelId: channel_id,
            nonce: nonce_from(&row.bytes("nonce")?)?,
            transferredAmount: u256(&row.bytes("transferred")?)?,
            lockedAmount: u256(&row.bytes("locked")?)?,
            locksRoot: b256(&row.bytes("locks_root")?)?,
        },
        sender_signature: signature(&row.bytes("sender_signature")?)?,
        authorisation: signature(&row.bytes("authorisation")?)?,
        accepted_at: uint(row.int("accepted_at")?)?,
        watch_until: uint(row.int("watch_until")?)?,
        receipt_signature: signature(&row.bytes("receipt_signature")?)?,
        locks: locks_from(&row.bytes("locks")?)?,
        secrets: secrets_from(&row.bytes("secrets")?)?,
        releases: releases_from(&row.bytes("releases")?)?,
    })
}

/// Bytes per stored lock: expiration (8, big-endian), amount (32), secret hash (32).
const LOCK_LEN: usize = 72;

/// An appointment's locks as one byte string (empty for none).
pub(super) fn locks_bytes(locks: &[Lock]) -> Vec<u8> {
    let mut out = Vec::with_capacity(locks.len() * LOCK_LEN);
    for lock in locks {
        out.extend_from_slice(&lock.expiration.to_be_bytes());
        out.extend_from_slice(&lock.amount.to_be_bytes::<32>());
        out.extend_from_slice(lock.secret_hash.as_slice());
    }
    out
}

fn locks_from(bytes: &[u8]) -> Result<Vec<Lock>, StoreError> {
    if !bytes.len().is_multiple_of(LOCK_LEN) {
        return Err(StoreError::Corrupt(format!(
            "locks of {} bytes",
            bytes.len()
        )));
    }
    bytes.chunks_exact(LOCK_LEN).map(lock_from).collect()
}

fn lock_from(l: &[u8]) -> Result<Lock, StoreError> {
    Ok(Lock {
        expiration: u64::from_be_bytes(fixed(&l[..8], "expiration")?),
        amount: u256(&l[8..40])?,
        secret_hash: b256(&l[40..LOCK_LEN])?,
    })
}

/// Bytes per stored release: its lock as [`locks_bytes`] writes one (72), then the receiver's
/// signature (65).
const RELEASE_LEN: usize = LOCK_LEN + 65;

/// An appointment's releases as one byte string (empty for none).
pub(super) fn releases_bytes(releases: &[Release]) -> Vec<u8> {
    let mut out = Vec::with_capacity(releases.len() * RELEASE_LEN);
    for release in releases {
        out.append(&mut locks_bytes(std::slice::from_ref(&release.lock)));
        out.extend_from_slice(&release.signature);
    }
    out
}

fn releases_from(bytes: &[u8]) -> Result<Vec<Release>, StoreError> {
    if !bytes.len().is_multiple_of(RELEASE_LEN) {
        return Err(StoreError::Corrupt(format!(
            "releases of {} bytes",
            bytes.len()
        )));
    }
    bytes
        .chunks_exact(RELEASE_LEN)
        .map(|r| {
            Ok(Release {
                lock: lock_from(&r[..LOCK_LEN])?,
                signature: signature(&r[LOCK_LEN..])?,
            })
        })
        .collect()
}

/// An appointment's secrets, 32 bytes each.
pub(super) fn secrets_bytes(secrets: &[B256]) -> Vec<u8> {
    secrets.iter().flat_map(|s| s.0).collect()
}

fn secrets_from(bytes: &[u8]) -> Result<Vec<B256>, StoreError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(StoreError::Corrupt(format!(
            "secrets of {} bytes",
            bytes.len()
        )));
    }
    bytes.chunks_exact(32).map(b256).collect()
}

/// `abi.encode(LockState)`, as the vault hashes it.
pub(super) fn lock_state_bytes(state: &LockState) -> Vec<u8> {
    state.to_abi().abi_encode()
}

pub(super) fn lock_state_from(bytes: &[u8]) -> Result<LockState, StoreError> {
    let abi = ChannelVault::LockState::abi_decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("lock state: {e}")))?;
    LockState::from_abi(&abi).map_err(|e| StoreError::Corrupt(format!("lock state: {e}")))
}

pub(super) fn response(row: &impl BytesRow) -> Result<Response, StoreError> {
    let outcome = row.text("outcome")?;
    Ok(Response {
        channel_id: b256(&row.bytes("channel_id")?)?,
        customer: address(&row.bytes("customer")?)?,
        nonce: nonce_from(&row.bytes("nonce")?)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome {outcome:?}")))?,
        tx_hash: row.opt_bytes("tx_hash")?.map(|h| b256(&h)).transpose()?,
        detail: row.text("detail")?,
        updated_at: uint(row.int("updated_at")?)?,
    })
}

pub(super) fn lock_step(row: &impl BytesRow) -> Result<LockStep, StoreError> {
    let kind = row.text("step")?;
    Ok(LockStep {
        channel_id: b256(&row.bytes("channel_id")?)?,
        customer: address(&row.bytes("customer")?)?,
        kind: LockStepKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("lock step {kind:?}")))?,
        tx_hash: b256(&row.bytes("tx_hash")?)?,
        detail: row.text("detail")?,
        updated_at: uint(row.int("updated_at")?)?,
    })
}

/// `abi.encode(DisputeState)`, as the vault hashes it.
pub(super) fn dispute_bytes(state: &DisputeState) -> Vec<u8> {
    state.to_abi().abi_encode()
}

pub(super) fn dispute_from(bytes: &[u8]) -> Result<DisputeState, StoreError> {
    let abi = ChannelVault::DisputeState::abi_decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("dispute state: {e}")))?;
    DisputeState::from_abi(&abi).map_err(|e| StoreError::Corrupt(format!("dispute state: {e}")))
}

/// Both backends' integers are signed; a value beyond `i64::MAX` is refused rather than wrapped.
pub(super) fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("{value} exceeds a signed 64-bit column")))
}

pub(super) fn uint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative value {value}")))
}

pub(super) fn quota(value: i64) -> Result<u32, StoreError> {
    u32::try_from(value).map_err(|_| StoreError::Corrupt("quota".into()))
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} of {} bytes", bytes.len())))
}

/// Nonces are stored as 8 big-endian bytes: a u64 does not fit a signed column, and big-endian
/// bytes compare as the numbers do.
pub(super) fn nonce_bytes(nonce: u64) -> [u8; 8] {
    nonce.to_be_bytes()
}

pub(super) fn nonce_from(bytes: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(fixed(bytes, "nonce")?))
}

pub(super) fn b256(bytes: &[u8]) -> Result<B256, StoreError> {
    Ok(B256::from(fixed::<32>(bytes, "hash")?))
}

pub(super) fn u256(bytes: &[u8]) -> Result<U256, StoreError> {
    Ok(U256::from_be_bytes(fixed::<32>(bytes, "amount")?))
}

pub(super) fn address(bytes: &[u8]) -> Result<Address, StoreError> {
    Ok(Address::from(fixed::<20>(bytes, "address")?))
}

fn signature(bytes: &[u8]) -> Result<[u8; 65], StoreError> {
    fixed(bytes, "signature")
}
