//! Multi-hop payments through hubs, end to end: clients in a line (alice → bob → carol →
//! dave) over loopback, each with its own store and chain monitor, channels opened on Anvil.
//! The payee issues an invoice, the payer routes over the announcements it learnt from gossip
//! (the fee tests) or was given by hand (the fault tests), each hub forwards under its own fee
//! policy, and every hop's balance is checked to the wei: fees land where the policies say, a
//! withheld secret refunds every hop after expiry, a hop lied to refuses with a typed
//! reason, and a circular rebalance moves a node's balance between its own channels.

use std::{net::SocketAddr, time::Duration};

use alloy::primitives::{Address, B256, U256};
use eyre::{ensure, eyre, Result};
use keel_client::{
    chain::{ChainEvent, ChainEventKind},
    client::{ChannelInfo, ClientEvent, Clock, ForwardPolicy, ManualClock},
    store::ChainStatus,
    Client, ClientError,
};
use keel_core::forwarding::{FailureReason, FeePolicy};
use keel_e2e::{Devnet, Participant, MIN_PERIOD};
use keel_routing::SignedAnnouncement;

use crate::client_flow::{chain_time, config, units, wait_for, wait_until, TempDir};

/// Clients in a line, each connected to the next, on one chain or, for lines that cross
/// chains, on two (every client following both).
pub(crate) struct Line {
    pub(crate) net: Devnet,
    /// The second chain (its own chain id, Keel deployed), if the line crosses chains.
    pub(crate) far: Option<Devnet>,
    pub(crate) dir: TempDir,
    pub(crate) clock: ManualClock,
    pub(crate) nodes: Vec<Client>,
    /// Where each node but the first listens (its predecessor dials it).
    pub(crate) addrs: Vec<Option<SocketAddr>>,
}

impl Line {
    pub(crate) async fn start(name: &str, count: usize) -> Result<Self> {
        Self::start_on(name, count, None).await
    }

    /// A line whose clients follow two chains, `net` and `far`, with different chain ids.
    pub(crate) async fn start_across(name: &str, count: usize) -> Result<Self> {
        Self::start_on(name, count, Some(Devnet::start().await?)).await
    }

    async fn start_on(name: &str, count: usize, far: Option<Devnet>) -> Result<Self> {
        let net = Devnet::start().await?;
        let dir = TempDir::new(name);
        let clock = ManualClock::new(latest_time(&net, far.as_ref()).await?);
        let mut nodes: Vec<Client> = Vec::new();
        let mut addrs = Vec::new();
        for i in 0..count {
            let client = Client::start(node_config(&net, far.as_ref(), &dir, &clock, i)).await?;
            let mut addr = None;
            if let Some(before) = nodes.last() {
                let at = client.listen("127.0.0.1:0").await?;
                before.connect(at, client.address()).await?;
                addr = Some(at);
            }
            nodes.push(client);
            addrs.push(addr);
        }
        Ok(Self {
            net,
            far,
            dir,
            clock,
            nodes,
            addrs,
        })
    }

    /// Stops node `i` and starts it again from its store, listening where it listened and, if
    /// `dial_next`, dialling node `i + 1`; returns the new client (`nodes[i]` is the stopped
    /// one).
    pub(crate) async fn restart(&self, i: usize, dial_next: bool) -> Result<Client> {
        self.nodes[i].clone().shutdown().await;
        let config = node_config(&self.net, self.far.as_ref(), &self.dir, &self.clock, i);
        let client = Client::start(config).await?;
        if let Some(addr) = self.addrs[i] {
            let mut listening = client.listen(addr).await;
            for _ in 0..50 {
                if listening.is_ok() {
                    break;
                }
                // The stopped client's listener may still hold the port for a moment.
                tokio::time::sleep(Duration::from_millis(100)).await;
                listening = client.listen(addr).await;
            }
            listening?;
        }
        if let (true, Some(next), Some(Some(addr))) =
            (dial_next, self.nodes.get(i + 1), self.addrs.get(i + 1))
        {
            client.connect(*addr, next.address()).await?;
        }
        Ok(client)
    }

    /// The second chain of a line that crosses chains.
    pub(crate) fn far(&self) -> Result<&Devnet> {
        self.far
            .as_ref()
            .ok_or_else(|| eyre!("the line has one chain"))
    }

    /// Node `i` opens a channel to node `i + 1` in `token` with `deposit`; returns once both
    /// saw the deposit.
    pub(crate) async fn open(&self, i: usize, token: Address, deposit: U256) -> Result<B256> {
        self.open_on(self.net.chain_id, i, token, deposit).await
    }

    /// [`Line::open`] on the chain `chain_id`.
    pub(crate) async fn open_on(
        &self,
        chain_id: u64,
        i: usize,
        token: Address,
        deposit: U256,
    ) -> Result<B256> {
        let (opener, peer) = (&self.nodes[i], &self.nodes[i + 1]);
        let mut events = peer.subscribe();
        let id = opener
            .open_channel(chain_id, peer.address(), token, deposit, MIN_PERIOD)
            .await?
            .id;
        wait_for(
            &mut events,
            |e| matches!(e, ClientEvent::ChannelOpened { channel_id, .. } if *channel_id == id),
        )
        .await?;
        for client in [opener, peer] {
            wait_until(client, id, |i| i.deposits[0] == deposit).await?;
        }
        Ok(id)
    }

    /// Announces channel `id` between nodes `i` and `i + 1` to `to`, with node `i`'s policy
    /// for forwarding into it.
    pub(crate) async fn announce(
        &self,
        to: &Client,
        i: usize,
        id: B256,
        capacity: U256,
    ) -> Result<()> {
        let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
        let (announcement, signature_a) = a.announcement_signature(id).await?;
        let (_, signature_b) = b.announcement_signature(id).await?;
        let signatures = if announcement.participantA == a.address() {
            [signature_a, signature_b]
        } else {
            [signature_b, signature_a]
        };
        let signed = SignedAnnouncement {
            announcement,
            signatures,
        };
        let chain_id = a.channel(id).await?.chain_id;
        to.add_announcement(chain_id, &signed, capacity)?;
        to.add_channel_update(&a.channel_update(id).await?)?;
        Ok(())
    }

    /// Makes channel `id` between nodes `i` and `i + 1` public (both consent) and waits until
    /// node 0 has learnt it from gossip, relayed along the line: nothing carried by hand.
    pub(crate) async fn gossip(&self, i: usize, id: B256, token: Address) -> Result<()> {
        let (a, b) = (&self.nodes[i], &self.nodes[i + 1]);
        a.announce_channel(id).await?;
        b.announce_channel(id).await?;
        let chain_id = a.channel(id).await?.chain_id;
        for _ in 0..200 {
            let route = self.nodes[0]
                .find_route(chain_id, b.address(), token, U256::from(1))
                .await;
            if route.is_ok_and(|r| r.hops.iter().any(|h| h.channel == id)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(eyre!("node 0 never learnt channel {id} from gossip"))
    }

    /// Moves the chains' and the clients' clocks forward together (the clients' to the later
    /// of the chains' clocks).
    pub(crate) async fn advance(&self, seconds: u64) -> Result<()> {
        self.net.advance_time(seconds).await?;
        if let Some(far) = &self.far {
            far.advance_time(seconds).await?;
        }
        self.clock
            .set(latest_time(&self.net, self.far.as_ref()).await?);
        Ok(())
    }
}

/// The later of the chains' latest block times.
async fn latest_time(net: &Devnet, far: Option<&Devnet>) -> Result<u64> {
    let near = chain_time(net).await?;
    Ok(match far {
        Some(far) => near.max(chain_time(far).await?),
        None => near,
    })
}

/// Node `i`'s configuration: its store in `dir`, following `net` and `far` if there is one.
fn node_config(
    net: &Devnet,
    far: Option<&Devnet>,
    dir: &TempDir,
    clock: &ManualClock,
    i: usize,
) -> keel_client::Config {
    let (participant, name) = who(net)[i];
    let mut config = config(net, dir, clock, participant, name);
    if let Some(far) = far {
        config.chains.push(far.chain_config(0));
    }
    config
}

/// The line's participants, in order, with their store names.
fn who(net: &Devnet) -> [(&Participant, &'static str); 4] {
    [
        (&net.alice, "alice"),
        (&net.bob, "bob"),
        (&net.carol, "carol"),
        (&net.dave, "dave"),
    ]
}

/// Alice, Bob and Carol in a line with ETH channels of `deposit` each way along it, Bob
/// forwarding into his channel to Carol under `hub` (if given), announced to Alice. Returns the
/// line and the channels Alice–Bob and Bob–Carol.
pub(crate) async fn three(
    name: &str,
    deposit: U256,
    hub: Option<ForwardPolicy>,
) -> Result<(Line, B256, B256)> {
    let line = Line::start(name, 3).await?;
    let ab = line.open(0, Address::ZERO, deposit).await?;
    let bc = line.open(1, Address::ZERO, deposit).await?;
    if let Some(hub) = hub {
        line.nodes[1].set_forward_policy(bc, hub).await?;
    }
    line.announce(&line.nodes[0], 1, bc, deposit).await?;
    Ok((line, ab, bc))
}

/// A payment from Alice to Carol's hold invoice, under way: both locks out and pending.
pub(crate) struct Held {
    pub(crate) paying:
        tokio::task::JoinHandle<Result<keel_client::client::PaymentOutcome, ClientError>>,
    pub(crate) secret: B256,
    /// Carol's incoming lock.
    pub(crate) lock: keel_core::Lock,
}

/// Alice starts paying a hold invoice of Carol's for `amount` through Bob; returns once Carol
/// holds the lock.
pub(crate) async fn pay_held(line: &Line, bc: B256, amount: U256) -> Result<Held> {
    let (alice, carol) = (&line.nodes[0], &line.nodes[2]);
    let (request, secret) = carol
        .create_hold_invoice(line.net.chain_id, Address::ZERO, amount, 3_600, "held")
        .await?;
    let payer = alice.clone();
    let paying = tokio::spawn(async move { payer.send_payment(&request, 1).await });
    let lock = wait_until(carol, bc, |i| i.incoming_locks.len() == 1)
        .await?
        .incoming_locks[0];
    Ok(Held {
        paying,
        secret,
        lock,
    })
}

pub(crate) fn policy(base: u64, millionths: u32) -> ForwardPolicy {
    ForwardPolicy::new(
        FeePolicy {
            base: U256::from(base),
            proportional_millionths: millionths,
        },
        keel_client::client::DEFAULT_EXPIRY_DELTA,
    )
}

/// Waits until `client` holds no pending lock in `id` and its balances are `balance` (ours)
/// and `peer_balance`.
pub(crate) async fn settled_at(
    client: &Client,
    id: B256,
    balance: U256,
    peer_balance: U256,
) -> Result<ChannelInfo> {
    let info = wait_until(client, id, |i| {
        i.outgoing_locks.is_empty() && i.incoming_locks.is_empty() && i.balance == balance
    })
    .await?;
    ensure!(
        info.peer_balance == peer_balance,
        "channel {id}: peer balance {}, expected {peer_balance}",
        info.peer_balance
    );
    Ok(info)
}

/// Alice pays Carol through Bob in ETH: Carol receives the invoice amount, Bob keeps exactly
/// his fee on his channel to Carol, Alice pays amount plus fee; events on each side say so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hops_in_eth_pay_the_hub_its_fee() -> Result<()> {
    let line = Line::start("multihop-2", 3).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let deposit = units("1");
    let ab = line.open(0, Address::ZERO, deposit).await?;
    let bc = line.open(1, Address::ZERO, deposit).await?;
    let hub_policy = policy(1_000, 2_500);
    bob.set_forward_policy(bc, hub_policy.clone()).await?;
    line.gossip(1, bc, Address::ZERO).await?;

    let amount = units("0.01");
    let request = carol
        .create_invoice(line.net.chain_id, Address::ZERO, amount, 3_600, "coffee")
        .await?;
    let mut bob_events = bob.subscribe();
    let mut carol_events = carol.subscribe();
    let outcome = alice.send_payment(&request, 3).await?;

    let fee = hub_policy.fee.fee(amount)?;
    ensure!(fee == U256::from(1_000u64 + 25_000_000_000_000u64));
    ensure!(outcome.fees == fee, "fees {} != {fee}", outcome.fees);
    ensure!(outcome.attempts == 1);
    ensure!(outcome.route.hops.iter().map(|h| h.channel).eq([ab, bc]));
    ensure!(keel_core::secret_hash(outcome.secret) == request.request.paymentHash);

    let forwarded = wait_for(&mut bob_events, |e| {
        matches!(e, ClientEvent::PaymentForwarded { .. })
    })
    .await?;
    ensure!(
        forwarded
            == ClientEvent::PaymentForwarded {
                incoming_channel: ab,
                outgoing_channel: bc,
                secret_hash: request.request.paymentHash,
                fee,
            },
        "{forwarded:?}"
    );
    wait_for(&mut carol_events, |e| {
        matches!(e, ClientEvent::InvoicePaid { payment_hash, amount: a, .. }
            if *payment_hash == request.request.paymentHash && *a == amount)
    })
    .await?;

    let paid = amount + fee;
    settled_at(alice, ab, deposit - paid, paid).await?;
    settled_at(bob, ab, paid, deposit - paid).await?;
    settled_at(bob, bc, deposit - amount, amount).await?;
    settled_at(carol, bc, amount, deposit - amount).await?;
    // Bob's net: +fee exactly.
    ensure!(paid - amount == fee);
    Ok(())
}

/// Alice pays Dave through Bob and Carol in the ERC-20, each hub with its own fee: every
/// channel moves by exactly what the route's locks say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hops_in_erc20_pay_each_hub_its_fee() -> Result<()> {
    let line = Line::start("multihop-3", 4).await?;
    let token = line.net.token;
    let [alice, bob, carol, dave] = [
        &line.nodes[0],
        &line.nodes[1],
        &line.nodes[2],
        &line.nodes[3],
    ];
    let deposit = units("100");
    let ab = line.open(0, token, deposit).await?;
    let bc = line.open(1, token, deposit).await?;
    let cd = line.open(2, token, deposit).await?;
    let (bob_policy, carol_policy) = (policy(7, 1_000), policy(3, 500));
    bob.set_forward_policy(bc, bob_policy.clone()).await?;
    carol.set_forward_policy(cd, carol_policy.clone()).await?;
    // Bob relays Carol's channel to Dave to Alice.
    line.gossip(1, bc, token).await?;
    line.gossip(2, cd, token).await?;

    let amount = units("2");
    let request = dave
        .create_invoice(line.net.chain_id, token, amount, 3_600, "")
        .await?;
    let outcome = alice.send_payment(&request, 3).await?;

    // Walking back from Dave: Carol forwards `amount` for her fee, Bob forwards that for his.
    let into_cd = amount;
    let into_bc = into_cd + carol_policy.fee.fee(into_cd)?;
    let into_ab = into_bc + bob_policy.fee.fee(into_bc)?;
    ensure!(outcome
        .route
        .hops
        .iter()
        .map(|h| h.channel)
        .eq([ab, bc, cd]));
    ensure!(
        outcome
            .route
            .locks
            .iter()
            .map(|l| l.amount)
            .eq([into_ab, into_bc, into_cd]),
        "{:?}",
        outcome.route.locks
    );
    ensure!(outcome.fees == into_ab - amount);

    settled_at(alice, ab, deposit - into_ab, into_ab).await?;
    settled_at(bob, ab, into_ab, deposit - into_ab).await?;
    settled_at(bob, bc, deposit - into_bc, into_bc).await?;
    settled_at(carol, bc, into_bc, deposit - into_bc).await?;
    settled_at(carol, cd, deposit - into_cd, into_cd).await?;
    settled_at(dave, cd, into_cd, deposit - into_cd).await?;
    Ok(())
}

/// Carol holds the secret and never claims: nothing is paid anywhere. Once Carol's lock
/// expires Bob takes it back and the failure reaches Alice, saying the hop after Bob let it
/// expire; once Alice's expires she takes hers back: every hop ends where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withheld_secret_refunds_every_hop_after_expiry() -> Result<()> {
    let deposit = units("1");
    let (line, ab, bc) = three("multihop-withheld", deposit, None).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let amount = units("0.2");
    let Held {
        paying,
        lock: carol_lock,
        ..
    } = pay_held(&line, bc, amount).await?;
    // Both locks are out and pending.
    let alice_info = wait_until(alice, ab, |i| i.outgoing_locks.len() == 1).await?;
    let alice_lock = alice_info.outgoing_locks[0];
    ensure!(carol_lock.amount == amount && alice_lock.amount == amount);
    ensure!(
        alice_lock.expiration >= carol_lock.expiration + keel_client::client::DEFAULT_EXPIRY_DELTA
    );

    // Past Carol's lock: Bob takes it back and tells Alice.
    let now = line.clock.now();
    line.advance(carol_lock.expiration + 1 - now).await?;
    settled_at(bob, bc, deposit, U256::ZERO).await?;
    settled_at(carol, bc, U256::ZERO, deposit).await?;
    let failed = tokio::time::timeout(Duration::from_secs(60), paying).await??;
    match failed {
        Err(ClientError::PaymentFailed { failure, hop }) => {
            ensure!(failure.reason == FailureReason::Expired, "{failure:?}");
            ensure!(failure.node == carol.address() && failure.channel == bc);
            ensure!(hop == Some(1));
        }
        other => return Err(eyre!("expected an expired payment, got {other:?}")),
    }

    // Past Alice's lock: she takes it back.
    let now = line.clock.now();
    line.advance(alice_lock.expiration + 1 - now).await?;
    ensure!(alice.remove_expired_locks(ab).await? == 1);
    settled_at(alice, ab, deposit, U256::ZERO).await?;
    settled_at(bob, ab, U256::ZERO, deposit).await?;
    Ok(())
}

/// Alice lies to Bob: a lock below what his fee needs, one expiring too soon after the one he
/// is told to forward, an instruction to forward into a channel he does not have. Bob forwards
/// none and says why; nothing reaches Carol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hop_lied_to_refuses_with_a_typed_reason() -> Result<()> {
    let line = Line::start("multihop-lies", 3).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let deposit = units("1");
    let _ab = line.open(0, Address::ZERO, deposit).await?;
    let bc = line.open(1, Address::ZERO, deposit).await?;
    bob.set_forward_policy(bc, policy(1_000, 0)).await?;
    line.announce(alice, 1, bc, deposit).await?;

    let amount = units("0.1");
    let route = alice
        .find_route(line.net.chain_id, carol.address(), Address::ZERO, amount)
        .await?;

    let mut short_paid = route.clone();
    short_paid.locks[0].amount -= U256::from(1);
    let mut short_lived = route.clone();
    short_lived.locks[0].expiration = route.locks[1].expiration + 60;
    // A next channel Bob does not have: the failure names the channel he was told.
    let nowhere = B256::repeat_byte(0xee);
    let mut to_nowhere = route.clone();
    to_nowhere.hops[1].channel = nowhere;
    for (lie, reason, channel) in [
        (short_paid, FailureReason::FeeTooLow, bc),
        (short_lived, FailureReason::ExpiryTooSoon, bc),
        (to_nowhere, FailureReason::UnknownNextChannel, nowhere),
    ] {
        // An invoice each: the refused lock stays on Alice's channel until it expires.
        let request = carol
            .create_invoice(line.net.chain_id, Address::ZERO, amount, 3_600, "")
            .await?;
        match alice.pay_route(&lie, request.request.paymentHash).await {
            Err(ClientError::PaymentFailed { failure, hop }) => {
                ensure!(failure.reason == reason, "{failure:?}");
                ensure!(failure.node == bob.address() && failure.channel == channel);
                ensure!(hop == Some(0));
            }
            other => return Err(eyre!("expected {reason:?}, got {other:?}")),
        }
    }
    let carol_view = carol.channel(bc).await?;
    ensure!(carol_view.incoming_locks.is_empty());
    Ok(())
}

/// Bob is stopped while his forward is pending (Carol holds the lock, the secret unrevealed)
/// and started again from his store: when Carol then claims, the restarted Bob finds the
/// forward he made before, claims Alice's lock and pays Carol's out; Alice's payment completes
/// and every balance is exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_hub_settles_the_forward_it_made_before() -> Result<()> {
    let deposit = units("1");
    let hub_policy = policy(500, 1_000);
    let (line, ab, bc) = three("multihop-restart", deposit, Some(hub_policy.clone())).await?;
    let [alice, carol] = [&line.nodes[0], &line.nodes[2]];
    let amount = units("0.05");
    let Held { paying, secret, .. } = pay_held(&line, bc, amount).await?;

    let bob = line.restart(1, true).await?;
    let mut bob_events = bob.subscribe();

    // Carol settles once Bob is back (her reveal needs the connection).
    let claimed = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            match carol.claim_lock(bc, secret).await {
                Ok(()) => return,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    claimed.await.map_err(|_| eyre!("carol could not claim"))?;
    let outcome = tokio::time::timeout(Duration::from_secs(60), paying).await???;
    let fee = hub_policy.fee.fee(amount)?;
    ensure!(outcome.fees == fee);
    wait_for(
        &mut bob_events,
        |e| matches!(e, ClientEvent::PaymentForwarded { fee: f, .. } if *f == fee),
    )
    .await?;

    let paid = amount + fee;
    settled_at(alice, ab, deposit - paid, paid).await?;
    settled_at(&bob, ab, paid, deposit - paid).await?;
    settled_at(&bob, bc, deposit - amount, amount).await?;
    settled_at(carol, bc, amount, deposit - amount).await?;
    Ok(())
}

/// The dispute path of a forward: Bob forwards Alice's payment to Carol and goes offline before
/// Carol reveals the secret. Carol's client keeps the claim and, within its claim margin of the
/// lock's expiry, registers the secret on chain and closes the channel. Bob, back online,
/// learns the secret from the registry and claims Alice's lock off chain before it expires;
/// after the challenge period Carol settles and unlocks, and the vault pays her the lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_hub_is_paid_upstream_with_the_secret_registered_downstream() -> Result<()> {
    let deposit = units("1");
    let hub_policy = policy(500, 1_000);
    let (line, ab, bc) = three("multihop-registry", deposit, Some(hub_policy.clone())).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let amount = units("0.05");
    let Held {
        paying,
        secret,
        lock,
    } = pay_held(&line, bc, amount).await?;

    // Bob goes away; Carol's reveal finds no one, and her client keeps the claim.
    bob.clone().shutdown().await;
    ensure!(carol.claim_lock(bc, secret).await.is_err());
    let registry = line.net.chain(&line.net.carol).await?;
    let hash = keel_core::secret_hash(secret);
    ensure!(registry.revealed_secret(hash).await?.is_none());

    // Within the claim margin of the lock's expiry: registered on chain, channel closed.
    let margin = keel_client::client::DEFAULT_CLAIM_MARGIN;
    line.advance(lock.expiration - margin + 10 - line.clock.now())
        .await?;
    let closed = wait_until(carol, bc, |i| matches!(i.chain, ChainStatus::Disputed(_))).await?;
    let (_, registered_at) = registry
        .revealed_secret(hash)
        .await?
        .ok_or_else(|| eyre!("the secret was not registered"))?;
    ensure!(registered_at <= lock.expiration);
    ensure!(closed.incoming_locks == vec![lock], "{closed:?}");

    // Bob back, and not connected to Carol (her reveals cannot reach him): he finds the secret
    // in the registry and claims Alice's lock in time.
    let bob = line.restart(1, false).await?;
    let outcome = tokio::time::timeout(Duration::from_secs(60), paying).await???;
    let fee = hub_policy.fee.fee(amount)?;
    ensure!(outcome.fees == fee && outcome.secret == secret);
    let paid = amount + fee;
    settled_at(alice, ab, deposit - paid, paid).await?;
    settled_at(&bob, ab, paid, deposit - paid).await?;

    // After the challenge period the vault pays Carol the lock: Bob keeps the rest.
    line.advance(u64::from(MIN_PERIOD) + 1).await?;
    let settled = carol.settle(bc).await?;
    let vault = closed.vault;
    let payouts: Vec<ChainEventKind> =
        ChainEvent::from_receipt(line.net.chain_id, vault, bc, &settled)?
            .into_iter()
            .map(|e| e.kind)
            .collect();
    let (bob_side, carol_side) = (closed.me.other(), closed.me);
    let payout = |side: keel_core::Side, a: U256, b: U256| match side {
        keel_core::Side::A => a,
        keel_core::Side::B => b,
    };
    ensure!(
        payouts.iter().any(
            |k| matches!(k, ChainEventKind::Settled { payout_a, payout_b }
            if payout(bob_side, *payout_a, *payout_b) == deposit - amount
                && payout(carol_side, *payout_a, *payout_b).is_zero())
        ),
        "{payouts:?}"
    );
    wait_until(carol, bc, |i| {
        matches!(i.chain, ChainStatus::Settled { locks: Some(_), .. })
    })
    .await?;
    let unlocked = carol.unlock(bc).await?;
    ensure!(unlocked.len() == 1, "{unlocked:?}");
    let kinds: Vec<ChainEventKind> =
        ChainEvent::from_receipt(line.net.chain_id, vault, bc, &unlocked[0])?
            .into_iter()
            .map(|e| e.kind)
            .collect();
    ensure!(
        kinds.iter().any(
            |k| matches!(k, ChainEventKind::Unlocked { sender, to_receiver, to_sender, .. }
            if *sender == bob_side && *to_receiver == amount && to_sender.is_zero())
        ),
        "{kinds:?}"
    );
    Ok(())
}

/// Carol claims a hold invoice's payment while Bob is away, then restarts before he is back:
/// the claim was stored with the invoice, so the restarted Carol reveals the secret again once
/// Bob reconnects, and the payment completes with no clock moved (before, the claim lived in
/// memory and the payment would have waited for the lock's expiry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_invoice_claimed_before_a_restart_is_still_paid() -> Result<()> {
    let deposit = units("1");
    let (line, ab, bc) = three("multihop-hold-restart", deposit, None).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let amount = units("0.02");
    let Held { paying, secret, .. } = pay_held(&line, bc, amount).await?;

    bob.clone().shutdown().await;
    ensure!(carol.claim_lock(bc, secret).await.is_err(), "Bob is away");
    let carol = line.restart(2, false).await?;
    let bob = line.restart(1, true).await?;

    let outcome = tokio::time::timeout(Duration::from_secs(60), paying).await???;
    ensure!(outcome.secret == secret);
    settled_at(alice, ab, deposit - amount, amount).await?;
    settled_at(&bob, bc, deposit - amount, amount).await?;
    settled_at(&carol, bc, amount, deposit - amount).await?;
    Ok(())
}

/// Bob's channel to Carol is closed on chain while Alice's payment is pending there, and Carol
/// withholds the secret: at the lock's expiry Bob fails the payment upstream (sending nothing
/// more on the closed channel), Alice takes her lock back, and on chain the vault returns
/// Bob's lock to him: every hop ends where it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_closed_mid_payment_unwinds_on_chain_and_off() -> Result<()> {
    let deposit = units("1");
    let (line, ab, bc) = three("multihop-closed", deposit, None).await?;
    let [alice, bob, carol] = [&line.nodes[0], &line.nodes[1], &line.nodes[2]];
    let amount = units("0.1");
    let Held {
        paying,
        lock: carol_lock,
        ..
    } = pay_held(&line, bc, amount).await?;
    let alice_lock = wait_until(alice, ab, |i| i.outgoing_locks.len() == 1)
        .await?
        .outgoing_locks[0];

    bob.force_close(bc).await?;
    for client in [bob, carol] {
        wait_until(client, bc, |i| matches!(i.chain, ChainStatus::Disputed(_))).await?;
    }

    // Past Carol's lock: Bob tells Alice, from his side of the closed channel.
    line.advance(carol_lock.expiration + 1 - line.clock.now())
        .await?;
    match tokio::time::timeout(Duration::from_secs(60), paying).await?? {
        Err(ClientError::PaymentFailed { failure, hop }) => {
            ensure!(failure.reason == FailureReason::Expired, "{failure:?}");
            ensure!(failure.node == carol.address() && hop == Some(1));
        }
        other => return Err(eyre!("expected an expired payment, got {other:?}")),
    }
    line.advance(alice_lock.expiration + 1 - line.clock.now())
        .await?;
    ensure!(alice.remove_expired_locks(ab).await? == 1);
    settled_at(alice, ab, deposit, U256::ZERO).await?;
    settled_at(bob, ab, U256::ZERO, deposit).await?;

    // On chain, after the challenge period: settlement keeps the lock, unlocking returns it.
    line.advance(u64::from(MIN_PERIOD) + 1).await?;
    let settled = bob.settle(bc).await?;
    let vault = wait_until(bob, bc, |i| {
        matches!(i.chain, ChainStatus::Settled { locks: Some(_), .. })
    })
    .await?
    .vault;
    let settle_kinds = ChainEvent::from_receipt(line.net.chain_id, vault, bc, &settled)?;
    let unlocked = bob.unlock(bc).await?;
    ensure!(unlocked.len() == 1, "{unlocked:?}");
    let kinds = ChainEvent::from_receipt(line.net.chain_id, vault, bc, &unlocked[0])?;
    ensure!(
        kinds.iter().any(
            |e| matches!(e.kind, ChainEventKind::Unlocked { to_receiver, to_sender, .. }
            if to_receiver.is_zero() && to_sender == amount)
        ),
        "{kinds:?} after {settle_kinds:?}"
    );
    Ok(())
}

/// A circular rebalance in an ERC-20 token on Anvil: Alice has two channels with Bob and moves
/// 10 tokens of her balance from the first into the second by paying herself through Bob
/// (`Client::rebalance`). The first drains by the amount and Bob's fee, the second refills by
/// the amount, Bob keeps exactly his fee, and nothing touches the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circular_rebalance_in_erc20_moves_balance_between_two_channels() -> Result<()> {
    let line = Line::start("multihop-rebalance", 2).await?;
    let token = line.net.token;
    let [alice, bob] = [&line.nodes[0], &line.nodes[1]];
    let deposit = units("100");
    let first = line.open(0, token, deposit).await?;
    let second = line.open(0, token, deposit).await?;
    // Bob needs a balance of his own in the second channel to forward into it.
    let bobs = units("50");
    bob.top_up(second, bobs).await?;
    let bobs_index = usize::from(bob.channel(second).await?.me == keel_core::Side::B);
    for client in [alice, bob] {
        wait_until(client, second, |i| i.deposits[bobs_index] == bobs).await?;
    }
    let bob_policy = policy(7, 1_000);
    bob.set_forward_policy(second, bob_policy.clone()).await?;
    line.announce(alice, 0, second, deposit + bobs).await?;
    alice.add_channel_update(&bob.channel_update(second).await?)?;

    let amount = units("10");
    let fee = bob_policy.fee.fee(amount)?;
    let height = line.net.block_number().await?;
    let outcome = alice.rebalance(first, second, amount, fee, 3).await?;
    ensure!(outcome.fees == fee, "{outcome:?}");
    ensure!(outcome
        .route
        .hops
        .iter()
        .map(|h| h.channel)
        .eq([first, second]));

    settled_at(alice, first, deposit - amount - fee, amount + fee).await?;
    settled_at(bob, first, amount + fee, deposit - amount - fee).await?;
    settled_at(alice, second, deposit + amount, bobs - amount).await?;
    settled_at(bob, second, bobs - amount, deposit + amount).await?;
    ensure!(
        line.net.block_number().await? == height,
        "a rebalance off chain sent a transaction"
    );
    Ok(())
}
