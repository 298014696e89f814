//! The records of multi-hop payments: a hub's forwards (which incoming lock paid for which
//! outgoing one, and how it ended) and a payee's invoices (the secrets of the payment requests
//! it issued). Binary rows with a version byte, like the channel log.

use keel_core::{forwarding::FailureReason, forwarding::HopFailure, Lock, B256, U256};

use super::{
    codec::{Reader, Writer},
    DecodeError,
};

/// The layout this build writes.
const VERSION: u8 = 1;

const PENDING: u8 = 0;
const SETTLED: u8 = 1;
const FAILED: u8 = 2;

/// How a forward stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForwardState {
    /// The outgoing lock is added; neither its secret nor a failure has come back.
    Pending,
    /// The secret came back: the upstream lock is ours to claim.
    Settled {
        /// The secret.
        secret: B256,
    },
    /// The payment stopped downstream; the outgoing lock comes back once it expires.
    Failed {
        /// Where and why.
        failure: HopFailure,
    },
}

/// One forwarded lock: `incoming` on `incoming_channel` paid for `outgoing` on
/// `outgoing_channel`, under the same secret hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// The channel the lock arrived on.
    pub incoming_channel: B256,
    /// The lock we received.
    pub incoming: Lock,
    /// The channel we forwarded into.
    pub outgoing_channel: B256,
    /// The lock we added there.
    pub outgoing: Lock,
    /// How it stands.
    pub state: ForwardState,
}

impl Forward {
    /// The incoming amount less the outgoing one, in base units: what forwarding earned when
    /// both channels hold one asset. Across assets (another token, another chain) the two
    /// amounts are in different units and this compares them as numbers only; the fee then is
    /// the incoming amount less the outgoing one converted at the rate the forward was made
    /// at.
    pub fn fee(&self) -> U256 {
        self.incoming.amount.saturating_sub(self.outgoing.amount)
    }
}

/// A payment request we issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invoice {
    /// The preimage of its payment hash.
    pub secret: B256,
    /// The least we accept.
    pub amount: U256,
    /// Unix seconds after which we accept no new payment of it.
    pub expiry: u64,
    /// Whether a payment of it was claimed.
    pub paid: bool,
    /// A hold invoice: a payment's lock is checked and kept, and the secret revealed only when
    /// the application claims it (or never: the lock then expires back to the payer).
    pub hold: bool,
}

fn write_lock(w: &mut Writer, lock: &Lock) {
    w.u64(lock.expiration);
    w.u256(lock.amount);
}

fn read_lock(r: &mut Reader<'_>, secret_hash: B256) -> Result<Lock, DecodeError> {
    Ok(Lock {
        expiration: r.u64()?,
        amount: r.u256()?,
        secret_hash,
    })
}

pub(crate) fn encode_forward(forward: &Forward) -> Vec<u8> {
    let mut w = Writer(vec![VERSION]);
    write_lock(&mut w, &forward.incoming);
    w.bytes(forward.outgoing_channel.as_slice());
    write_lock(&mut w, &forward.outgoing);
    match forward.state {
        ForwardState::Pending => w.u8(PENDING),
        ForwardState::Settled { secret } => {
            w.u8(SETTLED);
            w.bytes(secret.as_slice());
        }
        ForwardState::Failed { failure } => {
            w.u8(FAILED);
            w.bytes(failure.node.as_slice());
            w.bytes(failure.channel.as_slice());
            w.bytes(&failure.reason.to_u16().to_be_bytes());
        }
    }
    w.0
}

pub(crate) fn decode_forward(
    incoming_channel: B256,
    secret_hash: B256,
    body: &[u8],
) -> Result<Forward, DecodeError> {
    let mut r = versioned(body)?;
    let incoming = read_lock(&mut r, secret_hash)?;
    let outgoing_channel = r.b256()?;
    let outgoing = read_lock(&mut r, secret_hash)?;
    let state = match r.u8()? {
        PENDING => ForwardState::Pending,
        SETTLED => ForwardState::Settled { secret: r.b256()? },
        FAILED => ForwardState::Failed {
            failure: HopFailure {
                node: r.address()?,
                channel: r.b256()?,
                reason: FailureReason::from_u16(u16::from_be_bytes(r.take()?)),
            },
        },
        other => return Err(DecodeError::UnknownKind(other)),
    };
    r.finish()?;
    Ok(Forward {
        incoming_channel,
        incoming,
        outgoing_channel,
        outgoing,
        state,
    })
}

pub(crate) fn encode_invoice(invoice: &Invoice) -> Vec<u8> {
    let mut w = Writer(vec![VERSION]);
    w.bytes(invoice.secret.as_slice());
    w.u256(invoice.amount);
    w.u64(invoice.expiry);
    w.u8(u8::from(invoice.paid));
    w.u8(u8::from(invoice.hold));
    w.0
}

pub(crate) fn decode_invoice(body: &[u8]) -> Result<Invoice, DecodeError> {
    let mut r = versioned(body)?;
    let invoice = Invoice {
        secret: r.b256()?,
        amount: r.u256()?,
        expiry: r.u64()?,
        paid: r.flag()?,
        hold: r.flag()?,
    };
    r.finish()?;
    Ok(invoice)
}

fn versioned(body: &[u8]) -> Result<Reader<'_>, DecodeError> {
    let mut r = Reader(body);
    match r.u8()? {
        VERSION => Ok(r),
        other => Err(DecodeError::UnsupportedVersion(other)),
    }
}

#[cfg(test)]
mod tests {
    use keel_core::Address;

    use super::*;

    fn forward(state: ForwardState) -> Forward {
        let hash = B256::repeat_byte(0x5e);
        Forward {
            incoming_channel: B256::repeat_byte(1),
            incoming: Lock {
                expiration: 2_000,
                amount: U256::from(1_010),
                secret_hash: hash,
            },
            outgoing_channel: B256::repeat_byte(2),
            outgoing: Lock {
                expiration: 1_000,
                amount: U256::from(1_000),
                secret_hash: hash,
            },
            state,
        }
    }

    #[test]
    fn forwards_round_trip_in_every_state_and_reject_truncation() {
        let failure = HopFailure {
            node: Address::repeat_byte(9),
            channel: B256::repeat_byte(2),
            reason: FailureReason::Liquidity,
        };
        for state in [
            ForwardState::Pending,
            ForwardState::Settled {
                secret: B256::repeat_byte(7),
            },
            ForwardState::Failed { failure },
        ] {
            let f = forward(state);
            let body = encode_forward(&f);
            let (channel, hash) = (f.incoming_channel, f.incoming.secret_hash);
            assert_eq!(decode_forward(channel, hash, &body), Ok(f));
            for len in 0..body.len() {
                assert!(decode_forward(channel, hash, &body[..len]).is_err());
            }
        }
        assert_eq!(forward(ForwardState::Pending).fee(), U256::from(10));
    }

    #[test]
    fn invoices_round_trip_and_reject_other_versions() {
        let invoice = Invoice {
            secret: B256::repeat_byte(3),
            amount: U256::from(5),
            expiry: 99,
            paid: true,
            hold: false,
        };
        let mut body = encode_invoice(&invoice);
        assert_eq!(decode_invoice(&body), Ok(invoice));
        body[0] = 2;
        assert_eq!(
            decode_invoice(&body),
            Err(DecodeError::UnsupportedVersion(2))
        );
    }
}
