//! A pending incoming lock whose secret the tower registers: Bob's client keeps the tower
//! holding his newest proof, the lock behind it and, once he claims it, its secret; Alice never
//! pays the lock out (she is away when he reveals it); Bob goes offline; Alice closes with his
//! payments left out. The tower refutes, registers the secret, settles after the challenge
//! period and unlocks (killed and restarted in between, it resumes from its database): Bob, who
//! sends nothing and pays no gas, ends with his payments and the lock, to the wei.
//!
//! A released outgoing lock the tower records: Bob's client hands the tower Alice's release of
//! a lock he sent her and she refused; Bob goes offline; Alice closes with Bob's older proof
//! that still holds the lock and registers its secret. The tower records the release in the
//! vault, so the lock goes back to Bob at `unlock`.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use eyre::{ensure, eyre, Result};
use keel_client::{
    chain::{ChainEvent, ChainEventKind},
    client::ClientEvent,
    store::ChainStatus,
    Client, ClientError,
};
use keel_core::{forwarding::FailureReason, Side};
use keel_e2e::{Devnet, MIN_PERIOD};

use crate::{
    client_flow::{chain_time, config, units, wait_for, wait_until},
    tower_client::{Customers, TowerDaemon, PATIENCE},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_incoming_lock_whose_secret_the_tower_registers() -> Result<()> {
    let net = Devnet::start().await?;
    let mut tower = TowerDaemon::start(&net, "locks").await?;
    let mut c = Customers::start(net, "tower-locks", &tower, units("10")).await?;

    // Alice pays Bob 3 × 0.1 ETH, then locks 1 ETH for him behind a secret he will know. The
    // lock outlives the challenge period: only a registered secret pays it to Bob.
    const PAYMENTS: u64 = 3;
    c.pay(PAYMENTS, units("0.1")).await?;
    let secret = B256::repeat_byte(0x5e);
    let expiration = chain_time(&c.net).await? + 3 * u64::from(MIN_PERIOD);
    let lock = c
        .alice
        .pay_locked(c.id, units("1"), keel_core::secret_hash(secret), expiration)
        .await?;
    let locked_nonce = PAYMENTS + 1;
    let view = tower
        .wait_for(c.id, "hold the lock", |v| {
            v.appointments
                .first()
                .is_some_and(|a| a.nonce == locked_nonce && a.locks == 1)
        })
        .await?;
    ensure!(view.appointments[0].secrets == 0, "{view:?}");

    // Alice is away when Bob claims the lock, so she never pays it out: it stays pending, and
    // Bob's client hands its secret to the tower under the same proof.
    c.alice.clone().shutdown().await;
    let bob = c.bob.clone();
    let claiming = tokio::spawn(async move { bob.claim_lock(c.id, secret).await });
    tower
        .wait_for(c.id, "hold the secret", |v| {
            v.appointments
                .first()
                .is_some_and(|a| a.nonce == locked_nonce && a.secrets == 1)
        })
        .await?;

    // Bob goes offline for good.
    claiming.abort();
    c.bob.clone().shutdown().await;
    let bob_before = c.net.bob.balance().await?;

    // Alice comes back and closes alone: on chain her payments to Bob, and the lock, are not
    // there until the tower refutes with the proof it holds.
    c.alice = Client::start(config(&c.net, &c.dir, &c.clock, &c.net.alice, "alice")).await?;
    let mut alice_events = c.alice.subscribe();
    c.alice.force_close(c.id).await?;
    let view = tower
        .wait_for(c.id, "refute", |v| {
            v.responses.iter().any(|r| r.outcome == "mined")
        })
        .await?;
    ensure!(
        view.dispute
            .as_ref()
            .is_some_and(|d| d.nonce_a == locked_nonce),
        "{view:?}"
    );

    // The tower registers the secret while the channel is in its challenge period, long before
    // the lock expires.
    let chain = c.net.chain(&c.net.bob).await?;
    let registered_at = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(at) = chain.revealed_at(lock.secret_hash).await? {
                return Ok::<_, eyre::Report>(at);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .map_err(|_| eyre!("the tower never registered the secret"))??;
    ensure!(registered_at <= lock.expiration);

    // The tower is killed and restarted mid-period: what is left (settling, unlocking) is
    // resumed from its database.
    tower.kill().await?;
    tower.restart(&c.net).await?;

    // After the challenge period the tower settles and unlocks, nobody else acting: Bob gets
    // his 0.3 ETH of payments and the 1 ETH lock.
    c.advance(u64::from(MIN_PERIOD) + 1).await?;
    let settled = wait_for(
        &mut alice_events,
        |e| matches!(e, ClientEvent::Settled { channel_id, .. } if *channel_id == c.id),
    )
    .await?;
    ensure!(
        settled
            == ClientEvent::Settled {
                channel_id: c.id,
                payout_a: units("8.7"),
                payout_b: units("0.3")
            },
        "{settled:?}"
    );
    let expected = bob_before + units("1.3");
    tokio::time::timeout(PATIENCE, async {
        while c.net.bob.balance().await? < expected {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok::<_, eyre::Report>(())
    })
    .await
    .map_err(|_| eyre!("the lock was never unlocked to Bob"))??;
    ensure!(c.net.bob.balance().await? == expected, "to the wei");
    // The restarted tower did both, and did not register the secret again (it read the
    // registry first). Bob is paid when the unlock is mined; the tower counts it once its
    // receipt arrives, a moment later.
    let lines = ["settled", "unlocked"]
        .map(|step| format!("keel_tower_lock_steps_total{{step=\"{step}\"}} 1"));
    let metrics = tokio::time::timeout(PATIENCE, async {
        loop {
            let metrics = reqwest::get(format!("{}/metrics", tower.url()))
                .await?
                .text()
                .await?;
            if lines.iter().all(|line| metrics.lines().any(|l| l == line)) {
                return Ok::<_, eyre::Report>(metrics);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .map_err(|_| eyre!("the tower never counted {lines:?}"))??;
    ensure!(
        !metrics.contains("step=\"registered\""),
        "registered again after the restart: {metrics}"
    );
    // Nothing is left to do: the tower forgets the channel.
    tower
        .wait_for(c.id, "prune the channel", |v| v.appointments.is_empty())
        .await?;
    ensure!(c.net.bob.balance().await? == expected);
    Ok(())
}

/// Bob sends Alice a lock she refuses (she knows no such payment) and releases; Bob takes it
/// back, and his client hands her release to the tower under the proof it already holds. Bob
/// goes offline. Alice closes with Bob's proof from before the removal, which still holds the
/// lock, and registers its secret in time. The tower records the release in the vault
/// (`releaseLocks`, Bob's side), so after settlement `unlock` with that proof's locks gives the
/// lock back to Bob, not to Alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_outgoing_lock_the_tower_records_goes_back_to_its_offline_sender() -> Result<()>
{
    let net = Devnet::start().await?;
    let tower = TowerDaemon::start(&net, "releases").await?;
    let c = Customers::start(net, "tower-releases", &tower, units("10")).await?;

    // Alice pays Bob, so the tower holds a proof of hers for him (Bob's appointment).
    c.pay(3, units("0.1")).await?;
    tower
        .wait_for(c.id, "hold Bob's proof", |v| {
            v.appointments.first().is_some_and(|a| a.nonce == 3)
        })
        .await?;

    // Bob pays Alice behind a secret she has no invoice for: she refuses and releases it.
    let secret = B256::repeat_byte(0x7e);
    let amount = units("0.1");
    c.bob.add_node_key(&c.alice.node_key());
    let route = c
        .bob
        .find_route(c.net.chain_id, c.net.alice.address(), Address::ZERO, amount)
        .await?;
    let mut alice_events = c.alice.subscribe();
    match c
        .bob
        .pay_route(&route, keel_core::secret_hash(secret))
        .await
    {
        Err(ClientError::PaymentFailed { failure, .. })
            if failure.reason == FailureReason::UnknownPayment => {}
        other => return Err(eyre!("expected UnknownPayment, got {other:?}")),
    }
    let ClientEvent::LockReceived { lock, .. } = wait_for(
        &mut alice_events,
        |e| matches!(e, ClientEvent::LockReceived { channel_id, .. } if *channel_id == c.id),
    )
    .await?
    else {
        unreachable!()
    };
    let info = wait_until(&c.bob, c.id, |i| i.outgoing_locks.is_empty()).await?;
    tower
        .wait_for(c.id, "hold Alice's release", |v| {
            v.appointments.first().is_some_and(|a| a.releases == 1)
        })
        .await?;

    // Bob goes offline for good.
    c.bob.clone().shutdown().await;

    let (stale, signature) = crate::release::stale_proof(
        &c.alice,
        c.id,
        lock,
        &c.net.bob.signer,
        c.net.chain_id,
        info.vault,
    )
    .await?;
    let params = c.alice.channel_params(c.id).await?;
    let alices_chain = c.net.chain(&c.net.alice).await?;
    alices_chain
        .close(&params, Some((&stale, &signature)))
        .await?;
    ensure!(alices_chain.register_secret(secret).await?.status());

    // The tower records Bob's release while the channel is in its challenge period.
    let view = tower
        .wait_for(c.id, "record the release", |v| {
            v.lock_steps.iter().any(|s| s.step == "released")
        })
        .await?;
    ensure!(
        view.lock_steps
            .iter()
            .any(|s| s.step == "released" && s.customer == c.net.bob.address()),
        "{view:?}"
    );

    // The tower also refutes with Alice's payments to Bob; Alice settles once her client has
    // that refutation (settle passes the dispute state on record).
    tower
        .wait_for(c.id, "refute", |v| {
            v.responses.iter().any(|r| r.outcome == "mined")
        })
        .await?;
    let alice_side = info.me.other();
    wait_until(&c.alice, c.id, |i| {
        matches!(i.chain, ChainStatus::Disputed(d)
            if (if alice_side == Side::A { d.from_a } else { d.from_b }).nonce == 3)
    })
    .await?;
    c.advance(u64::from(MIN_PERIOD) + 1).await?;
    let settled = c.alice.settle(c.id).await?;
    let kinds = |receipt| -> Result<Vec<ChainEventKind>> {
        Ok(
            ChainEvent::from_receipt(c.net.chain_id, info.vault, c.id, receipt)?
                .into_iter()
                .map(|e| e.kind)
                .collect(),
        )
    };
    let state = kinds(&settled)?
        .into_iter()
        .find_map(|k| match k {
            ChainEventKind::LocksRetained(state) => Some(state),
            _ => None,
        })
        .ok_or_else(|| eyre!("settled without keeping Bob's lock"))?;
    let unlocked = alices_chain
        .unlock(&params, &state, info.me, &[lock])
        .await?;
    let kinds = kinds(&unlocked)?;
    ensure!(
        kinds.iter().any(
            |k| matches!(k, ChainEventKind::Unlocked { sender, to_receiver, to_sender, .. }
            if *sender == info.me && to_receiver.is_zero() && *to_sender == lock.amount)
        ),
        "{kinds:?}"
    );
    Ok(())
}
