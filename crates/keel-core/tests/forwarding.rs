//! Properties of the multi-hop forwarding rules: a route the payer builds passes every node's
//! check, with nothing to spare (one unit or one second less fails), fees land where the
//! policies say, and nothing overflows silently.

use keel_core::{
    forwarding::{
        check_forward, expiry_delta, route_locks, ChainTiming, FeePolicy, ForwardError,
        ForwardInstruction, HopLock, HopPolicy, Rate,
    },
    Lock, B256, U256,
};
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;
const MIN_LIFETIME: u64 = 600;

fn policy() -> impl Strategy<Value = HopPolicy> {
    (
        0u64..1_000_000,
        0u32..50_000,
        prop_oneof![Just((1u64, 1u64)), (1u64..1_000, 1u64..1_000)],
        0u64..7_200,
    )
        .prop_map(|(base, ppm, (up, down), delta)| HopPolicy {
            fee: FeePolicy {
                base: U256::from(base),
                proportional_millionths: ppm,
            },
            rate: Rate::new(U256::from(up), U256::from(down)).unwrap(),
            expiry_delta: delta,
        })
}

fn lock(hop: &HopLock) -> Lock {
    Lock {
        expiration: hop.expiration,
        amount: hop.amount,
        secret_hash: B256::repeat_byte(7),
    }
}

fn instruction(hop: &HopLock) -> ForwardInstruction {
    ForwardInstruction {
        next_chain_id: 1,
        next_channel: B256::repeat_byte(9),
        amount: hop.amount,
        expiration: hop.expiration,
    }
}

proptest! {
    /// Every node on a built route accepts its incoming lock, and would refuse one unit or one
    /// second less: the payer pays exactly what the policies ask.
    #[test]
    fn built_routes_pass_every_hop_exactly(
        forwarders in prop::collection::vec(policy(), 0..6),
        deliver in 1u64..u64::MAX,
        lifetime in MIN_LIFETIME..86_400,
    ) {
        let locks = route_locks(&forwarders, U256::from(deliver), NOW + lifetime).unwrap();
        prop_assert_eq!(locks.len(), forwarders.len() + 1);
        prop_assert_eq!(locks.last().unwrap().amount, U256::from(deliver));
        for (i, policy) in forwarders.iter().enumerate() {
            let (incoming, outgoing) = (lock(&locks[i]), instruction(&locks[i + 1]));
            let forwarded = check_forward(&incoming, &outgoing, policy, NOW, MIN_LIFETIME).unwrap();
            prop_assert_eq!(forwarded.amount, locks[i + 1].amount);
            prop_assert_eq!(forwarded.secret_hash, incoming.secret_hash);

            let short = Lock { amount: incoming.amount - U256::from(1), ..incoming };
            let refused = matches!(
                check_forward(&short, &outgoing, policy, NOW, MIN_LIFETIME),
                Err(ForwardError::FeeTooLow { .. })
            );
            prop_assert!(refused, "hop {} took one unit less", i);
            let early = Lock { expiration: incoming.expiration - 1, ..incoming };
            let refused = matches!(
                check_forward(&early, &outgoing, policy, NOW, MIN_LIFETIME),
                Err(ForwardError::ExpiryTooSoon { .. })
            );
            prop_assert!(refused, "hop {} took a lock expiring a second early", i);
        }
    }

    /// With one asset, what the payer pays on top of the amount is exactly the sum of the
    /// nodes' fees, each computed on what that node forwards.
    #[test]
    fn fees_land_where_the_policies_say(
        forwarders in prop::collection::vec(policy(), 0..6),
        deliver in 1u64..1u64 << 48,
    ) {
        let par: Vec<HopPolicy> = forwarders.into_iter().map(|p| HopPolicy { rate: Rate::PAR, ..p }).collect();
        let locks = route_locks(&par, U256::from(deliver), NOW + MIN_LIFETIME).unwrap();
        let mut fees = U256::ZERO;
        for (i, policy) in par.iter().enumerate() {
            let earned = locks[i].amount - locks[i + 1].amount;
            prop_assert_eq!(earned, policy.fee.fee(locks[i + 1].amount).unwrap());
            fees += earned;
            prop_assert!(locks[i].expiration == locks[i + 1].expiration + policy.expiry_delta);
        }
        prop_assert_eq!(locks[0].amount, U256::from(deliver) + fees);
    }

    /// A conversion rounds up by less than one unit: the node never loses, the payer never pays
    /// a whole unit more than the rate says.
    #[test]
    fn rate_conversion_rounds_up_minimally(x in 0u64..u64::MAX, up in 1u64..1 << 40, down in 1u64..1 << 40) {
        let rate = Rate::new(U256::from(up), U256::from(down)).unwrap();
        let incoming = rate.upstream_for(U256::from(x)).unwrap();
        let owed = U256::from(x) * U256::from(up);
        prop_assert!(incoming * U256::from(down) >= owed);
        if !incoming.is_zero() {
            prop_assert!((incoming - U256::from(1)) * U256::from(down) < owed);
        }
    }
}

fn timing() -> impl Strategy<Value = ChainTiming> {
    (1u64..60, 0u64..100, 1u64..100, 0u64..60, 0u64..3_600).prop_map(
        |(block_time, confirmations, inclusion_blocks, poll_interval, margin)| ChainTiming {
            block_time,
            confirmations,
            inclusion_blocks,
            poll_interval,
            margin,
        },
    )
}

proptest! {
    /// A cross-chain hop's delta is the downstream chain's detection delay plus the upstream
    /// chain's registration time, never less than either chain needs, and a node forwarding
    /// under it (the incoming lock on one chain, the outgoing on the other) keeps exactly that
    /// time between its two expirations.
    #[test]
    fn a_cross_chain_delta_covers_both_chains(
        upstream in timing(),
        downstream in timing(),
        lifetime in MIN_LIFETIME..86_400,
    ) {
        let delta = expiry_delta(&upstream, &downstream).unwrap();
        let detection = downstream.confirmations * downstream.block_time + downstream.poll_interval;
        let registration = (upstream.inclusion_blocks + upstream.confirmations) * upstream.block_time
            + upstream.margin;
        prop_assert_eq!(delta, detection + registration);
        // Slowing either chain never shortens it.
        let slower_up = ChainTiming { block_time: upstream.block_time + 1, ..upstream };
        let deeper_down = ChainTiming { confirmations: downstream.confirmations + 1, ..downstream };
        prop_assert!(expiry_delta(&slower_up, &downstream).unwrap() > delta);
        prop_assert!(expiry_delta(&upstream, &deeper_down).unwrap() >= delta);

        let hop = HopPolicy { expiry_delta: delta, ..HopPolicy::default() };
        let locks = route_locks(&[hop], U256::from(1_000u64), NOW + lifetime).unwrap();
        prop_assert_eq!(locks[0].expiration - locks[1].expiration, delta);
        let cross = ForwardInstruction { next_chain_id: 2, ..instruction(&locks[1]) };
        prop_assert!(check_forward(&lock(&locks[0]), &cross, &hop, NOW, MIN_LIFETIME).is_ok());
    }
}

#[test]
fn overflow_is_a_typed_error_not_a_panic() {
    let greedy = HopPolicy {
        fee: FeePolicy {
            base: U256::MAX,
            proportional_millionths: 0,
        },
        ..HopPolicy::default()
    };
    assert_eq!(
        route_locks(&[greedy], U256::from(1), NOW),
        Err(ForwardError::Overflow("the amount plus the fee"))
    );
    let slow = HopPolicy {
        expiry_delta: u64::MAX,
        ..HopPolicy::default()
    };
    assert_eq!(
        route_locks(&[slow], U256::from(1), NOW),
        Err(ForwardError::Overflow("a lock expiration"))
    );
    let proportional = FeePolicy {
        base: U256::ZERO,
        proportional_millionths: u32::MAX,
    };
    assert!(matches!(
        proportional.fee(U256::MAX),
        Err(ForwardError::Overflow(_))
    ));
    assert!(matches!(
        Rate::new(U256::from(2), U256::from(1))
            .unwrap()
            .upstream_for(U256::MAX),
        Err(ForwardError::Overflow(_))
    ));
}

#[test]
fn zero_amounts_and_rates_are_refused() {
    assert!(matches!(
        route_locks(&[], U256::ZERO, NOW),
        Err(ForwardError::Invalid(_))
    ));
    assert!(Rate::new(U256::ZERO, U256::from(1)).is_err());
    assert!(Rate::new(U256::from(1), U256::ZERO).is_err());
}

#[test]
fn an_outgoing_lock_too_short_for_the_next_node_is_refused() {
    let policy = HopPolicy {
        expiry_delta: 100,
        ..HopPolicy::default()
    };
    let outgoing = ForwardInstruction {
        next_chain_id: 1,
        next_channel: B256::ZERO,
        amount: U256::from(10),
        expiration: NOW + MIN_LIFETIME - 1,
    };
    let incoming = Lock {
        expiration: NOW + 10_000,
        amount: U256::from(10),
        secret_hash: B256::ZERO,
    };
    assert_eq!(
        check_forward(&incoming, &outgoing, &policy, NOW, MIN_LIFETIME),
        Err(ForwardError::OutgoingTooShort {
            expiration: NOW + MIN_LIFETIME - 1,
            earliest: NOW + MIN_LIFETIME
        })
    );
}

/// The expiry delta of a cross-chain hop takes the downstream chain's detection delay and the
/// upstream chain's registration time, so it is not symmetric.
#[test]
fn expiry_delta_follows_its_derivation() {
    let mainnet = ChainTiming {
        block_time: 12,
        confirmations: 12,
        inclusion_blocks: 25,
        poll_interval: 12,
        margin: 300,
    };
    let rollup = ChainTiming {
        block_time: 2,
        confirmations: 30,
        inclusion_blocks: 30,
        poll_interval: 2,
        margin: 300,
    };
    // Downstream on the rollup: seen after 30 × 2 + 2 s; registered on mainnet in
    // (25 + 12) × 12 + 300 s.
    assert_eq!(expiry_delta(&mainnet, &rollup), Ok(62 + 744));
    // Downstream on mainnet: 12 × 12 + 12 s; registered on the rollup in (30 + 30) × 2 + 300 s.
    assert_eq!(expiry_delta(&rollup, &mainnet), Ok(156 + 420));
    assert_eq!(expiry_delta(&mainnet, &mainnet), Ok(156 + 744));
}
