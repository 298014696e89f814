//! The JSON-RPC client both [`Chain`](super::Chain) and [`Monitor`](super::Monitor) build on.

use alloy::{
    rpc::client::RpcClient,
    transports::http::{reqwest, Http},
};

use super::{
    config::ChainConfig,
    error::{ChainError, Result},
};

/// An HTTP(S) JSON-RPC client for `config.rpc_url` (trusting `config.extra_root_certs` too)
/// whose requests give up after
/// `config.request_timeout` (reqwest waits forever by default, and a hung node must show up as
/// a failure, not a stall) and whose pollers tick every `config.poll_interval`.
pub(crate) fn client(config: &ChainConfig) -> Result<RpcClient> {
    let url: reqwest::Url = config
        .rpc_url
        .parse()
        .map_err(|_| ChainError::InvalidUrl(config.rpc_url.clone()))?;
    let mut roots = Vec::new();
    for pem in &config.extra_root_certs {
        roots.extend(
            reqwest::Certificate::from_pem_bundle(pem.as_bytes())
                .map_err(ChainError::HttpClient)?,
        );
    }
    let mut http = reqwest::Client::builder().timeout(config.request_timeout);
    if !roots.is_empty() {
        http = http.tls_certs_merge(roots);
    }
    let http = http.build().map_err(ChainError::HttpClient)?;
    let transport = Http::with_client(http, url);
    let is_local = transport.guess_local();
    let client = RpcClient::new(transport, is_local);
    client.set_poll_interval(config.poll_interval);
    Ok(client)
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use alloy::signers::local::PrivateKeySigner;

    use crate::{report, Chain, ChainConfig, ChainError, Deployment};

    fn deployment() -> Deployment {
        r#"{"chainId":31337,"deployedAtBlock":0,"channelFactory":"0x0000000000000000000000000000000000000001","vaultImplementation":"0x0000000000000000000000000000000000000002","secretRegistry":"0x0000000000000000000000000000000000000003","minChallengePeriod":3600,"maxChallengePeriod":2592000}"#
            .parse()
            .expect("deployment")
    }

    /// A refused connection is `ChainError::Rpc` with the transport's error as its source, down
    /// to the socket's: a report names what actually happened.
    #[tokio::test]
    async fn an_rpc_error_keeps_its_cause() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        drop(listener);
        let config = ChainConfig::development(url, deployment());
        let Err(err) = Chain::connect(config, PrivateKeySigner::random()).await else {
            panic!("nothing listens there");
        };
        assert!(matches!(err, ChainError::Rpc(_)), "{err:?}");
        let cause = err.source().expect("the transport error is kept");
        assert!(cause.source().is_some(), "and its own cause: {cause:?}");
        let text = report(&err);
        assert!(
            text.len() > err.to_string().len() + cause.to_string().len(),
            "{text}"
        );
    }
}
