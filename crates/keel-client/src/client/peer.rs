//! Connections to peers: one per counterparty, its writer and reader tasks, reconnects, and
//! the resync that follows each connect.
//!
//! Outgoing messages go through the peer's outbox to one writer task, in order. An item may
//! carry the [`Commit`] of the event behind it: the writer sends it only once the event is
//! durable, so nothing leaves the process before it is stored. Updates to one channel that are
//! durable together leave as one [`Message::Update`] under one signature over the last proof
//! (up to [`MAX_UPDATE_CHANGES`] changes): under load a payment costs a fraction of a
//! signature, and the payee a fraction of a verification.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use keel_core::{
    wire::{Message, MAX_UPDATE_CHANGES},
    Address, BalanceProof, Change, ChannelDomain,
};
use tokio::{
    net::{TcpListener, ToSocketAddrs},
    sync::mpsc,
};

use super::{channel::Channel, handlers, ClientError, ClientEvent, Inner, Result};
use crate::{
    store::Commit,
    transport::{self, Connection, Receiver, Sender},
};

/// A message waiting in a peer's outbox.
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// One of our updates, sent once `commit` is durable; the writer signs it (or the last
    /// update of the batch it leaves in).
    Update {
        /// The `Sent` event behind it; `None` when resending a stored one.
        commit: Option<Commit>,
        /// The change.
        change: Change,
        /// The proof to sign.
        proof: BalanceProof,
        /// The channel's EIP-712 domain.
        domain: ChannelDomain,
    },
    /// Any other message, sent once `commit` (if any) is durable; `events` are emitted then.
    Message {
        /// The event behind the message, if any: the message leaves once it is durable.
        commit: Option<Commit>,
        /// The message.
        msg: Message,
        /// What to tell the application once `commit` is durable, in order.
        events: Vec<ClientEvent>,
    },
}

impl Outgoing {
    /// A message with nothing to wait for.
    pub(crate) const fn message(msg: Message) -> Self {
        Self::Message {
            commit: None,
            msg,
            events: Vec::new(),
        }
    }
}

/// One counterparty.
#[derive(Debug)]
pub(crate) struct Peer {
    address: Address,
    link: Mutex<Link>,
}

#[derive(Debug, Default)]
struct Link {
    /// Counts connections, so a finished reader does not tear down its successor.
    generation: u64,
    /// The current connection's queue; `None` while disconnected.
    outbox: Option<mpsc::UnboundedSender<Outgoing>>,
    /// Where we dialled the peer, if we did: we redial there.
    dial: Option<SocketAddr>,
}

impl Peer {
    /// Drops the current connection (its tasks end once the outbox closes).
    pub(crate) fn disconnect(&self) {
        self.link.lock().expect("link poisoned").outbox = None;
    }
}

fn peer(inner: &Inner, address: Address) -> Arc<Peer> {
    Arc::clone(
        inner
            .peers
            .lock()
            .expect("peer map poisoned")
            .entry(address)
            .or_insert_with(|| {
                Arc::new(Peer {
                    address,
                    link: Mutex::new(Link::default()),
                })
            }),
    )
}

/// The current connection's outbox for `address`.
pub(crate) fn outbox(inner: &Inner, address: Address) -> Result<mpsc::UnboundedSender<Outgoing>> {
    let peer = inner
        .peers
        .lock()
        .expect("peer map poisoned")
        .get(&address)
        .cloned();
    peer.and_then(|p| p.link.lock().expect("link poisoned").outbox.clone())
        .ok_or(ClientError::PeerOffline(address))
}

/// Queues `item` for `address`'s current connection.
pub(crate) fn send(inner: &Inner, address: Address, item: Outgoing) -> Result<()> {
    outbox(inner, address)?
        .send(item)
        .map_err(|_| ClientError::PeerOffline(address))
}

/// Waits until the peer resynchronised `channel` on the current connection, at most the
/// configured sync timeout.
pub(crate) async fn wait_synced(inner: &Inner, channel: &Channel) -> Result<()> {
    if *channel.synced.borrow() {
        return Ok(());
    }
    let mut synced = channel.synced.subscribe();
    let waited = tokio::time::timeout(inner.config.sync_timeout, synced.wait_for(|s| *s)).await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(ClientError::Stopped),
        Err(_) => Err(ClientError::PeerOffline(channel.peer)),
    }
}

/// Binds `addr` and accepts peers until the client stops.
pub(crate) async fn listen(inner: &Arc<Inner>, addr: impl ToSocketAddrs) -> Result<SocketAddr> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(transport::Error::Io)?;
    let local = listener.local_addr().map_err(transport::Error::Io)?;
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        let mut stopping = inner.stopping.subscribe();
        loop {
            let stream = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    // Out of descriptors and the like: keep serving the others.
                    Err(_) => continue,
                },
                _ = stopping.wait_for(|s| *s) => return,
            };
            let inner = Arc::clone(&inner);
            tokio::spawn(async move {
                // A peer that fails the handshake just goes away.
                if let Ok(conn) = inner.transport.accept(stream).await {
                    attach(&inner, conn, None);
                }
            });
        }
    });
    Ok(local)
}

/// Dials `address` at `addr` once now (failing if that fails), then redials after drops.
pub(crate) async fn connect(inner: &Arc<Inner>, addr: SocketAddr, address: Address) -> Result<()> {
    let conn = inner.transport.connect(addr, address).await?;
    attach(inner, conn, Some(addr));
    Ok(())
}

/// Starts the tasks of a fresh authenticated connection, replacing any previous one to the
/// same peer, and sends `Hello` and a `Resync` per shared channel.
fn attach(inner: &Arc<Inner>, conn: Connection, dial: Option<SocketAddr>) {
    let address = conn.peer();
    let peer = peer(inner, address);
    let (sender, receiver) = conn.split();
    let (outbox, queue) = mpsc::unbounded_channel();
    let generation = {
        let mut link = peer.link.lock().expect("link poisoned");
        link.generation += 1;
        if dial.is_some() {
            link.dial = dial;
        }
        // Until the peer's Resync arrives, this connection carries no updates.
        for channel in channels_with(inner, address) {
            channel.synced.send_replace(false);
            channel
                .resync_sent
                .store(false, std::sync::atomic::Ordering::Relaxed);
        }
        let _ = outbox.send(Outgoing::message(Message::Hello {
            address: inner.address,
            chain_id: 0,
        }));
        link.outbox = Some(outbox.clone());
        link.generation
    };
    tokio::spawn(write(Arc::clone(inner), sender, queue));
    let reader_inner = Arc::clone(inner);
    tokio::spawn(async move {
        read(&reader_inner, address, receiver).await;
        disconnected(&reader_inner, &peer, generation).await;
    });
    inner.emit(ClientEvent::PeerConnected(address));
    let inner = Arc::clone(inner);
    tokio::spawn(async move {
        for channel in channels_with(&inner, address) {
            announce(&inner, &channel).await;
        }
    });
}

/// Sends our `Resync` for `channel` if its peer is connected and we have not on this
/// connection.
pub(crate) async fn announce(inner: &Inner, channel: &Channel) {
    let rt = channel.rt.lock().await;
    if channel
        .resync_sent
        .swap(true, std::sync::atomic::Ordering::Relaxed)
    {
        return;
    }
    let me = rt.state.me();
    let msg = Message::Resync {
        channel_id: channel.id,
        sent_nonce: rt.state.direction(me).nonce,
        received_nonce: rt.state.direction(me.other()).nonce,
    };
    if send(inner, channel.peer, Outgoing::message(msg)).is_err() {
        channel
            .resync_sent
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The channels shared with `address`.
pub(crate) fn channels_with(inner: &Inner, address: Address) -> Vec<Arc<Channel>> {
    inner
        .channels
        .read()
        .expect("channel map poisoned")
        .values()
        .filter(|c| c.peer == address)
        .cloned()
        .collect()
}

/// Most bytes queued on the socket before they are written regardless of what follows.
const FLUSH_AT: usize = 16 * 1024;

/// Sends the outbox in order, each item once its event is durable. Messages that are ready
/// together leave in one write; nothing is held back while waiting for a commit or for more
/// items. Ends when the outbox closes (disconnect) or the socket fails.
async fn write(
    inner: Arc<Inner>,
    mut sender: Sender,
    mut queue: mpsc::UnboundedReceiver<Outgoing>,
) {
    // An item taken while gathering a batch that could not join it: sent next.
    let mut next: Option<Outgoing> = None;
    'connection: loop {
        let item = match next.take().map_or_else(|| queue.try_recv(), Ok) {
            Ok(item) => item,
            Err(mpsc::error::TryRecvError::Empty) => {
                if sender.flush().await.is_err() {
                    break;
                }
                match queue.recv().await {
                    Some(item) => item,
                    None => break,
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let (commit, msg, events) = match item {
            Outgoing::Update {
                commit,
                change,
                proof,
                domain,
            } => {
                if let Some(commit) = commit {
                    if !durable(commit, &mut sender).await {
                        break;
                    }
                }
                // The same channel's updates queued behind it whose events are durable too
                // leave with it, under one signature over the last proof.
                let (mut changes, mut proof) = (vec![change], proof);
                while changes.len() < MAX_UPDATE_CHANGES {
                    let Ok(item) = queue.try_recv() else {
                        break;
                    };
                    let Outgoing::Update {
                        mut commit,
                        change,
                        proof: later,
                        domain,
                    } = item
                    else {
                        next = Some(item);
                        break;
                    };
                    let ready = match commit.as_mut().map(Commit::try_durable) {
                        None | Some(Some(Ok(()))) => later.channelId == proof.channelId,
                        // As below: a failed commit ends the connection.
                        Some(Some(Err(_))) => break 'connection,
                        Some(None) => false,
                    };
                    if !ready {
                        next = Some(Outgoing::Update {
                            commit,
                            change,
                            proof: later,
                            domain,
                        });
                        break;
                    }
                    changes.push(change);
                    proof = later;
                }
                let Ok(signature) = inner.sign(&domain, &proof) else {
                    // A local key that cannot sign is not a state to carry on in.
                    break;
                };
                let msg = Message::Update {
                    changes,
                    proof,
                    signature,
                };
                (None, msg, Vec::new())
            }
            Outgoing::Message {
                commit,
                msg,
                events,
            } => (commit, msg, events),
        };
        if let Some(commit) = commit {
            if !durable(commit, &mut sender).await {
                break;
            }
        }
        for event in events {
            inner.emit(event);
        }
        if sender.queue(&msg).is_err() {
            break;
        }
        if sender.buffered() >= FLUSH_AT && sender.flush().await.is_err() {
            break;
        }
    }
    let _ = sender.flush().await;
    let _ = sender.close().await;
}

/// Waits until `commit` is durable, first sending what is ready rather than holding it while
/// the disk works. False if the commit failed or the socket did: the connection must end. A
/// failed commit fails its channel where it was enqueued; whatever follows it must not be sent
/// either, so the connection ends and the peer resyncs.
async fn durable(mut commit: Commit, sender: &mut Sender) -> bool {
    let answer = match commit.try_durable() {
        Some(answer) => answer,
        None => {
            if sender.flush().await.is_err() {
                return false;
            }
            commit.durable().await
        }
    };
    answer.is_ok()
}

/// Reads until the connection ends: first the peer's `Hello`, which must name the address it
/// authenticated as, then anything.
async fn read(inner: &Arc<Inner>, address: Address, mut receiver: Receiver) {
    let mut stopping = inner.stopping.subscribe();
    let first = tokio::select! {
        msg = receiver.recv() => msg,
        _ = stopping.wait_for(|s| *s) => return,
    };
    match first {
        Ok(Message::Hello {
            address: claimed, ..
        }) if claimed == address => {}
        _ => return,
    }
    // Signatures are checked here, in parallel tasks, as updates arrive; one task applies
    // every message in arrival order, so acks and state changes keep the peer's order.
    let (ordered, queue) = mpsc::unbounded_channel();
    let applier = tokio::spawn(apply_in_order(Arc::clone(inner), address, queue));
    loop {
        let msg = tokio::select! {
            msg = receiver.recv() => msg,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let Ok(msg) = msg else {
            break;
        };
        if ordered.send(precheck(inner, address, msg)).is_err() {
            break;
        }
    }
    drop(ordered);
    // Everything read is applied (and its acks queued) before the connection counts as gone.
    let _ = applier.await;
}

/// A message from the peer on its way to be applied.
enum Incoming {
    /// Applied as is.
    Plain(Message),
    /// An update whose signature a parallel task is checking against the peer's key table.
    Checked {
        update: Message,
        check: tokio::task::JoinHandle<keel_core::Result<keel_core::signing::Verified>>,
    },
}

/// Starts checking an update's signature on another task when the channel's key table is
/// known; anything else goes through unchanged (and is checked when applied).
fn precheck(inner: &Inner, address: Address, msg: Message) -> Incoming {
    let Message::Update {
        ref proof,
        ref signature,
        ..
    } = msg
    else {
        return Incoming::Plain(msg);
    };
    let Ok(channel) = inner.channel(proof.channelId) else {
        return Incoming::Plain(msg);
    };
    let Some(table) = channel
        .table
        .get()
        .filter(|_| channel.peer == address)
        .cloned()
    else {
        return Incoming::Plain(msg);
    };
    let digest = channel.domain.signing_hash(proof);
    let signature = *signature;
    let check = tokio::spawn(async move { table.verify_token(&digest, &signature) });
    Incoming::Checked { update: msg, check }
}

/// Applies the peer's messages in the order they arrived.
async fn apply_in_order(
    inner: Arc<Inner>,
    address: Address,
    mut queue: mpsc::UnboundedReceiver<Incoming>,
) {
    while let Some(incoming) = queue.recv().await {
        match incoming {
            Incoming::Plain(msg) => handlers::handle(&inner, address, msg, None).await,
            Incoming::Checked { update, check } => {
                // A check that could not run leaves the signature to the state machine.
                let verified = check.await.ok().and_then(Result::ok);
                handlers::handle(&inner, address, update, verified).await;
            }
        }
    }
}

/// Cleans up after a connection ended and, if we dialled this peer, redials it.
async fn disconnected(inner: &Arc<Inner>, peer: &Arc<Peer>, generation: u64) {
    let dial = {
        let mut link = peer.link.lock().expect("link poisoned");
        if link.generation != generation {
            // A newer connection replaced this one already.
            return;
        }
        link.outbox = None;
        link.dial
    };
    for channel in channels_with(inner, peer.address) {
        channel.synced.send_replace(false);
        let mut rt = channel.rt.lock().await;
        rt.fail_requests(|| ClientError::PeerOffline(peer.address));
    }
    inner.emit(ClientEvent::PeerDisconnected(peer.address));
    if let Some(addr) = dial {
        tokio::spawn(redial(
            Arc::clone(inner),
            Arc::clone(peer),
            addr,
            generation,
        ));
    }
}

/// Redials with exponential back-off until connected, superseded or stopped.
async fn redial(inner: Arc<Inner>, peer: Arc<Peer>, addr: SocketAddr, generation: u64) {
    let mut delay = inner.config.reconnect_delay;
    let mut stopping = inner.stopping.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stopping.wait_for(|s| *s) => return,
        }
        if peer.link.lock().expect("link poisoned").generation != generation {
            // The peer dialled us meanwhile.
            return;
        }
        if let Ok(conn) = inner.transport.connect(addr, peer.address).await {
            attach(&inner, conn, Some(addr));
            return;
        }
        delay = (delay * 2).min(inner.config.max_reconnect_delay);
    }
}
