//! A local chain with Keel deployed, and helpers that turn keel-core messages into transactions.

use std::path::PathBuf;

use alloy::{
    network::EthereumWallet,
    node_bindings::{Anvil, AnvilInstance},
    primitives::{Address, Bytes, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::TransactionReceipt,
    signers::local::PrivateKeySigner,
};
use eyre::{ensure, Result, WrapErr};
use keel_bindings::{ChannelFactory, ChannelVault};
use keel_core::{BalanceProof, ChannelParams, CooperativeClose};

/// Challenge-period bounds the devnet factory enforces, in seconds.
pub const MIN_PERIOD: u32 = 3_600;
/// See [`MIN_PERIOD`].
pub const MAX_PERIOD: u32 = 30 * 86_400;

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
}

/// Anvil with Keel's factory deployed.
pub struct Devnet {
    // Kept alive for as long as the devnet: dropping it stops Anvil.
    _anvil: AnvilInstance,
    /// The chain id Anvil reports.
    pub chain_id: u64,
    /// Participant A of the channels the helpers open.
    pub alice: Participant,
    /// Participant B.
    pub bob: Participant,
    /// A third party (e.g. a watchtower).
    pub carol: Participant,
    /// The deployed factory.
    pub factory: Address,
    /// The vault implementation the factory deployed.
    pub implementation: Address,
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

fn anvil_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../node_modules/.bin/anvil")
}

fn participant(url: &str, signer: PrivateKeySigner) -> Result<Participant> {
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signer.clone()))
        .connect_http(url.parse()?)
        .erased();
    Ok(Participant { signer, provider })
}

impl Devnet {
    /// Spawns Anvil on a free port and deploys Keel's factory from the bindings' bytecode.
    pub async fn start() -> Result<Self> {
        let path = anvil_path();
        ensure!(
            path.exists(),
            "{} is missing: run script/setup.sh first",
            path.display()
        );
        let anvil = Anvil::new()
            .path(path)
            .arg("--hardfork")
            .arg("osaka")
            .try_spawn()?;
        let url = anvil.endpoint();
        let keys = anvil.keys();
        let alice = participant(&url, PrivateKeySigner::from(keys[0].clone()))?;
        let bob = participant(&url, PrivateKeySigner::from(keys[1].clone()))?;
        let carol = participant(&url, PrivateKeySigner::from(keys[2].clone()))?;
        let chain_id = alice.provider.get_chain_id().await?;

        let factory = ChannelFactory::deploy(alice.provider.clone(), MIN_PERIOD, MAX_PERIOD)
            .await
            .wrap_err("deploying ChannelFactory")?;
        let implementation = factory.vaultImplementation().call().await?;
        Ok(Self {
            _anvil: anvil,
            chain_id,
            alice,
            bob,
            carol,
            factory: *factory.address(),
            implementation,
        })
    }

    /// The factory, as seen by `who`.
    pub fn factory_for(
        &self,
        who: &Participant,
    ) -> ChannelFactory::ChannelFactoryInstance<DynProvider> {
        ChannelFactory::new(self.factory, who.provider.clone())
    }

    /// Opens an ETH channel between alice and bob, alice depositing `deposit`.
    pub async fn open_eth(&self, salt: u64, deposit: U256) -> Result<Channel> {
        let params = ChannelParams {
            participant_a: self.alice.address(),
            participant_b: self.bob.address(),
            token: Address::ZERO,
            challenge_period: MIN_PERIOD,
            salt: B256::from(U256::from(salt)),
        };
        let receipt = self
            .factory_for(&self.alice)
            .open(to_abi(&params), deposit)
            .value(deposit)
            .send()
            .await?
            .get_receipt()
            .await?;
        ensure!(receipt.status(), "open reverted");
        let id = keel_core::channel_id(self.chain_id, self.factory, &params);
        let vault = keel_core::vault_address(self.factory, self.implementation, id, params.token);
        let opened = receipt
            .decoded_log::<ChannelFactory::ChannelOpened>()
            .ok_or_else(|| eyre::eyre!("no ChannelOpened event"))?;
        ensure!(
            opened.vault == vault,
            "factory put the vault at {}, keel-core predicted {vault}",
            opened.vault
        );
        ensure!(
            opened.channelId == id,
            "channel id differs between contract and keel-core"
        );
        Ok(Channel { params, id, vault })
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
            close.payoutA,
            close.payoutB,
            close.expiry,
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

/// keel-core's channel parameters as the contract's ABI struct.
pub fn to_abi(p: &ChannelParams) -> ChannelFactory::ChannelParams {
    ChannelFactory::ChannelParams {
        participantA: p.participant_a,
        participantB: p.participant_b,
        token: p.token,
        challengePeriod: p.challenge_period,
        salt: p.salt,
    }
}

/// The same parameters, typed for the vault's ABI.
pub fn to_vault_abi(p: &ChannelParams) -> ChannelVault::ChannelParams {
    ChannelVault::ChannelParams {
        participantA: p.participant_a,
        participantB: p.participant_b,
        token: p.token,
        challengePeriod: p.challenge_period,
        salt: p.salt,
    }
}

/// A signed balance proof's fields as the vault's ABI struct (the channel id is implied).
pub fn balance_data(proof: &BalanceProof) -> ChannelVault::BalanceData {
    ChannelVault::BalanceData {
        nonce: proof.nonce,
        transferredAmount: proof.transferredAmount,
        lockedAmount: proof.lockedAmount,
        locksRoot: proof.locksRoot,
    }
}

/// Fails unless the transaction succeeded; returns its receipt.
pub fn succeeded(receipt: TransactionReceipt, what: &str) -> Result<TransactionReceipt> {
    ensure!(receipt.status(), "{what} reverted");
    Ok(receipt)
}
