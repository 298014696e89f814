//! RPC over https: the chain side reaches Anvil through a TLS endpoint (a proxy in this test,
//! with a self-signed certificate for `localhost`), trusting the certificate only because the
//! configuration names it (`ChainConfig::extra_root_certs`).

use std::{net::SocketAddr, sync::Arc};

use alloy::primitives::{Address, U256};
use eyre::{ensure, eyre, Result};
use keel_client::chain::{Chain, ChainConfig, ChainError};
use keel_e2e::Devnet;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{
    rustls::{self, pki_types::PrivateKeyDer},
    TlsAcceptor,
};

/// A TLS endpoint forwarding each connection to `upstream`; returns its address and its
/// certificate (PEM).
async fn tls_proxy(upstream: SocketAddr) -> Result<(SocketAddr, String)> {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(certified.key_pair.serialize_der().into());
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![certified.cert.der().clone()], key)?;
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let at = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to forward.
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut node) = TcpStream::connect(upstream).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut node).await;
            });
        }
    });
    Ok((at, pem))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_is_reached_over_https_trusting_a_configured_root() -> Result<()> {
    let net = Devnet::start().await?;
    let upstream: SocketAddr = net
        .rpc_url()
        .strip_prefix("http://")
        .ok_or_else(|| eyre!("anvil is not on http"))?
        .parse()?;
    let (at, pem) = tls_proxy(upstream).await?;
    let https = ChainConfig {
        rpc_url: format!("https://localhost:{}", at.port()),
        ..net.chain_config(0)
    };

    // Not trusted: the certificate is refused, and the error says so through its sources.
    match Chain::connect(https.clone(), net.alice.signer.clone()).await {
        Err(e @ ChainError::Rpc(_)) => {
            let report = keel_client::chain::report(&e);
            ensure!(report.to_lowercase().contains("certificate"), "{report}");
        }
        Err(e) => eyre::bail!("not an RPC failure: {e:?}"),
        Ok(_) => eyre::bail!("a self-signed certificate was trusted without being configured"),
    }

    // Trusted through the configuration: reads and a transaction go over TLS.
    let trusted = ChainConfig {
        extra_root_certs: vec![pem],
        ..https
    };
    let chain = Chain::connect(trusted, net.alice.signer.clone()).await?;
    let params = net.params(Address::ZERO, 0x715);
    let receipt = chain.open(&params, U256::from(1_000)).await?;
    ensure!(receipt.status(), "the open over https reverted");
    Ok(())
}
