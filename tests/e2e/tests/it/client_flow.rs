//! The client API end to end: two `keel_client::Client`s (alice and bob) over loopback TCP,
//! each with its own SQLite store and chain monitor, on Anvil with the contracts deployed by
//! the deploy script. On-chain payouts must equal the off-chain balances to the wei.

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::primitives::{utils::parse_ether, Address, B256, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{
    client::{ChannelInfo, ClientEvent, ManualClock},
    store::ChainStatus,
    Client, Config,
};
use keel_core::secret_hash;
use keel_e2e::{Devnet, Participant, MIN_PERIOD};
use tokio::sync::broadcast;

/// Longest wait for anything that should happen; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(60);

pub(crate) fn units(s: &str) -> U256 {
    parse_ether(s).expect("a valid constant")
}

/// A directory for one test's stores, removed afterwards.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "keel-e2e-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Alice's and Bob's clients on one devnet, connected, with a shared clock that follows the
/// chain's.
pub(crate) struct Pair {
    pub(crate) net: Devnet,
    pub(crate) dir: TempDir,
    pub(crate) clock: ManualClock,
    pub(crate) alice: Client,
    pub(crate) bob: Client,
    pub(crate) bob_addr: std::net::SocketAddr,
}

impl Pair {
    pub(crate) async fn start(name: &str) -> Result<Self> {
        Self::start_with(name, 0).await
    }

    /// Both clients following the chain `confirmations` deep.
    pub(crate) async fn start_with(name: &str, confirmations: u64) -> Result<Self> {
        Self::start_tuned(name, confirmations, |_| {}).await
    }

    /// Both clients following the chain `confirmations` deep, their configuration changed by
    /// `tune`.
    pub(crate) async fn start_tuned(
        name: &str,
        confirmations: u64,
        tune: impl Fn(&mut Config),
    ) -> Result<Self> {
        let net = Devnet::start().await?;
        let dir = TempDir::new(name);
        let clock = ManualClock::new(chain_time(&net).await?);
        let with_depth = |mut config: Config| {
            config.chains = vec![net.chain_config(confirmations)];
            tune(&mut config);
            config
        };
        let alice =
            Client::start(with_depth(config(&net, &dir, &clock, &net.alice, "alice"))).await?;
        let bob = Client::start(with_depth(config(&net, &dir, &clock, &net.bob, "bob"))).await?;
        let bob_addr = bob.listen("127.0.0.1:0").await?;
        alice.connect(bob_addr, net.bob.address()).await?;
        Ok(Self {
            net,
            dir,
            clock,
            alice,
            bob,
            bob_addr,
        })
    }

    /// Alice opens a channel in `token` with `deposit`, Bob tops it up with `deposit`; returns
    /// once both clients saw both deposits.
    pub(crate) async fn open(&self, token: Address, deposit: U256) -> Result<B256> {
        let mut bob_events = self.bob.subscribe();
        let info = self
            .alice
            .open_channel(
                self.net.chain_id,
                self.net.bob.address(),
                token,
                deposit,
                MIN_PERIOD,
            )
            .await?;
        let id = info.id;
        wait_for(
            &mut bob_events,
            |e| matches!(e, ClientEvent::ChannelOpened { channel_id, .. } if *channel_id == id),
        )
        .await?;
        // Bob's view must hold the channel by now (it is registered before the event is sent);
        // waiting for it makes a lost channel fail here by name rather than in `top_up`.
        // CI once saw `top_up` report it unknown right after the event (not diagnosed).
        wait_until(&self.bob, id, |_| true).await?;
        self.bob.top_up(id, deposit).await?;
        for client in [&self.alice, &self.bob] {
            wait_until(client, id, |i| i.deposits == [deposit, deposit]).await?;
        }
        Ok(id)
    }

    /// Moves the chain's and the clients' clocks forward together.
    pub(crate) async fn advance(&self, seconds: u64) -> Result<()> {
        self.net.advance_time(seconds).await?;
        self.clock.set(chain_time(&self.net).await?);
        Ok(())
    }
}

pub(crate) fn config(
    net: &Devnet,
    dir: &TempDir,
    clock: &ManualClock,
    who: &Participant,
    name: &str,
) -> Config {
    let mut config = Config::new(who.signer.clone(), dir.0.join(format!("{name}.db")));
    config.clock = Arc::new(clock.clone());
    config.chains = vec![net.chain_config(0)];
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_millis(200);
    config.snapshot_every = 50;
    config
}

alloy::sol! {
    #[sol(rpc)]
    interface IERC20Balance {
        function balanceOf(address who) external view returns (uint256);
    }
}

/// What `who` holds of `asset` (`Address::ZERO` for ETH).
pub(crate) async fn holdings(net: &Devnet, asset: Address, who: Address) -> Result<U256> {
    use alloy::providers::Provider;
    if asset.is_zero() {
        return Ok(net.alice.provider.get_balance(who).await?);
    }
    Ok(IERC20Balance::new(asset, &net.alice.provider)
        .balanceOf(who)
        .call()
        .await?)
}

/// The latest block's timestamp.
pub(crate) async fn chain_time(net: &Devnet) -> Result<u64> {
    net.latest_timestamp().await
}

/// Waits for an event matching `pick`.
pub(crate) async fn wait_for(
    events: &mut broadcast::Receiver<ClientEvent>,
    mut pick: impl FnMut(&ClientEvent) -> bool,
) -> Result<ClientEvent> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            match events.recv().await {
                Ok(event) if pick(&event) => return Ok(event),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => return Err(eyre!("event stream ended: {e}")),
            }
        }
    })
    .await
    .map_err(|_| eyre!("timed out waiting for an event"))?
}

/// Waits for the settlement of `id` and checks it paid exactly `payout_a` and `payout_b`.
pub(crate) async fn expect_settled(
    events: &mut broadcast::Receiver<ClientEvent>,
    id: B256,
    payout_a: U256,
    payout_b: U256,
) -> Result<()> {
    let settled = wait_for(
        events,
        |e| matches!(e, ClientEvent::Settled { channel_id, .. } if *channel_id == id),
    )
    .await?;
    let expected = ClientEvent::Settled {
        channel_id: id,
        payout_a,
        payout_b,
    };
    ensure!(settled == expected, "{settled:?}, expected {expected:?}");
    Ok(())
}

/// Polls `client`'s view of `id` until `done` holds.
pub(crate) async fn wait_until(
    client: &Client,
    id: B256,
    mut done: impl FnMut(&ChannelInfo) -> bool,
) -> Result<ChannelInfo> {
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Ok(info) = client.channel(id).await {
                if done(&info) {
                    return info;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .map_err(|_| eyre!("timed out waiting on channel {id}"))
}

/// Waits until both clients hold the same balances (updates in flight have landed).
pub(crate) async fn wait_agreed(pair: &Pair, id: B256) -> Result<(U256, U256)> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match agreed(pair, id).await {
            Ok(balances) => return Ok(balances),
            Err(e) if tokio::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Both clients hold the same balances; returns (alice's, bob's).
pub(crate) async fn agreed(pair: &Pair, id: B256) -> Result<(U256, U256)> {
    let (a, b) = (pair.alice.channel(id).await?, pair.bob.channel(id).await?);
    ensure!(
        a.balance == b.peer_balance && a.peer_balance == b.balance,
        "views differ: {a:?} vs {b:?}"
    );
    ensure!(a.sent_nonce == b.received_nonce && a.received_nonce == b.sent_nonce);
    Ok((a.balance, b.balance))
}

/// What Alice pays in her `i`th payment: 1..=1000 base units.
fn alice_amount(i: u64) -> U256 {
    U256::from(i % 1_000 + 1)
}

/// What Bob pays in his `i`th payment: 2..=1000 base units in another order, so the two
/// directions' totals differ and a payment lost or doubled on both sides does not cancel out.
fn bob_amount(i: u64) -> U256 {
    U256::from(i * 7 % 999 + 2)
}

/// `count` payments each way, all at once; returns what each sent.
async fn pay_both_ways(pair: &Pair, id: B256, count: u64) -> Result<(U256, U256)> {
    let spawn = |client: &Client, amount: fn(u64) -> U256| {
        let client = client.clone();
        tokio::spawn(async move {
            // 16 payers per side keep payments in flight while staying in order per payer.
            let payers: Vec<_> = (0..16)
                .map(|p| {
                    let client = client.clone();
                    tokio::spawn(async move {
                        for i in (p..count).step_by(16) {
                            client.pay(id, amount(i)).await?;
                        }
                        Ok::<_, keel_client::ClientError>(())
                    })
                })
                .collect();
            for payer in payers {
                payer.await.expect("payer task")?;
            }
            Ok::<_, keel_client::ClientError>(())
        })
    };
    let (a, b) = (
        spawn(&pair.alice, alice_amount),
        spawn(&pair.bob, bob_amount),
    );
    a.await??;
    b.await??;
    let total = |amount: fn(u64) -> U256| (0..count).map(amount).fold(U256::ZERO, |s, x| s + x);
    Ok((total(alice_amount), total(bob_amount)))
}

/// Checks one direction on its own: the payee holds the payer's latest proof, which carries the
/// payer's cumulative total, `sent`, at nonce `payments`.
async fn expect_direction(payee: &Client, id: B256, payments: u64, sent: U256) -> Result<()> {
    let (proof, _) = payee
        .latest_peer_proof(id)
        .await?
        .ok_or_else(|| eyre!("no proof received"))?;
    ensure!(
        (proof.nonce, proof.transferredAmount) == (payments, sent),
        "received {} in {} proofs; {sent} was sent in {payments}",
        proof.transferredAmount,
        proof.nonce
    );
    Ok(())
}

async fn pay_thousands_and_close(erc20: bool) -> Result<()> {
    let pair = Pair::start(if erc20 { "erc20" } else { "eth" }).await?;
    let token = if erc20 { pair.net.token } else { Address::ZERO };
    let deposit = units("10");
    let id = pair.open(token, deposit).await?;
    let (a_sent, b_sent) = pay_both_ways(&pair, id, 5_000).await?;
    ensure!(a_sent != b_sent, "the directions must not cancel out");
    // One more one-sided payment so the balances differ from the deposits.
    let extra = U256::from(123_456_789u64);
    pair.alice.pay(id, extra).await?;
    expect_direction(&pair.bob, id, 5_001, a_sent + extra).await?;
    expect_direction(&pair.alice, id, 5_000, b_sent).await?;
    let (a, b) = agreed(&pair, id).await?;
    ensure!(a == deposit - a_sent + b_sent - extra);
    ensure!(b == deposit + a_sent - b_sent + extra);
    let info = pair.alice.channel(id).await?;
    ensure!(info.sent_nonce == 5_001 && info.received_nonce == 5_000);

    let before = (
        pair.net.alice.balance_of(token).await?,
        pair.net.bob.balance_of(token).await?,
    );
    let mut events = pair.bob.subscribe();
    let receipt = pair.alice.close(id).await?;
    wait_for(
        &mut events,
        |e| matches!(e, ClientEvent::Settled { channel_id, .. } if *channel_id == id),
    )
    .await?;
    let after = (
        pair.net.alice.balance_of(token).await?,
        pair.net.bob.balance_of(token).await?,
    );
    // Alice paid the gas of the close in ETH; in a token channel her token balance is exact.
    let gas = if token.is_zero() {
        U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price)
    } else {
        U256::ZERO
    };
    ensure!(
        after.0 + gas - before.0 == a,
        "alice's payout is her balance"
    );
    ensure!(after.1 - before.1 == b, "bob's payout is his balance");
    let status = pair.bob.channel(id).await?.chain;
    ensure!(
        matches!(status, ChainStatus::Settled { payout_a, payout_b, .. } if payout_a == a && payout_b == b),
        "{status:?}"
    );
    ensure!(
        holdings(&pair.net, token, info.vault).await? == U256::ZERO,
        "the vault is empty"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eth_channel_ten_thousand_payments_close_to_the_wei() -> Result<()> {
    pay_thousands_and_close(false).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erc20_channel_ten_thousand_payments_close_to_the_wei() -> Result<()> {
    pay_thousands_and_close(true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_up_withdraw_and_hash_locks_while_open() -> Result<()> {
    let pair = Pair::start("locks").await?;
    let deposit = units("1");
    let id = pair.open(Address::ZERO, deposit).await?;

    // On a followed chain only the monitor reports deposits: a caller cannot make one up.
    let err = pair
        .alice
        .deposit_confirmed(id, keel_core::Side::A, units("100"))
        .await
        .unwrap_err();
    ensure!(
        matches!(err, keel_client::ClientError::ChainFollowed(_)),
        "{err:?}"
    );

    // Top-up and withdrawal while open: both sides see both on chain.
    pair.alice.top_up(id, units("0.5")).await?;
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| i.deposits[0] == units("1.5")).await?;
    }
    let before = pair.net.bob.balance().await?;
    let receipt = pair.bob.withdraw(id, units("0.25")).await?;
    let gas = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    ensure!(pair.net.bob.balance().await? + gas - before == units("0.25"));
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| i.withdrawn[1] == units("0.25")).await?;
    }
    let (a, b) = agreed(&pair, id).await?;
    ensure!((a, b) == (units("1.5"), units("0.75")), "{a} {b}");

    // A lock claimed with its secret: Bob reveals it, Alice pays it out.
    let secret = B256::repeat_byte(0x5e);
    let now = chain_time(&pair.net).await?;
    pair.clock.set(now);
    pair.alice
        .pay_locked(id, units("0.1"), secret_hash(secret), now + 3_600)
        .await?;
    pair.bob.claim_lock(id, secret).await?;
    ensure!(agreed(&pair, id).await? == (units("1.4"), units("0.85")));

    // A lock that expires unclaimed goes back to Alice.
    pair.alice
        .pay_locked(
            id,
            units("0.2"),
            secret_hash(B256::repeat_byte(7)),
            now + 900,
        )
        .await?;
    ensure!(agreed(&pair, id).await? == (units("1.2"), units("0.85")));
    ensure!(
        pair.alice.remove_expired_locks(id).await? == 0,
        "not expired yet"
    );
    pair.advance(1_000).await?;
    ensure!(pair.alice.remove_expired_locks(id).await? == 1);
    ensure!(agreed(&pair, id).await? == (units("1.4"), units("0.85")));

    // Closing pays exactly those balances.
    let mut events = pair.alice.subscribe();
    pair.bob.close(id).await?;
    expect_settled(&mut events, id, units("1.4"), units("0.85")).await?;
    ensure!(
        holdings(
            &pair.net,
            Address::ZERO,
            pair.alice.channel(id).await?.vault
        )
        .await?
            == U256::ZERO
    );
    Ok(())
}

/// With `Config::settle_automatically`, a unilateral close is collected with no call from the
/// application: after the challenge period the clients settle, then unlock Alice's two locks,
/// the one whose secret Bob registered going to Bob and the expired one back to Alice, and the
/// vault is left empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_channel_is_settled_and_unlocked_without_the_application() -> Result<()> {
    let pair = Pair::start_tuned("sweep", 0, |c| c.settle_automatically = true).await?;
    let id = pair.open(Address::ZERO, units("1")).await?;
    let now = chain_time(&pair.net).await?;
    pair.clock.set(now);
    let (paid, expired) = (B256::repeat_byte(0x51), B256::repeat_byte(0x52));
    pair.alice
        .pay_locked(id, units("0.1"), secret_hash(paid), now + 3_600)
        .await?;
    pair.alice
        .pay_locked(id, units("0.2"), secret_hash(expired), now + 900)
        .await?;
    pair.bob.register_secret(pair.net.chain_id, paid).await?;

    // Alice's close leaves her own proof (the locks) out; Bob, online, refutes with it.
    // Settlement before that would be a close without the locks.
    pair.alice.force_close(id).await?;
    for client in [&pair.alice, &pair.bob] {
        wait_until(
            client,
            id,
            |i| matches!(i.chain, ChainStatus::Disputed(d) if d.from_a.nonce == 2),
        )
        .await?;
    }
    pair.advance(u64::from(MIN_PERIOD).max(900) + 1).await?;
    let vault = pair.alice.channel(id).await?.vault;
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, id, |i| {
            matches!(i.chain, ChainStatus::Settled { locks: Some(l), .. }
                if l.retained_a.is_zero() && l.retained_b.is_zero())
        })
        .await?;
    }
    ensure!(holdings(&pair.net, Address::ZERO, vault).await? == U256::ZERO);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_close_is_refuted_by_the_online_peer() -> Result<()> {
    let pair = Pair::start("refute").await?;
    let deposit = units("1");
    let id = pair.open(Address::ZERO, deposit).await?;
    for _ in 0..5 {
        pair.alice.pay(id, units("0.1")).await?;
    }
    pair.bob.pay(id, units("0.05")).await?;
    let (a, b) = agreed(&pair, id).await?;
    ensure!((a, b) == (units("0.55"), units("1.45")));

    // Alice closes; on chain her own payments start at nonce 0, as if she never paid. Bob's
    // client answers with her latest proof by itself.
    let mut events = pair.bob.subscribe();
    pair.alice.force_close(id).await?;
    wait_for(
        &mut events,
        |e| matches!(e, ClientEvent::ClosedByPeer { channel_id, .. } if *channel_id == id),
    )
    .await?;
    let refuted = wait_for(&mut events, |e| {
        matches!(e, ClientEvent::DisputeAnswered { .. })
    })
    .await?;
    ensure!(
        refuted
            == ClientEvent::DisputeAnswered {
                channel_id: id,
                closer_nonce: 5
            },
        "{refuted:?}"
    );
    // Nothing more goes through the channel, once Alice's monitor has seen her close too.
    wait_until(&pair.alice, id, |i| !i.chain.is_open()).await?;
    let err = pair.alice.pay(id, U256::from(1)).await.unwrap_err();
    ensure!(
        matches!(err, keel_client::ClientError::ChannelClosed(_)),
        "{err:?}"
    );

    // After the challenge period, settlement pays the off-chain balances.
    pair.advance(u64::from(MIN_PERIOD) + 1).await?;
    pair.bob.settle(id).await?;
    expect_settled(&mut events, id, a, b).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_follows_two_chains() -> Result<()> {
    let (one, two) = (Devnet::start().await?, Devnet::start().await?);
    ensure!(one.chain_id != two.chain_id);
    let dir = TempDir::new("two-chains");
    let clock = ManualClock::new(chain_time(&one).await?);
    let both = |mut config: Config| {
        config.chains = vec![one.chain_config(0), two.chain_config(0)];
        config
    };
    let alice = Client::start(both(config(&one, &dir, &clock, &one.alice, "alice"))).await?;
    let bob = Client::start(both(config(&one, &dir, &clock, &one.bob, "bob"))).await?;
    let bob_addr = bob.listen("127.0.0.1:0").await?;
    alice.connect(bob_addr, bob.address()).await?;

    let mut ids = Vec::new();
    for (net, deposit) in [(&one, units("1")), (&two, units("2"))] {
        let id = alice
            .open_channel(
                net.chain_id,
                bob.address(),
                Address::ZERO,
                deposit,
                MIN_PERIOD,
            )
            .await?
            .id;
        for client in [&alice, &bob] {
            wait_until(client, id, |i| i.deposits[0] == deposit).await?;
        }
        ids.push((net, id));
    }
    for (i, (_, id)) in ids.iter().enumerate() {
        for _ in 0..=i {
            alice.pay(*id, units("0.1")).await?;
        }
    }
    let mut events = bob.subscribe();
    for (net, id) in &ids {
        let info = alice.channel(*id).await?;
        ensure!(info.chain_id == net.chain_id);
        alice.close(*id).await?;
        let settled = wait_for(
            &mut events,
            |e| matches!(e, ClientEvent::Settled { channel_id, .. } if channel_id == id),
        )
        .await?;
        ensure!(
            settled
                == ClientEvent::Settled {
                    channel_id: *id,
                    payout_a: info.balance,
                    payout_b: info.peer_balance
                },
            "{settled:?}"
        );
        ensure!(holdings(net, Address::ZERO, info.vault).await? == U256::ZERO);
    }
    Ok(())
}

/// A hub's on-chain rebalancing step through the client: Alice moves part of her balance in one
/// channel into her side of another with Bob, as one co-signed `withdrawInto`; both clients see
/// the withdrawal on the first and the deposit on the second, and nothing is paid out.
#[tokio::test]
async fn a_co_signed_move_shifts_liquidity_between_two_channels() -> Result<()> {
    let pair = Pair::start("move").await?;
    let deposit = units("1");
    let from = pair.open(Address::ZERO, deposit).await?;
    let to = pair.open(Address::ZERO, deposit).await?;
    ensure!(from != to);
    let target = pair.alice.channel(to).await?.vault;
    let source = pair.alice.channel(from).await?.vault;
    let held_before = holdings(&pair.net, Address::ZERO, source).await?
        + holdings(&pair.net, Address::ZERO, target).await?;

    let destination = keel_client::Destination::Vault {
        vault: target,
        side: keel_core::Side::A,
    };
    pair.alice
        .withdraw_to(from, units("0.3"), destination)
        .await?;
    for client in [&pair.alice, &pair.bob] {
        wait_until(client, from, |i| i.withdrawn[0] == units("0.3")).await?;
        wait_until(client, to, |i| i.deposits[0] == units("1.3")).await?;
    }
    ensure!(agreed(&pair, from).await? == (units("0.7"), units("1")));
    ensure!(agreed(&pair, to).await? == (units("1.3"), units("1")));
    let held_after = holdings(&pair.net, Address::ZERO, source).await?
        + holdings(&pair.net, Address::ZERO, target).await?;
    ensure!(held_after == held_before, "a move pays no one");

    // A move into the channel's own vault is refused before anything is signed or stored.
    let own = keel_client::Destination::Vault {
        vault: source,
        side: keel_core::Side::A,
    };
    let err = pair
        .alice
        .withdraw_to(from, units("0.1"), own)
        .await
        .unwrap_err();
    ensure!(
        matches!(
            err,
            keel_client::ClientError::Channel(keel_core::ChannelError::InvalidWithdrawal(_))
        ),
        "{err:?}"
    );
    Ok(())
}
