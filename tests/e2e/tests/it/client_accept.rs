//! Channels a stranger opens on chain naming our node are reported, and taken only by the
//! application's rule (`Config::accept_channels`), not adopted silently.

use std::time::Duration;

use alloy::primitives::{Address, B256, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{AcceptChannels, Client, ClientError, ClientEvent};
use keel_core::ChannelParams;
use keel_e2e::{Devnet, MIN_PERIOD};

use crate::client_flow::{chain_time, config, units, wait_until, TempDir};

/// The next channel-opening report in `events`, within 30 s.
async fn next_opening(events: &mut keel_client::Events) -> Result<ClientEvent> {
    tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let event = events.next().await?.event;
            if matches!(
                event,
                ClientEvent::ChannelOpened { .. } | ClientEvent::ChannelDeclined { .. }
            ) {
                return Ok::<_, eyre::Report>(event);
            }
        }
    })
    .await
    .map_err(|_| eyre!("no channel report in time"))?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_s_channel_is_reported_and_declined_by_the_allow_list() -> Result<()> {
    let net = Devnet::start().await?;
    let dir = TempDir::new("accept");
    let clock = keel_client::client::ManualClock::new(chain_time(&net).await?);
    let mut bob_config = config(&net, &dir, &clock, &net.bob, "bob");
    bob_config.accept_channels = AcceptChannels::From([net.alice.address()].into());
    let bob = Client::start(bob_config).await?;
    let mut events = bob.events("app").await?;

    // Carol, whom Bob's rule does not name, opens a channel with him.
    let deposit = units("1");
    let params = ChannelParams {
        participant_a: net.carol.address(),
        participant_b: net.bob.address(),
        token: Address::ZERO,
        challenge_period: MIN_PERIOD,
        salt: B256::repeat_byte(0xca),
    };
    net.chain(&net.carol).await?.open(&params, deposit).await?;
    let carol_channel = keel_core::channel_id(net.chain_id, net.factory, &params);
    let report = next_opening(&mut events).await?;
    ensure!(
        report
            == ClientEvent::ChannelDeclined {
                channel_id: carol_channel,
                peer: net.carol.address(),
                deposit,
            },
        "{report:?}"
    );
    ensure!(matches!(
        bob.channel(carol_channel).await,
        Err(ClientError::UnknownChannel(_))
    ));

    // Alice, whom it names, is taken.
    let alice = net.chain(&net.alice).await?;
    let params = ChannelParams {
        participant_a: net.alice.address(),
        participant_b: net.bob.address(),
        salt: B256::repeat_byte(0xa1),
        ..params
    };
    alice.open(&params, deposit).await?;
    let alice_channel = keel_core::channel_id(net.chain_id, net.factory, &params);
    let report = next_opening(&mut events).await?;
    ensure!(
        report
            == ClientEvent::ChannelOpened {
                channel_id: alice_channel,
                peer: net.alice.address(),
            },
        "{report:?}"
    );
    wait_until(&bob, alice_channel, |i| i.deposits == [deposit, U256::ZERO]).await?;
    ensure!(bob.channels().await.len() == 1);
    Ok(())
}
