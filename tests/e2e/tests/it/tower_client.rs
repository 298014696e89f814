//! The client's tower client on a real chain: Bob's client, paid by Alice's, keeps a real
//! watchtower holding his newest proof by itself; Bob goes offline; Alice closes; the tower
//! refutes and Bob is paid exactly what the newest proof gave him. A tower that is down while
//! payments happen gets only the newest proof once it is back.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::{Address, B256, U256};
use eyre::{bail, ensure, eyre, Result};
use keel_client::{
    client::{ClientEvent, ManualClock, TowerHealth},
    Client, TowerConfig,
};
use keel_core::ChannelDomain;
use keel_e2e::{Devnet, MIN_PERIOD};
use keel_watchtower::api::ChannelJsonView;

use crate::client_flow::{chain_time, config, units, wait_for, wait_until, TempDir};

/// Longest wait for the tower or the tower client to act.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// Carol's tower in a process of its own (`tower_daemon`, the `keel-tower` daemon's code), over
/// a database of its own; killed with SIGKILL and restarted on the same address, so the tower
/// client's URL stays right and a killed tower answers nothing at all.
pub(crate) struct TowerDaemon {
    child: Option<tokio::process::Child>,
    database: PathBuf,
    at: SocketAddr,
}

impl TowerDaemon {
    pub(crate) async fn start(net: &Devnet, name: &str) -> Result<Self> {
        let mut this = Self {
            child: None,
            database: std::env::temp_dir().join(format!(
                "keel-e2e-tower-client-{name}-{}-{}.db",
                std::process::id(),
                net.chain_id
            )),
            at: "127.0.0.1:0".parse()?,
        };
        this.restart(net).await?;
        Ok(this)
    }

    /// Starts it (again) over its database, on the address it had; returns once it listens.
    pub(crate) async fn restart(&mut self, net: &Devnet) -> Result<()> {
        use tokio::io::{AsyncBufReadExt, BufReader};
        let d = &net.deployment;
        let deployment = format!(
            r#"{{"chainId":{},"deployedAtBlock":{},"channelFactory":"{}","vaultImplementation":"{}","secretRegistry":"{}","minChallengePeriod":{},"maxChallengePeriod":{}}}"#,
            d.chain_id,
            d.deployed_at_block,
            d.channel_factory,
            d.vault_implementation,
            d.secret_registry,
            d.min_challenge_period,
            d.max_challenge_period
        );
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_tower_daemon"))
            .env("KEEL_KEY", alloy::hex::encode(net.carol.signer.to_bytes()))
            .env("KEEL_RPC", net.rpc_url())
            .env("KEEL_DEPLOYMENT", deployment)
            .env("KEEL_TOWER_DB", &self.database)
            .env("KEEL_LISTEN", self.at.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .map_err(|_| eyre!("tower_daemon did not start listening"))??
            .ok_or_else(|| eyre!("tower_daemon exited before listening"))?;
        self.at = first
            .strip_prefix("listening ")
            .ok_or_else(|| eyre!("unexpected first line {first:?}"))?
            .parse()?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it with SIGKILL and waits until it is gone.
    pub(crate) async fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().ok_or_else(|| eyre!("no tower process"))?;
        child.start_kill()?;
        tokio::time::timeout(PATIENCE, child.wait()).await??;
        Ok(())
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.at)
    }

    pub(crate) async fn channel(&self, id: B256) -> Result<ChannelJsonView> {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/channels/{id}", self.url()))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        ensure!(response.status().is_success(), "GET: {}", response.status());
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }

    /// Polls the channel until `done` holds.
    pub(crate) async fn wait_for(
        &self,
        id: B256,
        what: &str,
        done: impl Fn(&ChannelJsonView) -> bool,
    ) -> Result<ChannelJsonView> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let view = self.channel(id).await?;
            if done(&view) {
                return Ok(view);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the tower did not {what}: {view:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for TowerDaemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.database.display()));
        }
    }
}

/// Alice's client, and Bob's whose tower client keeps `tower` informed; a channel Alice opened
/// with `deposit`, known to both.
pub(crate) struct Customers {
    pub(crate) net: Devnet,
    pub(crate) dir: TempDir,
    pub(crate) clock: ManualClock,
    pub(crate) alice: Client,
    pub(crate) bob: Client,
    pub(crate) id: B256,
}

impl Customers {
    pub(crate) async fn start(
        net: Devnet,
        name: &str,
        tower: &TowerDaemon,
        deposit: U256,
    ) -> Result<Self> {
        let dir = TempDir::new(name);
        let clock = ManualClock::new(chain_time(&net).await?);
        let alice = Client::start(config(&net, &dir, &clock, &net.alice, "alice")).await?;
        let mut bobs = config(&net, &dir, &clock, &net.bob, "bob");
        let mut towers = TowerConfig::new(tower.url(), net.carol.address());
        towers.retry_delay = Duration::from_millis(50);
        towers.max_retry_delay = Duration::from_millis(400);
        bobs.towers = vec![towers];
        let bob = Client::start(bobs).await?;
        let bob_at = bob.listen("127.0.0.1:0").await?;
        alice.connect(bob_at, net.bob.address()).await?;
        let mut bob_events = bob.subscribe();
        let id = alice
            .open_channel(
                net.chain_id,
                net.bob.address(),
                Address::ZERO,
                deposit,
                MIN_PERIOD,
            )
            .await?
            .id;
        wait_for(
            &mut bob_events,
            |e| matches!(e, ClientEvent::ChannelOpened { channel_id, .. } if *channel_id == id),
        )
        .await?;
        for client in [&alice, &bob] {
            wait_until(client, id, |i| i.deposits[0] == deposit).await?;
        }
        Ok(Self {
            net,
            dir,
            clock,
            alice,
            bob,
            id,
        })
    }

    /// Alice pays Bob `count` times `amount`, one at a time.
    pub(crate) async fn pay(&self, count: u64, amount: U256) -> Result<()> {
        for _ in 0..count {
            self.alice.pay(self.id, amount).await?;
        }
        Ok(())
    }

    /// Waits until Bob's client stored the tower's receipt for `nonce` (or a newer one).
    async fn receipt_for(&self, nonce: u64) -> Result<keel_client::store::SignedTowerReceipt> {
        let tower = self.net.carol.address();
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(r) = self.bob.tower_receipt(tower, self.id).await? {
                    if r.receipt.nonce >= nonce {
                        return Ok(r);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .map_err(|_| {
            eyre!(
                "no receipt for nonce {nonce}: {:?}",
                self.bob.tower_health()
            )
        })?
    }

    fn tower_health(&self) -> Result<TowerHealth> {
        self.bob
            .tower_health()
            .pop()
            .ok_or_else(|| eyre!("no tower configured"))
    }

    /// Moves the chain's and the clients' clocks forward together.
    pub(crate) async fn advance(&self, seconds: u64) -> Result<()> {
        self.net.advance_time(seconds).await?;
        self.clock.set(chain_time(&self.net).await?);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_client_is_protected_by_the_tower_its_client_kept_informed() -> Result<()> {
    let net = Devnet::start().await?;
    let tower = TowerDaemon::start(&net, "offline").await?;
    let c = Customers::start(net, "tower-offline", &tower, units("10")).await?;

    // Alice pays Bob 40 times; Bob's client hands each newest proof to the tower by itself.
    const PAYMENTS: u64 = 40;
    c.pay(PAYMENTS, units("0.1")).await?;
    let newest = c
        .bob
        .latest_peer_proof(c.id)
        .await?
        .ok_or_else(|| eyre!("Bob holds no proof"))?
        .0;
    ensure!(newest.nonce == PAYMENTS && newest.transferredAmount == units("4"));
    let signed = c.receipt_for(PAYMENTS).await?;

    // The stored receipt proves the tower's promise: its key signed the root of the batch the
    // receipt came in, which the stored path leads to from the receipt under the channel's
    // domain; for Bob, this channel and the newest nonce, watching long after today.
    let vault = c.alice.channel(c.id).await?.vault;
    let path = signed
        .batch_path
        .as_ref()
        .ok_or_else(|| eyre!("a receipt from the batch endpoint has no path"))?;
    ensure!(signed.receipt.tower == c.net.carol.address());
    keel_core::receipts::verify_batched(
        &signed.receipt,
        &ChannelDomain::new(c.net.chain_id, vault),
        c.net.chain_id,
        path,
        &signed.signature,
    )?;
    ensure!(signed.receipt.customer == c.net.bob.address() && signed.receipt.channelId == c.id);
    ensure!(signed.receipt.nonce == PAYMENTS);
    ensure!(signed.receipt.watchUntil > chain_time(&c.net).await? + u64::from(MIN_PERIOD));
    let held = tower.channel(c.id).await?;
    ensure!(held.appointments.len() == 1 && held.appointments[0].nonce == PAYMENTS);
    let health = c.tower_health()?;
    ensure!(
        health.healthy && health.registered && health.receipts >= 1,
        "{health:?}"
    );

    // Bob goes offline: his client, and with it his own chain monitor, stops.
    c.bob.clone().shutdown().await;
    let bob_before = c.net.bob.balance().await?;

    // Alice closes alone: on chain her payments to Bob start at nonce 0, as if she never paid.
    let mut alice_events = c.alice.subscribe();
    c.alice.force_close(c.id).await?;
    let view = tower
        .wait_for(c.id, "refute", |v| {
            v.responses.iter().any(|r| r.outcome == "mined")
        })
        .await?;
    ensure!(view.responses[0].nonce == PAYMENTS, "{view:?}");
    ensure!(
        view.dispute.as_ref().is_some_and(|d| d.nonce_a == PAYMENTS),
        "{view:?}"
    );

    let answered = wait_for(&mut alice_events, |e| {
        matches!(e, ClientEvent::DisputeAnswered { .. })
    })
    .await?;
    ensure!(
        answered
            == ClientEvent::DisputeAnswered {
                channel_id: c.id,
                closer_nonce: PAYMENTS
            },
        "{answered:?}"
    );

    // After the challenge period Alice settles (Bob pays no gas): Bob holds exactly the 4 ETH
    // the newest proof gave him.
    c.advance(u64::from(MIN_PERIOD) + 1).await?;
    c.alice.settle(c.id).await?;
    let settled = wait_for(
        &mut alice_events,
        |e| matches!(e, ClientEvent::Settled { channel_id, .. } if *channel_id == c.id),
    )
    .await?;
    ensure!(
        settled
            == ClientEvent::Settled {
                channel_id: c.id,
                payout_a: units("6"),
                payout_b: units("4")
            },
        "{settled:?}"
    );
    ensure!(c.net.bob.balance().await? - bob_before == units("4"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_down_during_payments_gets_only_the_newest_proof_once_back() -> Result<()> {
    let net = Devnet::start().await?;
    let mut tower = TowerDaemon::start(&net, "down").await?;
    let c = Customers::start(net, "tower-down", &tower, units("10")).await?;
    c.pay(1, units("0.01")).await?;
    c.receipt_for(1).await?;
    let before = c.tower_health()?;

    // The tower goes away; Alice keeps paying. Bob's client notices, says so, and keeps only
    // the channel marked, however many proofs arrive.
    let mut bob_events = c.bob.subscribe();
    tower.kill().await?;
    const PAYMENTS: u64 = 300;
    c.pay(PAYMENTS, units("0.01")).await?;
    let trouble = wait_for(&mut bob_events, |e| {
        matches!(e, ClientEvent::TowerTrouble { .. })
    })
    .await?;
    ensure!(
        matches!(trouble, ClientEvent::TowerTrouble { tower: t, .. } if t == c.net.carol.address())
    );
    let down = c.tower_health()?;
    ensure!(!down.healthy && down.last_error.is_some(), "{down:?}");
    ensure!(
        down.pending <= 1,
        "one channel, however many proofs: {down:?}"
    );

    // Back on the same address: the newest proof, and only it, is stored and acknowledged.
    tower.restart(&c.net).await?;
    let newest = PAYMENTS + 1;
    let signed = c.receipt_for(newest).await?;
    ensure!(signed.receipt.nonce == newest);
    wait_for(&mut bob_events, |e| {
        matches!(e, ClientEvent::TowerRecovered { .. })
    })
    .await?;
    let held = tower.channel(c.id).await?;
    ensure!(held.appointments.len() == 1 && held.appointments[0].nonce == newest);
    let after = c.tower_health()?;
    ensure!(after.healthy, "{after:?}");
    // Each attempt while it was down carried the one channel: far fewer than the payments.
    let sent = after.appointments - before.appointments;
    ensure!(
        sent < PAYMENTS / 4,
        "{sent} appointments for {PAYMENTS} payments: {after:?}"
    );
    Ok(())
}
