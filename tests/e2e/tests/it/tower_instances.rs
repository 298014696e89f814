//! Two watchtower instances (`tower_daemon` processes, the `keel-tower` daemon's code) over one
//! PostgreSQL database: the one that claimed a response is killed with SIGKILL while sending it,
//! and the other takes the response over once the dead one's claim runs out, refuting before
//! the deadline.
//!
//! The PostgreSQL server is the one `KEEL_TEST_POSTGRES_URL` names (script/postgres.sh starts
//! one and sets it, as for the watchtower's store suite); the test creates a database of its
//! own on it. Without the variable the test skips with a message, except under CI (`CI=true`),
//! where it fails.

use std::{sync::atomic::AtomicU32, time::Duration};

use alloy::providers::Provider;
use eyre::{ensure, eyre, Result, WrapErr};
use keel_e2e::Devnet;
use sqlx::{Connection, Executor, PgConnection, Row};

use crate::{
    chain_proxy::{Fault, Proxy},
    tower::{dispute_in, TowerProcess, TOWER_TIMEOUT},
    tower_chain::{appoint, bobs_old_proof, eth_channel, refuted, settle_and_check},
};

/// The PostgreSQL server the test creates its database on (as in keel-watchtower's tests).
const POSTGRES_URL: &str = "KEEL_TEST_POSTGRES_URL";

/// The instances' claim lease: long enough that a live instance renews its claim in time on a
/// loaded machine, short enough to wait out in a test (the daemon's default is 15 s).
const LEASE: Duration = Duration::from_secs(4);

/// A database of the test's own on the server `KEEL_TEST_POSTGRES_URL` names, dropped by
/// [`TestPostgres::remove`].
struct TestPostgres {
    server: String,
    name: String,
    /// The database's URL.
    url: String,
}

impl TestPostgres {
    /// A new, empty database; `None` (after saying so) when no server is configured outside CI.
    async fn create() -> Result<Option<Self>> {
        let Ok(server) = std::env::var(POSTGRES_URL) else {
            ensure!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{POSTGRES_URL} is not set: CI must run the PostgreSQL tests (script/postgres.sh)"
            );
            eprintln!("skipped: {POSTGRES_URL} is not set (script/postgres.sh starts a server)");
            return Ok(None);
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "keel_e2e_towers_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let (base, _) = server
            .rsplit_once('/')
            .ok_or_else(|| eyre!("{POSTGRES_URL} has no database path: {server}"))?;
        let url = format!("{base}/{name}");
        let mut admin = PgConnection::connect(&server)
            .await
            .wrap_err_with(|| format!("connecting to {POSTGRES_URL}"))?;
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await?;
        admin.close().await?;
        Ok(Some(Self { server, name, url }))
    }

    /// The holder of the claim on `channel_id`'s response, if any.
    async fn claim_holder(&self, channel_id: alloy::primitives::B256) -> Result<Option<String>> {
        let mut conn = PgConnection::connect(&self.url).await?;
        let row = sqlx::query("SELECT holder FROM claims WHERE channel_id = $1")
            .bind(channel_id.as_slice())
            .fetch_optional(&mut conn)
            .await?;
        conn.close().await?;
        Ok(row.map(|r| r.get("holder")))
    }

    async fn remove(self) -> Result<()> {
        let mut admin = PgConnection::connect(&self.server).await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name).as_str())
            .await?;
        admin.close().await?;
        Ok(())
    }
}

/// Polls `done` every 50 ms until it holds, or fails after [`TOWER_TIMEOUT`] saying `what`.
async fn until(what: &str, mut done: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = tokio::time::Instant::now() + TOWER_TIMEOUT;
    while !done().await? {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {TOWER_TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_while_holding_a_response_is_taken_over_by_another() -> Result<()> {
    let Some(db) = TestPostgres::create().await? else {
        return Ok(());
    };
    let outcome = killed_mid_response(&db).await;
    db.remove().await?;
    outcome
}

async fn killed_mid_response(db: &TestPostgres) -> Result<()> {
    let net = Devnet::start().await?;
    let ch = eth_channel(&net, 16).await?;

    // Instance A reaches the chain through a proxy that swallows its transactions: once it
    // claims the response it is stuck sending it, claim held, until it dies.
    let to_a = Proxy::start(net.rpc_url()).await?;
    to_a.set(Fault::SwallowSends);
    let mut a = TowerProcess::start_instance(&net, "a", &db.url, &to_a.url, LEASE).await?;
    appoint(&net, &a, &ch).await?;
    // Instance B learns the channel from the database when it starts. Its node hangs until A
    // has claimed the response, so that A, not B, claims it.
    let to_b = Proxy::start(net.rpc_url()).await?;
    to_b.set(Fault::Hang);
    let b = TowerProcess::start_instance(&net, "b", &db.url, &to_b.url, LEASE).await?;

    let tower = net.carol.address();
    let sent_before = net.carol.provider.get_transaction_count(tower).await?;
    let alice = net.chain(&net.alice).await?;
    let (old, sig) = bobs_old_proof(&net, &ch)?;
    let close = alice.close(&ch.params, Some((&old, &sig))).await?;
    let closed = dispute_in(&net, close.transaction_hash).await?;
    let closed_at = close.block_number.ok_or_else(|| eyre!("no block"))?;

    // A sees the close, claims the response and sends the refutation into the proxy.
    until("A sends its refutation", async || Ok(to_a.sends() > 0)).await?;
    let a_pid = a.pid().ok_or_else(|| eyre!("A is not running"))?;
    let holder = db.claim_holder(ch.id).await?;
    ensure!(
        holder
            .as_deref()
            .is_some_and(|h| h.starts_with(&format!("{a_pid}-"))),
        "the response is not claimed by A (pid {a_pid}): {holder:?}"
    );

    // B catches up past the close and finds the response claimed: it sends nothing.
    to_b.set(Fault::None);
    until("B processes the close's block", async || {
        Ok(b.checkpoint().await?.is_some_and(|at| at >= closed_at))
    })
    .await?;
    // B's response task starts once that block is processed and asks for the claim at once;
    // give it a moment to act wrongly before checking that it did not.
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(to_b.sends() == 0, "B sent while A held the claim");

    // A dies mid-response (SIGKILL: its claim is neither released nor renewed again).
    a.kill().await?;
    ensure!(
        net.carol.provider.get_transaction_count(tower).await? == sent_before,
        "a refutation reached the chain before A died"
    );

    // B takes over once A's lease runs out; its refutation lands before the deadline.
    let (state, _) = refuted(&net, &b, &ch, &closed, None).await?;
    ensure!(to_b.sends() > 0, "the refutation did not come from B");
    until(
        "B releases its claim once its refutation is mined",
        async || Ok(db.claim_holder(ch.id).await?.is_none()),
    )
    .await?;
    settle_and_check(&net, &alice, &ch.params, &state).await
}
