//! A local chain with Keel deployed by its real deployment script, test tokens, and the knobs
//! the chain tests turn: stopping and restarting the node, reorgs, time and mining.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, OnceLock,
    },
    time::Duration,
};

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    node_bindings::{Anvil, AnvilInstance},
    primitives::{hex, Address, Bytes, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol,
    sol_types::SolValue,
};
use eyre::{ensure, eyre, Result, WrapErr};
use keel_bindings::{ChannelFactory, ChannelVault, Deployment};
use keel_client::chain::{Chain, ChainConfig};
use keel_core::{BalanceProof, ChannelParams, CooperativeClose};

/// The canonical conversions live in keel-client; these names are kept for the older tests.
pub use keel_client::chain::abi::{
    balance_data, factory_params as to_abi, vault_params as to_vault_abi,
};

/// Challenge-period bounds the devnet factory enforces, in seconds (the deploy script's
/// defaults).
pub const MIN_PERIOD: u32 = 3_600;
/// See [`MIN_PERIOD`].
pub const MAX_PERIOD: u32 = 30 * 86_400;

/// Tokens minted to each participant of the devnet, in base units.
const TOKEN_SUPPLY: u128 = 1_000_000 * 10u128.pow(18);

sol! {
    // The test tokens (contracts/test/mocks): OpenZeppelin ERC-20s anyone can mint; the
    // blocklist token also refuses transfers to blocked addresses.
    #[sol(rpc)]
    interface TestToken {
        function mint(address to, uint256 amount) external;
        function balanceOf(address account) external view returns (uint256);
        function approve(address spender, uint256 amount) external returns (bool);
        function setBlocked(address account, bool isBlocked) external;
    }
}

/// One account with its own signing provider.
#[derive(Clone)]
pub struct Participant {
    /// The account's key, which also signs off-chain messages.
    pub signer: PrivateKeySigner,
    /// A provider that signs this account's transactions.
    pub provider: DynProvider,
}

impl Participant {
    /// The account's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The account's ETH balance.
    pub async fn balance(&self) -> Result<U256> {
        Ok(self.provider.get_balance(self.address()).await?)
    }

    /// The account's balance of `asset` (ETH for `Address::ZERO`).
    pub async fn balance_of(&self, asset: Address) -> Result<U256> {
        if asset.is_zero() {
            return self.balance().await;
        }
        Ok(TestToken::new(asset, &self.provider)
            .balanceOf(self.address())
            .call()
            .await?)
    }
}

/// Anvil with Keel deployed by `script/deploy.sh`, and two test tokens; each devnet is a chain
/// of its own on its own port.
pub struct Devnet {
    // `None` while stopped; dropping it stops Anvil (SIGTERM, so it dumps its state first).
    anvil: Option<AnvilInstance>,
    port: u16,
    // Anvil's state file (`--state`): written on exit, loaded on restart.
    state_dir: PathBuf,
    /// The chain id, unique per devnet.
    pub chain_id: u64,
    /// Participant A of the channels the helpers open.
    pub alice: Participant,
    /// Participant B.
    pub bob: Participant,
    /// A third party (e.g. a watchtower).
    pub carol: Participant,
    /// A fourth funded account (ETH only, no test tokens): the far end of longer routes.
    pub dave: Participant,
    /// What the deploy script wrote to `deployments/<chainId>.json`.
    pub deployment: Deployment,
    /// The deployed factory.
    pub factory: Address,
    /// The vault implementation the factory deployed.
    pub implementation: Address,
    /// A well-behaved ERC-20 (`MockERC20`), a million tokens (18 decimals) minted to alice, bob
    /// and carol.
    pub token: Address,
    /// An ERC-20 that can refuse transfers to chosen addresses (`BlocklistToken`), minted alike.
    pub blocklist_token: Address,
}

/// A channel opened on the devnet.
pub struct Channel {
    /// Its parameters.
    pub params: ChannelParams,
    /// Its id.
    pub id: B256,
    /// Its vault.
    pub vault: Address,
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The anvil binary itself rather than npm's Node wrapper: the wrapper exits as soon as it has
/// forwarded SIGTERM, before Anvil has written its state and freed its port, and it reports
/// every exit as 0.
pub fn anvil_path() -> Result<PathBuf> {
    let scope = root().join("node_modules/@foundry-rs");
    if let Ok(entries) = std::fs::read_dir(&scope) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let binary = entry.path().join("bin/anvil");
            if name.to_string_lossy().starts_with("anvil-") && binary.exists() {
                return Ok(binary);
            }
        }
    }
    let wrapper = root().join("node_modules/.bin/anvil");
    ensure!(
        wrapper.exists(),
        "{} is missing: run script/setup.sh first",
        wrapper.display()
    );
    Ok(wrapper)
}

/// A chain id no other devnet of this or a concurrent test run uses. It starts with 3133, which
/// `.gitignore` covers in `deployments/`.
fn unique_chain_id() -> Result<u64> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 1_000;
    let pid = std::process::id() % 10_000_000;
    Ok(format!("3133{pid:07}{n:03}").parse()?)
}

/// How long Anvil may take to start listening, in milliseconds. alloy's default (10 s) was
/// too short on a loaded 2-core CI machine, where two tests failed with "timed out waiting for
/// node to spawn" although Anvil came up; waiting longer costs nothing when it starts at once.
pub const SPAWN_TIMEOUT_MS: u64 = 120_000;

fn spawn_anvil(port: u16, chain_id: u64, state: &Path) -> Result<AnvilInstance> {
    Anvil::new()
        .path(anvil_path()?)
        .timeout(SPAWN_TIMEOUT_MS)
        .port(port)
        .chain_id(chain_id)
        .arg("--hardfork")
        .arg("osaka")
        .arg("--state")
        .arg(state)
        // Anvil keeps old states on disk, by default under ~/.foundry/anvil/tmp, and removes
        // them only on a clean exit; a killed node left gigabytes behind (36 GB in a day of
        // tests and benches filled the disk CI ran on). Beside the state file, they go when the
        // devnet does.
        .arg("--cache-path")
        .arg(state.with_file_name("anvil-cache"))
        .try_spawn()
        .wrap_err("starting anvil")
}

fn participant(url: &str, signer: PrivateKeySigner) -> Result<Participant> {
    // The pending nonce is read for every transaction: the same accounts also send through
    // keel-client's `Chain`, and a reorg rewinds nonces.
    let provider = ProviderBuilder::default()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(signer.clone()))
        .connect_http(url.parse()?)
        .erased();
    Ok(Participant { signer, provider })
}

/// Runs `script/deploy.sh` against `url` with `key` and reads the file it wrote.
fn deploy(url: &str, key: &str, chain_id: u64) -> Result<Deployment> {
    // One forge at a time: concurrent runs would race on the build cache.
    static FORGE: Mutex<()> = Mutex::new(());
    let _forge = FORGE.lock().unwrap_or_else(|e| e.into_inner());
    let root = root();
    let output = Command::new(root.join("script/deploy.sh"))
        .arg(url)
        .arg("-q")
        .env("KEEL_DEPLOYER_KEY", key)
        .current_dir(&root)
        .output()
        .wrap_err("running script/deploy.sh")?;
    ensure!(
        output.status.success(),
        "script/deploy.sh failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let deployment = Deployment::load(&root.join("deployments"), chain_id)?;
    // The file and forge's broadcast records are per chain id, and every devnet has its own.
    std::fs::remove_file(root.join(format!("deployments/{chain_id}.json")))?;
    for dir in ["broadcast", "cache"] {
        let _ = std::fs::remove_dir_all(root.join(format!("{dir}/Deploy.s.sol/{chain_id}")));
    }
    Ok(deployment)
}

/// Deploys a contract from its forge artifact (`contracts/out/<file>/<name>.json`).
async fn deploy_artifact(
    who: &Participant,
    file: &str,
    name: &str,
    constructor_args: Vec<u8>,
) -> Result<Address> {
    let path = root().join(format!("contracts/out/{file}/{name}.json"));
    let artifact: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path)
            .wrap_err_with(|| format!("{} (run forge build)", path.display()))?,
    )?;
    let code = artifact["bytecode"]["object"]
        .as_str()
        .ok_or_else(|| eyre!("{name}: no bytecode in the artifact"))?;
    let mut init = hex::decode(code)?;
    init.extend(constructor_args);
    let tx = TransactionRequest::default().with_deploy_code(Bytes::from(init));
    let receipt = who
        .provider
        .send_transaction(tx)
        .await?
        .get_receipt()
        .await?;
    ensure!(receipt.status(), "deploying {name} reverted");
    receipt
        .contract_address
        .ok_or_else(|| eyre!("{name}: no contract address"))
}

/// The chain every devnet starts from: Keel deployed by the real deployment script, the two
/// test tokens, and tokens minted to alice, bob and carol; then the node was stopped and its
/// state kept. Built once per test process, so forge runs once rather than once per test.
struct Genesis {
    /// Anvil's state file.
    state: String,
    deployment: Deployment,
    token: Address,
    blocklist_token: Address,
}

/// The [`Genesis`], built by the first caller.
fn genesis() -> Result<&'static Genesis> {
    static GENESIS: OnceLock<std::result::Result<Genesis, String>> = OnceLock::new();
    GENESIS
        .get_or_init(|| {
            // On a thread and runtime of its own: each test has its own runtime, and the others
            // must not depend on the first caller's.
            std::thread::spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(build_genesis())
            })
            .join()
            .map_err(|_| "the genesis builder panicked".to_string())?
            .map_err(|e| format!("{e:#}"))
        })
        .as_ref()
        .map_err(|e| eyre!("building the devnet genesis: {e}"))
}

async fn build_genesis() -> Result<Genesis> {
    let chain_id = unique_chain_id()?;
    let dir = std::env::temp_dir().join(format!("keel-devnet-genesis-{chain_id}"));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("state.json");
    let anvil = spawn_anvil(0, chain_id, &path)?;
    let url = format!("http://127.0.0.1:{}", anvil.port());
    let keys = anvil.keys();
    let accounts = keys
        .iter()
        .take(3)
        .map(|key| participant(&url, PrivateKeySigner::from(key.clone())))
        .collect::<Result<Vec<_>>>()?;
    let deployment = deploy(&url, &hex::encode_prefixed(keys[0].to_bytes()), chain_id)?;
    let deployer = &accounts[0];
    let token = deploy_artifact(
        deployer,
        "MockERC20.sol",
        "MockERC20",
        ("Mock", "MCK").abi_encode_params(),
    )
    .await?;
    let blocklist_token =
        deploy_artifact(deployer, "BlocklistToken.sol", "BlocklistToken", Vec::new()).await?;
    for asset in [token, blocklist_token] {
        let erc20 = TestToken::new(asset, &deployer.provider);
        for who in &accounts {
            let receipt = erc20
                .mint(who.address(), U256::from(TOKEN_SUPPLY))
                .send()
                .await?
                .get_receipt()
                .await?;
            succeeded(receipt, "mint")?;
        }
    }
    drop(accounts);
    // Stopping Anvil writes its state.
    drop(anvil);
    let state = std::fs::read_to_string(&path).wrap_err("reading anvil's state")?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Genesis {
        state,
        deployment,
        token,
        blocklist_token,
    })
}

impl Devnet {
    /// Spawns Anvil on a free port from the genesis state (`genesis`): Keel deployed by
    /// `script/deploy.sh`, the test tokens, and tokens minted to the participants.
    pub async fn start() -> Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let genesis = genesis()?;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let state_dir =
            std::env::temp_dir().join(format!("keel-devnet-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&state_dir)?;
        let state = state_dir.join("state.json");
        std::fs::write(&state, &genesis.state)?;
        // A chain id of its own, so devnets are distinct chains (tests run two side by side).
        // The contracts sit at the genesis addresses on every chain, as a deployment from one
        // key and nonce does on real chains; only the id in the deployment record changes.
        let chain_id = unique_chain_id()?;
        let anvil = spawn_anvil(0, chain_id, &state)?;
        let url = format!("http://127.0.0.1:{}", anvil.port());
        let keys = anvil.keys();
        Ok(Self {
            alice: participant(&url, PrivateKeySigner::from(keys[0].clone()))?,
            bob: participant(&url, PrivateKeySigner::from(keys[1].clone()))?,
            carol: participant(&url, PrivateKeySigner::from(keys[2].clone()))?,
            dave: participant(&url, PrivateKeySigner::from(keys[3].clone()))?,
            port: anvil.port(),
            anvil: Some(anvil),
            state_dir,
            chain_id,
            factory: genesis.deployment.channel_factory,
            implementation: genesis.deployment.vault_implementation,
            deployment: Deployment {
                chain_id,
                ..genesis.deployment.clone()
            },
            token: genesis.token,
            blocklist_token: genesis.blocklist_token,
        })
    }

    /// The node's HTTP endpoint (the same across restarts).
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A chain configuration for this devnet: `confirmations` deep, polling every 50 ms, log
    /// queries of at most 5 blocks (so ranges are split), 2-second requests, receipts waited
    /// for 10 s with a re-broadcast every second.
    pub fn chain_config(&self, confirmations: u64) -> ChainConfig {
        ChainConfig {
            confirmations,
            poll_interval: Duration::from_millis(50),
            max_block_range: 5,
            request_timeout: Duration::from_secs(2),
            receipt_timeout: Duration::from_secs(10),
            rebroadcast_interval: Duration::from_secs(1),
            ..ChainConfig::new(self.rpc_url(), self.deployment.clone())
        }
    }

    /// keel-client's transaction sender for `who`.
    pub async fn chain(&self, who: &Participant) -> Result<Chain> {
        Ok(Chain::connect(self.chain_config(0), who.signer.clone()).await?)
    }

    /// Stops Anvil; it writes its state first. RPC calls fail until [`Devnet::restart_rpc`].
    pub fn stop_rpc(&mut self) {
        // Dropping sends SIGTERM and waits for the process to exit.
        drop(self.anvil.take());
    }

    /// The latest block's timestamp.
    pub async fn latest_timestamp(&self) -> Result<u64> {
        Ok(self
            .alice
            .provider
            .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
            .await?
            .ok_or_else(|| eyre!("no latest block"))?
            .header
            .timestamp)
    }

    /// Starts Anvil again on the same port from the state it wrote when stopped: same blocks,
    /// hashes, logs and balances. Anvil restarts its clock from the wall clock, so the clock is
    /// set back to the last block's time to keep block times increasing.
    pub async fn restart_rpc(&mut self) -> Result<()> {
        ensure!(self.anvil.is_none(), "anvil is running");
        let state = self.state_dir.join("state.json");
        ensure!(state.exists(), "anvil wrote no state");
        self.anvil = Some(spawn_anvil(self.port, self.chain_id, &state)?);
        let last = self.latest_timestamp().await?;
        let _: serde_json::Value = self
            .alice
            .provider
            .raw_request("evm_setTime".into(), (last,))
            .await?;
        Ok(())
    }

    /// Replaces the last `depth` blocks with as many empty ones (`anvil_reorg`): their
    /// transactions and logs are gone.
    pub async fn reorg(&self, depth: u64) -> Result<()> {
        let none: Vec<serde_json::Value> = Vec::new();
        let _: serde_json::Value = self
            .alice
            .provider
            .raw_request("anvil_reorg".into(), (depth, none))
            .await?;
        Ok(())
    }

    /// Makes the blocklist token refuse (or accept again) transfers to `who`.
    pub async fn set_blocked(&self, who: Address, blocked: bool) -> Result<()> {
        let token = TestToken::new(self.blocklist_token, &self.carol.provider);
        let receipt = token
            .setBlocked(who, blocked)
            .send()
            .await?
            .get_receipt()
            .await?;
        succeeded(receipt, "setBlocked")?;
        Ok(())
    }

    /// Mines `n` empty blocks.
    pub async fn mine(&self, n: u64) -> Result<()> {
        let _: serde_json::Value = self
            .alice
            .provider
            .raw_request("anvil_mine".into(), (U256::from(n),))
            .await?;
        Ok(())
    }

    /// The head's block number.
    pub async fn block_number(&self) -> Result<u64> {
        Ok(self.alice.provider.get_block_number().await?)
    }

    /// The factory, as seen by `who`.
    pub fn factory_for(
        &self,
        who: &Participant,
    ) -> ChannelFactory::ChannelFactoryInstance<DynProvider> {
        ChannelFactory::new(self.factory, who.provider.clone())
    }

    /// Parameters of a channel between alice and bob in `token` (`Address::ZERO` for ETH).
    pub fn params(&self, token: Address, salt: u64) -> ChannelParams {
        ChannelParams {
            participant_a: self.alice.address(),
            participant_b: self.bob.address(),
            token,
            challenge_period: MIN_PERIOD,
            salt: B256::from(U256::from(salt)),
        }
    }

    /// `params`' id and vault on this devnet.
    pub fn channel(&self, params: ChannelParams) -> Channel {
        let id = keel_core::channel_id(self.chain_id, self.factory, &params);
        let vault = keel_core::vault_address(self.factory, self.implementation, id, params.token);
        Channel { params, id, vault }
    }

    /// Opens an ETH channel between alice and bob, alice depositing `deposit`.
    pub async fn open_eth(&self, salt: u64, deposit: U256) -> Result<Channel> {
        let channel = self.channel(self.params(Address::ZERO, salt));
        let receipt = self
            .factory_for(&self.alice)
            .open(to_abi(&channel.params), deposit)
            .value(deposit)
            .send()
            .await?
            .get_receipt()
            .await?;
        ensure!(receipt.status(), "open reverted");
        let opened = receipt
            .decoded_log::<ChannelFactory::ChannelOpened>()
            .ok_or_else(|| eyre!("no ChannelOpened event"))?;
        ensure!(
            opened.vault == channel.vault,
            "factory put the vault at {}, keel-core predicted {}",
            opened.vault,
            channel.vault
        );
        ensure!(
            opened.channelId == channel.id,
            "channel id differs between contract and keel-core"
        );
        Ok(channel)
    }

    /// The vault of `channel`, as seen by `who`.
    pub fn vault_for(
        &self,
        channel: &Channel,
        who: &Participant,
    ) -> ChannelVault::ChannelVaultInstance<DynProvider> {
        ChannelVault::new(channel.vault, who.provider.clone())
    }

    /// Signs `proof` for `channel` with `who`'s key.
    pub fn sign_balance(
        &self,
        channel: &Channel,
        who: &Participant,
        proof: &BalanceProof,
    ) -> Result<Bytes> {
        Ok(
            keel_core::sign_message(&who.signer, proof, self.chain_id, channel.vault)?
                .to_vec()
                .into(),
        )
    }

    /// Both participants' signatures over a cooperative close.
    pub fn sign_cooperative_close(
        &self,
        channel: &Channel,
        close: &CooperativeClose,
    ) -> Result<(Bytes, Bytes)> {
        let a = keel_core::sign_message(&self.alice.signer, close, self.chain_id, channel.vault)?;
        let b = keel_core::sign_message(&self.bob.signer, close, self.chain_id, channel.vault)?;
        Ok((a.to_vec().into(), b.to_vec().into()))
    }

    /// `who` raises its own side's ETH deposit in `channel` by `amount`.
    pub async fn top_up(
        &self,
        channel: &Channel,
        who: &Participant,
        amount: U256,
    ) -> Result<TransactionReceipt> {
        let side = match channel.params.side_of(who.address()) {
            Some(keel_core::Side::A) => 0,
            Some(keel_core::Side::B) => 1,
            None => eyre::bail!("{} is not in the channel", who.address()),
        };
        let vault = self.vault_for(channel, who);
        let total = vault.totalDeposit(side).call().await? + amount;
        succeeded(
            vault
                .deposit(side, total)
                .value(amount)
                .send()
                .await?
                .get_receipt()
                .await?,
            "deposit",
        )
    }

    /// Both participants sign `close`; `submitter` sends it.
    pub async fn cooperative_close(
        &self,
        channel: &Channel,
        close: &CooperativeClose,
        submitter: &Participant,
    ) -> Result<TransactionReceipt> {
        let (sig_a, sig_b) = self.sign_cooperative_close(channel, close)?;
        let vault = self.vault_for(channel, submitter);
        let call = vault.cooperativeClose(
            to_vault_abi(&channel.params),
            keel_client::chain::abi::cooperative_close(close),
            sig_a,
            sig_b,
        );
        succeeded(call.send().await?.get_receipt().await?, "cooperativeClose")
    }

    /// Moves the chain's clock forward by `seconds` and mines a block.
    pub async fn advance_time(&self, seconds: u64) -> Result<()> {
        let p = &self.alice.provider;
        let _: serde_json::Value = p.raw_request("evm_increaseTime".into(), (seconds,)).await?;
        let _: serde_json::Value = p.raw_request("evm_mine".into(), ()).await?;
        Ok(())
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        // Stop Anvil before removing the directory it writes its state into.
        drop(self.anvil.take());
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Fails unless the transaction succeeded; returns its receipt.
pub fn succeeded(receipt: TransactionReceipt, what: &str) -> Result<TransactionReceipt> {
    ensure!(receipt.status(), "{what} reverted");
    Ok(receipt)
}
