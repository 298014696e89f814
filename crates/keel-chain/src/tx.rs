//! [`Chain`]: the transactions one participant sends on one chain.

use std::sync::Arc;

use alloy::{
    eips::BlockNumberOrTag,
    network::EthereumWallet,
    primitives::{Address, Bytes, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::{Filter, TransactionReceipt, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol,
};
use keel_bindings::{ChannelFactory, ChannelVault, Deployment, SecretRegistry};
use keel_core::{
    BalanceProof, ChannelParams, CooperativeClose, DisputeState, Lock, LockState, Side, Withdrawal,
};
use tokio::sync::Mutex;

use super::{
    abi::{self, VaultAbi},
    config::ChainConfig,
    error::{ChainError, Result},
    fees::FeePolicy,
    holdings::VaultHoldings,
    rpc,
};

mod send;

/// A mined, successful transaction's receipt (its logs carry the events it emitted).
pub type TxReceipt = TransactionReceipt;

sol! {
    /// The two ERC-20 calls a deposit needs; any token Keel accepts implements them.
    #[sol(rpc)]
    interface IERC20 {
        function allowance(address owner, address spender) external view returns (uint256);
        function approve(address spender, uint256 amount) external returns (bool);
    }
}

/// One participant's transactions on one chain: open, deposit, withdraw, close cooperatively or
/// unilaterally, refute, settle, unlock, register secrets.
///
/// Each method simulates its transaction first (so a revert is a [`ChainError::Rejected`] with
/// the contract's error and costs nothing), sends it, and waits until it is mined. It does not
/// wait for confirmations: the [`Monitor`](super::Monitor) reports an effect once it is final
/// enough. Cheap to clone; clones share one sender, which sends one transaction at a time so
/// that each takes the next nonce.
#[derive(Debug, Clone)]
pub struct Chain {
    provider: DynProvider,
    config: Arc<ChainConfig>,
    address: Address,
    // Held while a transaction is signed and handed to the node: the nonce filler reads the
    // account's pending nonce, so two sends at once would take the same one.
    send_lock: Arc<Mutex<()>>,
    // Held from an ERC-20 approval to the transaction that spends it, so two token operations
    // of this account cannot overwrite each other's allowance in between.
    token_lock: Arc<Mutex<()>>,
}

impl Chain {
    /// Connects to `config.rpc_url` with `signer` paying for and signing transactions; fails
    /// with [`ChainError::WrongChain`] unless the endpoint serves the deployment's chain.
    ///
    /// ```no_run
    /// # async fn demo(key: alloy::signers::local::PrivateKeySigner) -> Result<(), Box<dyn std::error::Error>> {
    /// use keel_chain::{Chain, ChainConfig, Deployment};
    /// use keel_core::{Address, ChannelParams, Side, B256, U256};
    ///
    /// let deployment = Deployment::load("deployments".as_ref(), 11155111)?;
    /// let chain = Chain::connect(ChainConfig::new("http://127.0.0.1:8545", deployment), key).await?;
    /// let params = ChannelParams {
    ///     participant_a: chain.address(),
    ///     participant_b: Address::repeat_byte(0xb),
    ///     token: Address::ZERO,
    ///     challenge_period: 86_400,
    ///     salt: B256::ZERO,
    /// };
    /// let receipt = chain.open(&params, U256::from(10u64.pow(18))).await?;
    /// // Watch the vault from the block it was opened in (see `Monitor::watch_from`).
    /// let (vault, opened_at) = (chain.vault_address(&params), receipt.block_number);
    /// chain.deposit(&params, Side::A, U256::from(10u64.pow(17))).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn connect(config: ChainConfig, signer: PrivateKeySigner) -> Result<Self> {
        let chain = Self::new(config, signer)?;
        let expected = chain.chain_id();
        let found = chain
            .provider
            .get_chain_id()
            .await
            .map_err(ChainError::transport)?;
        if found != expected {
            return Err(ChainError::WrongChain { expected, found });
        }
        Ok(chain)
    }

    /// As [`Chain::connect`] without asking the node anything, so it works while the node is
    /// down. Transactions are signed for the deployment's chain id, so a node on another chain
    /// cannot execute them.
    pub fn new(config: ChainConfig, signer: PrivateKeySigner) -> Result<Self> {
        let address = signer.address();
        let expected = config.chain_id();
        // Gas estimation (which surfaces reverts before sending), the account's pending nonce
        // read afresh for each transaction (robust to other senders and to reorgs), the chain
        // id pinned to the deployment's.
        let provider = ProviderBuilder::default()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .with_chain_id(expected)
            .wallet(EthereumWallet::from(signer))
            .connect_client(rpc::client(&config)?)
            .erased();
        Ok(Self {
            provider,
            config: Arc::new(config),
            address,
            send_lock: Arc::default(),
            token_lock: Arc::default(),
        })
    }

    /// The chain id (checked against the endpoint at connect).
    pub fn chain_id(&self) -> u64 {
        self.config.chain_id()
    }

    /// The account that signs and pays.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The configuration this chain was connected with.
    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// Keel's contracts on this chain.
    pub fn deployment(&self) -> &Deployment {
        &self.config.deployment
    }

    /// The provider, for reads this type does not wrap.
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The id of channel `params` on this chain.
    pub fn channel_id(&self, params: &ChannelParams) -> B256 {
        keel_core::channel_id(self.chain_id(), self.deployment().channel_factory, params)
    }

    /// The vault address of channel `params`, opened or not.
    pub fn vault_address(&self, params: &ChannelParams) -> Address {
        let d = self.deployment();
        keel_core::vault_address(
            d.channel_factory,
            d.vault_implementation,
            self.channel_id(params),
            params.token,
        )
    }

    /// Opens channel `params` with our deposit of `deposit`: sends it as value for ETH, or
    /// first approves the factory (which pulls the tokens into the vault) for a token.
    pub async fn open(&self, params: &ChannelParams, deposit: U256) -> Result<TxReceipt> {
        if params.side_of(self.address).is_none() {
            return Err(ChainError::Invalid("only a participant may open a channel"));
        }
        check_challenge_period(self.deployment(), params.challenge_period)?;
        let factory = ChannelFactory::new(self.deployment().channel_factory, &self.provider);
        let call = factory.open(abi::factory_params(params), deposit);
        if params.token.is_zero() {
            return self.submit("open", call.value(deposit)).await;
        }
        let _token = self.token_lock.lock().await;
        if !deposit.is_zero() {
            self.approve(params.token, *factory.address(), deposit)
                .await?;
        }
        self.submit("open", call).await
    }

    /// Raises `side`'s deposit by `amount`. Reads the side's cumulative total and asks the vault
    /// for `total + amount`, so if another deposit lands first this one reverts instead of
    /// counting twice. For a token, first approves the vault for `amount`.
    pub async fn deposit(
        &self,
        params: &ChannelParams,
        side: Side,
        amount: U256,
    ) -> Result<TxReceipt> {
        if amount.is_zero() {
            return Err(ChainError::Invalid("a deposit must be positive"));
        }
        let vault = self.vault(params);
        let index = abi::side_index(side);
        let current = vault
            .totalDeposit(index)
            .call()
            .await
            .map_err(|e| ChainError::call("totalDeposit", e))?;
        let total = current
            .checked_add(amount)
            .ok_or(ChainError::Invalid("the deposit total overflows"))?;
        let call = vault.deposit(index, total);
        if params.token.is_zero() {
            return self.submit("deposit", call.value(amount)).await;
        }
        let _token = self.token_lock.lock().await;
        self.approve(params.token, *vault.address(), amount).await?;
        self.submit("deposit", call).await
    }

    /// Executes a withdrawal both participants signed, the way they signed it: paid to the
    /// participant (`withdraw`), or moved into the target vault (`withdrawInto`). Anyone may
    /// submit it.
    pub async fn withdraw(
        &self,
        params: &ChannelParams,
        withdrawal: &Withdrawal,
        sig_a: &[u8; 65],
        sig_b: &[u8; 65],
    ) -> Result<TxReceipt> {
        let vault = self.vault(params);
        let (params, withdrawal) = (abi::vault_params(params), abi::withdrawal(withdrawal));
        if withdrawal.target.is_zero() {
            let call = vault.withdraw(params, withdrawal, bytes(sig_a), bytes(sig_b));
            self.submit("withdraw", call).await
        } else {
            let call = vault.withdrawInto(params, withdrawal, bytes(sig_a), bytes(sig_b));
            self.submit("withdrawInto", call).await
        }
    }

    /// Settles the channel at once with the split both participants signed.
    pub async fn cooperative_close(
        &self,
        params: &ChannelParams,
        close: &CooperativeClose,
        sig_a: &[u8; 65],
        sig_b: &[u8; 65],
    ) -> Result<TxReceipt> {
        let vault = self.vault(params);
        let call = vault.cooperativeClose(
            abi::vault_params(params),
            abi::cooperative_close(close),
            bytes(sig_a),
            bytes(sig_b),
        );
        self.submit("cooperativeClose", call).await
    }

    /// Closes unilaterally with the counterparty's newest balance proof and its signature, or
    /// with `None` if the counterparty never sent anything (the vault's empty proof: nonce 0,
    /// no signature). Starts the challenge period.
    pub async fn close(
        &self,
        params: &ChannelParams,
        counterparty: Option<(&BalanceProof, &[u8; 65])>,
    ) -> Result<TxReceipt> {
        let (proof, signature) = match counterparty {
            Some((proof, sig)) => (abi::balance_data(proof), bytes(sig)),
            None => (keel_core::BalanceData::default().to_abi(), Bytes::new()),
        };
        let vault = self.vault(params);
        let call = vault.close(abi::vault_params(params), proof, signature);
        self.submit("close", call).await
    }

    /// As the non-closer, replaces the closer's proof on record with the closer's newer
    /// `closer_proof`. `dispute` is the state last published (`Closed` or `Refuted`).
    pub async fn refute(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
        closer_proof: &BalanceProof,
        closer_sig: &[u8; 65],
    ) -> Result<TxReceipt> {
        self.submit_refute(params, dispute, closer_proof, closer_sig, Bytes::new())
            .await
    }

    /// [`Chain::refute`] on the non-closer's behalf (a watchtower), carrying its signed
    /// `TowerAuthorisation` over exactly `closer_proof`.
    pub async fn refute_with_authorisation(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
        closer_proof: &BalanceProof,
        closer_sig: &[u8; 65],
        authorisation: &[u8; 65],
    ) -> Result<TxReceipt> {
        self.submit_refute(
            params,
            dispute,
            closer_proof,
            closer_sig,
            bytes(authorisation),
        )
        .await
    }

    /// [`Chain::refute`] that must be mined before `dispute`'s deadline, within `policy`'s gas
    /// and fee caps: its fees are raised (EIP-1559 replacements) while it is not mined, and it
    /// is sent again if a reorganisation drops it (see [`fees`](crate::fees)). It returns once
    /// the refutation is [`ChainConfig::confirmations`] deep; if the state changed meanwhile
    /// (a proof as new is already on record) it stops with [`ChainError::Rejected`].
    pub async fn refute_by_deadline(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
        closer_proof: &BalanceProof,
        closer_sig: &[u8; 65],
        policy: &FeePolicy,
    ) -> Result<TxReceipt> {
        let call = self.refute_request(params, dispute, closer_proof, closer_sig, Bytes::new());
        self.submit_by("refute", call, dispute.deadline, policy)
            .await
    }

    /// [`Chain::refute_by_deadline`] on the non-closer's behalf (a watchtower), carrying its
    /// signed `TowerAuthorisation` over exactly `closer_proof`.
    pub async fn refute_with_authorisation_by_deadline(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
        closer_proof: &BalanceProof,
        closer_sig: &[u8; 65],
        authorisation: &[u8; 65],
        policy: &FeePolicy,
    ) -> Result<TxReceipt> {
        let call = self.refute_request(
            params,
            dispute,
            closer_proof,
            closer_sig,
            bytes(authorisation),
        );
        self.submit_by("refute", call, dispute.deadline, policy)
            .await
    }

    /// Pays both participants once the challenge period of `dispute` (the state last
    /// published) is over.
    pub async fn settle(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
    ) -> Result<TxReceipt> {
        let vault = self.vault(params);
        let call = vault.settle(abi::vault_params(params), dispute.to_abi());
        self.submit("settle", call).await
    }

    /// Resolves the pending locks `sender_side` sent: `state` is the lock state last published
    /// (`LocksRetained` or `Unlocked`), `locks` every lock of that side's final locks root, in
    /// order.
    pub async fn unlock(
        &self,
        params: &ChannelParams,
        state: &LockState,
        sender_side: Side,
        locks: &[Lock],
    ) -> Result<TxReceipt> {
        let vault = self.vault(params);
        let call = vault.unlock(
            abi::vault_params(params),
            state.to_abi(),
            abi::side_index(sender_side),
            locks.iter().map(abi::lock).collect(),
        );
        self.submit("unlock", call).await
    }

    /// Records in the vault, during a dispute, that the receiver of locks `sender_side` sent
    /// gave them up (`releaseLocks`): `unlock` then returns each to its sender whatever proof is
    /// on record and whether or not its secret was registered. `releases` pairs each
    /// [`LockRelease`](keel_core::LockRelease) with its receiver's signature.
    pub async fn release_locks(
        &self,
        params: &ChannelParams,
        sender_side: Side,
        releases: &[(keel_core::LockRelease, [u8; 65])],
    ) -> Result<TxReceipt> {
        let vault = self.vault(params);
        let (locks, signatures) = releases
            .iter()
            .map(|(release, signature)| {
                let lock = Lock {
                    expiration: release.expiration,
                    amount: release.amount,
                    secret_hash: release.secretHash,
                };
                (abi::lock(&lock), bytes(signature))
            })
            .unzip();
        let call = vault.releaseLocks(
            abi::vault_params(params),
            abi::side_index(sender_side),
            locks,
            signatures,
        );
        self.submit("releaseLocks", call).await
    }

    /// Pulls a payout the vault deferred because we (or the token) rejected it, sending it to
    /// `to` (`PayoutDeferred` names what is owed).
    pub async fn claim(&self, params: &ChannelParams, to: Address) -> Result<TxReceipt> {
        self.submit("claim", self.vault(params).claim(to)).await
    }

    /// Reveals a lock's secret in the registry (a second registration changes nothing).
    pub async fn register_secret(&self, secret: B256) -> Result<TxReceipt> {
        let registry = SecretRegistry::new(self.deployment().secret_registry, &self.provider);
        self.submit("registerSecret", registry.registerSecret(secret))
            .await
    }

    /// Reveals several secrets in one transaction (`registerSecrets`), mined by chain time
    /// `deadline` (the earliest expiration of their locks: a secret registered later pays
    /// nothing) under `policy`, raising the fee as the deadline nears as a refutation does
    /// ([`Chain::refute_by_deadline`]). Secrets already registered are skipped by the registry.
    pub async fn register_secrets_by_deadline(
        &self,
        secrets: &[B256],
        deadline: u64,
        policy: &FeePolicy,
    ) -> Result<TxReceipt> {
        let registry = SecretRegistry::new(self.deployment().secret_registry, &self.provider);
        let call = registry
            .registerSecrets(secrets.to_vec())
            .into_transaction_request();
        self.submit_by("registerSecrets", call, deadline, policy)
            .await
    }

    /// When the secret of `secret_hash` was registered in the SecretRegistry (chain time), if it
    /// was: one `revealedAt` call.
    pub async fn revealed_at(&self, secret_hash: B256) -> Result<Option<u64>> {
        let at = SecretRegistry::new(self.deployment().secret_registry, &self.provider)
            .revealedAt(secret_hash)
            .call()
            .await
            .map_err(|e| ChainError::call("revealedAt", e))?;
        if at.is_zero() {
            return Ok(None);
        }
        u64::try_from(at)
            .map(Some)
            .map_err(|_| ChainError::garbage("a registration time beyond 64 bits"))
    }

    /// The secret of `secret_hash` if it is registered in the SecretRegistry, with the time of
    /// its registration (what decides the locks it pays): one `revealedAt` call, and the log
    /// holding the secret only if there is one. A secret that does not hash to `secret_hash` is
    /// refused as [`ChainError::Garbage`].
    pub async fn revealed_secret(&self, secret_hash: B256) -> Result<Option<(B256, u64)>> {
        let Some(at) = self.revealed_at(secret_hash).await? else {
            return Ok(None);
        };
        let registry = self.deployment().secret_registry;
        // Newest blocks first, `max_block_range` at a time (the most a provider is asked for
        // at once, as the monitor does): a registration that matters is a recent one.
        let range = self.config.max_block_range.max(1);
        let floor = self.deployment().deployed_at_block;
        let mut to = self
            .provider
            .get_block_number()
            .await
            .map_err(ChainError::transport)?;
        let log = loop {
            let from = to.saturating_sub(range - 1).max(floor);
            let filter = Filter::new()
                .address(registry)
                .event_signature(crate::event::SECRET_TOPIC)
                .topic1(secret_hash)
                .from_block(from)
                .to_block(to);
            let logs = self
                .provider
                .get_logs(&filter)
                .await
                .map_err(ChainError::transport)?;
            if let Some(log) = logs.into_iter().next() {
                break log;
            }
            if from <= floor {
                return Err(ChainError::garbage(format!(
                    "{secret_hash} registered at {at} but no SecretRevealed log"
                )));
            }
            to = from - 1;
        };
        let (hash, secret) = crate::event::revealed_secret(&log)?;
        if hash != secret_hash {
            return Err(ChainError::garbage("a SecretRevealed log for another hash"));
        }
        Ok(Some((secret, at)))
    }

    /// What the vault at `vault` took in and paid out while its channel is open, or `None` if
    /// no contract is deployed there or its channel is closing or settled: how a node checks a
    /// channel another node announced before routing over it.
    pub async fn open_vault_holdings(&self, vault: Address) -> Result<Option<VaultHoldings>> {
        let code = self
            .provider
            .get_code_at(vault)
            .await
            .map_err(ChainError::transport)?;
        if code.is_empty() {
            return Ok(None);
        }
        let contract = ChannelVault::new(vault, &self.provider);
        let status = contract
            .status()
            .call()
            .await
            .map_err(|e| ChainError::call("status", e))?;
        // 1 is open; 2 closed (challenge period) and 3 settled carry no payments.
        if status != 1 {
            return Ok(None);
        }
        let mut holdings = VaultHoldings::default();
        for side in 0..2u8 {
            holdings.deposits[usize::from(side)] = contract
                .totalDeposit(side)
                .call()
                .await
                .map_err(|e| ChainError::call("totalDeposit", e))?;
            holdings.withdrawn[usize::from(side)] = contract
                .totalWithdrawn(side)
                .call()
                .await
                .map_err(|e| ChainError::call("totalWithdrawn", e))?;
        }
        holdings
            .capacity()
            .ok_or_else(|| ChainError::garbage("a vault that paid out more than it took in"))?;
        Ok(Some(holdings))
    }

    /// The latest block's timestamp: the clock the vault checks lock and withdrawal expiries and
    /// dispute deadlines against.
    pub async fn block_timestamp(&self) -> Result<u64> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Latest)
            .await
            .map_err(ChainError::transport)?
            .ok_or_else(|| ChainError::garbage("no latest block"))?;
        Ok(block.header.timestamp)
    }

    /// The receipt of transaction `tx_hash` if it is in the node's chain now (`None` if it was
    /// never mined, or a reorganisation removed its block).
    pub async fn receipt_of(&self, tx_hash: B256) -> Result<Option<TxReceipt>> {
        self.provider
            .get_transaction_receipt(tx_hash)
            .await
            .map_err(ChainError::transport)
    }

    fn vault(&self, params: &ChannelParams) -> ChannelVault::ChannelVaultInstance<&DynProvider> {
        ChannelVault::new(self.vault_address(params), &self.provider)
    }

    async fn submit_refute(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
        closer_proof: &BalanceProof,
        closer_sig: &[u8; 65],
        authorisation: Bytes,
    ) -> Result<TxReceipt> {
        let vault = self.vault(params);
        let call = vault.refute(
            abi::vault_params(params),
            dispute.to_abi(),
            abi::balance_data(closer_proof),
            bytes(closer_sig),
            authorisation,
        );
        self.submit("refute", call).await
    }

    /// The refutation as an unsigned request, for [`Chain::submit_by`].
    fn refute_request(
        &self,
        params: &ChannelParams,
        dispute: &DisputeState,
        closer_proof: &BalanceProof,
        closer_sig: &[u8; 65],
        authorisation: Bytes,
    ) -> TransactionRequest {
        self.vault(params)
            .refute(
                abi::vault_params(params),
                dispute.to_abi(),
                abi::balance_data(closer_proof),
                bytes(closer_sig),
                authorisation,
            )
            .into_transaction_request()
    }

    /// Lets `spender` pull `amount` of `token` from us. Caller holds `token_lock`.
    async fn approve(&self, token: Address, spender: Address, amount: U256) -> Result<()> {
        let erc20 = IERC20::new(token, &self.provider);
        let allowance = erc20
            .allowance(self.address, spender)
            .call()
            .await
            .map_err(|e| ChainError::call("allowance", e))?;
        if allowance >= amount {
            return Ok(());
        }
        // Some tokens (USDT) refuse to change a non-zero allowance to another non-zero one.
        if !allowance.is_zero() {
            self.submit("approve", erc20.approve(spender, U256::ZERO))
                .await?;
        }
        self.submit("approve", erc20.approve(spender, amount))
            .await?;
        Ok(())
    }
}

fn bytes(sig: &[u8; 65]) -> Bytes {
    Bytes::copy_from_slice(sig)
}

/// Checks a challenge period against the deployment's bounds (the factory's), before anything
/// is sent.
pub fn check_challenge_period(deployment: &keel_bindings::Deployment, period: u32) -> Result<()> {
    let (min, max) = (
        deployment.min_challenge_period,
        deployment.max_challenge_period,
    );
    if period < min || period > max {
        return Err(ChainError::ChallengePeriodOutOfRange { period, min, max });
    }
    Ok(())
}
