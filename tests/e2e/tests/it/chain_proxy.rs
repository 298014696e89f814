//! An RPC endpoint that answers garbage: a small HTTP proxy in front of Anvil that, when told
//! to, replies to every JSON-RPC request with truncated JSON. The monitor must retry, report
//! it, and deliver everything once the endpoint is sane again.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use alloy::primitives::Address;
use eyre::{ensure, eyre, Result};
use keel_client::chain::{ChainEventKind, Monitor};
use keel_core::Side;
use keel_e2e::Devnet;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

use crate::chain_support::{kinds_of, units, wait_for, wait_for_checkpoint, Consumer, TempStore};

/// Forwards HTTP requests to `upstream`, one upstream connection per request, or answers them
/// with malformed JSON while `garbage` is set.
struct Proxy {
    url: String,
    garbage: Arc<AtomicBool>,
    task: JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: String) -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let garbage = Arc::new(AtomicBool::new(false));
        let flag = garbage.clone();
        let task = tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                tokio::spawn(serve(conn, upstream.clone(), flag.clone()));
            }
        });
        Ok(Self { url, garbage, task })
    }

    fn set_garbage(&self, on: bool) {
        self.garbage.store(on, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One client connection: request after request until it closes.
async fn serve(conn: TcpStream, upstream: String, garbage: Arc<AtomicBool>) {
    let (read, mut write) = conn.into_split();
    let mut read = BufReader::new(read);
    while let Ok(Some(request)) = read_message(&mut read).await {
        let response = if garbage.load(Ordering::SeqCst) {
            let body = br#"{"jsonrpc":"2.0","id":1,"result":"#;
            let mut r = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                body.len()
            )
            .into_bytes();
            r.extend_from_slice(body);
            r
        } else {
            match forward(&upstream, &request).await {
                Ok(response) => response,
                Err(_) => return,
            }
        };
        if write.write_all(&response).await.is_err() {
            return;
        }
    }
}

async fn forward(upstream: &str, request: &[u8]) -> Result<Vec<u8>> {
    let conn = TcpStream::connect(upstream.trim_start_matches("http://")).await?;
    let (read, mut write) = conn.into_split();
    write.write_all(request).await?;
    read_message(&mut BufReader::new(read))
        .await?
        .ok_or_else(|| eyre!("upstream closed"))
}

/// One HTTP/1.1 message with a `content-length` body, raw; `None` at end of stream.
async fn read_message<R: tokio::io::AsyncRead + Unpin>(
    read: &mut BufReader<R>,
) -> Result<Option<Vec<u8>>> {
    let mut message = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if read.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        message.extend_from_slice(line.as_bytes());
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse()?;
            }
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0; length];
    read.read_exact(&mut body).await?;
    message.extend(body);
    Ok(Some(message))
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
