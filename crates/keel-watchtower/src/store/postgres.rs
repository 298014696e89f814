//! [`PostgresStore`]: the tower's storage in a PostgreSQL database, which several tower
//! instances may share.
//!
//! Instances write concurrently, so each check-then-write holds a row lock: [`Store::put`] locks
//! the customer's row (`SELECT … FOR UPDATE`) before it reads the stored nonce and counts the
//! customer's channels, so two puts for one customer run one after the other, whichever
//! instance takes them. Responses are claimed with [`Store::claim`]: one `INSERT … ON CONFLICT
//! DO UPDATE … WHERE` statement, which PostgreSQL evaluates against the newest committed row,
//! so of several instances claiming at once exactly one is granted.

use std::time::Duration;

use keel_chain::monitor::{BoxFuture, Checkpoint, CheckpointError, Checkpoints};
use keel_core::{Address, DisputeState, LockState, B256};
use sqlx::{
    migrate::Migrator,
    postgres::{PgPool, PgPoolOptions},
    Row,
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

static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections one instance opens: requests and the responder at once, well under
/// PostgreSQL's default `max_connections` (100) for a handful of instances.
const MAX_CONNECTIONS: u32 = 8;

/// How long a request waits for a free connection (or for the server) before failing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The tower's PostgreSQL database. Cheap to clone (a connection pool).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and brings the schema
    /// up to date (sqlx takes an advisory lock, so instances starting together migrate once).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // sqlx prepares each statement once per connection, and PostgreSQL may then keep a
            // generic plan made while the tables were small: a batch's `channel_id = ANY($1)`
            // stayed a sequential scan comparing every stored row with every id of the batch
            // (most of the server's time at 150,000 appointments). A plan for each execution
            // sees the table's real size and the array's, and looks the ids up in the index.
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, "SET plan_cache_mode = force_custom_plan")
                        .await
                        .map(|_| ())
                })
            })
            .connect(url)
            .await?;
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool })
    }

    /// Closes the connections.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn checkpoint(&self, chain_id: u64) -> Result<Option<Checkpoint>, StoreError> {
        let row = sqlx::query("SELECT block, hash FROM chain_checkpoints WHERE chain_id = $1")
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
            "INSERT INTO chain_checkpoints (chain_id, block, hash) VALUES ($1, $2, $3) \
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

impl Checkpoints for PostgresStore {
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

impl Store for PostgresStore {
    async fn register(
        &self,
        customer: Address,
        quota: u32,
        now: u64,
    ) -> Result<Customer, StoreError> {
        sqlx::query(
            "INSERT INTO customers (customer, quota, registered_at, layout) \
             VALUES ($1, $2, $3, $4) \
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
        let row = sqlx::query("SELECT quota, registered_at FROM customers WHERE customer = $1")
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
        let mut tx = self.pool.begin().await?;
        let held = held_in(&mut tx, appointments).await?;
        let plan = batch::plan(appointments, held)?;
        write_in(&mut tx, &plan.writes).await?;
        tx.commit().await?;
        Ok(plan.results)
    }

    async fn channel(&self, channel_id: B256) -> Result<ChannelRecord, StoreError> {
        let rows =
            sqlx::query("SELECT * FROM appointments WHERE channel_id = $1 ORDER BY customer")
                .bind(channel_id.as_slice())
                .fetch_all(&self.pool)
                .await?;
        let appointments = rows.iter().map(appointment).collect::<Result<_, _>>()?;
        let dispute: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT state FROM disputes WHERE channel_id = $1")
                .bind(channel_id.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        let dispute = dispute.map(|bytes| dispute_from(&bytes)).transpose()?;
        let rows = sqlx::query("SELECT * FROM responses WHERE channel_id = $1 ORDER BY customer")
            .bind(channel_id.as_slice())
            .fetch_all(&self.pool)
            .await?;
        let responses = rows.iter().map(response).collect::<Result<_, _>>()?;
        let lock_state: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT state FROM lock_states WHERE channel_id = $1")
                .bind(channel_id.as_slice())
                .fetch_optional(&self.pool)
                .await?;
        let lock_state = lock_state
            .map(|bytes| lock_state_from(&bytes))
            .transpose()?;
        let rows =
            sqlx::query("SELECT * FROM lock_steps WHERE channel_id = $1 ORDER BY customer, step")
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
            "SELECT DISTINCT channel_id, vault FROM appointments WHERE channel_id > $1 \
             ORDER BY channel_id LIMIT $2",
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
            sqlx::query_scalar("SELECT channel_id FROM disputes WHERE deadline >= $1")
                .bind(int(now)?)
                .fetch_all(&self.pool)
                .await?;
        ids.iter().map(|id| b256(id)).collect()
    }

    async fn record_disputes(&self, disputes: &[(B256, DisputeState)]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for (channel_id, state) in disputes {
            sqlx::query(
                "INSERT INTO disputes (channel_id, state, deadline, layout) VALUES ($1, $2, $3, $4) \
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
            "INSERT INTO lock_states (channel_id, state, layout) VALUES ($1, $2, $3) \
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
            "INSERT INTO responses (channel_id, customer, nonce, outcome, tx_hash, detail, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (channel_id, customer) DO UPDATE SET nonce = excluded.nonce, \
             outcome = excluded.outcome, tx_hash = excluded.tx_hash, detail = excluded.detail, \
             updated_at = excluded.updated_at",
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
            "INSERT INTO lock_steps (channel_id, customer, step, tx_hash, detail, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (channel_id, customer, step) DO UPDATE \
             SET tx_hash = excluded.tx_hash, detail = excluded.detail, \
             updated_at = excluded.updated_at",
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
        let mut tx = self.pool.begin().await?;
        let removed = sqlx::query("DELETE FROM appointments WHERE channel_id = $1")
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
            sqlx::query(&format!("DELETE FROM {table} WHERE channel_id = $1"))
                .bind(channel_id.as_slice())
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM claims WHERE channel_id = $1")
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
             (SELECT SUM(pg_total_relation_size(t))::BIGINT FROM unnest(ARRAY['customers', \
             'appointments', 'disputes', 'responses', 'claims', 'chain_checkpoints']) AS t) \
             AS bytes",
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
        // A row another instance holds is locked while that instance's statement runs; this one
        // then re-checks the WHERE against the committed row: exactly one of them is granted.
        let granted: Option<String> = sqlx::query_scalar(
            "INSERT INTO claims (channel_id, customer, holder, expires_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (channel_id, customer) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE claims.holder = excluded.holder OR claims.expires_at <= $5 \
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
        sqlx::query("DELETE FROM claims WHERE channel_id = $1 AND customer = $2 AND holder = $3")
            .bind(channel_id.as_slice())
            .bind(customer.as_slice())
            .bind(holder)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// What [`batch::plan`] reads for `appointments`, in three queries: the customers' quotas (their
/// rows locked, in address order, so two batches never wait on each other in a cycle), how many
/// channels each has, and the rows stored under the batch's channels and customers.
async fn held_in(
    conn: &mut sqlx::PgConnection,
    appointments: &[Appointment],
) -> Result<batch::Held, StoreError> {
    let mut held = batch::Held::default();
    let customers: Vec<Vec<u8>> = batch::customers(appointments)
        .iter()
        .map(|c| c.to_vec())
        .collect();
    // The lock serialises each customer's puts across instances (see the module docs).
    let rows = sqlx::query(
        "SELECT customer, quota FROM customers WHERE customer = ANY($1) \
         ORDER BY customer FOR UPDATE",
    )
    .bind(&customers)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        held.quota
            .insert(address(&row.try_get::<Vec<u8>, _>(0)?)?, row.try_get(1)?);
    }
    let rows = sqlx::query(
        "SELECT customer, COUNT(*) FROM appointments WHERE customer = ANY($1) GROUP BY customer",
    )
    .bind(&customers)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        held.channels
            .insert(address(&row.try_get::<Vec<u8>, _>(0)?)?, row.try_get(1)?);
    }
    // By the whole key, joined from the batch's arrays: the planner then knows each id matches
    // at most one row (the primary key) and looks each up in the index; `channel_id = ANY($1)`
    // was planned as a scan of the whole table until statistics were gathered.
    let mut keys: Vec<(B256, Address)> = appointments
        .iter()
        .map(|a| (a.channel_id, a.customer))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let (channels, owners): (Vec<Vec<u8>>, Vec<Vec<u8>>) = keys
        .iter()
        .map(|(channel, customer)| (channel.to_vec(), customer.to_vec()))
        .unzip();
    let rows = sqlx::query(
        "SELECT a.* FROM UNNEST($1::bytea[], $2::bytea[]) AS k(channel_id, customer) \
         JOIN appointments a ON a.channel_id = k.channel_id AND a.customer = k.customer",
    )
    .bind(&channels)
    .bind(&owners)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let stored = appointment(&row)?;
        held.stored
            .insert((stored.channel_id, stored.customer), stored);
    }
    Ok(held)
}

/// Writes `rows` (one per channel and customer: a statement may not update a row twice),
/// replacing what was stored, in one statement whatever their number: each column is bound as
/// one array and `UNNEST` turns them back into rows, so the statement's text never changes and
/// is prepared once per connection.
async fn write_in(conn: &mut sqlx::PgConnection, rows: &[Appointment]) -> Result<(), StoreError> {
    let bytes =
        |f: &dyn Fn(&Appointment) -> Vec<u8>| -> Vec<Vec<u8>> { rows.iter().map(f).collect() };
    let (accepted_at, watch_until): (Vec<i64>, Vec<i64>) = rows
        .iter()
        .map(|a| Ok((int(a.accepted_at)?, int(a.watch_until)?)))
        .collect::<Result<Vec<_>, StoreError>>()?
        .into_iter()
        .unzip();
    sqlx::query(
        "INSERT INTO appointments (channel_id, customer, participant_a, participant_b, token, \
         challenge_period, salt, vault, nonce, transferred, locked, locks_root, \
         sender_signature, authorisation, accepted_at, watch_until, receipt_signature, layout, \
         locks, secrets, releases) \
         SELECT * FROM UNNEST($1::bytea[], $2::bytea[], $3::bytea[], $4::bytea[], $5::bytea[], \
         $6::int8[], $7::bytea[], $8::bytea[], $9::bytea[], $10::bytea[], $11::bytea[], \
         $12::bytea[], $13::bytea[], $14::bytea[], $15::int8[], $16::int8[], $17::bytea[], \
         $18::int8[], $19::bytea[], $20::bytea[], $21::bytea[]) \
         ON CONFLICT (channel_id, customer) DO UPDATE SET \
         participant_a = excluded.participant_a, participant_b = excluded.participant_b, \
         token = excluded.token, challenge_period = excluded.challenge_period, \
         salt = excluded.salt, vault = excluded.vault, nonce = excluded.nonce, \
         transferred = excluded.transferred, locked = excluded.locked, \
         locks_root = excluded.locks_root, sender_signature = excluded.sender_signature, \
         authorisation = excluded.authorisation, accepted_at = excluded.accepted_at, \
         watch_until = excluded.watch_until, receipt_signature = excluded.receipt_signature, \
         layout = excluded.layout, locks = excluded.locks, secrets = excluded.secrets, \
         releases = excluded.releases",
    )
    .bind(bytes(&|a| a.channel_id.to_vec()))
    .bind(bytes(&|a| a.customer.to_vec()))
    .bind(bytes(&|a| a.params.participant_a.to_vec()))
    .bind(bytes(&|a| a.params.participant_b.to_vec()))
    .bind(bytes(&|a| a.params.token.to_vec()))
    .bind(
        rows.iter()
            .map(|a| i64::from(a.params.challenge_period))
            .collect::<Vec<_>>(),
    )
    .bind(bytes(&|a| a.params.salt.to_vec()))
    .bind(bytes(&|a| a.vault.to_vec()))
    .bind(bytes(&|a| nonce_bytes(a.proof.nonce).to_vec()))
    .bind(bytes(&|a| {
        a.proof.transferredAmount.to_be_bytes::<32>().to_vec()
    }))
    .bind(bytes(&|a| {
        a.proof.lockedAmount.to_be_bytes::<32>().to_vec()
    }))
    .bind(bytes(&|a| a.proof.locksRoot.to_vec()))
    .bind(bytes(&|a| a.sender_signature.to_vec()))
    .bind(bytes(&|a| a.authorisation.to_vec()))
    .bind(accepted_at)
    .bind(watch_until)
    .bind(bytes(&|a| a.receipt_signature.to_vec()))
    .bind(vec![LAYOUT; rows.len()])
    .bind(bytes(&|a| locks_bytes(&a.locks)))
    .bind(bytes(&|a| secrets_bytes(&a.secrets)))
    .bind(bytes(&|a| releases_bytes(&a.releases)))
    .execute(&mut *conn)
    .await?;
    Ok(())
}
