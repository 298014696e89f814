//! The client recovering from failed requests: nothing is stored from an operation that
//! failed before it reached the chain, and what was co-signed is not lost to an RPC outage or
//! a crash.

use alloy::primitives::Address;
use eyre::{ensure, Result};
use keel_client::{chain::ChainError, Client, ClientError};
use keel_e2e::MIN_PERIOD;

use crate::client_flow::{config, units, Pair};

/// An `open_channel` the factory refuses (a challenge period below its minimum) stores
/// nothing: no channel now, none after a restart, none announced to the peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_open_stores_nothing() -> Result<()> {
    let pair = Pair::start("refused-open").await?;
    let err = pair
        .alice
        .open_channel(
            pair.net.chain_id,
            pair.net.bob.address(),
            Address::ZERO,
            units("1"),
            MIN_PERIOD - 1,
        )
        .await
        .unwrap_err();
    ensure!(
        matches!(err, ClientError::Chain(ChainError::Rejected { .. })),
        "{err:?}"
    );
    ensure!(pair.alice.channels().await.is_empty(), "stored after a refused open");

    pair.alice.clone().shutdown().await;
    let alice = Client::start(config(
        &pair.net,
        &pair.dir,
        &pair.clock,
        &pair.net.alice,
        "alice",
    ))
    .await?;
    ensure!(alice.channels().await.is_empty(), "a refused open survives a restart");
    // A real open still works afterwards.
    alice
        .open_channel(
            pair.net.chain_id,
            pair.net.bob.address(),
            Address::ZERO,
            units("1"),
            MIN_PERIOD,
        )
        .await?;
    ensure!(alice.channels().await.len() == 1);
    Ok(())
}
