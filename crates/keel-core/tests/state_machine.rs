//! Property tests of the channel state machine: two views of one channel, driven through random
//! sequences of payments, locks, claims, expiries, top-ups and withdrawals, must always agree and
//! conserve funds, and what settlement would pay must equal the off-chain balances.

use std::collections::HashMap;

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use keel_core::{
    channel::Direction, secret_hash, settle, sign_message, Change, ChannelError, ChannelParams,
    ChannelState, Lock, Policy, Side, Withdrawal,
};
use proptest::prelude::*;

const CHAIN_ID: u64 = 31337;
const START: u64 = 1_800_000_000;

#[derive(Debug, Clone)]
enum Op {
    Pay {
        from: Side,
        amount: u64,
    },
    AddLock {
        from: Side,
        amount: u64,
        lifetime: u64,
        secret: u8,
    },
    Claim {
        from: Side,
        which: usize,
    },
    Expire {
        from: Side,
        which: usize,
    },
    Deposit {
        side: Side,
        amount: u64,
    },
    Withdraw {
        side: Side,
        amount: u64,
    },
    Advance {
        seconds: u64,
    },
}

/// The operations that can take effect, for counting how many did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Pay,
    AddLock,
    Claim,
    Expire,
    Deposit,
    Withdraw,
}

impl Kind {
    const ALL: [Self; 6] = [
        Self::Pay,
        Self::AddLock,
        Self::Claim,
        Self::Expire,
        Self::Deposit,
        Self::Withdraw,
    ];

    /// Fewest operations of this kind that must take effect over one run of
    /// [`both_views_agree_and_conserve_funds`] (96 cases of 1–39 operations). Measured over 60
    /// runs, the lowest count of each kind was more than twice its minimum (means: 485 payments,
    /// 210 locks, 81 claims, 25 expiries, 136 deposits, 116 withdrawals), so a run fails only
    /// when the state machine refuses what it should take.
    const fn minimum(self) -> usize {
        match self {
            Self::Pay => 150,
            Self::AddLock => 60,
            Self::Claim => 25,
            Self::Expire => 6,
            Self::Deposit => 40,
            Self::Withdraw => 35,
        }
    }
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::A), Just(Side::B)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (side(), 0..400u64).prop_map(|(from, amount)| Op::Pay { from, amount }),
        // Lifetimes around the policy's 600 s minimum: some refused, most expiring within a
        // few `Advance`s, so expiries happen as often as claims can race them.
        2 => (side(), 0..300u64, 0..4_000u64, any::<u8>())
            .prop_map(|(from, amount, lifetime, secret)| Op::AddLock { from, amount, lifetime, secret }),
        2 => (side(), 0..8usize).prop_map(|(from, which)| Op::Claim { from, which }),
        3 => (side(), 0..8usize).prop_map(|(from, which)| Op::Expire { from, which }),
        1 => (side(), 0..500u64).prop_map(|(side, amount)| Op::Deposit { side, amount }),
        1 => (side(), 0..500u64).prop_map(|(side, amount)| Op::Withdraw { side, amount }),
        1 => (0..10_000u64).prop_map(|seconds| Op::Advance { seconds }),
    ]
}

struct World {
    keys: [PrivateKeySigner; 2],
    views: [ChannelState; 2],
    secrets: HashMap<B256, B256>,
    now: u64,
}

fn idx(side: Side) -> usize {
    match side {
        Side::A => 0,
        Side::B => 1,
    }
}

impl World {
    fn new(deposit_a: u64, deposit_b: u64) -> Self {
        let keys = [
            PrivateKeySigner::from_bytes(&B256::repeat_byte(1)).unwrap(),
            PrivateKeySigner::from_bytes(&B256::repeat_byte(2)).unwrap(),
        ];
        let params = ChannelParams {
            participant_a: keys[0].address(),
            participant_b: keys[1].address(),
            token: Address::ZERO,
            challenge_period: 86_400,
            salt: B256::ZERO,
        };
        let factory = Address::repeat_byte(0xfa);
        let implementation = Address::repeat_byte(0x1e);
        let view = |me| {
            ChannelState::new(
                params,
                CHAIN_ID,
                factory,
                implementation,
                me,
                Policy::default(),
            )
        };
        let mut views = [view(Side::A), view(Side::B)];
        for v in &mut views {
            v.deposit_confirmed(Side::A, U256::from(deposit_a)).unwrap();
            v.deposit_confirmed(Side::B, U256::from(deposit_b)).unwrap();
        }
        Self {
            keys,
            views,
            secrets: HashMap::new(),
            now: START,
        }
    }

    /// The sender applies `change`; if it may, the receiver must accept the very same update.
    fn update(&mut self, from: Side, change: Change) -> Result<(), ChannelError> {
        let before = self.views[idx(from)].clone();
        let proof = match self.views[idx(from)].send(&change, self.now) {
            Ok(proof) => proof,
            Err(e) => {
                assert_eq!(
                    self.views[idx(from)],
                    before,
                    "a refused send must change nothing"
                );
                return Err(e);
            }
        };
        let vault = self.views[0].vault();
        let sig = sign_message(&self.keys[idx(from)], &proof, CHAIN_ID, vault).unwrap();
        self.views[idx(from.other())]
            .receive(std::slice::from_ref(&change), &proof, &sig, self.now)
            .expect("the receiver accepts exactly what an honest sender may send");
        Ok(())
    }

    fn pending_lock(&self, from: Side, which: usize) -> Option<Lock> {
        let locks = &self.views[0].direction(from).locks;
        (!locks.is_empty()).then(|| locks[which % locks.len()])
    }

    fn balances(&self) -> (U256, U256) {
        (
            self.views[0].balance(Side::A),
            self.views[0].balance(Side::B),
        )
    }

    /// After an accepted update from `from`: the sender's balance fell by `out` (or rose by
    /// `back`), and the receiver's rose by `into`.
    fn moved(&self, before: (U256, U256), from: Side, out: U256, back: U256, into: U256) {
        let (a, b) = self.balances();
        let (sender_before, sender_now, receiver_before, receiver_now) = match from {
            Side::A => (before.0, a, before.1, b),
            Side::B => (before.1, b, before.0, a),
        };
        assert_eq!(
            sender_now + out,
            sender_before + back,
            "sender's balance moves by the change"
        );
        assert_eq!(
            receiver_now,
            receiver_before + into,
            "receiver's balance moves by the change"
        );
    }

    /// Runs `op`; returns its kind if it took effect (a payment, lock, claim, expiry, deposit or
    /// withdrawal that went through), `None` if it was refused or had nothing to act on.
    ///
    /// Payments, locks, claims and expiries are also checked against what the policy allows:
    /// each must succeed exactly when its preconditions hold, so a state machine that refused
    /// valid updates (or took invalid ones) fails here, not only in the counts.
    fn run(&mut self, op: &Op) -> Option<Kind> {
        let before = self.balances();
        let zero = U256::ZERO;
        let (kind, r) = match *op {
            Op::Pay { from, amount } => {
                let amount = U256::from(amount);
                let may = !amount.is_zero() && amount <= self.views[0].capacity(from);
                let r = self.update(from, Change::Pay { amount });
                assert_eq!(r.is_ok(), may, "pay {amount} from {from:?}: {r:?}");
                if r.is_ok() {
                    self.moved(before, from, amount, zero, amount);
                }
                (Kind::Pay, r)
            }
            Op::AddLock {
                from,
                amount,
                lifetime,
                secret,
            } => {
                let secret = B256::repeat_byte(secret);
                let hash = secret_hash(secret);
                self.secrets.insert(hash, secret);
                let amount = U256::from(amount);
                let lock = Lock {
                    expiration: self.now + lifetime,
                    amount,
                    secret_hash: hash,
                };
                let policy = Policy::default();
                let pending = &self.views[0].direction(from).locks;
                let may = !amount.is_zero()
                    && amount <= self.views[0].capacity(from)
                    && (policy.min_lock_lifetime..=policy.max_lock_lifetime).contains(&lifetime)
                    && pending.len() < policy.max_pending_locks
                    && pending.iter().all(|l| l.secret_hash != hash);
                let r = self.update(from, Change::AddLock(lock));
                assert_eq!(r.is_ok(), may, "lock {lock:?} from {from:?}: {r:?}");
                if r.is_ok() {
                    self.moved(before, from, amount, zero, zero);
                }
                (Kind::AddLock, r)
            }
            Op::Claim { from, which } => {
                let lock = self.pending_lock(from, which)?;
                let secret = self.secrets[&lock.secret_hash];
                // A pending lock's sender may always pay it out, expired or not.
                let r = self.update(from, Change::ClaimLock { secret });
                assert!(r.is_ok(), "claim of {lock:?} from {from:?}: {r:?}");
                self.moved(before, from, zero, zero, lock.amount);
                (Kind::Claim, r)
            }
            Op::Expire { from, which } => {
                let lock = self.pending_lock(from, which)?;
                let r = self.update(
                    from,
                    Change::RemoveExpiredLock {
                        secret_hash: lock.secret_hash,
                    },
                );
                assert_eq!(
                    r.is_ok(),
                    self.now > lock.expiration,
                    "expiry of {lock:?} at {}: {r:?}",
                    self.now
                );
                if r.is_ok() {
                    self.moved(before, from, zero, lock.amount, zero);
                }
                (Kind::Expire, r)
            }
            Op::Deposit { side, amount } => {
                let (total, _) = self.views[0].ledger(side);
                for v in &mut self.views {
                    v.deposit_confirmed(side, total + U256::from(amount))
                        .unwrap();
                }
                (Kind::Deposit, Ok(()))
            }
            Op::Withdraw { side, amount } => {
                let (_, done) = self.views[0].ledger(side);
                let w = Withdrawal {
                    channelId: self.views[0].id(),
                    participant: self.views[0].params().participant(side),
                    totalWithdrawn: done + U256::from(amount),
                    expiry: self.now + 3_600,
                    target: Address::ZERO,
                    targetSide: 0,
                };
                let a = self.views[0].approve_withdrawal(&w, self.now);
                let b = self.views[1].approve_withdrawal(&w, self.now);
                assert_eq!(
                    a.is_ok(),
                    b.is_ok(),
                    "both sides judge a withdrawal alike: {a:?} {b:?}"
                );
                if a.is_ok() {
                    for v in &mut self.views {
                        v.withdrawal_confirmed(side, w.totalWithdrawn).unwrap();
                    }
                }
                (Kind::Withdraw, a)
            }
            Op::Advance { seconds } => {
                self.now += seconds;
                return None;
            }
        };
        r.ok().map(|()| kind)
    }

    fn check(&self) {
        let [a, b] = &self.views;
        for side in [Side::A, Side::B] {
            assert_eq!(
                a.direction(side),
                b.direction(side),
                "views of {side:?}'s direction differ"
            );
            assert_eq!(a.ledger(side), b.ledger(side));
            assert_eq!(a.balance(side), b.balance(side));
        }
        let locked = |d: &Direction| d.locked();
        let (dep_a, wd_a) = a.ledger(Side::A);
        let (dep_b, wd_b) = a.ledger(Side::B);
        let total = dep_a + dep_b - wd_a - wd_b;
        let held = a.balance(Side::A)
            + a.balance(Side::B)
            + locked(a.direction(Side::A))
            + locked(a.direction(Side::B));
        assert_eq!(held, total, "funds are conserved");

        let (from_a, from_b) = a.settlement_directions();
        let s = settle(total, dep_a, wd_a, from_a, from_b).unwrap();
        assert_eq!(
            s.payout_a,
            a.balance(Side::A),
            "settlement pays A its off-chain balance"
        );
        assert_eq!(
            s.payout_b,
            a.balance(Side::B),
            "settlement pays B its off-chain balance"
        );
        assert_eq!(s.retained_a, locked(a.direction(Side::A)));
        assert_eq!(s.retained_b, locked(a.direction(Side::B)));
    }
}

/// Random operation sequences on both views. Besides the checks after every operation, the run
/// as a whole must have made each kind of operation take effect a minimum number of times:
/// otherwise a state machine that refused everything would pass every check.
#[test]
fn both_views_agree_and_conserve_funds() {
    let config = ProptestConfig {
        cases: 96,
        // Where the `proptest!` macro would keep failing cases, beside this file.
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let cases = (
        0..2_000u64,
        0..2_000u64,
        proptest::collection::vec(op(), 1..40),
    );
    let done = std::cell::RefCell::new(HashMap::<Kind, usize>::new());
    let result = proptest::test_runner::TestRunner::new(config).run(
        &cases,
        |(deposit_a, deposit_b, ops)| {
            let mut world = World::new(deposit_a, deposit_b);
            world.check();
            for op in &ops {
                if let Some(kind) = world.run(op) {
                    *done.borrow_mut().entry(kind).or_default() += 1;
                }
                world.check();
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let done = done.into_inner();
    for kind in Kind::ALL {
        let count = done.get(&kind).copied().unwrap_or(0);
        assert!(
            count >= kind.minimum(),
            "only {count} {kind:?} operations took effect (at least {} expected): {done:?}",
            kind.minimum()
        );
    }
}

#[test]
fn overspending_and_replays_are_refused_and_change_nothing() {
    let mut w = World::new(100, 0);
    assert!(matches!(
        w.update(
            Side::A,
            Change::Pay {
                amount: U256::from(101)
            }
        ),
        Err(ChannelError::InsufficientCapacity { .. })
    ));
    assert!(matches!(
        w.update(
            Side::B,
            Change::Pay {
                amount: U256::from(1)
            }
        ),
        Err(ChannelError::InsufficientCapacity { .. })
    ));
    w.update(
        Side::A,
        Change::Pay {
            amount: U256::from(40),
        },
    )
    .unwrap();

    // Bob replays the first proof: its nonce is no longer the next one.
    let mut old = w.views[0].clone();
    let first = {
        let mut fresh = World::new(100, 0);
        let p = fresh.views[0]
            .send(
                &Change::Pay {
                    amount: U256::from(40),
                },
                START,
            )
            .unwrap();
        let s = sign_message(&fresh.keys[0], &p, CHAIN_ID, fresh.views[0].vault()).unwrap();
        (p, s)
    };
    let before = w.views[1].clone();
    let err = w.views[1]
        .receive(
            &[Change::Pay {
                amount: U256::from(40),
            }],
            &first.0,
            &first.1,
            START,
        )
        .unwrap_err();
    assert_eq!(err, ChannelError::ProofMismatch { expected_nonce: 2 });
    assert_eq!(w.views[1], before);

    // A proof signed by the wrong key is refused.
    let p = old
        .send(
            &Change::Pay {
                amount: U256::from(1),
            },
            START,
        )
        .unwrap();
    let forged = sign_message(&w.keys[1], &p, CHAIN_ID, w.views[0].vault()).unwrap();
    let err = w.views[1]
        .receive(
            &[Change::Pay {
                amount: U256::from(1),
            }],
            &p,
            &forged,
            START,
        )
        .unwrap_err();
    // The refusal keeps the signing check's own error as its source: who it was expected from.
    let ChannelError::BadSignature(fault) = &err else {
        panic!("{err:?}")
    };
    let expected = w.views[1].params().participant(keel_core::Side::A);
    assert!(
        matches!(
            fault.signing_error(),
            Some(keel_core::Error::WrongSigner { expected: e, .. } | keel_core::Error::NotSignedByKey(e))
                if *e == expected
        ),
        "{fault:?}"
    );
    let source = std::error::Error::source(&err).expect("the fault is the source");
    assert_eq!(source.to_string(), fault.to_string());
    assert_eq!(w.views[1], before);
}

#[test]
fn locks_expire_only_after_their_expiration_and_cannot_be_claimed_without_the_secret() {
    let mut w = World::new(1_000, 1_000);
    let secret = B256::repeat_byte(7);
    let lock = Lock {
        expiration: START + 3_600,
        amount: U256::from(300),
        secret_hash: secret_hash(secret),
    };
    w.update(Side::A, Change::AddLock(lock)).unwrap();
    assert_eq!(w.views[1].capacity(Side::A), U256::from(700));
    assert!(matches!(
        w.update(
            Side::A,
            Change::RemoveExpiredLock {
                secret_hash: lock.secret_hash
            }
        ),
        Err(ChannelError::LockNotExpired { .. })
    ));
    assert!(matches!(
        w.update(Side::A, Change::ClaimLock { secret: B256::ZERO }),
        Err(ChannelError::UnknownLock(_))
    ));
    w.now = START + 3_601;
    w.update(
        Side::A,
        Change::RemoveExpiredLock {
            secret_hash: lock.secret_hash,
        },
    )
    .unwrap();
    assert_eq!(w.views[1].balance(Side::A), U256::from(1_000));
}

/// A lock goes back before it expires only with its receiver's signature over exactly that
/// lock: the sender cannot make the removal with a release it signed itself or one over another
/// amount, and a receiver handed such a removal refuses it too.
#[test]
fn a_lock_is_released_early_only_by_its_receivers_signature() {
    let mut w = World::new(1_000, 1_000);
    let lock = Lock {
        expiration: START + 3_600,
        amount: U256::from(300),
        secret_hash: secret_hash(B256::repeat_byte(9)),
    };
    w.update(Side::A, Change::AddLock(lock)).unwrap();
    let vault = w.views[0].vault();
    let release = w.views[1].lock_release(Side::A, lock.secret_hash).unwrap();
    assert_eq!(
        (release.amount, release.expiration, release.channelId),
        (lock.amount, lock.expiration, w.views[0].id())
    );
    let removal = |signature| Change::RemoveReleasedLock {
        secret_hash: lock.secret_hash,
        release: signature,
    };
    let by_sender = sign_message(&w.keys[0], &release, CHAIN_ID, vault).unwrap();
    let mut other_amount = release.clone();
    other_amount.amount = U256::from(299);
    let other = sign_message(&w.keys[1], &other_amount, CHAIN_ID, vault).unwrap();
    for forged in [by_sender, other] {
        assert!(matches!(
            w.update(Side::A, removal(forged)),
            Err(ChannelError::BadSignature(_))
        ));
        // Made by hand and signed, the receiver still refuses it.
        let before = w.views[1].clone();
        let next = w.views[1]
            .direction(Side::A)
            .apply(&removal(forged), U256::ZERO, w.now, &Policy::default())
            .unwrap();
        let proof = next.proof(w.views[1].id());
        let sig = sign_message(&w.keys[0], &proof, CHAIN_ID, vault).unwrap();
        assert!(matches!(
            w.views[1].receive(&[removal(forged)], &proof, &sig, w.now),
            Err(ChannelError::BadSignature(_))
        ));
        assert_eq!(w.views[1], before);
    }
    let signed = sign_message(&w.keys[1], &release, CHAIN_ID, vault).unwrap();
    assert_eq!(
        w.views[0]
            .check_release(Side::A, lock.secret_hash, &signed)
            .unwrap(),
        release
    );
    w.update(Side::A, removal(signed)).unwrap();
    assert_eq!(w.views[1].balance(Side::A), U256::from(1_000));
    assert_eq!(w.views[0].balance(Side::A), U256::from(1_000));
    assert!(w.views[0].direction(Side::A).locks.is_empty());
    // Gone, so there is nothing left to release or remove.
    assert!(matches!(
        w.views[1].lock_release(Side::A, lock.secret_hash),
        Err(ChannelError::UnknownLock(_))
    ));
}

#[test]
fn a_signed_cooperative_close_freezes_the_channel_until_it_expires() {
    let mut w = World::new(100, 50);
    w.update(
        Side::A,
        Change::Pay {
            amount: U256::from(30),
        },
    )
    .unwrap();
    let close = w.views[0].propose_close(START + 600).unwrap();
    assert_eq!(
        (close.payoutA, close.payoutB),
        (U256::from(70), U256::from(80))
    );
    w.views[1].approve_close(&close).unwrap();
    assert_eq!(
        w.update(
            Side::A,
            Change::Pay {
                amount: U256::from(1)
            }
        ),
        Err(ChannelError::NotOpen)
    );
    assert!(!w.views[0].close_expired(START + 600));
    assert!(w.views[0].close_expired(START + 601));
}

#[test]
fn a_first_proof_from_the_wrong_key_is_refused_before_any_key_is_cached() {
    let mut w = World::new(100, 0);
    let change = Change::Pay {
        amount: U256::from(5),
    };
    let mut sender = w.views[0].clone();
    let proof = sender.send(&change, START).unwrap();
    let vault = w.views[0].vault();
    let by_bob = sign_message(&w.keys[1], &proof, CHAIN_ID, vault).unwrap();
    let before = w.views[1].clone();
    assert!(matches!(
        w.views[1].receive(std::slice::from_ref(&change), &proof, &by_bob, START),
        Err(ChannelError::BadSignature(_))
    ));
    assert_eq!(w.views[1], before);
    let by_alice = sign_message(&w.keys[0], &proof, CHAIN_ID, vault).unwrap();
    w.views[1]
        .receive(std::slice::from_ref(&change), &proof, &by_alice, START)
        .unwrap();
    let (latest, sig) = w.views[1].latest_counterparty_proof().unwrap();
    assert_eq!((latest, sig), (proof, by_alice));
}
