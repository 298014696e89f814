//! Channel graph gossip between real clients over loopback TCP: A–B–C in a line, where A learns
//! the channel B–C from B without the application carrying anything, and pays C over it; and a
//! hostile peer whose forged announcements and updates are refused, not relayed, and cost it
//! the connection when repeated. The chain is configured (announcements verify against its
//! deployment) but its node is never reached: deposits are reported as the monitor would, and
//! announcements are not checked against the vaults (`Config::check_announcements` off; the
//! check is tested end to end on Anvil, tests/e2e/tests/it/graph.rs).

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use keel_client::{
    chain::ChainConfig,
    client::{ClientError, Config, ManualClock, MAX_GOSSIP_STRIKES},
    store::ChannelOpening,
    Client,
};
use keel_core::{
    channel_id,
    forwarding::{ChannelAnnouncement, ChannelUpdate, FailureReason},
    sign_hash,
    wire::Message,
    Address, ChannelDomain, ChannelParams, Policy, Side, B256, U256,
};

const CHAIN_ID: u64 = 31337;
const NOW: u64 = 1_700_000_000;
const DEPOSIT: u64 = 1_000_000;
const FACTORY: Address = Address::repeat_byte(0xfa);
const IMPLEMENTATION: Address = Address::repeat_byte(0x1e);

/// A directory for one test's stores, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keel-gossip-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn params(a: Address, b: Address) -> ChannelParams {
    ChannelParams {
        participant_a: a,
        participant_b: b,
        token: Address::ZERO,
        challenge_period: 86_400,
        salt: B256::ZERO,
    }
}

fn opening(a: Address, b: Address, me: Side) -> ChannelOpening {
    ChannelOpening {
        params: params(a, b),
        chain_id: CHAIN_ID,
        factory: FACTORY,
        implementation: IMPLEMENTATION,
        me,
        policy: Policy::default(),
    }
}

/// A chain whose deployment matches the channels here, at an address nothing listens on.
fn chain() -> ChainConfig {
    ChainConfig::development(
        "http://127.0.0.1:9",
        keel_bindings::Deployment {
            chain_id: CHAIN_ID,
            deployed_at_block: 0,
            channel_factory: FACTORY,
            vault_implementation: IMPLEMENTATION,
            secret_registry: Address::repeat_byte(0x5e),
            min_challenge_period: 60,
            max_challenge_period: 30 * 86_400,
        },
    )
}

fn config(dir: &TempDir, signer: &PrivateKeySigner, name: &str, clock: &ManualClock) -> Config {
    let mut config = Config::new(signer.clone(), dir.0.join(format!("{name}.db")));
    config.clock = std::sync::Arc::new(clock.clone());
    config.sync_timeout = Duration::from_secs(10);
    config.reply_timeout = Duration::from_secs(10);
    config.reconnect_delay = Duration::from_millis(20);
    config.max_reconnect_delay = Duration::from_millis(200);
    config.check_announcements = false;
    config
}

/// A, B and C, with channels A–B and B–C funded with `DEPOSIT` a side; B listens, A and C
/// dial it. Neither channel is public yet.
struct Line {
    _dir: TempDir,
    /// Each client's configuration as started, chain included.
    configs: [Config; 3],
    signers: [PrivateKeySigner; 3],
    a: Client,
    b: Client,
    c: Client,
    b_at: SocketAddr,
    ab: B256,
    bc: B256,
}

async fn channel(x: (&Client, Address), y: (&Client, Address)) -> B256 {
    let id =
        x.0.add_channel(&opening(x.1, y.1, Side::A))
            .await
            .unwrap()
            .id;
    y.0.add_channel(&opening(x.1, y.1, Side::B)).await.unwrap();
    for client in [x.0, y.0] {
        for side in [Side::A, Side::B] {
            client
                .deposit_confirmed(id, side, U256::from(DEPOSIT))
                .await
                .unwrap();
        }
    }
    id
}

impl Line {
    async fn new() -> Self {
        Self::with_commit_interval(None).await
    }

    /// [`Line::new`], A's store pacing its commits `a_commits` apart once it runs with the chain.
    async fn with_commit_interval(a_commits: Option<Duration>) -> Self {
        let dir = TempDir::new();
        let clock = ManualClock::new(NOW);
        let signers = [(); 3].map(|()| PrivateKeySigner::random());
        let configs =
            [("a", 0), ("b", 1), ("c", 2)].map(|(name, i)| config(&dir, &signers[i], name, &clock));
        // Deposits are reported by hand only while no chain is followed: the channels are
        // recorded first, then each client restarts following the chain.
        let (a, b, c) = (
            Client::start(configs[0].clone()).await.unwrap(),
            Client::start(configs[1].clone()).await.unwrap(),
            Client::start(configs[2].clone()).await.unwrap(),
        );
        let [addr_a, addr_b, addr_c] = [0, 1, 2].map(|i| signers[i].address());
        let ab = channel((&a, addr_a), (&b, addr_b)).await;
        let bc = channel((&b, addr_b), (&c, addr_c)).await;
        for client in [a, b, c] {
            client.shutdown().await;
        }
        let configs = configs.map(|mut config| {
            config.chains = vec![chain()];
            config
        });
        let mut configs = configs;
        if let Some(interval) = a_commits {
            configs[0].min_commit_interval = interval;
        }
        let [a, b, c] = configs.clone().map(Client::start);
        let (a, b, c) = (a.await.unwrap(), b.await.unwrap(), c.await.unwrap());
        let b_at = b.listen("127.0.0.1:0").await.unwrap();
        a.connect(b_at, addr_b).await.unwrap();
        c.connect(b_at, addr_b).await.unwrap();
        Self {
            _dir: dir,
            configs,
            signers,
            a,
            b,
            c,
            b_at,
            ab,
            bc,
        }
    }

    fn address(&self, i: usize) -> Address {
        self.signers[i].address()
    }

    /// Waits until A, told nothing by the application, finds a route to C for `amount` (B
    /// gossiped B–C), then has C ask for `amount`.
    async fn payable(&self, amount: U256, memo: &str) -> keel_client::client::SignedRequest {
        let (a, c_addr) = (&self.a, self.address(2));
        eventually("A learns B–C", async || {
            a.find_route(CHAIN_ID, c_addr, Address::ZERO, amount)
                .await
                .is_ok()
        })
        .await;
        self.c
            .create_invoice(CHAIN_ID, Address::ZERO, amount, 3_600, memo)
            .await
            .unwrap()
    }

    /// With A's store pacing its commits a second apart: C's invoice for `amount`, made
    /// payable over gossip, is paid by A in the background, and this returns once A applied
    /// its lock, which then waits (with its onion) for A's next commit, a second after a write
    /// of A's just before.
    async fn lock_waiting_for_its_commit(
        &self,
        amount: U256,
        memo: &str,
    ) -> tokio::task::JoinHandle<keel_client::client::Result<keel_client::client::PaymentOutcome>>
    {
        self.b.announce_channel(self.bc).await.unwrap();
        self.c.announce_channel(self.bc).await.unwrap();
        let invoice = self.payable(amount, memo).await;
        self.a
            .create_invoice(CHAIN_ID, Address::ZERO, amount, 3_600, "pacing")
            .await
            .unwrap();
        let a = self.a.clone();
        let paying = tokio::spawn(async move { a.send_payment(&invoice, 1).await });
        let (a, ab) = (&self.a, self.ab);
        eventually("A applies its lock", async || {
            !a.channel(ab).await.unwrap().outgoing_locks.is_empty()
        })
        .await;
        paying
    }

    /// Waits until C holds `amount` more in B–C than it deposited.
    async fn c_is_paid(&self, amount: U256) {
        let (c, bc) = (&self.c, self.bc);
        eventually("C is paid", async || {
            c.channel(bc).await.unwrap().balance == U256::from(DEPOSIT) + amount
        })
        .await;
    }
}

/// Polls `probe` until it holds, for at most 10 s.
async fn eventually(what: &str, mut probe: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !probe().await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payer_learns_a_channel_from_gossip_and_pays_over_it() {
    let line = Line::new().await;
    let amount = U256::from(10_000);
    let c_addr = line.address(2);
    // Private channels are not gossiped: A knows no route to C.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(line
        .a
        .find_route(CHAIN_ID, c_addr, Address::ZERO, amount)
        .await
        .is_err());
    // One side alone does not make it public: C has B's half, but the channel is announced
    // only once C consents too.
    line.b.announce_channel(line.bc).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(line
        .a
        .find_route(CHAIN_ID, c_addr, Address::ZERO, amount)
        .await
        .is_err());
    line.c.announce_channel(line.bc).await.unwrap();
    // B completes the announcement with C's half and gossips it with its policy; A, which
    // the application told nothing, routes over it.
    let invoice = line.payable(amount, "over gossip").await;
    let before = line.c.channel(line.bc).await.unwrap().balance;
    let outcome = line.a.send_payment(&invoice, 3).await.unwrap();
    assert_eq!(outcome.route.hops.len(), 2);
    assert_eq!(outcome.route.hops[1].channel, line.bc);
    let c = &line.c;
    let bc = line.bc;
    eventually("C is paid", async || {
        c.channel(bc).await.unwrap().balance == before + amount
    })
    .await;
    assert_eq!(line.a.gossip_refused(), 0);
    let _ = line.ab;
}

/// Signs `msg` under the domain of the channel with `params`, as `signer`.
fn sign<T: keel_core::eip712::Message>(
    signer: &PrivateKeySigner,
    params: &ChannelParams,
    msg: &T,
) -> [u8; 65] {
    let id = channel_id(CHAIN_ID, FACTORY, params);
    let vault = keel_core::vault_address(FACTORY, IMPLEMENTATION, id, params.token);
    sign_hash(
        signer,
        &ChannelDomain::new(CHAIN_ID, vault).signing_hash(msg),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_gossip_is_refused_not_relayed_and_repeated_costs_the_connection() {
    let line = Line::new().await;
    line.b.announce_channel(line.bc).await.unwrap();
    line.c.announce_channel(line.bc).await.unwrap();
    let (b_addr, c_addr) = (line.address(1), line.address(2));
    let a = &line.a;
    eventually("A learns B–C", async || {
        a.find_route(CHAIN_ID, c_addr, Address::ZERO, U256::from(1))
            .await
            .is_ok()
    })
    .await;

    // Mallory connects to B and gossips a channel between two strangers she signed herself,
    // and a policy for B–C in C's name, with a fee that would make every route through C free.
    let mallory = PrivateKeySigner::random();
    let mut conn = crate::raw_peer(&mallory, line.b_at, b_addr).await;
    let (x, y) = (Address::repeat_byte(0x11), Address::repeat_byte(0x22));
    let fake = params(x, y);
    let announcement = ChannelAnnouncement {
        channelId: channel_id(CHAIN_ID, FACTORY, &fake),
        participantA: x,
        participantB: y,
        token: Address::ZERO,
        challengePeriod: fake.challenge_period,
        salt: fake.salt,
    };
    let by_mallory = sign(&mallory, &fake, &announcement);
    let forged_announcement = Message::ChannelAnnouncement {
        chain_id: CHAIN_ID,
        announcement,
        capacity: U256::from(DEPOSIT),
        signatures: [by_mallory, by_mallory],
    };
    let update = ChannelUpdate {
        channelId: line.bc,
        node: c_addr,
        timestamp: NOW + 1,
        feeBase: U256::ZERO,
        feeProportionalMillionths: 0,
        expiryDelta: 1,
        minAmount: U256::ZERO,
        enabled: true,
        rates: Vec::new(),
    };
    let forged_update = Message::ChannelUpdate {
        signature: sign(&mallory, &params(b_addr, c_addr), &update),
        update,
    };
    conn.send(&forged_announcement).await.unwrap();
    conn.send(&forged_update).await.unwrap();
    let b = &line.b;
    eventually("B refuses both", async || b.gossip_refused() == 2).await;
    // Nothing was relayed: A has no route to the strangers, and neither did A count anything
    // refused (it never saw them).
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(line
        .a
        .find_route(CHAIN_ID, y, Address::ZERO, U256::from(1))
        .await
        .is_err());
    assert_eq!(line.a.gossip_refused(), 0);
    assert_eq!(line.b.gossip_refused(), 2);

    // Repeated, it costs Mallory the connection; B's honest peers stay.
    for _ in 2..MAX_GOSSIP_STRIKES {
        conn.send(&forged_update).await.unwrap();
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if conn.recv().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "B still talks to Mallory");
    assert_eq!(line.b.gossip_refused(), u64::from(MAX_GOSSIP_STRIKES));
    line.a.pay(line.ab, U256::from(5)).await.unwrap();
}

/// A's lock and its onion wait together for A's store (a commit paced a second after the
/// previous one), and the connection to B drops meanwhile: both are lost with it. When B is
/// back and asks for the update, the onion leads it again, so B forwards and the payment
/// completes. Without the onion B would hold a lock it cannot act on, and A would wait for its
/// expiry (an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onion_lost_with_the_connection_is_resent_with_its_lock() {
    let mut line = Line::with_commit_interval(Some(Duration::from_secs(1))).await;
    let amount = U256::from(10_000);
    let paying = line.lock_waiting_for_its_commit(amount, "resent").await;
    line.b.clone().shutdown().await;
    line.b = Client::start(line.configs[1].clone()).await.unwrap();
    line.b.listen(line.b_at).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(20), paying)
        .await
        .expect("the payment never completed: the onion was not resent")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.route.hops.len(), 2);
    line.c_is_paid(amount).await;
}

/// A's lock and its onion are stored (A's commit paced a second after the previous write), but
/// A stops before the update leaves: the onion never reached B. The restarted A resends the
/// update when B asks for it, and the onion stored with the lock leads it, so B forwards and C
/// is paid. An onion kept only in memory would be gone, and B would hold a lock it cannot act on
/// until it expires (an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_onion_stored_with_its_lock_is_resent_after_the_payer_restarts() {
    let mut line = Line::with_commit_interval(Some(Duration::from_secs(1))).await;
    let amount = U256::from(10_000);
    let paying = line.lock_waiting_for_its_commit(amount, "restarted").await;
    let ab = line.ab;
    // Disconnected first, then the store flushed: the lock is stored and never left.
    line.a.clone().shutdown().await;
    paying.abort();
    assert!(
        line.b.channel(ab).await.unwrap().incoming_locks.is_empty(),
        "the update left before A stopped: the test proves nothing"
    );
    line.a = Client::start(line.configs[0].clone()).await.unwrap();
    line.a.connect(line.b_at, line.address(1)).await.unwrap();

    line.c_is_paid(amount).await;
    let a = line.a.clone();
    eventually("A's lock is paid out", async || {
        let view = a.channel(ab).await.unwrap();
        view.outgoing_locks.is_empty() && view.balance <= U256::from(DEPOSIT) - amount
    })
    .await;
}

/// C is away, so B stores A's lock and its onion but cannot forward yet; B stops before it
/// does. The restarted B finds the onion stored with the lock and forwards it once C is back,
/// and the payment completes. An onion kept only in memory would be gone: B would hold a lock it
/// can neither forward nor claim, and A would wait for its expiry (an hour).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_restarted_before_forwarding_forwards_from_the_stored_onion() {
    let mut line = Line::new().await;
    let amount = U256::from(10_000);
    line.b.announce_channel(line.bc).await.unwrap();
    line.c.announce_channel(line.bc).await.unwrap();
    let invoice = line.payable(amount, "hub restarted").await;
    line.c.clone().shutdown().await;
    // B notices C left (its forward then waits for C instead of leaving at once).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = line.a.clone();
    let paying = tokio::spawn(async move { a.send_payment(&invoice, 1).await });
    let (b, ab) = (line.b.clone(), line.ab);
    eventually("B holds A's lock", async || {
        !b.channel(ab).await.unwrap().incoming_locks.is_empty()
    })
    .await;
    line.b.clone().shutdown().await;
    assert!(
        line.b
            .channel(line.bc)
            .await
            .unwrap()
            .outgoing_locks
            .is_empty(),
        "B forwarded before it stopped: the test proves nothing"
    );
    line.b = Client::start(line.configs[1].clone()).await.unwrap();
    line.b.listen(line.b_at).await.unwrap();
    line.c = Client::start(line.configs[2].clone()).await.unwrap();
    line.c.connect(line.b_at, line.address(1)).await.unwrap();

    let outcome = tokio::time::timeout(Duration::from_secs(20), paying)
        .await
        .expect("the payment never completed: B did not forward after its restart")
        .unwrap()
        .unwrap();
    assert_eq!(outcome.route.hops.len(), 2);
    line.c_is_paid(amount).await;
}

/// Clients over loopback with funded channels between them (`DEPOSIT` a side); every client
/// but the first listens, and each channel's other end dials it.
struct Net {
    _dir: TempDir,
    clock: ManualClock,
    signers: Vec<PrivateKeySigner>,
    clients: Vec<Client>,
    /// The channels, in the order of the edges asked for.
    channels: Vec<B256>,
}

impl Net {
    async fn new(nodes: usize, edges: &[(usize, usize)]) -> Self {
        let dir = TempDir::new();
        let clock = ManualClock::new(NOW);
        let signers: Vec<_> = (0..nodes).map(|_| PrivateKeySigner::random()).collect();
        let configs: Vec<_> = (0..nodes)
            .map(|i| config(&dir, &signers[i], &format!("n{i}"), &clock))
            .collect();
        let addr = |i: usize| signers[i].address();
        // Channels recorded (deposits reported by hand) before the chain is followed.
        let mut started = Vec::new();
        for config in configs.clone() {
            started.push(Client::start(config).await.unwrap());
        }
        let mut channels = Vec::new();
        for &(x, y) in edges {
            channels.push(channel((&started[x], addr(x)), (&started[y], addr(y))).await);
        }
        for client in started {
            client.shutdown().await;
        }
        let mut clients = Vec::new();
        for mut config in configs {
            config.chains = vec![chain()];
            clients.push(Client::start(config).await.unwrap());
        }
        let mut at = vec![None];
        for client in &clients[1..] {
            at.push(Some(client.listen("127.0.0.1:0").await.unwrap()));
        }
        for &(x, y) in edges {
            let (dialer, listener) = if y == 0 { (y, x) } else { (x, y) };
            let to = at[listener].unwrap();
            clients[dialer].connect(to, addr(listener)).await.unwrap();
        }
        Self {
            _dir: dir,
            clock,
            signers,
            clients,
            channels,
        }
    }
}

/// A–B–C and A–D–C: two routes from A to C.
struct Diamond {
    net: Net,
    ab: B256,
    bc: B256,
    ad: B256,
    dc: B256,
}

impl Diamond {
    async fn new() -> Self {
        let net = Net::new(4, &[(0, 1), (1, 2), (0, 3), (3, 2)]).await;
        let [ab, bc, ad, dc] = net.channels[..].try_into().unwrap();
        Self {
            net,
            ab,
            bc,
            ad,
            dc,
        }
    }

    fn clients(&self) -> [&Client; 4] {
        [0, 1, 2, 3].map(|i| &self.net.clients[i])
    }

    /// D charges 500 wei for forwarding, so B's route is the cheaper; both channels to C are
    /// announced, and this waits until A routes through B and knows D–C too.
    async fn both_routes_known(&self, amount: U256) {
        let [a, b, c, d] = self.clients();
        let fee = keel_core::forwarding::FeePolicy {
            base: U256::from(500),
            proportional_millionths: 0,
        };
        let policy =
            keel_client::client::ForwardPolicy::new(fee, keel_client::client::DEFAULT_EXPIRY_DELTA);
        d.set_forward_policy(self.dc, policy).await.unwrap();
        for (hub, channel) in [(b, self.bc), (d, self.dc)] {
            hub.announce_channel(channel).await.unwrap();
            c.announce_channel(channel).await.unwrap();
        }
        let c_addr = self.net.signers[2].address();
        eventually("A learns both routes, B's the cheaper", async || {
            let route = a.find_route(CHAIN_ID, c_addr, Address::ZERO, amount).await;
            let via_b = route.is_ok_and(|r| r.hops[0].channel == self.ab);
            let both = [self.bc, self.dc].map(|id| a.graph_capacity(id).is_some());
            via_b && both == [true, true]
        })
        .await;
        // D's policy travels with its half of the announcement; let any update behind it land.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// A's cheaper route to C, through B, fails: B has nothing left on its side of B–C (gossip
/// shows only the channel's capacity). B refuses and releases A's lock, so A takes it back at
/// once and, the retry being safe, pays over D instead: one payment, two attempts, C paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_failing_for_liquidity_is_released_and_retried_on_another() {
    let diamond = Diamond::new().await;
    let [a, b, c, _] = diamond.clients();
    let amount = U256::from(10_000);
    // B empties its side of B–C.
    b.pay(diamond.bc, U256::from(DEPOSIT)).await.unwrap();
    diamond.both_routes_known(amount).await;
    let invoice = c
        .create_invoice(CHAIN_ID, Address::ZERO, amount, 3_600, "retried")
        .await
        .unwrap();

    let outcome = a.send_payment(&invoice, 3).await.unwrap();
    assert_eq!(outcome.attempts, 2, "{outcome:?}");
    let hops: Vec<_> = outcome.route.hops.iter().map(|h| h.channel).collect();
    assert_eq!(hops, vec![diamond.ad, diamond.dc]);
    assert_eq!(outcome.fees, U256::from(500));
    let (ab, dc) = (diamond.ab, diamond.dc);
    eventually("A's failed lock is back, untouched", async || {
        let view = a.channel(ab).await.unwrap();
        view.outgoing_locks.is_empty() && view.balance == U256::from(DEPOSIT)
    })
    .await;
    eventually("C is paid once, over D", async || {
        c.channel(dc).await.unwrap().balance == U256::from(DEPOSIT) + amount
    })
    .await;
}

/// The payment through B fails without B releasing A's lock: C holds the lock B sent it (a hold
/// invoice) until it expires, and B, whose lock C never released, passes the failure on and
/// keeps A's. A must not try D then: B could still claim A's lock with the secret a second
/// route would reveal, and A would pay twice. The payment ends with B's failure, D never sees a
/// lock, and A's lock stays until its own expiry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_whose_lock_is_not_released_is_not_retried() {
    let diamond = Diamond::new().await;
    let [a, _, c, _] = diamond.clients();
    let amount = U256::from(10_000);
    diamond.both_routes_known(amount).await;
    let (invoice, _secret) = c
        .create_hold_invoice(CHAIN_ID, Address::ZERO, amount, 3_600, "held")
        .await
        .unwrap();
    let payer = a.clone();
    let paying = tokio::spawn(async move { payer.send_payment(&invoice, 3).await });
    let bc = diamond.bc;
    eventually("C holds B's lock", async || {
        !c.channel(bc).await.unwrap().incoming_locks.is_empty()
    })
    .await;
    let held = c.channel(bc).await.unwrap().incoming_locks[0];
    diamond.net.clock.set(held.expiration + 1);

    let failed = tokio::time::timeout(Duration::from_secs(20), paying)
        .await
        .expect("the payment never ended")
        .unwrap();
    match failed {
        Err(ClientError::PaymentFailed { failure, .. }) => {
            assert_eq!(failure.reason, FailureReason::Expired, "{failure:?}");
        }
        other => panic!("expected B's failure, got {other:?}"),
    }
    let (ab, ad, dc) = (diamond.ab, diamond.ad, diamond.dc);
    let view = a.channel(ab).await.unwrap();
    assert_eq!(view.outgoing_locks.len(), 1, "A's lock through B stays");
    let view = a.channel(ad).await.unwrap();
    assert!(view.outgoing_locks.is_empty() && view.balance == U256::from(DEPOSIT));
    assert!(c.channel(dc).await.unwrap().incoming_locks.is_empty());
}

/// Mallory, who has a channel with B, floods B with onions for locks she never adds, while A
/// pays C through B: B keeps Mallory's connection and memory in bounds (onions are held per
/// channel, her flood pushing out only her own: forward/pending.rs tests that directly), and
/// every one of A's payments completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_through_a_hub_go_on_while_a_channel_peer_floods_it_with_onions() {
    let line = Line::new().await;
    line.b.announce_channel(line.bc).await.unwrap();
    line.c.announce_channel(line.bc).await.unwrap();
    let mallory = PrivateKeySigner::random();
    let b_addr = line.address(1);
    let mb = line
        .b
        .add_channel(&opening(mallory.address(), b_addr, Side::B))
        .await
        .unwrap()
        .id;
    let mut conn = crate::raw_peer(&mallory, line.b_at, b_addr).await;
    let flood = tokio::spawn(async move {
        for n in 0u64.. {
            let onion = Message::LockOnion {
                channel_id: mb,
                secret_hash: B256::from(U256::from(n)),
                packet: keel_core::forwarding::onion::Packet(Box::new(
                    [2; keel_core::forwarding::onion::PACKET_LEN],
                )),
            };
            if conn.send(&onion).await.is_err() {
                return n;
            }
        }
        unreachable!()
    });
    let amount = U256::from(1_000);
    for i in 0..20 {
        let invoice = line.payable(amount, &format!("flooded {i}")).await;
        let paying = line.a.send_payment(&invoice, 1);
        let Ok(paid) = tokio::time::timeout(Duration::from_secs(10), paying).await else {
            panic!("payment {i} stalled at B");
        };
        paid.unwrap();
    }
    assert!(
        !flood.is_finished(),
        "B dropped Mallory: the flood proved nothing"
    );
    flood.abort();
}

/// A–B, B–C and C–A, every channel public; B charges 100 wei for forwarding into B–C and C 50
/// into C–A. Returns the network and the three channels.
async fn triangle() -> (Net, [B256; 3]) {
    let net = Net::new(3, &[(0, 1), (1, 2), (2, 0)]).await;
    let [ab, bc, ca]: [B256; 3] = net.channels[..].try_into().unwrap();
    let [a, b, c] = [0, 1, 2].map(|i| &net.clients[i]);
    let fee = |base: u64| {
        let fee = keel_core::forwarding::FeePolicy {
            base: U256::from(base),
            proportional_millionths: 0,
        };
        keel_client::client::ForwardPolicy::new(fee, keel_client::client::DEFAULT_EXPIRY_DELTA)
    };
    b.set_forward_policy(bc, fee(100)).await.unwrap();
    c.set_forward_policy(ca, fee(50)).await.unwrap();
    for (x, y, channel) in [(a, b, ab), (b, c, bc), (c, a, ca)] {
        x.announce_channel(channel).await.unwrap();
        y.announce_channel(channel).await.unwrap();
    }
    eventually("A knows every channel", async || {
        [ab, bc, ca]
            .iter()
            .all(|id| a.graph_capacity(*id).is_some())
    })
    .await;
    // The policies travel with the announcements' halves; let any update behind them land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (net, [ab, bc, ca])
}

/// A pays itself round the triangle: out by A–B, back by C–A. A–B's balance on A's side drains
/// by the amount and the fees, C–A's refills by the amount, B and C earn their fees, and A's
/// total falls by exactly the fees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circular_rebalance_moves_balance_between_our_channels_for_the_fees() {
    let (net, [ab, bc, ca]) = triangle().await;
    let [a, b, c] = [0, 1, 2].map(|i| &net.clients[i]);
    let amount = U256::from(100_000);
    let outcome = a
        .rebalance(ab, ca, amount, U256::from(150), 3)
        .await
        .unwrap();
    let hops: Vec<_> = outcome.route.hops.iter().map(|h| h.channel).collect();
    assert_eq!(hops, vec![ab, bc, ca]);
    assert_eq!(outcome.fees, U256::from(150));
    let deposit = U256::from(DEPOSIT);
    eventually("every lock settled", async || {
        let (x, y) = (a.channel(ab).await.unwrap(), a.channel(ca).await.unwrap());
        x.outgoing_locks.is_empty() && y.incoming_locks.is_empty()
    })
    .await;
    assert_eq!(
        a.channel(ab).await.unwrap().balance,
        deposit - amount - U256::from(150)
    );
    assert_eq!(a.channel(ca).await.unwrap().balance, deposit + amount);
    eventually("B and C earn their fees", async || {
        let b_total = b.channel(ab).await.unwrap().balance + b.channel(bc).await.unwrap().balance;
        let c_total = c.channel(bc).await.unwrap().balance + c.channel(ca).await.unwrap().balance;
        b_total == deposit * U256::from(2) + U256::from(100)
            && c_total == deposit * U256::from(2) + U256::from(50)
    })
    .await;
}

/// A rebalance whose cheapest route costs more than the caller allows is refused before
/// anything is locked; so are one between a channel and itself, one of nothing, one of more
/// than the channel holds on our side, and one allowed no attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_dearer_than_its_limit_locks_nothing() {
    let (net, [ab, _, ca]) = triangle().await;
    let a = &net.clients[0];
    let amount = U256::from(100_000);
    let refused = a.rebalance(ab, ca, amount, U256::from(149), 3).await;
    match refused {
        Err(ClientError::FeeAboveLimit { fee, limit }) => {
            assert_eq!((fee, limit), (U256::from(150), U256::from(149)));
        }
        other => panic!("expected the fee limit, got {other:?}"),
    }
    let same = a.rebalance(ab, ab, amount, U256::from(1_000), 3).await;
    assert!(matches!(same, Err(ClientError::Routing(_))), "{same:?}");
    // Nothing to move, more than A holds there, no attempt allowed: typed refusals too.
    for (amount, attempts) in [(U256::ZERO, 3), (U256::from(DEPOSIT), 3), (amount, 0)] {
        let refused = a
            .rebalance(ab, ca, amount, U256::from(1_000), attempts)
            .await;
        assert!(
            matches!(refused, Err(ClientError::Routing(_))),
            "{refused:?}"
        );
    }
    for id in [ab, ca] {
        let view = a.channel(id).await.unwrap();
        assert!(view.outgoing_locks.is_empty() && view.incoming_locks.is_empty());
        assert_eq!(view.balance, U256::from(DEPOSIT));
    }
}
