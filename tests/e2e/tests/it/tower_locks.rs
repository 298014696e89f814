//! A pending incoming lock whose secret the tower registers: Bob's client keeps the tower
//! holding his newest proof, the lock behind it and, once he claims it, its secret; Alice never
//! pays the lock out (she is away when he reveals it); Bob goes offline; Alice closes with his
//! payments left out. The tower refutes, registers the secret, settles after the challenge
//! period and unlocks (killed and restarted in between, it resumes from its database): Bob, who
//! sends nothing and pays no gas, ends with his payments and the lock, to the wei.

use std::time::Duration;

use alloy::primitives::B256;
use eyre::{ensure, eyre, Result};
use keel_client::{client::ClientEvent, Client};
use keel_e2e::{Devnet, MIN_PERIOD};

use crate::{
    client_flow::{chain_time, config, units, wait_for},
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
