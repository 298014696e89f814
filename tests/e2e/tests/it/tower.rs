//! The watchtower on a real chain: Bob, paid by Alice, gives the tower his newest proof over
//! HTTP and goes offline; Alice closes with an old state; the tower refutes in time and Bob is
//! paid exactly what the newest proof gave him. Bad appointments are refused over HTTP with
//! typed reasons and nothing is stored.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::{
    primitives::{utils::parse_ether, Bytes, B256, U256},
    providers::Provider,
    sol_types::SolEvent,
};
use eyre::{bail, ensure, eyre, Result};
use keel_bindings::ChannelVault;
use keel_client::chain::FeePolicy;
use keel_client::chain::{DisputeState, VaultAbi};
use keel_core::{ChannelDomain, TowerReceipt, TowerRegistration};
use keel_e2e::{Channel, Devnet, Participant, MIN_PERIOD};
use keel_watchtower::{
    api::{AppointmentRequest, ChannelJsonView, ReceiptJson, RegistrationRequest},
    Limits, Tower, TowerConfig,
};
use serde_json::Value;

/// Longest wait for the tower to act (it polls the chain every 50 ms).
pub(crate) const TOWER_TIMEOUT: Duration = Duration::from_secs(60);

/// A tower run by Carol's key over a database of its own: in this process, or in a child
/// process (`tower_daemon`) the test can kill with SIGKILL.
pub(crate) struct TowerProcess {
    tower: Option<Tower>,
    child: Option<tokio::process::Child>,
    database: PathBuf,
    url: String,
    /// The refutations' fee caps and pace (in this process only).
    pub(crate) fees: FeePolicy,
    /// The follower's confirmation depth (in this process only).
    pub(crate) confirmations: u64,
    /// Accounts refuting besides Carol's (in this process only).
    pub(crate) refuters: Vec<alloy::signers::local::PrivateKeySigner>,
    /// The child's environment beyond (and over) the defaults `restart_child` sets.
    child_env: Vec<(&'static str, String)>,
}

impl TowerProcess {
    fn unstarted(net: &Devnet, name: &str) -> Self {
        let database = std::env::temp_dir().join(format!(
            "keel-e2e-tower-{name}-{}-{}.db",
            std::process::id(),
            net.chain_id
        ));
        Self {
            tower: None,
            child: None,
            database,
            url: String::new(),
            fees: test_fees(),
            confirmations: 0,
            refuters: Vec::new(),
            child_env: Vec::new(),
        }
    }

    pub(crate) async fn start(net: &Devnet, name: &str) -> Result<Self> {
        Self::start_with(net, name, test_fees()).await
    }

    /// As [`TowerProcess::start`], refuting under `fees`.
    pub(crate) async fn start_with(net: &Devnet, name: &str, fees: FeePolicy) -> Result<Self> {
        let mut this = Self::unstarted(net, name);
        this.fees = fees;
        this.restart(net, "127.0.0.1:0".parse()?).await?;
        Ok(this)
    }

    /// As [`TowerProcess::start`], acting on events `confirmations` deep (and counting its
    /// refutations mined only as deep).
    pub(crate) async fn start_confirming(
        net: &Devnet,
        name: &str,
        confirmations: u64,
    ) -> Result<Self> {
        let mut this = Self::unstarted(net, name);
        this.confirmations = confirmations;
        this.restart(net, "127.0.0.1:0".parse()?).await?;
        Ok(this)
    }

    /// As [`TowerProcess::start`], refuting from `refuters`' accounts as well as Carol's.
    pub(crate) async fn start_refuting_from(
        net: &Devnet,
        name: &str,
        refuters: Vec<alloy::signers::local::PrivateKeySigner>,
    ) -> Result<Self> {
        let mut this = Self::unstarted(net, name);
        this.refuters = refuters;
        this.restart(net, "127.0.0.1:0".parse()?).await?;
        Ok(this)
    }

    /// As [`TowerProcess::start`], in a child process.
    async fn start_child(net: &Devnet, name: &str) -> Result<Self> {
        let mut this = Self::unstarted(net, name);
        this.restart_child(net).await?;
        Ok(this)
    }

    /// One of several instances over the PostgreSQL database at `database_url`, in a child
    /// process, reaching the chain through `rpc_url`; its claims on responses last
    /// `claim_lease` unless renewed.
    pub(crate) async fn start_instance(
        net: &Devnet,
        name: &str,
        database_url: &str,
        rpc_url: &str,
        claim_lease: Duration,
    ) -> Result<Self> {
        let mut this = Self::unstarted(net, name);
        this.child_env = vec![
            ("KEEL_TOWER_DB", database_url.to_owned()),
            ("KEEL_RPC", rpc_url.to_owned()),
            ("KEEL_CLAIM_LEASE_MS", claim_lease.as_millis().to_string()),
        ];
        this.restart_child(net).await?;
        Ok(this)
    }

    /// The child process's id, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(tokio::process::Child::id)
    }

    /// The follower's last processed block, from `GET /v1/health`.
    pub(crate) async fn checkpoint(&self) -> Result<Option<u64>> {
        let health: Value = reqwest::Client::new()
            .get(format!("{}/v1/health", self.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?;
        Ok(health["checkpoint"].as_u64())
    }

    /// Starts `tower_daemon` over the database; returns once its API listens.
    async fn restart_child(&mut self, net: &Devnet) -> Result<()> {
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
            .env("KEEL_LISTEN", "127.0.0.1:0")
            .envs(self.child_env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let first = tokio::time::timeout(TOWER_TIMEOUT, lines.next_line())
            .await
            .map_err(|_| eyre!("tower_daemon did not start listening"))??
            .ok_or_else(|| eyre!("tower_daemon exited before listening"))?;
        let at: SocketAddr = first
            .strip_prefix("listening ")
            .ok_or_else(|| eyre!("unexpected first line {first:?}"))?
            .parse()?;
        self.url = format!("http://{at}");
        self.child = Some(child);
        Ok(())
    }

    /// Kills the child process with SIGKILL and waits until it is gone.
    pub(crate) async fn kill(&mut self) -> Result<()> {
        let mut child = self.child.take().ok_or_else(|| eyre!("no tower process"))?;
        child.start_kill()?;
        tokio::time::timeout(TOWER_TIMEOUT, child.wait()).await??;
        Ok(())
    }

    /// Starts the tower over its database (again), listening on `listen`.
    async fn restart(&mut self, net: &Devnet, listen: SocketAddr) -> Result<()> {
        let config = TowerConfig {
            chain: net.chain_config(self.confirmations),
            database: self.database.clone().into(),
            listen,
            quota: 10,
            watch_period: 30 * 86_400,
            limits: Limits {
                max_body: 16 * 1024,
                ..Limits::default()
            },
            fees: self.fees,
            claim_lease: keel_watchtower::responder::CLAIM_LEASE,
            refuters: self.refuters.clone(),
        };
        let tower = Tower::start(config, net.carol.signer.clone()).await?;
        self.url = format!("http://{}", tower.local_addr());
        self.tower = Some(tower);
        Ok(())
    }

    pub(crate) async fn post(&self, path: &str, body: Vec<u8>) -> Result<(u16, Value)> {
        let response = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub(crate) async fn channel(&self, id: B256) -> Result<ChannelJsonView> {
        let response = reqwest::Client::new()
            .get(format!("{}/v1/channels/{id}", self.url))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "GET channel: {}",
            response.status()
        );
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }

    /// Polls the channel until `done` holds, or fails after [`TOWER_TIMEOUT`].
    pub(crate) async fn wait_for(
        &self,
        id: B256,
        what: &str,
        done: impl Fn(&ChannelJsonView) -> bool,
    ) -> Result<ChannelJsonView> {
        let deadline = tokio::time::Instant::now() + TOWER_TIMEOUT;
        loop {
            let view = self.channel(id).await?;
            if done(&view) {
                return Ok(view);
            }
            if tokio::time::Instant::now() > deadline {
                bail!("the tower did not {what} within {TOWER_TIMEOUT:?}: {view:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TowerProcess {
    fn drop(&mut self) {
        drop(self.tower.take());
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", self.database.display()));
        }
    }
}

/// The tower's fee policy in these tests: the default caps, a replacement at most every 300 ms
/// (the devnet mines a block per transaction, or when a test says so).
pub(crate) fn test_fees() -> FeePolicy {
    FeePolicy {
        bump_interval: Duration::from_millis(300),
        ..FeePolicy::DEFAULT
    }
}

pub(crate) use keel_e2e::tower::{appointment, proof};

fn sig(bytes: [u8; 65]) -> Bytes {
    bytes.to_vec().into()
}

/// `who` registers with the tower at `tower`.
pub(crate) async fn register(net: &Devnet, tower: &TowerProcess, who: &Participant) -> Result<()> {
    let registration = TowerRegistration {
        customer: who.address(),
        tower: net.carol.address(),
    };
    let request = RegistrationRequest {
        customer: who.address(),
        signature: sig(keel_core::sign_message(
            &who.signer,
            &registration,
            net.chain_id,
            net.carol.address(),
        )?),
    };
    let (status, body) = tower
        .post("/v1/customers", serde_json::to_vec(&request)?)
        .await?;
    ensure!(status == 201, "registration refused: {status} {body}");
    Ok(())
}

/// Submits an appointment; returns the receipt after checking the tower's signature on it.
pub(crate) async fn submit(
    net: &Devnet,
    tower: &TowerProcess,
    ch: &Channel,
    request: &AppointmentRequest,
) -> Result<ReceiptJson> {
    let (status, body) = tower
        .post("/v1/appointments", serde_json::to_vec(request)?)
        .await?;
    ensure!(status == 200, "appointment refused: {status} {body}");
    let receipt: ReceiptJson = serde_json::from_value(body)?;
    let signed = TowerReceipt {
        tower: receipt.tower,
        customer: receipt.customer,
        channelId: receipt.channel_id,
        nonce: receipt.nonce,
        acceptedAt: receipt.accepted_at,
        watchUntil: receipt.watch_until,
    };
    let digest = ChannelDomain::new(net.chain_id, ch.vault).signing_hash(&signed);
    keel_core::verify(&digest, &receipt.signature, net.carol.address())?;
    ensure!(receipt.tower == net.carol.address() && receipt.channel_id == ch.id);
    Ok(receipt)
}

/// The dispute state a `Closed` or `Refuted` event in transaction `tx` published.
pub(crate) async fn dispute_in(net: &Devnet, tx: B256) -> Result<DisputeState> {
    let receipt = net
        .alice
        .provider
        .get_transaction_receipt(tx)
        .await?
        .ok_or_else(|| eyre!("no receipt for {tx}"))?;
    for log in receipt.inner.logs() {
        if let Ok(e) = ChannelVault::Refuted::decode_log_data(log.data()) {
            return Ok(DisputeState::from_abi(&e.state)?);
        }
        if let Ok(e) = ChannelVault::Closed::decode_log_data(log.data()) {
            return Ok(DisputeState::from_abi(&e.state)?);
        }
    }
    bail!("no dispute event in {tx}")
}

#[tokio::test]
async fn tower_refutes_a_stale_close_and_the_offline_party_is_paid_its_newest_balance() -> Result<()>
{
    let net = Devnet::start().await?;
    let ch = net.open_eth(1, parse_ether("10")?).await?;
    net.top_up(&ch, &net.bob, parse_ether("2")?).await?;
    let tower = TowerProcess::start(&net, "refute").await?;
    register(&net, &tower, &net.bob).await?;

    // Alice pays Bob 5 ETH over five proofs; Bob pays Alice 1 ETH (nonce 2). After each payment
    // Bob's newest proof goes to the tower; the tower keeps only the newest.
    let alices: Vec<_> = (1..=5u64)
        .map(|n| proof(&ch, n, U256::from(n) * parse_ether("1").unwrap()))
        .collect();
    for p in &alices[..3] {
        let receipt = submit(
            &net,
            &tower,
            &ch,
            &appointment(&net, &ch, &net.alice, &net.bob, p)?,
        )
        .await?;
        assert_eq!(receipt.nonce, p.nonce);
    }
    submit(
        &net,
        &tower,
        &ch,
        &appointment(&net, &ch, &net.alice, &net.bob, &alices[4])?,
    )
    .await?;
    let (status, body) = tower
        .post(
            "/v1/appointments",
            serde_json::to_vec(&appointment(&net, &ch, &net.alice, &net.bob, &alices[3])?)?,
        )
        .await?;
    assert_eq!((status, body["error"].as_str()), (409, Some("stale_nonce")));
    let held = tower.channel(ch.id).await?;
    assert_eq!(held.appointments.len(), 1);
    assert_eq!(held.appointments[0].nonce, 5);
    let bobs = proof(&ch, 2, parse_ether("1")?);

    // Bob goes offline: nothing of his runs from here on. Alice closes with Bob's proof, leaving
    // her own payments (5 ETH) off the record.
    let alice = net.chain(&net.alice).await?;
    let bob_sig = keel_core::sign_message(&net.bob.signer, &bobs, net.chain_id, ch.vault)?;
    let close = alice.close(&ch.params, Some((&bobs, &bob_sig))).await?;
    let closed = dispute_in(&net, close.transaction_hash).await?;
    assert_eq!(
        closed.from_a.nonce, 0,
        "the closer's own proof is not on record"
    );

    let view = tower
        .wait_for(ch.id, "refute", |v| {
            v.responses.iter().any(|r| r.outcome == "mined")
        })
        .await?;
    let response = &view.responses[0];
    assert_eq!((response.customer, response.nonce), (net.bob.address(), 5));
    let refuted = dispute_in(&net, response.tx_hash.ok_or_else(|| eyre!("no tx hash"))?).await?;
    assert_eq!(refuted.from_a.nonce, 5);
    assert_eq!(refuted.from_a.transferred, parse_ether("5")?);
    assert_eq!(refuted.deadline, closed.deadline);
    let now = net.latest_timestamp().await?;
    assert!(
        now <= closed.deadline,
        "refuted at {now}, after the deadline {}",
        closed.deadline
    );
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", tower.url))
        .timeout(Duration::from_secs(10))
        .send()
        .await?
        .text()
        .await?;
    for line in [
        "keel_tower_response_seconds_count 1",
        "keel_tower_responses_total{outcome=\"mined\"} 1",
        "keel_tower_refusals_total{reason=\"stale_nonce\"} 1",
        "keel_tower_appointments_accepted_total 4",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }

    // After the challenge period, settlement pays Bob exactly his newest balance: his deposit 2,
    // plus 5 from Alice, minus the 1 he paid her. Alice settles, so Bob pays no gas.
    net.advance_time(u64::from(MIN_PERIOD) + 1).await?;
    let bob_before = net.bob.balance().await?;
    alice.settle(&ch.params, &refuted).await?;
    let expected = refuted.settlement()?;
    assert_eq!(expected.payout_b, parse_ether("6")?);
    assert_eq!(net.bob.balance().await? - bob_before, parse_ether("6")?);

    // The tower forgets the settled channel.
    tower
        .wait_for(ch.id, "prune the settled channel", |v| {
            v.appointments.is_empty()
        })
        .await?;
    Ok(())
}

#[tokio::test]
async fn bad_appointments_are_refused_over_http_with_typed_reasons_and_nothing_stored() -> Result<()>
{
    let net = Devnet::start().await?;
    let ch = net.open_eth(2, parse_ether("10")?).await?;
    let tower = TowerProcess::start(&net, "intake").await?;
    let good = proof(&ch, 3, parse_ether("1")?);
    let request = appointment(&net, &ch, &net.alice, &net.bob, &good)?;

    // Not registered yet.
    let (status, body) = tower
        .post("/v1/appointments", serde_json::to_vec(&request)?)
        .await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (403, Some("unknown_customer"))
    );
    register(&net, &tower, &net.bob).await?;

    let mut wrong_signature = request.clone();
    wrong_signature.sender_signature = request.authorisation.clone(); // Bob's, not Alice's.
    let mut forged_amount = request.clone();
    forged_amount.proof.transferred_amount = parse_ether("9")?;
    // Carol signs as the "customer": she is not in the channel.
    let mut stranger = appointment(&net, &ch, &net.alice, &net.carol, &good)?;
    stranger.customer = net.carol.address();
    let mut foreign = request.clone();
    foreign.chain_id = net.chain_id + 1;
    // A channel never opened: signed correctly, but no vault on chain.
    let unopened = net.channel(net.params(alloy::primitives::Address::ZERO, 99));
    let ghost = appointment(
        &net,
        &unopened,
        &net.alice,
        &net.bob,
        &proof(&unopened, 3, U256::from(1)),
    )?;
    let cases = [
        (
            serde_json::to_vec(&wrong_signature)?,
            400,
            "bad_sender_signature",
        ),
        (
            serde_json::to_vec(&forged_amount)?,
            400,
            "bad_sender_signature",
        ),
        (serde_json::to_vec(&stranger)?, 400, "not_participant"),
        (serde_json::to_vec(&foreign)?, 400, "foreign_chain"),
        (serde_json::to_vec(&ghost)?, 400, "unknown_channel"),
        (
            b"{\"chainId\": 1, \"channel\": ".to_vec(),
            400,
            "malformed_json",
        ),
        (b"[1, 2, 3]".to_vec(), 422, "invalid_fields"),
        (vec![b' '; 17 * 1024], 413, "body_too_large"),
    ];
    for (body, want_status, want_reason) in cases {
        let (status, answer) = tower.post("/v1/appointments", body).await?;
        assert_eq!(
            (status, answer["error"].as_str()),
            (want_status, Some(want_reason)),
            "{answer}"
        );
        assert!(tower.channel(ch.id).await?.appointments.is_empty());
    }
    assert!(tower.channel(unopened.id).await?.appointments.is_empty());

    submit(&net, &tower, &ch, &request).await?;
    let stale = appointment(
        &net,
        &ch,
        &net.alice,
        &net.bob,
        &proof(&ch, 2, parse_ether("2")?),
    )?;
    let (status, body) = tower
        .post("/v1/appointments", serde_json::to_vec(&stale)?)
        .await?;
    assert_eq!((status, body["error"].as_str()), (409, Some("stale_nonce")));
    let held = tower.channel(ch.id).await?;
    assert_eq!(held.appointments.len(), 1);
    assert_eq!(held.appointments[0].nonce, 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tower_killed_before_a_close_and_restarted_mid_period_still_refutes() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(3, parse_ether("10")?).await?;
    net.top_up(&ch, &net.bob, parse_ether("2")?).await?;
    let mut tower = TowerProcess::start_child(&net, "restart").await?;
    register(&net, &tower, &net.bob).await?;
    let newest = proof(&ch, 5, parse_ether("5")?);
    submit(
        &net,
        &tower,
        &ch,
        &appointment(&net, &ch, &net.alice, &net.bob, &newest)?,
    )
    .await?;

    // The tower dies (SIGKILL: no shutdown of any kind); Alice closes with Bob's old proof while
    // it is down, and half the challenge period passes.
    tower.kill().await?;
    let alice = net.chain(&net.alice).await?;
    let bobs = proof(&ch, 2, parse_ether("1")?);
    let bob_sig = keel_core::sign_message(&net.bob.signer, &bobs, net.chain_id, ch.vault)?;
    let close = alice.close(&ch.params, Some((&bobs, &bob_sig))).await?;
    let closed = dispute_in(&net, close.transaction_hash).await?;
    net.advance_time(u64::from(MIN_PERIOD) / 2).await?;

    // Restarted over the same database, it finds the channel, catches up from its checkpoint
    // and refutes before the deadline.
    tower.restart_child(&net).await?;
    let view = tower
        .wait_for(ch.id, "refute after its restart", |v| {
            v.responses.iter().any(|r| r.outcome == "mined")
        })
        .await?;
    let refuted = dispute_in(
        &net,
        view.responses[0]
            .tx_hash
            .ok_or_else(|| eyre!("no tx hash"))?,
    )
    .await?;
    assert_eq!(refuted.from_a.nonce, 5);
    assert_eq!(refuted.deadline, closed.deadline);

    net.advance_time(u64::from(MIN_PERIOD)).await?;
    let bob_before = net.bob.balance().await?;
    alice.settle(&ch.params, &refuted).await?;
    assert_eq!(net.bob.balance().await? - bob_before, parse_ether("6")?);
    Ok(())
}

#[tokio::test]
async fn a_proof_sent_during_the_challenge_period_is_submitted_too() -> Result<()> {
    let net = Devnet::start().await?;
    let ch = net.open_eth(4, parse_ether("10")?).await?;
    let tower = TowerProcess::start(&net, "late").await?;
    register(&net, &tower, &net.bob).await?;
    let first = proof(&ch, 3, parse_ether("3")?);
    submit(
        &net,
        &tower,
        &ch,
        &appointment(&net, &ch, &net.alice, &net.bob, &first)?,
    )
    .await?;

    // Alice closes with nothing from Bob; the tower refutes with nonce 3.
    let alice = net.chain(&net.alice).await?;
    alice.close(&ch.params, None).await?;
    let view = tower
        .wait_for(ch.id, "refute with nonce 3", |v| {
            v.dispute.as_ref().is_some_and(|d| d.nonce_a == 3)
        })
        .await?;
    assert_eq!(view.responses[0].nonce, 3);

    // Bob, back online mid-period, sends a newer proof he had received; no event will announce
    // it, yet the tower submits it too.
    let newer = proof(&ch, 7, parse_ether("7")?);
    submit(
        &net,
        &tower,
        &ch,
        &appointment(&net, &ch, &net.alice, &net.bob, &newer)?,
    )
    .await?;
    let view = tower
        .wait_for(ch.id, "refute with nonce 7", |v| {
            // The vault's event can reach the tower before its own receipt does: wait for both.
            v.dispute.as_ref().is_some_and(|d| d.nonce_a == 7)
                && v.responses
                    .first()
                    .is_some_and(|r| r.nonce == 7 && r.outcome == "mined")
        })
        .await?;
    let refuted = dispute_in(
        &net,
        view.responses[0]
            .tx_hash
            .ok_or_else(|| eyre!("no tx hash"))?,
    )
    .await?;
    assert_eq!(refuted.from_a.transferred, parse_ether("7")?);

    // A channel closed before the tower ever heard of it: found from the deployment block.
    let late = net.open_eth(5, parse_ether("10")?).await?;
    alice.close(&late.params, None).await?;
    let proof_late = proof(&late, 2, parse_ether("2")?);
    submit(
        &net,
        &tower,
        &late,
        &appointment(&net, &late, &net.alice, &net.bob, &proof_late)?,
    )
    .await?;
    tower
        .wait_for(
            late.id,
            "refute a channel closed before the appointment",
            |v| v.dispute.as_ref().is_some_and(|d| d.nonce_a == 2),
        )
        .await?;
    Ok(())
}
