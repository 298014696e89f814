//! The client against hostile peers: strangers that flood it without reading, hold raw
//! sockets open, or authenticate and then sit idle. Each must be dropped, with bounded
//! memory, while a real peer's payments go on.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use keel_client::{
    client::{Config, ManualClock},
    store::ChannelOpening,
    transport::{self, Transport},
    Client,
};
use keel_core::{wire::Message, Address, ChannelParams, Policy, Side, B256, U256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpSocket, TcpStream},
};

/// A directory for one test's stores, removed afterwards.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "keel-hostile-{}-{}",
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

/// Alice and Bob sharing a funded channel, Bob listening; `tune` adjusts both configurations.
struct Pair {
    _dir: TempDir,
    alice: Client,
    bob: Client,
    bob_at: SocketAddr,
    id: B256,
}

impl Pair {
    async fn new(tune: impl Fn(&mut Config)) -> Self {
        let dir = TempDir::new();
        let clock = ManualClock::new(1_700_000_000);
        let signers = [PrivateKeySigner::random(), PrivateKeySigner::random()];
        let config = |which: usize| {
            let mut config = Config::new(
                signers[which].clone(),
                dir.0.join(format!("peer-{which}.db")),
            );
            config.clock = std::sync::Arc::new(clock.clone());
            config
        };
        let (mut alice_config, mut bob_config) = (config(0), config(1));
        tune(&mut alice_config);
        tune(&mut bob_config);
        let alice = Client::start(alice_config).await.unwrap();
        let bob = Client::start(bob_config).await.unwrap();
        let (a, b) = (signers[0].address(), signers[1].address());
        let opening = |me| ChannelOpening {
            params: ChannelParams {
                participant_a: a,
                participant_b: b,
                token: Address::ZERO,
                challenge_period: 86_400,
                salt: B256::ZERO,
            },
            chain_id: 31337,
            factory: Address::repeat_byte(0xfa),
            implementation: Address::repeat_byte(0x1e),
            me,
            policy: Policy::default(),
        };
        let id = alice.add_channel(&opening(Side::A)).await.unwrap().id;
        bob.add_channel(&opening(Side::B)).await.unwrap();
        for client in [&alice, &bob] {
            for side in [Side::A, Side::B] {
                client
                    .deposit_confirmed(id, side, U256::from(1_000_000u64))
                    .await
                    .unwrap();
            }
        }
        let bob_at = bob.listen("127.0.0.1:0").await.unwrap();
        alice.connect(bob_at, b).await.unwrap();
        Self {
            _dir: dir,
            alice,
            bob,
            bob_at,
            id,
        }
    }

    async fn pays(&self, n: u64) {
        for _ in 0..n {
            tokio::time::timeout(
                Duration::from_secs(10),
                self.alice.pay(self.id, U256::from(1)),
            )
            .await
            .expect("a payment in time")
            .unwrap();
        }
    }
}

/// A stranger dialling `at` with a tiny receive buffer, so whatever is sent to it and not
/// read fills the client's socket at once.
/// It has said `Hello`, as a peer must first.
async fn stranger(at: SocketAddr, expected: Address) -> transport::Connection {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(at).await.unwrap();
    let transport = Transport::new(PrivateKeySigner::random()).unwrap();
    let mut conn = transport.initiate(stream, expected).await.unwrap();
    let hello = Message::Hello {
        address: transport.address(),
    };
    conn.send(&hello).await.unwrap();
    conn
}

/// A stranger that floods messages for channels that do not exist and never reads the
/// refusals is dropped once its queue is full (before the fix the client queued refusals for
/// it without bound: hundreds of megabytes), and Alice's payments go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_stranger_that_never_reads_is_dropped() {
    let pair = Pair::new(|_| {}).await;
    let mut flood = stranger(pair.bob_at, pair.bob.address()).await;
    const MAX: u64 = 300_000;
    let (mut sent, mut batch) = (0u64, 0u64);
    let flooding = async {
        while sent < MAX {
            let msg = Message::Resync {
                channel_id: B256::from(U256::from(sent)),
                sent_nonce: 0,
                received_nonce: 0,
            };
            if flood.send(&msg).await.is_err() {
                return;
            }
            sent += 1;
            batch += 1;
            if batch == 1_000 {
                batch = 0;
                // Let the client's tasks run on this runtime too.
                tokio::task::yield_now().await;
            }
        }
    };
    let flooding = tokio::time::timeout(Duration::from_secs(120), flooding);
    let (flooded, ()) = tokio::join!(flooding, pair.pays(20));
    assert!(flooded.is_ok(), "the flood neither ended nor was dropped");
    assert!(
        sent < MAX,
        "the client kept reading {sent} messages from a peer that reads nothing"
    );
    pair.pays(20).await;
}

/// Raw sockets that never start a handshake are capped per source address: beyond the cap
/// the client hangs up at once (before the fix each waited out the handshake timeout, 10 s,
/// and cost an X25519 multiplication), and Alice still pays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_raw_sockets_beyond_the_cap_are_closed_at_once() {
    let pair = Pair::new(|_| {}).await;
    let mut sockets = Vec::new();
    for _ in 0..64 {
        sockets.push(tokio::net::TcpStream::connect(pair.bob_at).await.unwrap());
    }
    let mut last = sockets.pop().unwrap();
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(3), last.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "the 64th idle socket from one address is still open: {read:?}"
    );
    pair.pays(10).await;
}

/// A stranger that authenticates and then says nothing is dropped after the idle timeout
/// (before the fix it was kept for ever), while Alice, idle too, stays connected: her
/// keep-alives count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_stranger_is_dropped_and_an_idle_peer_is_kept() {
    let pair = Pair::new(|c| c.idle_timeout = Duration::from_millis(600)).await;
    let mut events = pair.alice.subscribe();
    pair.pays(1).await;
    let mut idle = stranger(pair.bob_at, pair.bob.address()).await;
    assert!(matches!(idle.recv().await, Ok(Message::Hello { .. })));
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            // Keep-alives are all it may get before the end.
            match idle.recv().await {
                Ok(Message::Hello { .. }) => {}
                other => return other,
            }
        }
    })
    .await;
    assert!(matches!(ended, Ok(Err(_))), "{ended:?}");
    pair.pays(1).await;
    while let Ok(event) = events.try_recv() {
        assert!(
            !matches!(event, keel_client::ClientEvent::PeerDisconnected(_)),
            "Alice was dropped while idle"
        );
    }
}

/// Beyond `max_peers`, a stranger is refused right after its handshake (before the fix there
/// was no limit); Alice, a counterparty, gets in regardless.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_beyond_the_peer_limit_are_refused() {
    let pair = Pair::new(|c| c.max_peers = 2).await;
    let mut first = stranger(pair.bob_at, pair.bob.address()).await;
    assert!(matches!(first.recv().await, Ok(Message::Hello { .. })));
    let mut second = stranger(pair.bob_at, pair.bob.address()).await;
    let refused = tokio::time::timeout(Duration::from_secs(10), second.recv()).await;
    assert!(matches!(refused, Ok(Err(_))), "{refused:?}");
    pair.pays(5).await;
}

/// A handshake that stalls halfway is hung up after `Config::handshake_timeout` (1 s here),
/// well before the transport's default (10 s, all there was before the field existed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_ends_at_the_configured_timeout() {
    let pair = Pair::new(|c| c.handshake_timeout = Duration::from_secs(1)).await;
    let mut stalled = TcpStream::connect(pair.bob_at).await.unwrap();
    // Message 1 announced as 32 bytes; half of it sent.
    stalled.write_all(&[0, 32]).await.unwrap();
    stalled.write_all(&[7; 16]).await.unwrap();
    let mut byte = [0; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut byte)).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "a stalled handshake is still open: {read:?}"
    );
    pair.pays(1).await;
}
