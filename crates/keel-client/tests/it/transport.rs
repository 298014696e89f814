//! The peer transport over real loopback TCP.

use std::{net::SocketAddr, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use keel_client::transport::{Connection, Error, Result, Transport};
use keel_core::{wire::Message, Address, BalanceProof, Change, CooperativeClose, B256, U256};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// Bytes the initiator writes before its first transport message: three length-prefixed
/// handshake messages (`-> e`: 32 bytes, `-> s, se`: 64; `<- e, ee, s, es` goes the other way)
/// and the sealed `address ‖ signature` (20 + 65 + 16).
const INITIATOR_HANDSHAKE_BYTES: usize = (2 + 32) + (2 + 64) + (2 + 101);

fn transport() -> Transport {
    Transport::new(PrivateKeySigner::random()).unwrap()
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// `client` dials `server` expecting `expected`; returns both sides' results.
async fn handshake(
    client: &Transport,
    server: Transport,
    expected: Address,
) -> (Result<Connection>, Result<Connection>) {
    let (listener, addr) = listener().await;
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        server.accept(stream).await
    });
    let dialled = client.connect(addr, expected).await;
    (dialled, accepted.await.unwrap())
}

/// A connected pair: (initiator's connection, responder's connection).
async fn pair() -> (Connection, Connection, Address, Address) {
    let (a, b) = (transport(), transport());
    let (a_addr, b_addr) = (a.address(), b.address());
    let (dialled, accepted) = handshake(&a, b, b_addr).await;
    (dialled.unwrap(), accepted.unwrap(), a_addr, b_addr)
}

/// One of every message kind, varied by `i`.
fn message(i: u64) -> Message {
    let channel_id = B256::with_last_byte(i as u8);
    let signature = [i as u8; 65];
    match i % 5 {
        0 => Message::Ack {
            channel_id,
            nonce: i,
        },
        1 => Message::Update {
            changes: vec![Change::Pay {
                amount: U256::from(i),
            }],
            proof: BalanceProof {
                channelId: channel_id,
                nonce: i,
                transferredAmount: U256::from(i * 10),
                lockedAmount: U256::ZERO,
                locksRoot: B256::ZERO,
            },
            signature,
        },
        2 => Message::CloseRequest {
            close: CooperativeClose {
                channelId: channel_id,
                payoutA: U256::from(i),
                payoutB: U256::from(2 * i),
                depositA: U256::from(3 * i),
                depositB: U256::from(4 * i),
                totalWithdrawn: U256::ZERO,
                expiry: i,
            },
            signature,
        },
        3 => Message::Resync {
            channel_id,
            sent_nonce: i,
            received_nonce: i + 1,
        },
        _ => Message::Hello {
            address: Address::with_last_byte(i as u8),
        },
    }
}

#[tokio::test]
async fn peers_authenticate_and_exchange_messages_both_ways() {
    let (mut a, mut b, a_addr, b_addr) = pair().await;
    assert_eq!(a.peer(), b_addr);
    assert_eq!(b.peer(), a_addr);

    for i in 0..10 {
        a.send(&message(i)).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), message(i));
        b.send(&message(i + 100)).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), message(i + 100));
    }

    // Split halves work concurrently, in both directions at once.
    let (mut a_tx, mut a_rx) = a.split();
    let (mut b_tx, mut b_rx) = b.split();
    let a_sends = tokio::spawn(async move {
        for i in 0..50 {
            a_tx.send(&message(i)).await.unwrap();
        }
        a_tx.close().await.unwrap();
    });
    for i in 0..50 {
        b_tx.send(&message(i + 1000)).await.unwrap();
    }
    for i in 0..50 {
        assert_eq!(b_rx.recv().await.unwrap(), message(i));
        assert_eq!(a_rx.recv().await.unwrap(), message(i + 1000));
    }
    a_sends.await.unwrap();
    // A clean close reads as Closed, and stays closed.
    assert!(matches!(b_rx.recv().await, Err(Error::Closed)));
    assert!(matches!(b_rx.recv().await, Err(Error::Closed)));
}

#[tokio::test]
async fn responder_claiming_another_address_is_rejected() {
    let (alice, victim) = (transport(), PrivateKeySigner::random().address());
    let mallory = Transport::forged(PrivateKeySigner::random(), victim).unwrap();
    let (dialled, _) = handshake(&alice, mallory, victim).await;
    match dialled {
        Err(Error::ClaimMismatch { claimed, signer }) => {
            assert_eq!(claimed, victim);
            assert_ne!(signer, victim);
        }
        other => panic!("expected ClaimMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn initiator_claiming_another_address_is_rejected() {
    let (bob, victim) = (transport(), PrivateKeySigner::random().address());
    let bob_addr = bob.address();
    let mallory = Transport::forged(PrivateKeySigner::random(), victim).unwrap();
    let (_, accepted) = handshake(&mallory, bob, bob_addr).await;
    assert!(
        matches!(accepted, Err(Error::ClaimMismatch { claimed, .. }) if claimed == victim),
        "{accepted:?}"
    );
}

#[tokio::test]
async fn initiator_refuses_a_responder_with_another_key() {
    let (alice, bob) = (transport(), transport());
    let (expected, actual) = (PrivateKeySigner::random().address(), bob.address());
    let (dialled, accepted) = handshake(&alice, bob, expected).await;
    assert!(
        matches!(
            dialled,
            Err(Error::UnexpectedPeer { expected: e, authenticated: a }) if e == expected && a == actual
        ),
        "{dialled:?}"
    );
    // The initiator hangs up without revealing who it is.
    assert!(
        matches!(&accepted, Err(Error::Io(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof),
        "{accepted:?}"
    );
}

/// Forwards one connection from the returned address to `target`, passing the client's bytes
/// through `tamper(offset, byte)`.
async fn proxy(
    target: SocketAddr,
    tamper: impl Fn(usize, u8) -> u8 + Send + 'static,
) -> SocketAddr {
    let (listener, addr) = listener().await;
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(target).await.unwrap();
        let (mut client_rx, mut client_tx) = client.into_split();
        let (mut server_rx, mut server_tx) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut server_rx, &mut client_tx).await;
            let _ = client_tx.shutdown().await;
        });
        let (mut offset, mut buf) = (0, [0; 4096]);
        loop {
            let n = match client_rx.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            for byte in &mut buf[..n] {
                *byte = tamper(offset, *byte);
                offset += 1;
            }
            if server_tx.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = server_tx.shutdown().await;
    });
    addr
}

/// Connects `alice` to `bob` through a proxy applying `tamper`; returns both connections.
async fn tampered_pair(
    tamper: impl Fn(usize, u8) -> u8 + Send + 'static,
) -> (Connection, Connection) {
    let (alice, bob) = (transport(), transport());
    let bob_addr = bob.address();
    let (listener, addr) = listener().await;
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        bob.accept(stream).await
    });
    let via = proxy(addr, tamper).await;
    let dialled = alice.connect(via, bob_addr).await.unwrap();
    (dialled, accepted.await.unwrap().unwrap())
}

#[tokio::test]
async fn tampered_ciphertext_closes_the_connection() {
    // Flip one bit in the second transport message's ciphertext.
    let first_len = {
        let mut frame = Vec::new();
        keel_core::wire::encode_frame(&message(0), &mut frame);
        2 + frame.len() + 16
    };
    let target = INITIATOR_HANDSHAKE_BYTES + first_len + 2 + 5;
    let (mut alice, mut bob) = tampered_pair(move |i, b| if i == target { b ^ 1 } else { b }).await;

    alice.send(&message(0)).await.unwrap();
    assert_eq!(bob.recv().await.unwrap(), message(0));
    alice.send(&message(1)).await.unwrap();
    assert!(matches!(bob.recv().await, Err(Error::Decrypt)));
    // Bob's side is now closed, and Alice sees the connection go.
    assert!(matches!(bob.recv().await, Err(Error::Closed)));
    assert!(alice.recv().await.is_err());
}

#[tokio::test]
async fn oversized_length_closes_the_connection() {
    // Rewrite the first transport message's length prefix to 0xffff.
    let at = INITIATOR_HANDSHAKE_BYTES;
    let (mut alice, mut bob) =
        tampered_pair(move |i, b| if i == at || i == at + 1 { 0xff } else { b }).await;
    alice.send(&message(0)).await.unwrap();
    assert!(matches!(bob.recv().await, Err(Error::Oversized(0xffff))));
    assert!(alice.recv().await.is_err());
}

#[tokio::test]
async fn garbage_before_the_handshake_is_rejected() {
    let bob = transport();
    let (listener, addr) = listener().await;

    // Not a Noise length at all: refused from the prefix alone.
    let server = bob.clone();
    let accepted = {
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let first = server.accept(stream).await;
            let (stream, _) = listener.accept().await.unwrap();
            (first, server.accept(stream).await)
        });
        let mut raw = TcpStream::connect(addr).await.unwrap();
        raw.write_all(b"GET / HTTP/1.1\r\nHost: keel\r\n\r\n")
            .await
            .unwrap();

        // The right lengths, random contents: any 32 bytes pass as an ephemeral key, but the
        // third message fails to authenticate.
        let mut raw2 = TcpStream::connect(addr).await.unwrap();
        let mut msg1 = vec![0, 32];
        msg1.extend_from_slice(&[0x42; 32]);
        raw2.write_all(&msg1).await.unwrap();
        let mut msg2 = [0; 2 + 96];
        raw2.read_exact(&mut msg2).await.unwrap();
        let mut msg3 = vec![0, 64];
        msg3.extend_from_slice(&[0x17; 64]);
        raw2.write_all(&msg3).await.unwrap();
        let result = task.await.unwrap();
        drop((raw, raw2));
        result
    };
    assert!(
        matches!(
            accepted.0,
            Err(Error::HandshakeLength {
                expected: 32,
                got: 0x4745
            })
        ),
        "{:?}",
        accepted.0
    );
    assert!(
        matches!(accepted.1, Err(Error::Noise(snow::Error::Decrypt))),
        "{:?}",
        accepted.1
    );
}

#[tokio::test]
async fn a_silent_peer_times_out() {
    let bob = transport().with_handshake_timeout(Duration::from_millis(200));
    let (listener, addr) = listener().await;
    let accepted = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        bob.accept(stream).await
    });
    let _silent = TcpStream::connect(addr).await.unwrap();
    assert!(matches!(
        accepted.await.unwrap(),
        Err(Error::HandshakeTimeout)
    ));
}

#[tokio::test]
async fn ten_thousand_messages_arrive_in_order() {
    const COUNT: u64 = 10_000;
    let (a, b, _, _) = pair().await;
    let (mut tx, _a_rx) = a.split();
    let (_b_tx, mut rx) = b.split();
    let sending = tokio::spawn(async move {
        for nonce in 0..COUNT {
            tx.send(&Message::Ack {
                channel_id: B256::ZERO,
                nonce,
            })
            .await
            .unwrap();
        }
        tx.close().await.unwrap();
    });
    for nonce in 0..COUNT {
        assert_eq!(
            rx.recv().await.unwrap(),
            Message::Ack {
                channel_id: B256::ZERO,
                nonce
            }
        );
    }
    assert!(matches!(rx.recv().await, Err(Error::Closed)));
    sending.await.unwrap();
}
