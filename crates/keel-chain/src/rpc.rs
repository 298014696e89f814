//! The JSON-RPC client both [`Chain`](super::Chain) and [`Monitor`](super::Monitor) build on.

use alloy::{
    rpc::client::RpcClient,
    transports::http::{reqwest, Http},
};

use super::{
    config::ChainConfig,
    error::{ChainError, Result},
};

/// An HTTP JSON-RPC client for `config.rpc_url` whose requests give up after
/// `config.request_timeout` (reqwest waits forever by default, and a hung node must show up as
/// a failure, not a stall) and whose pollers tick every `config.poll_interval`.
pub(crate) fn client(config: &ChainConfig) -> Result<RpcClient> {
    let url: reqwest::Url = config
        .rpc_url
        .parse()
        .map_err(|_| ChainError::InvalidUrl(config.rpc_url.clone()))?;
    let http = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()
        .map_err(ChainError::HttpClient)?;
    let transport = Http::with_client(http, url);
    let is_local = transport.guess_local();
    let client = RpcClient::new(transport, is_local);
    client.set_poll_interval(config.poll_interval);
    Ok(client)
}
