//! [`SqliteStore`]: the tower's storage in one SQLite file (WAL, synchronous commits).
//!
//! Writes go through one connection, so the read-check-write of [`Store::put`] (stored nonce,
//! quota) runs in a transaction no other write interleaves with. Several tower instances over
//! one database need PostgreSQL (not yet written).

use std::path::Path;

use alloy::sol_types::SolValue;
use keel_bindings::ChannelVault;
use keel_chain::{
    monitor::{BoxFuture, Checkpoint, CheckpointError, Checkpoints},
    VaultAbi,
};
use keel_core::{Address, BalanceProof, ChannelParams, DisputeState, B256, U256};
use sqlx::{
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
    Row,
};

use super::{
    Appointment, ChannelRecord, Counts, Customer, Outcome, PutError, Response, Store, StoreError,
};

static MIGRATOR: Migrator = sqlx::migrate!();

/// The byte layout of the rows this build writes (see the migration's header).
const LAYOUT: i64 = 1;

/// The tower's SQLite database. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        // One connection: every check-then-write is serialised (see the module docs).
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the database.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn checkpoint(&self, chain_id: u64) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query("SELECT block, hash FROM chain_checkpoints WHERE chain_id = ?")
            .bind(int(chain_id)?)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Checkpoint {
                block: uint(row.try_get("block")?)?,
                hash: b256(&row.try_get::<Vec<u8>, _>("hash")?)?,
            })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, chain_id: u64, cp: Checkpoint) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO chain_checkpoints (chain_id, block, hash) VALUES (?, ?, ?) \
             ON CONFLICT (chain_id) DO UPDATE SET block = excluded.block, hash = excluded.hash",
        )
        .bind(int(chain_id)?)
        .bind(int(cp.block)?)
        .bind(cp.hash.as_slice())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

impl Checkpoints for SqliteStore {
    fn load(&self, chain_id: u64) -> BoxFuture<'_, Result<Option<Checkpoint>, CheckpointError>> {
        Box::pin(async move { Ok(self.checkpoint(chain_id).await?) })
    }

    fn save(
        &self,
        chain_id: u64,
        checkpoint: Checkpoint,
    ) -> BoxFuture<'_, Result<(), CheckpointError>> {
        Box::pin(async move { Ok(self.save_checkpoint(chain_id, checkpoint).await?) })
    }
}

impl Store for SqliteStore {
    async fn register(
        &self,
        customer: Address,
        quota: u32,
        now: u64,
    ) -> Result<Customer, StoreError> {
        sqlx::query(
            "INSERT INTO customers (customer, quota, registered_at, layout) VALUES (?, ?, ?, ?) \
             ON CONFLICT (customer) DO UPDATE SET quota = excluded.quota, \
             registered_at = excluded.registered_at",
        )
        .bind(customer.as_slice())
        .bind(i64::from(quota))
        .bind(int(now)?)
        .bind(LAYOUT)
        .execute(&self.pool)
        .await?;
        Ok(Customer {
            address: customer,
            quota,
            registered_at: now,
        })
    }

    async fn customer(&self, address: Address) -> Result<Option<Customer>, StoreError> {
        let row = sqlx::query("SELECT quota, registered_at FROM customers WHERE customer = ?")
            .bind(address.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(Customer {
                address,
                quota: u32::try_from(row.try_get::<i64, _>("quota")?)
                    .map_err(|_| StoreError::Corrupt("quota".into()))?,
                registered_at: uint(row.try_get("registered_at")?)?,
            })
        })
        .transpose()
    }

    async fn put(&self, a: &Appointment) -> Result<(), PutError> {
        let mut tx = self.pool.begin().await.map_err(StoreError::from)?;
        let quota: Option<i64> =
            sqlx::query_scalar("SELECT quota FROM customers WHERE customer = ?")
                .bind(a.customer.as_slice())
                .fetch_optional(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let quota = quota.ok_or(PutError::UnknownCustomer)?;
        let stored: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT nonce FROM appointments WHERE channel_id = ? AND customer = ?",
        )
        .bind(a.channel_id.as_slice())
        .bind(a.customer.as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        match stored {
            Some(nonce) => {
                let stored = nonce_from(&nonce)?;
                if a.proof.nonce <= stored {
                    return Err(PutError::Stale(stored));
                }
            }
            None => {
                let held: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM appointments WHERE customer = ?")
                        .bind(a.customer.as_slice())
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                if held >= quota {
                    let quota =
                        u32::try_from(quota).map_err(|_| StoreError::Corrupt("quota".into()))?;
                    return Err(PutError::Quota(quota));
                }
            }
        }
        sqlx::query(
            "INSERT OR REPLACE INTO appointments (channel_id, customer, participant_a, \
             participant_b, token, challenge_period, salt, vault, nonce, transferred, locked, \
             locks_root, sender_signature, authorisation, accepted_at, watch_until, \
             receipt_signature, layout) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(a.channel_id.as_slice())
        .bind(a.customer.as_slice())
        .bind(a.params.participant_a.as_slice())
        .bind(a.params.participant_b.as_slice())
        .bind(a.params.token.as_slice())
        .bind(i64::from(a.params.challenge_period))
        .bind(a.params.salt.as_slice())
        .bind(a.vault.as_slice())
        .bind(a.proof.nonce.to_be_bytes().as_slice())
        .bind(a.proof.transferredAmount.to_be_bytes::<32>().as_slice())
        .bind(a.proof.lockedAmount.to_be_bytes::<32>().as_slice())
        .bind(a.proof.locksRoot.as_slice())
        .bind(a.sender_signature.as_slice())
        .bind(a.authorisation.as_slice())
        .bind(int(a.accepted_at)?)
        .bind(int(a.watch_until)?)
        .bind(a.receipt_signature.as_slice())
        .bind(LAYOUT)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(())
    }

    async fn channel(&self, channel_id: B256) -> Result<ChannelRecord, StoreError> {
        let rows = sqlx::query("SELECT * FROM appointments WHERE channel_id = ? ORDER BY customer")
            .bind(channel_id.as_slice())
            .fetch_all(&self.pool)
            .await?;
        let appointments = rows.iter().map(appointment).collect::<Result<_, _>>()?;
        let dispute: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT state FROM disputes WHERE channel_id = ?")
                .bind(channel_id.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        let dispute = dispute.map(|bytes| dispute_from(&bytes)).transpose()?;
        let rows = sqlx::query("SELECT * FROM responses WHERE channel_id = ? ORDER BY customer")
            .bind(channel_id.as_slice())
            .fetch_all(&self.pool)
            .await?;
        let responses = rows.iter().map(response).collect::<Result<_, _>>()?;
        Ok(ChannelRecord {
            appointments,
            dispute,
            responses,
        })
    }

    async fn watched(&self) -> Result<Vec<(Address, B256)>, StoreError> {
        let rows = sqlx::query("SELECT DISTINCT vault, channel_id FROM appointments")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    address(&row.try_get::<Vec<u8>, _>("vault")?)?,
                    b256(&row.try_get::<Vec<u8>, _>("channel_id")?)?,
                ))
            })
            .collect()
    }

    async fn open_disputes(&self, now: u64) -> Result<Vec<B256>, StoreError> {
        let ids: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT channel_id FROM disputes WHERE deadline >= ?")
                .bind(int(now)?)
                .fetch_all(&self.pool)
                .await?;
        ids.iter().map(|id| b256(id)).collect()
    }

    async fn record_dispute(
        &self,
        channel_id: B256,
        state: &DisputeState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO disputes (channel_id, state, deadline, layout) VALUES (?, ?, ?, ?) \
             ON CONFLICT (channel_id) DO UPDATE SET state = excluded.state, \
             deadline = excluded.deadline, layout = excluded.layout",
        )
        .bind(channel_id.as_slice())
        .bind(state.to_abi().abi_encode())
        .bind(int(state.deadline)?)
        .bind(LAYOUT)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_response(&self, r: &Response) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO responses (channel_id, customer, nonce, outcome, tx_hash, \
             detail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.channel_id.as_slice())
        .bind(r.customer.as_slice())
        .bind(r.nonce.to_be_bytes().as_slice())
        .bind(r.outcome.as_str())
        .bind(r.tx_hash.map(|h| h.to_vec()))
        .bind(&r.detail)
        .bind(int(r.updated_at)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn prune(&self, channel_id: B256) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM appointments WHERE channel_id = ?")
            .bind(channel_id.as_slice())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for table in ["disputes", "responses"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE channel_id = ?"))
                .bind(channel_id.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn counts(&self) -> Result<Counts, StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM customers) AS customers, \
             (SELECT COUNT(*) FROM appointments) AS appointments, \
             (SELECT COUNT(DISTINCT channel_id) FROM appointments) AS channels, \
             (SELECT COUNT(*) FROM disputes) AS disputes, \
             (SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()) AS bytes",
        )
        .fetch_one(&self.pool)
        .await?;
        let get = |name: &str| -> Result<u64, StoreError> { uint(row.try_get(name)?) };
        Ok(Counts {
            customers: get("customers")?,
            appointments: get("appointments")?,
            channels: get("channels")?,
            disputes: get("disputes")?,
            bytes: get("bytes")?,
        })
    }
}

fn appointment(row: &SqliteRow) -> Result<Appointment, StoreError> {
    let layout: i64 = row.try_get("layout")?;
    if layout != LAYOUT {
        return Err(StoreError::Corrupt(format!("appointment layout {layout}")));
    }
    let bytes = |name: &str| -> Result<Vec<u8>, StoreError> { Ok(row.try_get(name)?) };
    let channel_id = b256(&bytes("channel_id")?)?;
    Ok(Appointment {
        params: ChannelParams {
            participant_a: address(&bytes("participant_a")?)?,
            participant_b: address(&bytes("participant_b")?)?,
            token: address(&bytes("token")?)?,
            challenge_period: u32::try_from(row.try_get::<i64, _>("challenge_period")?)
                .map_err(|_| StoreError::Corrupt("challenge period".into()))?,
            salt: b256(&bytes("salt")?)?,
        },
        channel_id,
        vault: address(&bytes("vault")?)?,
        customer: address(&bytes("customer")?)?,
        proof: BalanceProof {
            channelId: channel_id,
            nonce: nonce_from(&bytes("nonce")?)?,
            transferredAmount: u256(&bytes("transferred")?)?,
            lockedAmount: u256(&bytes("locked")?)?,
            locksRoot: b256(&bytes("locks_root")?)?,
        },
        sender_signature: signature(&bytes("sender_signature")?)?,
        authorisation: signature(&bytes("authorisation")?)?,
        accepted_at: uint(row.try_get("accepted_at")?)?,
        watch_until: uint(row.try_get("watch_until")?)?,
        receipt_signature: signature(&bytes("receipt_signature")?)?,
    })
}

fn response(row: &SqliteRow) -> Result<Response, StoreError> {
    let outcome: String = row.try_get("outcome")?;
    let tx_hash: Option<Vec<u8>> = row.try_get("tx_hash")?;
    Ok(Response {
        channel_id: b256(&row.try_get::<Vec<u8>, _>("channel_id")?)?,
        customer: address(&row.try_get::<Vec<u8>, _>("customer")?)?,
        nonce: nonce_from(&row.try_get::<Vec<u8>, _>("nonce")?)?,
        outcome: Outcome::parse(&outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("outcome {outcome:?}")))?,
        tx_hash: tx_hash.map(|h| b256(&h)).transpose()?,
        detail: row.try_get("detail")?,
        updated_at: uint(row.try_get("updated_at")?)?,
    })
}

fn dispute_from(bytes: &[u8]) -> Result<DisputeState, StoreError> {
    let abi = ChannelVault::DisputeState::abi_decode(bytes)
        .map_err(|e| StoreError::Corrupt(format!("dispute state: {e}")))?;
    DisputeState::from_abi(&abi).map_err(|e| StoreError::Corrupt(format!("dispute state: {e}")))
}

/// SQLite integers are signed; a value beyond `i64::MAX` is refused rather than wrapped.
fn int(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{value} exceeds SQLite's range")))
}

fn uint(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative value {value}")))
}

fn fixed<const N: usize>(bytes: &[u8], what: &str) -> Result<[u8; N], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} of {} bytes", bytes.len())))
}

fn nonce_from(bytes: &[u8]) -> Result<u64, StoreError> {
    Ok(u64::from_be_bytes(fixed(bytes, "nonce")?))
}

fn b256(bytes: &[u8]) -> Result<B256, StoreError> {
    Ok(B256::from(fixed::<32>(bytes, "hash")?))
}

fn u256(bytes: &[u8]) -> Result<U256, StoreError> {
    Ok(U256::from_be_bytes(fixed::<32>(bytes, "amount")?))
}

fn address(bytes: &[u8]) -> Result<Address, StoreError> {
    Ok(Address::from(fixed::<20>(bytes, "address")?))
}

fn signature(bytes: &[u8]) -> Result<[u8; 65], StoreError> {
    fixed(bytes, "signature")
}
