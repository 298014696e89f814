//! [`SqliteStore`]: the tower's storage in one SQLite file (WAL, synchronous commits).
//!
//! Writes go through one connection, so the read-check-write of [`Store::put`] (stored nonce,
//! quota) runs in a transaction no other write interleaves with; it begins `IMMEDIATE`, so that
//! holds against another process on the same file too. Several tower instances over
//! one database need [`PostgresStore`](super::PostgresStore).

use std::path::Path;

use keel_chain::monitor::{BoxFuture, Checkpoint, CheckpointError, Checkpoints};
use keel_core::{Address, DisputeState, LockState, B256};
use sqlx::{
    migrate::Migrator,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
    },
    QueryBuilder, Row,
};

use super::{
    batch,
    codec::{
        address, appointment, b256, dispute_bytes, dispute_from, int, lock_state_bytes,
        lock_state_from, lock_step, locks_bytes, nonce_bytes, quota, releases_bytes, response,
        secrets_bytes, uint, LAYOUT,
    },
    Appointment, ChannelRecord, Counts, Customer, LockStep, PutError, Response, Store, StoreError,
};

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

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
            .synchronous(SqliteSynchronous::Full)
            .pragma("wal_autocheckpoint", "10000");
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
                quota: quota(row.try_get("quota")?)?,
                registered_at: uint(row.try_get("registered_at")?)?,
            })
        })
        .transpose()
    }

    async fn put_many(
        &self,
        appointments: &[Appointment],
    ) -> Result<Vec<Result<(), PutError>>, StoreError> {
        if appointments.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let held = held_in(&mut tx, appointments).await?;
        let plan = batch::plan(appointments, held)?;
        write_in(&mut tx, &plan.writes).await?;
        tx.commit().await?;
        Ok(plan.results)
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
        let lock_state: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT state FROM lock_states WHERE channel_id = ?")
                .bind(channel_id.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        let lock_state = lock_state
            .map(|bytes| lock_state_from(&bytes))
            .transpose()?;
        let rows =
            sqlx::query("SELECT * FROM lock_steps WHERE channel_id = ? ORDER BY customer, step")
                .bind(channel_id.as_slice())
                .fetch_all(&self.pool)
                .await?;
        let mut lock_steps: Vec<LockStep> = rows.iter().map(lock_step).collect::<Result<_, _>>()?;
        lock_steps.sort_by_key(|s| (s.customer, s.kind));
        Ok(ChannelRecord {
            appointments,
            dispute,
            responses,
            lock_state,
            lock_steps,
        })
    }

    async fn watched(
        &self,
        after: Option<B256>,
        limit: u32,
    ) -> Result<Vec<(B256, Address)>, StoreError> {
        // A vault follows from its channel id, so the pairs are one per channel. The empty
        // string sorts before every id.
        let rows = sqlx::query(
            "SELECT DISTINCT channel_id, vault FROM appointments WHERE channel_id > ? \
             ORDER BY channel_id LIMIT ?",
        )
        .bind(after.map_or_else(Vec::new, |id| id.to_vec()))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    b256(&row.try_get::<Vec<u8>, _>("channel_id")?)?,
                    address(&row.try_get::<Vec<u8>, _>("vault")?)?,
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

    async fn record_disputes(&self, disputes: &[(B256, DisputeState)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        for (channel_id, state) in disputes {
            sqlx::query(
                "INSERT INTO disputes (channel_id, state, deadline, layout) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (channel_id) DO UPDATE SET state = excluded.state, \
                 deadline = excluded.deadline, layout = excluded.layout",
            )
            .bind(channel_id.as_slice())
            .bind(dispute_bytes(state))
            .bind(int(state.deadline)?)
            .bind(LAYOUT)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn record_lock_state(
        &self,
        channel_id: B256,
        state: &LockState,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO lock_states (channel_id, state, layout) VALUES (?, ?, ?) \
             ON CONFLICT (channel_id) DO UPDATE SET state = excluded.state, \
             layout = excluded.layout",
        )
        .bind(channel_id.as_slice())
        .bind(lock_state_bytes(state))
        .bind(LAYOUT)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn lock_work(&self) -> Result<Vec<B256>, StoreError> {
        let ids: Vec<Vec<u8>> = sqlx::query_scalar(
            "SELECT DISTINCT a.channel_id FROM appointments a \
             WHERE (length(a.locks) > 0 OR length(a.secrets) > 0 OR length(a.releases) > 0) \
             AND (EXISTS (SELECT 1 FROM disputes d WHERE d.channel_id = a.channel_id) \
             OR EXISTS (SELECT 1 FROM lock_states l WHERE l.channel_id = a.channel_id))",
        )
        .fetch_all(&self.pool)
        .await?;
        ids.iter().map(|id| b256(id)).collect()
    }

    async fn record_response(&self, r: &Response) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO responses (channel_id, customer, nonce, outcome, tx_hash, \
             detail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.channel_id.as_slice())
        .bind(r.customer.as_slice())
        .bind(nonce_bytes(r.nonce).as_slice())
        .bind(r.outcome.as_str())
        .bind(r.tx_hash.map(|h| h.to_vec()))
        .bind(&r.detail)
        .bind(int(r.updated_at)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn record_lock_step(&self, step: &LockStep) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO lock_steps (channel_id, customer, step, tx_hash, detail, \
             updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(step.channel_id.as_slice())
        .bind(step.customer.as_slice())
        .bind(step.kind.as_str())
        .bind(step.tx_hash.as_slice())
        .bind(&step.detail)
        .bind(int(step.updated_at)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn prune(&self, channel_id: B256) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let removed = sqlx::query("DELETE FROM appointments WHERE channel_id = ?")
            .bind(channel_id.as_slice())
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for table in [
            "disputes",
            "lock_states",
            "lock_steps",
            "responses",
            "claims",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE channel_id = ?"))
                .bind(channel_id.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM claims WHERE channel_id = ?")
            .bind(super::lock_claim_id(channel_id).as_slice())
            .execute(&mut *tx)
            .await?;
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

    async fn claim(
        &self,
        channel_id: B256,
        customer: Address,
        holder: &str,
        now_ms: u64,
        lease_ms: u64,
    ) -> Result<bool, StoreError> {
        let expires = now_ms
            .checked_add(lease_ms)
            .ok_or_else(|| StoreError::Corrupt("lease beyond u64".into()))?;
        let granted: Option<String> = sqlx::query_scalar(
            "INSERT INTO claims (channel_id, customer, holder, expires_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT (channel_id, customer) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE claims.holder = excluded.holder OR claims.expires_at <= ? \
             RETURNING holder",
        )
        .bind(channel_id.as_slice())
        .bind(customer.as_slice())
        .bind(holder)
        .bind(int(expires)?)
        .bind(int(now_ms)?)
        .fetch_optional(&self.pool)
        .await?;
        Ok(granted.is_some())
    }

    async fn release(
        &self,
        channel_id: B256,
        customer: Address,
        holder: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM claims WHERE channel_id = ? AND customer = ? AND holder = ?")
            .bind(channel_id.as_slice())
            .bind(customer.as_slice())
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// What [`batch::plan`] reads for `appointments`: the customers' quotas and channel counts and
/// the rows stored for their channels, in three queries per [`IDS_PER_QUERY`] ids.
async fn held_in(
    conn: &mut sqlx::SqliteConnection,
    appointments: &[Appointment],
) -> Result<batch::Held, StoreError> {
    let mut held = batch::Held::default();
    for chunk in batch::customers(appointments).chunks(IDS_PER_QUERY) {
        let mut query =
            QueryBuilder::new("SELECT customer, quota FROM customers WHERE customer IN ");
        push_ids(&mut query, chunk.iter().map(|c| c.to_vec()));
        for row in query.build().fetch_all(&mut *conn).await? {
            held.quota
                .insert(address(&row.try_get::<Vec<u8>, _>(0)?)?, row.try_get(1)?);
        }
        let mut query =
            QueryBuilder::new("SELECT customer, COUNT(*) FROM appointments WHERE customer IN ");
        push_ids(&mut query, chunk.iter().map(|c| c.to_vec()));
        query.push(" GROUP BY customer");
        for row in query.build().fetch_all(&mut *conn).await? {
            held.channels
                .insert(address(&row.try_get::<Vec<u8>, _>(0)?)?, row.try_get(1)?);
        }
    }
    for chunk in batch::channels(appointments).chunks(IDS_PER_QUERY) {
        let mut query = QueryBuilder::new("SELECT * FROM appointments WHERE channel_id IN ");
        push_ids(&mut query, chunk.iter().map(|c| c.to_vec()));
        for row in query.build().fetch_all(&mut *conn).await? {
            let stored = appointment(&row)?;
            held.stored
                .insert((stored.channel_id, stored.customer), stored);
        }
    }
    Ok(held)
}

/// Ids bound per `IN (…)` list: under SQLite's oldest limit of 999 variables a statement.
const IDS_PER_QUERY: usize = 500;

/// Rows per `INSERT`: 21 values each, under the 32,766 variables a statement of the SQLite
/// sqlx bundles.
const ROWS_PER_INSERT: usize = 1_000;

fn push_ids<'a>(query: &mut QueryBuilder<'a, sqlx::Sqlite>, ids: impl Iterator<Item = Vec<u8>>) {
    query.push("(");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    query.push(")");
}

/// Writes `rows` (one per channel and customer), replacing what was stored, in multi-row
/// statements.
async fn write_in(
    conn: &mut sqlx::SqliteConnection,
    rows: &[Appointment],
) -> Result<(), StoreError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let times = chunk
            .iter()
            .map(|a| Ok((int(a.accepted_at)?, int(a.watch_until)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let mut builder = QueryBuilder::new(
            "INSERT OR REPLACE INTO appointments (channel_id, customer, participant_a, participant_b, token, challenge_period, salt, vault, \
     nonce, transferred, locked, locks_root, sender_signature, authorisation, accepted_at, \
     watch_until, receipt_signature, layout, locks, secrets, releases) ",
        );
        builder.push_values(
            chunk.iter().zip(times),
            |mut row, (a, (accepted, until))| {
                row.push_bind(a.channel_id.as_slice())
                    .push_bind(a.customer.as_slice())
                    .push_bind(a.params.participant_a.as_slice())
                    .push_bind(a.params.participant_b.as_slice())
                    .push_bind(a.params.token.as_slice())
                    .push_bind(i64::from(a.params.challenge_period))
                    .push_bind(a.params.salt.as_slice())
                    .push_bind(a.vault.as_slice())
                    .push_bind(nonce_bytes(a.proof.nonce).to_vec())
                    .push_bind(a.proof.transferredAmount.to_be_bytes::<32>().to_vec())
                    .push_bind(a.proof.lockedAmount.to_be_bytes::<32>().to_vec())
                    .push_bind(a.proof.locksRoot.as_slice())
                    .push_bind(a.sender_signature.as_slice())
                    .push_bind(a.authorisation.as_slice())
                    .push_bind(accepted)
                    .push_bind(until)
                    .push_bind(a.receipt_signature.as_slice())
                    .push_bind(LAYOUT)
                    .push_bind(locks_bytes(&a.locks))
                    .push_bind(secrets_bytes(&a.secrets))
                    .push_bind(releases_bytes(&a.releases));
            },
        );
        builder.build().execute(&mut *conn).await?;
    }
    Ok(())
}
