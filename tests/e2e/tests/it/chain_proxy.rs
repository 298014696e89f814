//! A faulty RPC endpoint: a small HTTP proxy in front of Anvil that, when told to, answers
//! every JSON-RPC request with truncated JSON, names another chain in `eth_chainId`, answers
//! `null` for every receipt, hangs up without answering, never answers, or never answers
//! `eth_sendRawTransaction` (a transaction that never leaves its sender). The monitor must
//! retry, report it, and deliver everything once the endpoint is sane again.

use std::sync::{
    atomic::{AtomicU8, AtomicUsize, Ordering},
    Arc,
};

use alloy::primitives::Address;
use alloy::providers::Provider;
use eyre::{ensure, eyre, Result};
use keel_client::chain::{ChainError, ChainEventKind, Monitor};
use keel_core::Side;
use keel_e2e::{
    http::{body, forward, read_message},
    Devnet,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::chain_support::{kinds_of, units, wait_for, wait_for_checkpoint, Consumer, TempStore};

/// What the proxy does to requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Fault {
    /// Forwards them.
    None = 0,
    /// Answers every request with truncated JSON.
    Garbage = 1,
    /// Answers `eth_chainId` with chain 1; forwards the rest.
    WrongChain = 2,
    /// Answers `eth_getTransactionReceipt` with `null`; forwards the rest.
    NullReceipts = 3,
    /// Closes the connection without answering.
    Drop = 4,
    /// Reads the request and never answers (a hung node): the client's request timeout must
    /// end the wait.
    Hang = 5,
    /// Reads `eth_sendRawTransaction` requests and never answers them (nor forwards them);
    /// forwards the rest.
    SwallowSends = 6,
}

/// Forwards HTTP requests to `upstream`, one upstream connection per request, unless a fault
/// is set.
pub(crate) struct Proxy {
    pub(crate) url: String,
    fault: Arc<AtomicU8>,
    /// `eth_sendRawTransaction` requests received, forwarded or not.
    sends: Arc<AtomicUsize>,
    /// `eth_getLogs` requests whose filter names no address.
    unaddressed_log_queries: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub(crate) async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let fault = Arc::new(AtomicU8::new(Fault::None as u8));
        let sends = Arc::new(AtomicUsize::new(0));
        let unaddressed_log_queries = Arc::new(AtomicUsize::new(0));
        let (flag, count, unaddressed) = (
            fault.clone(),
            sends.clone(),
            unaddressed_log_queries.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(
                    conn,
                    upstream.clone(),
                    flag.clone(),
                    count.clone(),
                    unaddressed.clone(),
                ));
            }
        });
        Ok(Self {
            url,
            fault,
            sends,
            unaddressed_log_queries,
            task,
        })
    }

    pub(crate) fn set(&self, fault: Fault) {
        self.fault.store(fault as u8, Ordering::SeqCst);
    }

    /// `eth_sendRawTransaction` requests received so far, forwarded or not.
    pub(crate) fn sends(&self) -> usize {
        self.sends.load(Ordering::SeqCst)
    }

    /// `eth_getLogs` requests so far whose filter names no address (a scan by topic).
    pub(crate) fn unaddressed_log_queries(&self) -> usize {
        self.unaddressed_log_queries.load(Ordering::SeqCst)
    }

    fn set_garbage(&self, on: bool) {
        self.set(if on { Fault::Garbage } else { Fault::None });
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP 200 answer with `body`.
fn http_ok(body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// The JSON-RPC call in an HTTP request, if its body is one (not a batch).
fn call_in(request: &[u8]) -> Option<serde_json::Value> {
    serde_json::from_slice(body(request)?).ok()
}

/// Whether `request` calls `method`.
fn calls(request: &[u8], method: &str) -> bool {
    call_in(request).is_some_and(|call| call["method"].as_str() == Some(method))
}

/// The JSON-RPC answer `result` to `request` if it calls `method`.
fn answer(request: &[u8], method: &str, result: &str) -> Option<Vec<u8>> {
    let call = call_in(request)?;
    if call.get("method")?.as_str()? != method {
        return None;
    }
    let id = call.get("id")?;
    Some(http_ok(
        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#).as_bytes(),
    ))
}

/// One client connection: request after request until it closes.
async fn serve(
    conn: TcpStream,
    upstream: String,
    fault: Arc<AtomicU8>,
    sends: Arc<AtomicUsize>,
    unaddressed_log_queries: Arc<AtomicUsize>,
) {
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    while let Ok(Some(request)) = read_message(&mut read).await {
        let fault = fault.load(Ordering::SeqCst);
        let send = calls(&request, "eth_sendRawTransaction");
        if send {
            sends.fetch_add(1, Ordering::SeqCst);
        }
        let unaddressed = call_in(&request).is_some_and(|call| {
            call["method"] == "eth_getLogs" && call["params"][0].get("address").is_none()
        });
        if unaddressed {
            unaddressed_log_queries.fetch_add(1, Ordering::SeqCst);
        }
        let faked = match fault {
            f if f == Fault::Garbage as u8 => {
                Some(http_ok(br#"{"jsonrpc":"2.0","id":1,"result":"#))
            }
            f if f == Fault::WrongChain as u8 => answer(&request, "eth_chainId", r#""0x1""#),
            f if f == Fault::NullReceipts as u8 => {
                answer(&request, "eth_getTransactionReceipt", "null")
            }
            f if f == Fault::Drop as u8 => return,
            f if f == Fault::Hang as u8 || (f == Fault::SwallowSends as u8 && send) => {
                // Holds the connection until the client gives up on it.
                let mut rest = [0u8; 1];
                let _ = read.read(&mut rest).await;
                return;
            }
            _ => None,
        };
        let response = match faked {
            Some(response) => response,
            None => match forward(&upstream, &request).await {
                Ok(response) => response,
                Err(_) => return,
            },
        };
        if write.write_all(&response).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn monitor_retries_through_garbage_json_and_recovers() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "garbage-json").await?;
    let proxy = Proxy::start(net.rpc_url()).await?;
    let ch = net.channel(net.params(Address::ZERO, 1));
    let alice = net.chain(&net.alice).await?;
    let bob = net.chain(&net.bob).await?;
    let opened_at = alice
        .open(&ch.params, units("1"))
        .await?
        .block_number
        .ok_or_else(|| eyre!("no block"))?;

    let mut config = net.chain_config(0);
    config.rpc_url = proxy.url.clone();
    let (monitor, rx) = Monitor::spawn(config, store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    bob.deposit(&ch.params, Side::B, units("1")).await?;
    assert_eq!(consumer.events(1).await?.len(), 1);

    proxy.set_garbage(true);
    bob.deposit(&ch.params, Side::B, units("2")).await?;
    let sick = wait_for(&monitor, "failures", |h| h.consecutive_failures >= 3).await?;
    let error = sick.last_error.clone().unwrap_or_default();
    ensure!(error.contains("undecodable"), "{error}");
    ensure!(
        consumer.is_empty(),
        "delivered while the endpoint answered garbage"
    );

    proxy.set_garbage(false);
    assert_eq!(
        kinds_of(&consumer.events(1).await?, &ch),
        [ChainEventKind::Deposited {
            side: Side::B,
            total: units("3")
        }]
    );
    let health = wait_for_checkpoint(&monitor, net.block_number().await?).await?;
    assert_eq!(health.consecutive_failures, 0);
    Ok(())
}

/// A dropped request followed by `eth_chainId` answers naming another chain does not stop the
/// monitor (before the fix, one such answer stopped it for good): it keeps retrying, and once
/// the node is right again it resumes from its checkpoint and delivers what it missed.
#[tokio::test]
async fn monitor_outlasts_a_wrong_chain_id_and_resumes() -> Result<()> {
    let net = Devnet::start().await?;
    let store = TempStore::new(&net, "wrong-chain").await?;
    let proxy = Proxy::start(net.rpc_url()).await?;
    let ch = net.channel(net.params(Address::ZERO, 1));
    let alice = net.chain(&net.alice).await?;
    let bob = net.chain(&net.bob).await?;
    let opened_at = alice
        .open(&ch.params, units("1"))
        .await?
        .block_number
        .ok_or_else(|| eyre!("no block"))?;

    let mut config = net.chain_config(0);
    config.rpc_url = proxy.url.clone();
    let (monitor, rx) = Monitor::spawn(config, store.store.clone())?;
    monitor.watch_from(ch.vault, ch.id, opened_at);
    let mut consumer = Consumer::new(rx);
    bob.deposit(&ch.params, Side::B, units("1")).await?;
    assert_eq!(consumer.events(1).await?.len(), 1);

    proxy.set(Fault::Drop);
    wait_for(&monitor, "a failure", |h| h.consecutive_failures >= 1).await?;
    proxy.set(Fault::WrongChain);
    bob.deposit(&ch.params, Side::B, units("2")).await?;
    let mut alerts = monitor.subscribe();
    let sick = wait_for(&monitor, "retries on the wrong chain", |h| {
        h.stopped.is_some() || h.wrong_chain.is_some()
    })
    .await?;
    ensure!(sick.stopped.is_none(), "the monitor stopped: {sick:?}");
    ensure!(consumer.is_empty(), "delivered from the wrong chain");
    // Persistent: reported, and subscribers are told.
    ensure!(
        sick.wrong_chain == Some(1) && !sick.is_healthy(),
        "{sick:?}"
    );
    // (The borrow `wait_for` returns is dropped at once: it would block the monitor.)
    let told = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        alerts.wait_for(|h| h.wrong_chain == Some(1)),
    )
    .await
    .is_ok_and(|r| r.is_ok());
    ensure!(told, "no alert");

    proxy.set(Fault::None);
    assert_eq!(
        kinds_of(&consumer.events(1).await?, &ch),
        [ChainEventKind::Deposited {
            side: Side::B,
            total: units("3")
        }]
    );
    let health = wait_for_checkpoint(&monitor, net.block_number().await?).await?;
    assert_eq!(health.consecutive_failures, 0);
    ensure!(
        health.wrong_chain.is_none() && health.is_healthy(),
        "{health:?}"
    );
    Ok(())
}

/// A node that answers `null` for every receipt does not hold a transaction's sender forever
/// (before the fix it polled without end): it gives up after its deadline with a typed report.
#[tokio::test]
async fn a_receipt_that_never_comes_is_reported_after_the_deadline() -> Result<()> {
    let net = Devnet::start().await?;
    let proxy = Proxy::start(net.rpc_url()).await?;
    let ch = net.channel(net.params(Address::ZERO, 1));
    let mut config = net.chain_config(0);
    config.rpc_url = proxy.url.clone();
    let alice = keel_client::chain::Chain::connect(config, net.alice.signer.clone()).await?;
    proxy.set(Fault::NullReceipts);
    let sent = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        alice.open(&ch.params, units("1")),
    )
    .await;
    let Ok(result) = sent else {
        eyre::bail!("still waiting for the receipt after 30 s");
    };
    let err = result.expect_err("no receipt can arrive");
    let ChainError::ReceiptTimeout {
        tx_hash,
        rebroadcasts,
        ..
    } = err
    else {
        eyre::bail!("{err:?}");
    };
    // Sent again each second; the node already had it, so it was mined once.
    ensure!(rebroadcasts >= 5, "{rebroadcasts} re-broadcasts");
    proxy.set(Fault::None);
    let receipt = alice
        .provider()
        .get_transaction_receipt(tx_hash)
        .await?
        .ok_or_else(|| eyre!("the reported transaction is not mined"))?;
    ensure!(receipt.status());
    Ok(())
}
