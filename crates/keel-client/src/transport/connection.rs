//! An authenticated connection: Keel messages over Noise transport messages.

use std::{net::Shutdown, sync::Arc};

use keel_core::{
    wire::{decode_frame, encode_frame, Message, WireError},
    Address,
};
use snow::StatelessTransportState;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        tcp::{OwnedReadHalf, OwnedWriteHalf},
        TcpStream,
    },
};

use super::{handshake::Session, Error, Result, MAX_MESSAGE_LEN, TAG_LEN};

/// How much a receiver asks the socket for at once.
const READ_CHUNK: usize = 8 * 1024;

/// A handshaken connection to one authenticated peer.
///
/// Use it whole, or [`split`](Connection::split) it so one task sends while another receives.
#[derive(Debug)]
pub struct Connection {
    sender: Sender,
    receiver: Receiver,
}

impl Connection {
    pub(super) fn new(stream: TcpStream, session: Session) -> Self {
        let (read, write) = stream.into_split();
        let noise = Arc::new(session.noise);
        Self {
            sender: Sender {
                write,
                noise: Arc::clone(&noise),
                // Nonce 0 carried the handshake's identity message.
                nonce: 1,
                out: Vec::new(),
                plain: Vec::new(),
                frame: Vec::new(),
                closed: false,
                peer: session.peer,
            },
            receiver: Receiver {
                read,
                noise,
                nonce: 1,
                buf: Vec::new(),
                plain: Vec::new(),
                read_to: 0,
                closed: false,
                peer: session.peer,
            },
        }
    }

    /// The Ethereum address the peer proved it holds.
    pub fn peer(&self) -> Address {
        self.sender.peer
    }

    /// Sends one message (see [`Sender::send`]).
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.sender.send(msg).await
    }

    /// Receives the next message (see [`Receiver::recv`]).
    pub async fn recv(&mut self) -> Result<Message> {
        self.receiver.recv().await
    }

    /// Closes our direction; the peer's next receive returns [`Error::Closed`].
    pub async fn close(&mut self) -> Result<()> {
        self.sender.close().await
    }

    /// Splits into halves that can be used from different tasks.
    pub fn split(self) -> (Sender, Receiver) {
        (self.sender, self.receiver)
    }
}

/// The sending half of a [`Connection`].
#[derive(Debug)]
pub struct Sender {
    write: OwnedWriteHalf,
    noise: Arc<StatelessTransportState>,
    nonce: u64,
    /// Sealed transport messages not yet written.
    out: Vec<u8>,
    /// Frames queued for the next transport message, not yet sealed.
    plain: Vec<u8>,
    /// Scratch space for encoding one frame.
    frame: Vec<u8>,
    closed: bool,
    peer: Address,
}

impl Sender {
    /// The Ethereum address the peer proved it holds.
    pub fn peer(&self) -> Address {
        self.peer
    }

    /// Sends `msg` and everything queued before it, waiting while the socket's buffer is full
    /// (the peer is not reading).
    ///
    /// Not cancel-safe: if the future is dropped mid-write, the stream is cut inside a message
    /// and this sender returns [`Error::Closed`] from then on.
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.queue(msg)?;
        self.flush().await
    }

    /// Queues `msg` without writing it: a burst of queued messages goes out at the next
    /// [`Sender::flush`] (or [`Sender::send`]), in one write, and as few transport messages as
    /// fit — one encryption for many frames rather than one each.
    pub fn queue(&mut self, msg: &Message) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.frame.clear();
        encode_frame(msg, &mut self.frame);
        let len = self.frame.len() + TAG_LEN;
        if len > MAX_MESSAGE_LEN {
            return Err(Error::Oversized(len));
        }
        if self.plain.len() + len > MAX_MESSAGE_LEN {
            self.seal()?;
        }
        self.plain.extend_from_slice(&self.frame);
        Ok(())
    }

    /// Encrypts the queued frames as one transport message into the write buffer.
    fn seal(&mut self) -> Result<()> {
        if self.plain.is_empty() {
            return Ok(());
        }
        let len = self.plain.len() + TAG_LEN;
        let start = self.out.len();
        self.out.resize(start + 2 + len, 0);
        // len ≤ MAX_MESSAGE_LEN < u16::MAX (`queue` keeps it so).
        self.out[start..start + 2].copy_from_slice(&(len as u16).to_be_bytes());
        self.noise
            .write_message(self.nonce, &self.plain, &mut self.out[start + 2..])?;
        self.nonce += 1;
        self.plain.clear();
        Ok(())
    }

    /// Bytes queued and not yet written.
    pub fn buffered(&self) -> usize {
        self.out.len() + self.plain.len()
    }

    /// Writes every queued message, waiting while the socket's buffer is full.
    ///
    /// Not cancel-safe, as [`Sender::send`].
    pub async fn flush(&mut self) -> Result<()> {
        if self.closed {
            return Err(Error::Closed);
        }
        self.seal()?;
        if self.out.is_empty() {
            return Ok(());
        }
        // Stays set if the write fails or is cancelled: the stream is then mid-message.
        self.closed = true;
        self.write.write_all(&self.out).await?;
        self.closed = false;
        self.out.clear();
        Ok(())
    }

    /// Closes our direction of the connection (TCP FIN); later sends return [`Error::Closed`].
    pub async fn close(&mut self) -> Result<()> {
        self.closed = true;
        self.write.shutdown().await?;
        Ok(())
    }
}

/// The receiving half of a [`Connection`].
#[derive(Debug)]
pub struct Receiver {
    read: OwnedReadHalf,
    noise: Arc<StatelessTransportState>,
    nonce: u64,
    /// Bytes read from the socket and not yet consumed.
    buf: Vec<u8>,
    /// The last transport message's plaintext: whole frames, read up to `read_to`.
    plain: Vec<u8>,
    read_to: usize,
    closed: bool,
    peer: Address,
}

impl Receiver {
    /// The Ethereum address the peer proved it holds.
    pub fn peer(&self) -> Address {
        self.peer
    }

    /// Waits for the next message.
    ///
    /// Returns [`Error::Closed`] once the peer has closed its direction. Any other error
    /// (a message longer than [`MAX_MESSAGE_LEN`](super::MAX_MESSAGE_LEN), one that fails to
    /// decrypt, or one that is not a sequence of whole, valid frames) shuts the socket down in
    /// both directions, and every later call returns [`Error::Closed`].
    ///
    /// Cancel-safe: dropping the future loses no data, so it can be used in `select!`.
    pub async fn recv(&mut self) -> Result<Message> {
        if self.closed {
            return Err(Error::Closed);
        }
        let result = self.next().await;
        if let Err(e) = &result {
            self.closed = true;
            if !matches!(e, Error::Closed) {
                // Best effort: the socket may already be gone.
                let _ = socket2::SockRef::from(self.read.as_ref()).shutdown(Shutdown::Both);
            }
        }
        result
    }

    async fn next(&mut self) -> Result<Message> {
        if self.read_to < self.plain.len() {
            return self.next_frame();
        }
        loop {
            if let Some(prefix) = self.buf.first_chunk::<2>() {
                let len = usize::from(u16::from_be_bytes(*prefix));
                if len > MAX_MESSAGE_LEN {
                    return Err(Error::Oversized(len));
                }
                if self.buf.len() >= 2 + len {
                    let opened = self.open(len);
                    self.buf.drain(..2 + len);
                    opened?;
                    return self.next_frame();
                }
            }
            self.buf.reserve(READ_CHUNK);
            if self.read.read_buf(&mut self.buf).await? == 0 {
                return Err(if self.buf.is_empty() {
                    Error::Closed
                } else {
                    std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into()
                });
            }
        }
    }

    /// Decrypts the `len`-byte message after the prefix into `plain`.
    fn open(&mut self, len: usize) -> Result<()> {
        self.plain.resize(len, 0);
        let n = self
            .noise
            .read_message(self.nonce, &self.buf[2..2 + len], &mut self.plain)
            .map_err(|_| Error::Decrypt)?;
        self.nonce += 1;
        self.plain.truncate(n);
        self.read_to = 0;
        if n == 0 {
            // A transport message carries at least one frame.
            return Err(WireError::Truncated.into());
        }
        Ok(())
    }

    /// Decodes the next frame of the current plaintext; a frame cut by the message's end is
    /// malformed (frames never span transport messages).
    fn next_frame(&mut self) -> Result<Message> {
        match decode_frame(&self.plain[self.read_to..])? {
            Some((msg, used)) => {
                self.read_to += used;
                Ok(msg)
            }
            None => Err(WireError::Truncated.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Transport;
    use alloy::signers::local::PrivateKeySigner;
    use keel_core::B256;
    use tokio::net::TcpListener;

    async fn pair() -> (Connection, Connection) {
        let (a, b) = (
            Transport::new(PrivateKeySigner::random()).unwrap(),
            Transport::new(PrivateKeySigner::random()).unwrap(),
        );
        let b_addr = b.address();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            b.accept(stream).await.unwrap()
        });
        (
            a.connect(addr, b_addr).await.unwrap(),
            accepted.await.unwrap(),
        )
    }

    /// Seals `plain` as the sender's next transport message, bypassing the framing.
    async fn send_raw(sender: &mut Sender, plain: &[u8]) {
        let mut out = vec![0; 2 + plain.len() + TAG_LEN];
        out[..2].copy_from_slice(&((plain.len() + TAG_LEN) as u16).to_be_bytes());
        sender
            .noise
            .write_message(sender.nonce, plain, &mut out[2..])
            .unwrap();
        sender.nonce += 1;
        sender.write.write_all(&out).await.unwrap();
    }

    fn frame() -> Vec<u8> {
        let mut frame = Vec::new();
        encode_frame(
            &Message::Ack {
                channel_id: B256::ZERO,
                nonce: 7,
            },
            &mut frame,
        );
        frame
    }

    #[tokio::test]
    async fn plaintext_must_be_whole_frames() {
        // A plaintext, how many frames in it are delivered, and the error that follows.
        type Case = (Vec<u8>, usize, fn(&Error) -> bool);
        let cases: [Case; 4] = [
            ([frame(), vec![0]].concat(), 1, |e| {
                matches!(e, Error::Wire(WireError::Truncated))
            }),
            (
                [frame(), frame(), frame()[..10].to_vec()].concat(),
                2,
                |e| matches!(e, Error::Wire(WireError::Truncated)),
            ),
            (frame()[..10].to_vec(), 0, |e| {
                matches!(e, Error::Wire(WireError::Truncated))
            }),
            (vec![], 0, |e| {
                matches!(e, Error::Wire(WireError::Truncated))
            }),
        ];
        for (plain, whole, expected) in cases {
            let (mut a, mut b) = pair().await;
            // A valid message first: the connection works until the bad one.
            send_raw(&mut a.sender, &frame()).await;
            assert!(b.recv().await.is_ok());
            send_raw(&mut a.sender, &plain).await;
            for _ in 0..whole {
                assert!(b.recv().await.is_ok());
            }
            let err = b.recv().await.unwrap_err();
            assert!(expected(&err), "{err:?}");
            assert!(matches!(b.recv().await, Err(Error::Closed)));
        }
    }

    /// Messages queued together travel in as few transport messages as fit, in order.
    #[tokio::test]
    async fn queued_messages_share_transport_messages() {
        let (mut a, mut b) = pair().await;
        let ack = |nonce| Message::Ack {
            channel_id: B256::ZERO,
            nonce,
        };
        const N: u64 = 1_000;
        let before = a.sender.nonce;
        for nonce in 0..N {
            a.sender.queue(&ack(nonce)).unwrap();
        }
        a.sender.flush().await.unwrap();
        let sealed = a.sender.nonce - before;
        let per_message = (MAX_MESSAGE_LEN - TAG_LEN) / frame().len();
        assert_eq!(
            sealed,
            N.div_ceil(per_message as u64),
            "{N} frames took {sealed} messages"
        );
        for nonce in 0..N {
            assert_eq!(b.recv().await.unwrap(), ack(nonce));
        }
    }

    #[tokio::test]
    async fn unknown_version_is_refused() {
        let (mut a, mut b) = pair().await;
        let mut bad = frame();
        // A version other than this build's.
        let other = keel_core::wire::VERSION.wrapping_add(1);
        bad[4] = other;
        send_raw(&mut a.sender, &bad).await;
        assert!(matches!(
            b.recv().await,
            Err(Error::Wire(WireError::UnsupportedVersion(v))) if v == other
        ));
    }

    #[tokio::test]
    async fn a_replayed_message_fails_to_decrypt() {
        let (mut a, mut b) = pair().await;
        send_raw(&mut a.sender, &frame()).await;
        assert!(b.recv().await.is_ok());
        a.sender.nonce -= 1;
        send_raw(&mut a.sender, &frame()).await;
        assert!(matches!(b.recv().await, Err(Error::Decrypt)));
    }
}
