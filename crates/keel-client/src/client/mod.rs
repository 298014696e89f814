//! The client API: channels driven over the peer transport and persisted in the store.
//!
//! A [`Client`] owns one identity (an Ethereum key), one [`Store`] and a connection per peer.
//! Every operation that changes a channel follows the same order: apply it to the channel's
//! [`ChannelState`](keel_core::ChannelState) under the channel's lock, queue the event in the
//! store, and only once the event is durable send the signed message (or acknowledge the
//! peer's). Payments pipeline:
//! up to [`Config::window`] updates per channel are in flight, and their events share commits.
//!
//! After a reconnect each side sends `Resync` for every channel it shares with the peer: the
//! nonce of its latest proof sent and of the latest received. Each resends, from its store, the
//! proofs the other has not stored, and new updates wait until the peer's `Resync` arrived, so
//! none overtakes a resend. See docs/protocol.md, "Resync".

mod accept;
mod channel;
mod clock;
mod error;
mod event;
mod events;
mod foreign;
mod forward;
mod gossip;
mod handlers;
mod notice;
mod onchain;
mod pay;
mod peer;
mod rebalance;
mod requests;
mod routing;
mod sweep;
mod tower;

pub use crate::store::ForwardPolicy;
pub use accept::AcceptChannels;
pub use channel::ChannelInfo;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{ClientError, RejectCode, Result};
pub use event::ClientEvent;
pub use events::{Events, StoredEvent};
pub use gossip::{GOSSIP_BURST, GOSSIP_PAUSE, GOSSIP_RATE, MAX_GOSSIP_STRIKES};
pub use pay::{PaymentOutcome, SignedRequest};
pub use requests::Destination;
pub use tower::{TowerConfig, TowerError, TowerHealth, MAX_TOWER_RESPONSE};

use std::{
    collections::HashMap,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, OnceLock, RwLock},
    time::Duration,
};

use alloy::signers::local::PrivateKeySigner;
use keel_core::{
    forwarding::{onion::Packet, ChainTiming, FeePolicy},
    wire::Signature,
    Address, Change, ChannelDomain, CooperativeClose, Lock, Policy, Side, Withdrawal, B256, U256,
};
use tokio::{
    net::ToSocketAddrs,
    sync::{broadcast, oneshot, watch},
};

use crate::{
    chain::ChainConfig,
    store::{ChannelOpening, Event, ReplayError, Store},
    transport::Transport,
};
use channel::Channel;
use peer::{Outgoing, Peer};

/// How a [`Client`] runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Our identity: signs proofs, and authenticates us to peers.
    pub signer: PrivateKeySigner,
    /// The SQLite file holding our channels.
    pub store_path: PathBuf,
    /// Limits on locks, for channels this client creates.
    pub policy: Policy,
    /// What we charge for forwarding a multi-hop payment into a channel, the expiry delta we
    /// need and the assets we forward from, unless [`Client::set_forward_policy`] set one for
    /// that channel. Default: no fee, [`DEFAULT_EXPIRY_DELTA`], within each channel's asset.
    pub forward_policy: ForwardPolicy,
    /// Each chain's timing as the forwarding rules see it (keel-core's `ChainTiming`), by
    /// chain id: a hub requires, and announces, at least the expiry delta derived from the
    /// incoming chain's and the outgoing chain's timing. A chain not listed: its
    /// [`ChainConfig`]'s confirmation depth and poll interval with Ethereum mainnet's 12 s
    /// blocks, 25 blocks to include a registration and a 300 s margin (a chain the client does
    /// not follow: mainnet's figures). Empty by default.
    pub chain_timing: HashMap<u64, ChainTiming>,
    /// Most updates per channel sent and not yet acknowledged.
    pub window: usize,
    /// How long an update waits for the peer to (re)connect and resynchronise the channel.
    pub sync_timeout: Duration,
    /// How long a withdrawal or close request waits for the peer's co-signature.
    pub reply_timeout: Duration,
    /// How long a co-signed withdrawal or cooperative close stays valid, in seconds.
    pub signature_lifetime: u64,
    /// Delay before redialling a peer we connected to after the connection drops; doubles up
    /// to [`Config::max_reconnect_delay`].
    pub reconnect_delay: Duration,
    /// See [`Config::reconnect_delay`].
    pub max_reconnect_delay: Duration,
    /// Seconds before an incoming lock whose secret we revealed expires, still not paid out by
    /// its sender, at which the client registers the secret on the lock's chain and closes the
    /// channel, so that the lock pays us at settlement (see [`Client::claim_lock`]). It must
    /// cover what a registration needs to be mined for good: keel-core's
    /// `ChainTiming::registration_time`. Default [`DEFAULT_CLAIM_MARGIN`], mainnet's.
    pub claim_margin: u64,
    /// The time lock and withdrawal expiries are checked against.
    pub clock: Arc<dyn Clock>,
    /// Events per channel between snapshots of its state in the store: a restart replays at
    /// most this many per channel.
    pub snapshot_every: u64,
    /// Shortest time between the starts of two store commits (each one fsync): under load,
    /// payments wait up to this long to share a commit rather than each paying for an fsync.
    /// See [`crate::store::MIN_COMMIT_INTERVAL`], the default; zero commits at once.
    pub min_commit_interval: Duration,
    /// Most messages queued for one peer, each way. A peer whose outgoing queue is full (it
    /// does not read, or asks faster than it reads the answers) is disconnected; a full
    /// incoming queue stops reading from its socket until the client catches up. Keep it above
    /// [`Config::window`] times the channels shared with one peer, or a burst of our own
    /// updates could fill it.
    pub peer_queue: usize,
    /// A connection on which nothing arrived for this long is dropped. Idle connections stay
    /// up: each side sends a keep-alive after a third of this without sending anything. Zero:
    /// never.
    pub idle_timeout: Duration,
    /// Most authenticated connections at once; a peer we share a channel with is always let
    /// in, any other is refused beyond this.
    pub max_peers: usize,
    /// Most handshakes in progress on the listener at once; connections beyond it are closed.
    pub max_handshakes: usize,
    /// Most handshakes in progress from one IP address.
    pub max_handshakes_per_ip: usize,
    /// How long a peer's handshake may take, once its TCP connection is up, before it is
    /// dropped (listening) or fails with [`transport::Error::HandshakeTimeout`] (dialling).
    /// It bounds how long a stalled or slow-drip handshake holds one of the
    /// [`Config::max_handshakes`] places. Default
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`](crate::transport::DEFAULT_HANDSHAKE_TIMEOUT), 10 s.
    ///
    /// [`transport::Error::HandshakeTimeout`]: crate::transport::Error::HandshakeTimeout
    pub handshake_timeout: Duration,
    /// The chains our channels live on, one entry per chain id. Without any, the client
    /// works off-chain only: deposits and withdrawals are whatever
    /// [`Client::deposit_confirmed`] and [`Client::withdrawal_confirmed`] report.
    pub chains: Vec<ChainConfig>,
    /// Which channels a peer opens with us on chain the client takes (see
    /// [`AcceptChannels`]); each is reported either way.
    pub accept_channels: AcceptChannels,
    /// Watchtowers to keep holding the newest proof we received in each channel (see
    /// [`TowerConfig`]); none by default.
    pub towers: Vec<TowerConfig>,
    /// Whether every channel is public: announced to the network (with its peer's consent:
    /// the peer signs the announcement only if it makes the channel public too) so that
    /// payers route through it. Off by default, as in Lightning: a channel is private unless
    /// [`Client::announce_channel`] makes it public.
    pub announce_channels: bool,
    /// Whether a channel another node announces enters the graph only once its vault is found
    /// open on chain, with the capacity the vault holds (its deposits less its withdrawals);
    /// its vault is then followed so that its close takes it out of the graph. On by default.
    /// Off, as LDK's gossip without a UTXO lookup, the capacity is the announcer's claim and
    /// foreign closes are not seen: for a node without an RPC node of its own.
    pub check_announcements: bool,
    /// Whether the client settles a unilaterally closed channel once its challenge period is
    /// over, and then unlocks the locks settlement kept, by itself (a transaction each, from
    /// the node's wallet), rather than waiting for [`Client::settle`] and [`Client::unlock`].
    /// Off by default for now: an application that sends those itself would race it.
    pub settle_automatically: bool,
}

/// Decrypts the node key from an encrypted JSON keystore file (Web3 Secret Storage version 3,
/// scrypt or PBKDF2: what `cast wallet new`, `cast wallet import` and geth write).
///
/// ```
/// let signer = keel_client::client::load_keystore(
///     "tests/fixtures/cast-keystore.json",
///     "keel-test-password",
/// )?;
/// assert_eq!(
///     signer.address(),
///     "0x0032DAe4EE60a4aa15603d46E32E57D7Fe448194".parse::<keel_core::Address>().unwrap()
/// );
/// # Ok::<(), keel_client::ClientError>(())
/// ```
pub fn load_keystore(
    path: impl AsRef<std::path::Path>,
    password: impl AsRef<[u8]>,
) -> Result<PrivateKeySigner> {
    let path = path.as_ref();
    PrivateKeySigner::decrypt_keystore(path, password).map_err(|source| ClientError::Keystore {
        path: path.to_path_buf(),
        source,
    })
}

impl Config {
    /// Defaults for the key in the keystore file `keystore` (see [`load_keystore`]) with its
    /// store at `store_path`.
    pub fn from_keystore(
        keystore: impl AsRef<std::path::Path>,
        password: impl AsRef<[u8]>,
        store_path: impl Into<PathBuf>,
    ) -> Result<Self> {
        Ok(Self::new(load_keystore(keystore, password)?, store_path))
    }

    /// Defaults for `signer` with its store at `store_path`.
    pub fn new(signer: PrivateKeySigner, store_path: impl Into<PathBuf>) -> Self {
        Self {
            signer,
            store_path: store_path.into(),
            policy: Policy::default(),
            forward_policy: ForwardPolicy::new(FeePolicy::default(), DEFAULT_EXPIRY_DELTA),
            chain_timing: HashMap::new(),
            window: 64,
            sync_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(10),
            signature_lifetime: 3_600,
            reconnect_delay: Duration::from_millis(100),
            max_reconnect_delay: Duration::from_secs(5),
            claim_margin: DEFAULT_CLAIM_MARGIN,
            clock: Arc::new(SystemClock),
            snapshot_every: 4_096,
            min_commit_interval: crate::store::MIN_COMMIT_INTERVAL,
            chains: Vec::new(),
            peer_queue: 4_096,
            idle_timeout: Duration::from_secs(120),
            max_peers: 1_024,
            max_handshakes: 256,
            max_handshakes_per_ip: 8,
            handshake_timeout: crate::transport::DEFAULT_HANDSHAKE_TIMEOUT,
            accept_channels: AcceptChannels::All,
            towers: Vec::new(),
            announce_channels: false,
            check_announcements: true,
            settle_automatically: false,
        }
    }
}

/// A withdrawal both participants signed: what `ChannelVault.withdraw` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedWithdrawal {
    /// The withdrawal.
    pub withdrawal: Withdrawal,
    /// Participant A's signature.
    pub signature_a: Signature,
    /// Participant B's signature.
    pub signature_b: Signature,
}

/// A cooperative close both participants signed: what `ChannelVault.cooperativeClose` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedClose {
    /// The close.
    pub close: CooperativeClose,
    /// Participant A's signature.
    pub signature_a: Signature,
    /// Participant B's signature.
    pub signature_b: Signature,
}

/// The channel client. Cheap to clone: clones share everything.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// What the client's tasks share.
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) address: Address,
    pub(crate) transport: Transport,
    pub(crate) store: Arc<Store>,
    /// Set once at start: the configured chains.
    pub(crate) chains: OnceLock<Vec<(u64, onchain::ChainLink)>>,
    pub(crate) channels: RwLock<HashMap<B256, Arc<Channel>>>,
    pub(crate) peers: std::sync::Mutex<HashMap<Address, Arc<Peer>>>,
    pub(crate) events: broadcast::Sender<ClientEvent>,
    /// Held while a channel is recorded, so two recorders of one channel (`open_channel` and
    /// the monitor) do not both store it.
    pub(crate) adding: tokio::sync::Mutex<()>,
    /// Flips to true once, when the client stops; tasks watch it.
    pub(crate) stopping: watch::Sender<bool>,
    /// Multi-hop payments: onions waiting for their locks, our forwards, waiting payers.
    pub(crate) forwarding: forward::Forwarding,
    /// What we gossip about the channel graph.
    pub(crate) gossip: gossip::Known,
    /// Channels other nodes announced: being checked on chain, or followed there.
    pub(crate) foreign: foreign::Foreign,
    /// When settling and unlocking closed channels was last attempted.
    pub(crate) sweeps: sweep::Sweeps,
    /// The configured watchtowers, told of each received proof.
    pub(crate) towers: tower::Towers,
}

impl Client {
    /// Opens the store and resumes every channel in it. Must be called inside a tokio runtime.
    pub async fn start(config: Config) -> Result<Self> {
        let store =
            Arc::new(Store::open_paced(&config.store_path, config.min_commit_interval).await?);
        let mut channels = HashMap::new();
        for (state, status) in store.load_channels().await? {
            let mut channel = Channel::with_status(state, status, config.window);
            let rt = channel.rt.get_mut();
            let (me, mine) = (config.signer.address(), rt.state.me());
            let withdrawing = rt.state.pending_withdrawal(mine).is_some();
            let closing = rt.state.is_closing() && status.is_open();
            if withdrawing || closing {
                // Our requests and the peer's signatures: submitted, or asked for, again.
                rt.requests = store
                    .own_requests(channel.id, me, withdrawing, closing)
                    .await?;
            }
            channels.insert(channel.id, Arc::new(channel));
        }
        let forwarding =
            forward::Forwarding::new(forward::node_key(&config.signer), store.forwards().await?);
        for (channel_id, policy) in store.forward_policies().await? {
            forwarding.set_policy(channel_id, policy);
        }
        for channel in channels.values() {
            forward::resume_claims(&forwarding, &store, channel).await?;
        }
        let transport =
            Transport::new(config.signer.clone())?.with_handshake_timeout(config.handshake_timeout);
        let (events, _) = broadcast::channel(4096);
        let towers = tower::Towers::new(&config.towers);
        let inner = Arc::new(Inner {
            address: config.signer.address(),
            channels: RwLock::new(channels),
            config,
            transport,
            store,
            chains: OnceLock::new(),
            peers: std::sync::Mutex::new(HashMap::new()),
            adding: tokio::sync::Mutex::new(()),
            events,
            stopping: watch::Sender::new(false),
            forwarding,
            gossip: gossip::Known::default(),
            foreign: foreign::Foreign::default(),
            sweeps: sweep::Sweeps::default(),
            towers,
        });
        tokio::spawn(events::forward(
            Arc::clone(&inner.store),
            inner.events.clone(),
            inner.stopping.subscribe(),
        ));
        let links = onchain::start(&inner, &inner.config.chains).await?;
        inner.chains.set(links).expect("chains are set once, here");
        forward::watch_pending(&inner);
        if let Err(e) = forward::resume_arrivals(&inner).await {
            // The onions only spare those locks their expiry: a store that cannot give them
            // back costs that, not the start.
            tracing::warn!(error = %e, "locks waiting to be forwarded not resumed");
        }
        tokio::spawn(maintain(Arc::downgrade(&inner)));
        tokio::spawn(forward::maintain(Arc::downgrade(&inner)));
        tower::start(&inner)?;
        Ok(Self { inner })
    }

    /// Our address.
    pub fn address(&self) -> Address {
        self.inner.address
    }

    /// Every event from now on, live: durable ones once stored, and the live-only ones
    /// ([`ClientEvent`] lists them). A subscriber that falls more than 4,096 events behind
    /// misses the oldest (and is told so by the receiver): an application that must see every
    /// payment reads [`Client::events`] instead.
    pub fn subscribe(&self) -> broadcast::Receiver<ClientEvent> {
        self.inner.events.subscribe()
    }

    /// The durable events for the consumer `name`, from after the last one it marked
    /// [`Events::handled`] (from the first event ever stored, for a new name): nothing is
    /// lost to a slow reader or a restart, and nothing handled comes twice.
    ///
    /// ```no_run
    /// # async fn demo(client: keel_client::Client) -> keel_client::client::Result<()> {
    /// use keel_client::ClientEvent;
    ///
    /// let mut events = client.events("shop").await?;
    /// loop {
    ///     let stored = events.next().await?;
    ///     if let ClientEvent::PaymentReceived { amount, .. } = stored.event {
    ///         // … credit the order, then:
    ///         let _ = amount;
    ///     }
    ///     events.handled(stored.seq).await?; // durable: not handed out again
    /// }
    /// # }
    /// ```
    pub async fn events(&self, name: &str) -> Result<Events> {
        let after = self.inner.store.cursor(name).await?;
        Ok(Events::new(
            Arc::clone(&self.inner.store),
            Some(name.to_owned()),
            after,
            self.inner.stopping.subscribe(),
        ))
    }

    /// The durable events after sequence number `seq` (0: all), for an application that keeps
    /// its cursor itself ([`Events::handled`] stores nothing then).
    pub fn events_after(&self, seq: u64) -> Events {
        Events::new(
            Arc::clone(&self.inner.store),
            None,
            seq,
            self.inner.stopping.subscribe(),
        )
    }

    /// Accepts peers on `addr`; returns the bound address. Any Keel peer may connect; its
    /// messages are accepted only for channels it is a participant of.
    pub async fn listen(&self, addr: impl ToSocketAddrs) -> Result<SocketAddr> {
        peer::listen(&self.inner, addr).await
    }

    /// Connects to `peer` at `addr` (it must prove it holds `peer`'s key), and keeps
    /// reconnecting whenever the connection drops, until the client stops.
    ///
    /// `addr` is anything [`listen`](Client::listen) takes: a socket address or a
    /// `"host:port"` string such as `"localhost:9735"`. A host name is resolved once, here;
    /// its addresses are tried in turn, and the first that accepts the connection is the one
    /// redialled after drops.
    pub async fn connect(&self, addr: impl ToSocketAddrs, peer: Address) -> Result<()> {
        peer::connect(&self.inner, addr, peer).await
    }

    /// Starts tracking a channel that exists (or is being opened) on chain; durable when it
    /// returns. Deposits count once [`Client::deposit_confirmed`] reports them.
    pub async fn add_channel(&self, opening: &ChannelOpening) -> Result<ChannelInfo> {
        add_channel(&self.inner, opening).await
    }

    /// Records a cumulative deposit total seen on chain, for a channel on a chain the client
    /// does not follow itself (on a configured chain the monitor is the only source, and this
    /// fails with [`ClientError::ChainFollowed`]).
    pub async fn deposit_confirmed(&self, channel_id: B256, side: Side, total: U256) -> Result<()> {
        self.apply_chain_event(channel_id, Event::DepositConfirmed { side, total })
            .await
    }

    /// Records a cumulative withdrawal total seen on chain; as [`Client::deposit_confirmed`].
    pub async fn withdrawal_confirmed(
        &self,
        channel_id: B256,
        side: Side,
        total: U256,
    ) -> Result<()> {
        self.apply_chain_event(channel_id, Event::WithdrawalConfirmed { side, total })
            .await
    }

    /// Pays `amount` to the peer; returns once the peer has stored the proof.
    ///
    /// Waits up to [`Config::sync_timeout`] for the peer to be connected and synchronised. Once
    /// the proof is stored here it will reach the peer, after reconnects if need be: this call
    /// then waits for the acknowledgement for as long as it takes (wrap it in a timeout to stop
    /// waiting; the payment stands either way).
    pub async fn pay(&self, channel_id: B256, amount: U256) -> Result<()> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .send_change(channel_id, Change::Pay { amount }, Some(reply))
            .await?;
        answer.await.map_err(|_| ClientError::Stopped)?
    }

    /// Locks `amount` for the peer behind `secret_hash` (sha256 of a secret), refundable after
    /// `expiration` (Unix seconds, within the channel's lock policy); returns once the peer
    /// stored it. The peer claims it by revealing the secret ([`Client::claim_lock`]).
    pub async fn pay_locked(
        &self,
        channel_id: B256,
        amount: U256,
        secret_hash: B256,
        expiration: u64,
    ) -> Result<Lock> {
        self.pay_locked_with(channel_id, amount, secret_hash, expiration, None)
            .await
    }

    /// [`Client::pay_locked`], with `onion` sent just before the lock.
    pub(crate) async fn pay_locked_with(
        &self,
        channel_id: B256,
        amount: U256,
        secret_hash: B256,
        expiration: u64,
        onion: Option<Packet>,
    ) -> Result<Lock> {
        let lock = Lock {
            expiration,
            amount,
            secret_hash,
        };
        let (reply, answer) = oneshot::channel();
        self.inner
            .send_change_recorded(channel_id, Change::AddLock(lock), Some(reply), None, onion)
            .await?;
        answer.await.map_err(|_| ClientError::Stopped)??;
        Ok(lock)
    }

    /// Claims a lock the peer sent us by revealing `secret` to it; returns once the peer paid
    /// the lock out, or fails after [`Config::reply_timeout`]. The lock is then still pending,
    /// and the client keeps the claim: it reveals the secret again each second while the lock
    /// is pending, and within [`Config::claim_margin`] of its expiry registers the secret on
    /// chain and closes the channel, so the lock pays us at settlement. A claim of a hold
    /// invoice's payment is stored (the invoice marked paid) before the secret leaves, so a
    /// client restarted before the payout keeps claiming it.
    pub async fn claim_lock(&self, channel_id: B256, secret: B256) -> Result<()> {
        let channel = self.inner.channel(channel_id)?;
        let hash = keel_core::secret_hash(secret);
        forward::hold_invoice_claimed(&self.inner, &channel, hash).await?;
        self.reveal_secret(channel_id, secret).await
    }

    /// [`Client::claim_lock`] for a claim whose record is already stored (a paid invoice, a
    /// settled forward): reveals the secret and waits for the payout.
    pub(crate) async fn reveal_secret(&self, channel_id: B256, secret: B256) -> Result<()> {
        let channel = self.inner.channel(channel_id)?;
        let hash = keel_core::secret_hash(secret);
        let answer = {
            let mut rt = channel.rt.lock().await;
            let incoming = rt.state.direction(rt.state.me().other());
            if !incoming.locks.iter().any(|l| l.secret_hash == hash) {
                return Err(keel_core::ChannelError::WrongSecret(hash).into());
            }
            let (reply, answer) = oneshot::channel();
            rt.claims.insert(hash, reply);
            answer
        };
        self.inner.forwarding.keep_claim(channel_id, secret);
        // The watchtowers get the secret with the channel's appointment, off this path.
        self.inner.towers.updated(channel_id);
        let sent = peer::send(
            &self.inner,
            channel.peer,
            Outgoing::message(keel_core::wire::Message::RevealSecret { channel_id, secret }),
        );
        if let Err(e) = sent {
            channel.rt.lock().await.claims.remove(&hash);
            return Err(e);
        }
        self.inner.await_reply(answer, "lock claim").await
    }

    /// Takes back every lock we sent in this channel that expired unclaimed; returns how many.
    pub async fn remove_expired_locks(&self, channel_id: B256) -> Result<usize> {
        let channel = self.inner.channel(channel_id)?;
        let now = self.inner.config.clock.now();
        let expired: Vec<B256> = {
            let rt = channel.rt.lock().await;
            rt.state
                .direction(rt.state.me())
                .locks
                .iter()
                .filter(|l| l.expiration < now)
                .map(|l| l.secret_hash)
                .collect()
        };
        let mut answers = Vec::with_capacity(expired.len());
        for secret_hash in &expired {
            let (reply, answer) = oneshot::channel();
            self.inner
                .send_change(
                    channel_id,
                    Change::RemoveExpiredLock {
                        secret_hash: *secret_hash,
                    },
                    Some(reply),
                )
                .await?;
            answers.push(answer);
        }
        for answer in answers {
            answer.await.map_err(|_| ClientError::Stopped)??;
        }
        Ok(expired.len())
    }

    /// A snapshot of every channel.
    pub async fn channels(&self) -> Vec<ChannelInfo> {
        let channels = self.inner.channel_list();
        let mut infos = Vec::with_capacity(channels.len());
        for channel in channels {
            infos.push(channel.rt.lock().await.info());
        }
        infos
    }

    /// A snapshot of one channel.
    pub async fn channel(&self, channel_id: B256) -> Result<ChannelInfo> {
        Ok(self.inner.channel(channel_id)?.rt.lock().await.info())
    }

    /// The counterparty's latest proof and signature in a channel: what a unilateral close or a
    /// refutation submits, and what a watchtower is given.
    pub async fn latest_peer_proof(
        &self,
        channel_id: B256,
    ) -> Result<Option<(keel_core::BalanceProof, Signature)>> {
        let channel = self.inner.channel(channel_id)?;
        let rt = channel.rt.lock().await;
        Ok(rt.state.latest_counterparty_proof())
    }

    /// Stops every connection and task, waits for queued events to be stored, and closes the
    /// store.
    pub async fn shutdown(self) {
        self.inner.stopping.send_replace(true);
        let peers: Vec<_> = self
            .inner
            .peers
            .lock()
            .expect("peer map poisoned")
            .values()
            .cloned()
            .collect();
        for peer in peers {
            peer.disconnect();
        }
        // Best effort: every event whose commit was awaited is durable already.
        let _ = self.inner.store.flush().await;
    }

    async fn apply_chain_event(&self, channel_id: B256, event: Event) -> Result<()> {
        let channel = self.inner.channel(channel_id)?;
        if self.inner.link(channel.chain_id).is_ok() {
            // A caller's report must not override what the chain says.
            return Err(ClientError::ChainFollowed(channel.chain_id));
        }
        let mut rt = channel.rt.lock().await;
        apply_event(&mut rt.state, &event)?;
        self.inner.persist(&channel, &mut rt, &event).await
    }
}

impl Inner {
    /// The timing of `chain_id` as the forwarding rules see it ([`Config::chain_timing`]).
    pub(crate) fn chain_timing(&self, chain_id: u64) -> ChainTiming {
        match self.config.chains.iter().find(|c| c.chain_id() == chain_id) {
            Some(chain) => forward::chain_timing(chain, &self.config.chain_timing),
            None => self
                .config
                .chain_timing
                .get(&chain_id)
                .copied()
                .unwrap_or(MAINNET_TIMING),
        }
    }

    /// The channel with this id.
    pub(crate) fn channel(&self, channel_id: B256) -> Result<Arc<Channel>> {
        self.channels
            .read()
            .expect("channel map poisoned")
            .get(&channel_id)
            .cloned()
            .ok_or(ClientError::UnknownChannel(channel_id))
    }

    /// Every channel, as a list taken under the map's lock (which is not held afterwards).
    pub(crate) fn channel_list(&self) -> Vec<Arc<Channel>> {
        self.channels
            .read()
            .expect("channel map poisoned")
            .values()
            .cloned()
            .collect()
    }

    /// Signs an EIP-712 message for the channel's domain with our key.
    pub(crate) fn sign<T: keel_core::eip712::Message>(
        &self,
        domain: &ChannelDomain,
        msg: &T,
    ) -> Result<Signature> {
        keel_core::sign_hash(&self.config.signer, &domain.signing_hash(msg))
            .map_err(ClientError::Signing)
    }

    /// Stores an event already applied to `rt.state`; if that fails the state in memory is
    /// ahead of the disk, so the channel stops taking updates until a restart reloads it.
    pub(crate) async fn persist(
        &self,
        channel: &Channel,
        rt: &mut channel::Runtime,
        event: &Event,
    ) -> Result<()> {
        self.persist_noted(channel, rt, event, &[]).await
    }

    /// [`Inner::persist`], with the durable `notes` for the application stored in the same
    /// transaction.
    pub(crate) async fn persist_noted(
        &self,
        channel: &Channel,
        rt: &mut channel::Runtime,
        event: &Event,
        notes: &[ClientEvent],
    ) -> Result<()> {
        let result = match self
            .store
            .enqueue_noted(channel.id, event, encode_notes(notes))
            .await
        {
            Ok(commit) => commit.durable().await,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.fail_channel(
                channel.id,
                rt,
                format!("store failed: {}", crate::chain::report(&e)),
            );
            return Err(e.into());
        }
        self.count_event(rt).await;
        Ok(())
    }

    /// Counts an event queued for a channel (already applied to `rt`) and, every
    /// [`Config::snapshot_every`] events, queues a snapshot behind it, so a restart replays at
    /// most that many events per channel.
    pub(crate) async fn count_event(&self, rt: &mut channel::Runtime) {
        rt.since_snapshot += 1;
        if rt.since_snapshot >= self.config.snapshot_every {
            rt.since_snapshot = 0;
            // A snapshot that fails to be written only makes the next start replay more.
            if let Ok(commit) = self.store.snapshot(&rt.state, &rt.chain).await {
                drop(commit);
            }
        }
    }

    /// Marks a channel failed and tells the application.
    pub(crate) fn fail_channel(&self, channel_id: B256, rt: &mut channel::Runtime, reason: String) {
        if rt.failed.is_none() {
            rt.failed = Some(reason.clone());
            rt.fail_waiters(|| ClientError::ChannelFailed(channel_id));
            self.emit(ClientEvent::ChannelFailed { channel_id, reason });
        }
    }

    /// Tells subscribers a live-only event; nobody listening is fine. Durable events go
    /// through the store ([`Inner::note`], or with the store event that records them).
    pub(crate) fn emit(&self, event: ClientEvent) {
        debug_assert!(notice::encode(&event).is_none(), "durable: {event:?}");
        let _ = self.events.send(event);
    }

    /// Stores a durable event that no store event carries; subscribers hear of it once it is
    /// committed. A store failure is logged: the store is failing every channel's writes then.
    pub(crate) async fn note(&self, event: ClientEvent) {
        let Some(body) = notice::encode(&event) else {
            return self.emit(event);
        };
        let stored = match self.store.enqueue_notice(body).await {
            Ok(commit) => commit.durable().await,
            Err(e) => Err(e),
        };
        if let Err(e) = stored {
            tracing::error!(?event, error = %e, "event not stored");
        }
    }

    /// Waits for a peer's answer, at most [`Config::reply_timeout`].
    pub(crate) async fn await_reply<T>(
        &self,
        answer: oneshot::Receiver<Result<T>>,
        what: &'static str,
    ) -> Result<T> {
        match tokio::time::timeout(self.config.reply_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Stopped),
            Err(_) => Err(ClientError::Timeout(what)),
        }
    }

    /// Applies `change` to our direction, queues it for storage and, once stored, for sending;
    /// `reply` is answered when the peer acknowledges it. Returns the proof's nonce.
    pub(crate) async fn send_change(
        self: &Arc<Self>,
        channel_id: B256,
        change: Change,
        reply: Option<channel::Reply<()>>,
    ) -> Result<u64> {
        self.send_change_recorded(channel_id, change, reply, None, None)
            .await
    }

    /// [`Inner::send_change`], storing `forward` and `onion` (the onion of the lock the change
    /// adds) in the same transaction as the change, and sending the onion just before the
    /// update.
    pub(crate) async fn send_change_recorded(
        self: &Arc<Self>,
        channel_id: B256,
        change: Change,
        reply: Option<channel::Reply<()>>,
        forward: Option<&crate::store::Forward>,
        onion: Option<Packet>,
    ) -> Result<u64> {
        let channel = self.channel(channel_id)?;
        peer::wait_synced(self, &channel).await?;
        let permit = channel
            .window
            .acquire()
            .await
            .map_err(|_| ClientError::Stopped)?;
        let mut rt = channel.rt.lock().await;
        rt.ensure_usable()?;
        let outbox = peer::outbox(self, channel.peer)?;
        let now = self.config.clock.now();
        let proof = rt.state.send(&change, now)?;
        let event = Event::Sent {
            change: change.clone(),
            proof: proof.clone(),
            now,
        };
        // The onion is stored with its lock, so that it can lead the update again whenever
        // the peer asks for it (a dropped connection, our restart).
        let stored_onion = onion.as_ref().map(|packet| (packet, rt.acknowledged));
        let enqueued = self
            .store
            .enqueue_sent(channel_id, &event, forward, stored_onion)
            .await;
        let commit = match enqueued {
            Ok(commit) => commit,
            Err(e) => {
                self.fail_channel(
                    channel_id,
                    &mut rt,
                    format!("store failed: {}", crate::chain::report(&e)),
                );
                return Err(e.into());
            }
        };
        self.count_event(&mut rt).await;
        // The window slot comes back with the acknowledgement.
        permit.forget();
        let nonce = proof.nonce;
        rt.unacked.push_back(channel::Unacked { nonce, reply });
        let preface = onion.and_then(|packet| lock_onion(channel_id, &change, packet));
        // If the connection just dropped the update is lost with it; the peer's Resync on the
        // next connection asks for it again. The writer signs it, or the last update of the
        // batch it leaves in.
        let _ = outbox.send(Outgoing::Update {
            commit: Some(commit),
            change,
            proof,
            domain: *rt.state.domain(),
            preface,
        });
        Ok(nonce)
    }
}

/// The message carrying `packet`, the onion of the lock `change` adds (none if it adds none):
/// it leaves just before the update, in the same write.
pub(crate) fn lock_onion(
    channel_id: B256,
    change: &Change,
    packet: Packet,
) -> Option<Box<keel_core::wire::Message>> {
    let Change::AddLock(lock) = change else {
        return None;
    };
    Some(Box::new(keel_core::wire::Message::LockOnion {
        channel_id,
        secret_hash: lock.secret_hash,
        packet,
    }))
}

/// The default [`Config::forward_policy`] expiry delta, in seconds: what keel-core's
/// `expiry_delta` gives for a hop on Ethereum mainnet (12 s blocks followed 12 deep, 12 s polls,
/// 25 blocks budgeted for inclusion, a 300 s margin): 156 s to see a secret registered
/// downstream plus 744 s to register it upstream. See docs/protocol.md, "Multi-hop forwarding".
pub const DEFAULT_EXPIRY_DELTA: u64 = 900;

/// The default [`Config::claim_margin`], in seconds: keel-core's `registration_time` for
/// Ethereum mainnet (25 blocks budgeted for inclusion and 12 for confirmation, of 12 s each,
/// and a 300 s margin), the part of [`DEFAULT_EXPIRY_DELTA`] a hub keeps for registering a
/// secret upstream.
pub const DEFAULT_CLAIM_MARGIN: u64 = 744;

/// Ethereum mainnet's timing as [`DEFAULT_EXPIRY_DELTA`] derives from it: assumed for a chain
/// the client does not follow and [`Config::chain_timing`] does not list.
pub const MAINNET_TIMING: ChainTiming = ChainTiming {
    block_time: 12,
    confirmations: 12,
    inclusion_blocks: 25,
    poll_interval: 12,
    margin: 300,
};

/// How long past its expiry a co-signed withdrawal or close is still treated as live: a margin
/// for the chain's clock running behind ours, during which the vault could still execute it.
pub const EXPIRY_GRACE: u64 = 120;

/// How often expired withdrawals and closes are released.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(1);

/// Releases, once a second, reservations of withdrawals and closes that expired unexecuted
/// (with [`EXPIRY_GRACE`]), so the channel takes updates again, and settles and unlocks
/// closed channels if configured to (`sweep`). Ends with the client.
async fn maintain(inner: std::sync::Weak<Inner>) {
    loop {
        tokio::time::sleep(MAINTENANCE_INTERVAL).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if *inner.stopping.borrow() {
            return;
        }
        let channels = inner.channel_list();
        for channel in channels {
            let mut rt = channel.rt.lock().await;
            let Some(now) = inner.config.clock.now().checked_sub(EXPIRY_GRACE) else {
                continue;
            };
            let mut events = Vec::new();
            if rt.state.is_closing() && rt.state.clone().close_expired(now) {
                events.push(Event::CloseExpired { now });
            }
            let expired = [Side::A, Side::B].into_iter().any(|side| {
                rt.state
                    .pending_withdrawal(side)
                    .is_some_and(|p| p.withdrawal.expiry < now)
            });
            if expired {
                events.push(Event::WithdrawalsExpired { now });
            }
            for event in events {
                // A failure marks the channel failed and tells the application.
                if apply_event(&mut rt.state, &event).is_err()
                    || inner.persist(&channel, &mut rt, &event).await.is_err()
                {
                    break;
                }
            }
            // What the peer co-signed and the chain has not executed yet: submit it (again).
            for signed in requests::co_signed(&inner, &rt) {
                requests::resubmit(&inner, &channel, signed);
            }
        }
        sweep::sweep(&inner).await;
    }
}

/// Records a channel (durable when it returns), starts watching its vault if its chain is
/// configured, and announces it to its peer if connected.
pub(crate) async fn add_channel(
    inner: &Arc<Inner>,
    opening: &ChannelOpening,
) -> Result<ChannelInfo> {
    let _adding = inner.adding.lock().await;
    add_new_channel(inner, opening, None, &[]).await
}

/// [`add_channel`] unless the channel is known already (then its current summary): for a
/// channel that both `open_channel` and the monitor's `ChannelOpened` may record. Its vault is
/// watched from `from_block` (the opening block), so nothing between is missed.
pub(crate) async fn add_channel_once(
    inner: &Arc<Inner>,
    opening: &ChannelOpening,
    from_block: Option<u64>,
) -> Result<ChannelInfo> {
    let _adding = inner.adding.lock().await;
    let id = keel_core::channel_id(opening.chain_id, opening.factory, &opening.params);
    if let Ok(channel) = inner.channel(id) {
        return Ok(channel.rt.lock().await.info());
    }
    add_new_channel(inner, opening, from_block, &[]).await
}

/// [`add_channel_once`] for a channel the monitor found: `note` is stored with it, so it is
/// told exactly when the channel is recorded. False if the channel was known already.
pub(crate) async fn adopt_channel(
    inner: &Arc<Inner>,
    opening: &ChannelOpening,
    from_block: u64,
    note: ClientEvent,
) -> Result<bool> {
    let _adding = inner.adding.lock().await;
    let id = keel_core::channel_id(opening.chain_id, opening.factory, &opening.params);
    if inner.channel(id).is_ok() {
        return Ok(false);
    }
    add_new_channel(inner, opening, Some(from_block), &[note]).await?;
    Ok(true)
}

/// Stores and registers a channel, with `notes` for the application; the caller holds
/// `inner.adding`.
async fn add_new_channel(
    inner: &Arc<Inner>,
    opening: &ChannelOpening,
    from_block: Option<u64>,
    notes: &[ClientEvent],
) -> Result<ChannelInfo> {
    let (state, commit) = inner
        .store
        .enqueue_channel(opening, encode_notes(notes))
        .await?;
    let info = channel::Runtime::info_of(&state, None, crate::store::ChainStatus::Open);
    let channel = Arc::new(Channel::new(state, inner.config.window));
    // In the map before the commit lands, so an application told `ChannelOpened` (once the
    // commit lands) finds the channel; anything queued for it is written after its record.
    inner
        .channels
        .write()
        .expect("channel map poisoned")
        .insert(channel.id, Arc::clone(&channel));
    if let Err(e) = commit.durable().await {
        inner
            .channels
            .write()
            .expect("channel map poisoned")
            .remove(&channel.id);
        return Err(e.into());
    }
    if let Ok(link) = inner.link(opening.chain_id) {
        // A channel learnt from `ChannelOpened` is watched already, from its opening block.
        if !link.monitor.watched().contains_key(&channel.vault) {
            match from_block {
                Some(from) => link.monitor.watch_from(channel.vault, channel.id, from),
                None => link.monitor.watch(channel.vault, channel.id),
            }
        }
    }
    peer::announce(inner, &channel).await;
    Ok(info)
}

/// The stored form of the durable events among `notes`.
pub(crate) fn encode_notes(notes: &[ClientEvent]) -> Vec<Vec<u8>> {
    notes.iter().filter_map(notice::encode).collect()
}

/// Applies a chain-reported event to a channel state.
pub(crate) fn apply_event(state: &mut keel_core::ChannelState, event: &Event) -> Result<()> {
    event.apply(state).map_err(|e| match e {
        ReplayError::Channel(e) => ClientError::Channel(e),
        // Only `Sent` and `CloseProposed` compare their results; nothing else fails this way.
        ReplayError::Mismatch(what) => ClientError::Inconsistent(what),
    })
}

/// Checks `signature` over `digest` is `expected`'s.
pub(crate) fn check_signer(digest: &B256, signature: &Signature, expected: Address) -> Result<()> {
    let recovered = keel_core::recover(digest, signature).map_err(ClientError::BadPeerSignature)?;
    if recovered != expected {
        return Err(ClientError::BadPeerSignature(
            keel_core::Error::WrongSigner {
                expected,
                recovered,
            },
        ));
    }
    Ok(())
}

/// Our and the peer's signatures as (A's, B's).
const fn ordered(me: Side, ours: Signature, theirs: Signature) -> (Signature, Signature) {
    match me {
        Side::A => (ours, theirs),
        Side::B => (theirs, ours),
    }
}
