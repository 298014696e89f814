//! Integration tests, one binary for the crate.

mod client;
mod gossip;
mod hostile;
mod store;
mod tower;
mod transport;

use std::net::SocketAddr;

use alloy::signers::local::PrivateKeySigner;
use keel_client::transport::{Connection, Transport};
use keel_core::{wire::Message, Address};

/// A raw peer: `signer` dials the client at `at` (whose address is `expected`) and says
/// `Hello`, as a peer must first; what it sends next is up to the test.
async fn raw_peer(signer: &PrivateKeySigner, at: SocketAddr, expected: Address) -> Connection {
    let mut conn = Transport::new(signer.clone())
        .unwrap()
        .connect(at, expected)
        .await
        .unwrap();
    conn.send(&Message::Hello {
        address: signer.address(),
    })
    .await
    .unwrap();
    conn
}
