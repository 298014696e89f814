use std::{path::PathBuf, process::Command};

use alloy::{
    node_bindings::Anvil,
    primitives::hex,
    providers::{Provider, ProviderBuilder},
};
use eyre::{ensure, Result};
use keel_bindings::{ChannelFactory, Deployment};

/// The deployment script, run by forge against a real Anvil, writes the file keel-bindings
/// reads, and the addresses in it are the live contracts.
#[tokio::test]
async fn deploy_script_writes_the_deployments_file_keel_bindings_reads() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    // A chain id of its own, so the file cannot collide with other local runs.
    let chain_id = 31_338;
    let anvil = Anvil::new()
        .path(keel_e2e::anvil_path()?)
        .timeout(keel_e2e::SPAWN_TIMEOUT_MS)
        .chain_id(chain_id)
        .try_spawn()?;
    let key = hex::encode_prefixed(anvil.keys()[0].to_bytes());

    let status = Command::new(root.join("script/deploy.sh"))
        .arg(anvil.endpoint())
        .arg("-q")
        .env("KEEL_DEPLOYER_KEY", &key)
        .env("KEEL_MIN_CHALLENGE_PERIOD", "600")
        .current_dir(&root)
        .status()?;
    ensure!(status.success(), "script/deploy.sh failed");

    let deployment = Deployment::load(&root.join("deployments"), chain_id)?;
    assert_eq!(deployment.min_challenge_period, 600);
    assert_eq!(deployment.max_challenge_period, 30 * 86_400);

    let provider = ProviderBuilder::new().connect_http(anvil.endpoint_url());
    let factory = ChannelFactory::new(deployment.channel_factory, &provider);
    assert_eq!(
        factory.vaultImplementation().call().await?,
        deployment.vault_implementation
    );
    assert_eq!(
        factory.secretRegistry().call().await?,
        deployment.secret_registry
    );
    assert_eq!(factory.minChallengePeriod().call().await?, 600);
    ensure!(deployment.deployed_at_block <= provider.get_block_number().await?);
    std::fs::remove_file(root.join(format!("deployments/{chain_id}.json")))?;
    Ok(())
}
