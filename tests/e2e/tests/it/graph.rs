//! The routing graph against the chain (`Config::check_announcements`, on by default): a
//! channel another node announces enters the graph only once its vault is found open on
//! Anvil, with what the vault holds (kept current as deposits and withdrawals are mined), and
//! leaves it when the vault closes; an announcement whose
//! signatures verify but whose vault does not exist (or no longer is open) never enters and is
//! never relayed.

use std::time::Duration;

use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use eyre::{ensure, eyre, Result};
use keel_client::{transport::Transport, Client};
use keel_core::{
    channel_id, forwarding::ChannelAnnouncement, sign_hash, vault_address, wire::Message,
    ChannelDomain, ChannelParams, B256, U256,
};

use crate::{client_flow::units, multihop::Line};

/// Polls `probe` for up to 30 s.
async fn eventually(what: &str, mut probe: impl FnMut() -> bool) -> Result<()> {
    for _ in 0..600 {
        if probe() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(eyre!("never: {what}"))
}

/// Whether `client` can route a payment to `to` in ETH.
async fn routes_to(client: &Client, chain_id: u64, to: Address) -> bool {
    client
        .find_route(chain_id, to, Address::ZERO, U256::from(1))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gossiped_channel_holds_its_vaults_capacity_as_it_changes_and_leaves_the_graph_when_closed(
) -> Result<()> {
    let line = Line::start("graph-close", 3).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let chain_id = line.net.chain_id;
    let deposit = units("1");
    line.open(0, Address::ZERO, deposit).await?;
    let bc = line.open(1, Address::ZERO, deposit).await?;
    line.gossip(1, bc, Address::ZERO).await?;

    // What Alice's graph holds is what the vault holds, read from the chain.
    ensure!(
        alice.graph_capacity(bc) == Some(deposit),
        "Alice holds {:?} for B–C, the vault {deposit}",
        alice.graph_capacity(bc)
    );
    ensure!(alice.announced_channels_followed() == 1);
    ensure!(bob.announced_channels_followed() == 0, "Bob's own channel");

    // The vault's deposits and withdrawals reach Alice's graph from the chain: no new
    // announcement is sent.
    let top_up = units("0.5");
    carol.top_up(bc, top_up).await?;
    let grown = deposit + top_up;
    eventually("Alice sees Carol's top-up", || {
        alice.graph_capacity(bc) == Some(grown)
    })
    .await?;
    let withdrawn = units("0.2");
    bob.withdraw(bc, withdrawn).await?;
    let shrunk = grown - withdrawn;
    eventually("Alice sees Bob's withdrawal", || {
        alice.graph_capacity(bc) == Some(shrunk)
    })
    .await?;

    bob.force_close(bc).await?;
    eventually("Alice sees B–C closed", || {
        alice.graph_capacity(bc).is_none()
    })
    .await?;
    ensure!(alice.announced_channels_followed() == 0);
    ensure!(
        !routes_to(alice, chain_id, carol.address()).await,
        "Alice still routes over the closed channel"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_announcement_without_an_open_vault_is_neither_kept_nor_relayed() -> Result<()> {
    let line = Line::start("graph-novault", 2).await?;
    let [alice, bob] = [&line.nodes[0], &line.nodes[1]];
    let chain_id = line.net.chain_id;
    line.open(0, Address::ZERO, units("1")).await?;
    let bob_at = line.addrs[1].ok_or_else(|| eyre!("Bob listens"))?;

    // Mallory holds both participants' keys of a channel that was never opened: every
    // signature verifies, only the chain can tell.
    let (x, y) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let params = ChannelParams {
        participant_a: x.address(),
        participant_b: y.address(),
        token: Address::ZERO,
        challenge_period: keel_e2e::MIN_PERIOD,
        salt: B256::ZERO,
    };
    let deployment = &line.net.deployment;
    let id = channel_id(chain_id, deployment.channel_factory, &params);
    let vault = vault_address(
        deployment.channel_factory,
        deployment.vault_implementation,
        id,
        params.token,
    );
    let announcement = ChannelAnnouncement {
        channelId: id,
        participantA: x.address(),
        participantB: y.address(),
        token: Address::ZERO,
        challengePeriod: params.challenge_period,
        salt: params.salt,
    };
    let digest = ChannelDomain::new(chain_id, vault).signing_hash(&announcement);
    let message = Message::ChannelAnnouncement {
        chain_id,
        announcement,
        capacity: units("1000"),
        signatures: [sign_hash(&x, &digest)?, sign_hash(&y, &digest)?],
    };
    let mut conn = Transport::new(x.clone())?
        .connect(bob_at, bob.address())
        .await?;
    conn.send(&Message::Hello {
        address: x.address(),
    })
    .await?;
    conn.send(&message).await?;

    // Bob asked the chain and found nothing there: no graph entry, nothing followed, and
    // nothing passed on to Alice. The signatures were good, so it is no strike against Mallory.
    eventually("Bob checks the vault", || {
        bob.announcements_without_vault() == 1
    })
    .await?;
    ensure!(bob.graph_capacity(id).is_none(), "Bob took the channel in");
    ensure!(bob.announced_channels_followed() == 0);
    ensure!(bob.gossip_refused() == 0);
    ensure!(alice.graph_capacity(id).is_none(), "Bob relayed it");
    ensure!(!routes_to(alice, chain_id, y.address()).await);
    Ok(())
}
