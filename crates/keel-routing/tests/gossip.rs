//! The graph takes only what verifies: announcements both participants signed for a channel id
//! their parameters give, updates signed by a participant, newer than what it holds; anything
//! else is refused with its reason and changes nothing.

use alloy::signers::local::PrivateKeySigner;
use keel_core::{
    channel_id,
    eip712::ChannelDomain,
    forwarding::{ChannelAnnouncement, ChannelUpdate, ExchangeRate},
    signing::sign_hash,
    vault_address, Address, ChannelParams, B256, U256,
};
use keel_routing::{
    find_route, gossip::MAX_RATES, Deployment, Gossip, GossipError, GraphError, RouteParams,
    Scorer, SignedAnnouncement, SignedUpdate,
};

const NOW: u64 = 1_800_000_000;
const DEPLOYMENT: Deployment = Deployment {
    chain_id: 31_337,
    factory: Address::repeat_byte(0xfa),
    implementation: Address::repeat_byte(0x1e),
};

fn key(n: u8) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

fn params(a: &PrivateKeySigner, b: &PrivateKeySigner) -> ChannelParams {
    ChannelParams {
        participant_a: a.address(),
        participant_b: b.address(),
        token: Address::ZERO,
        challenge_period: 86_400,
        salt: B256::ZERO,
    }
}

fn domain_of(params: &ChannelParams) -> ChannelDomain {
    let id = channel_id(DEPLOYMENT.chain_id, DEPLOYMENT.factory, params);
    let vault = vault_address(
        DEPLOYMENT.factory,
        DEPLOYMENT.implementation,
        id,
        params.token,
    );
    ChannelDomain::new(DEPLOYMENT.chain_id, vault)
}

fn announce(params: &ChannelParams, signers: [&PrivateKeySigner; 2]) -> SignedAnnouncement {
    let announcement = ChannelAnnouncement {
        channelId: channel_id(DEPLOYMENT.chain_id, DEPLOYMENT.factory, params),
        participantA: params.participant_a,
        participantB: params.participant_b,
        token: params.token,
        challengePeriod: params.challenge_period,
        salt: params.salt,
    };
    let digest = domain_of(params).signing_hash(&announcement);
    SignedAnnouncement {
        signatures: signers.map(|signer| sign_hash(signer, &digest).unwrap()),
        announcement,
    }
}

fn update(params: &ChannelParams, signer: &PrivateKeySigner, timestamp: u64) -> SignedUpdate {
    let update = ChannelUpdate {
        channelId: channel_id(DEPLOYMENT.chain_id, DEPLOYMENT.factory, params),
        node: signer.address(),
        timestamp,
        feeBase: U256::from(7),
        feeProportionalMillionths: 0,
        expiryDelta: 900,
        minAmount: U256::ZERO,
        enabled: true,
        rates: Vec::new(),
    };
    let signature = sign_hash(signer, &domain_of(params).signing_hash(&update)).unwrap();
    SignedUpdate { update, signature }
}

fn resign(
    params: &ChannelParams,
    signer: &PrivateKeySigner,
    update: ChannelUpdate,
) -> SignedUpdate {
    let signature = sign_hash(signer, &domain_of(params).signing_hash(&update)).unwrap();
    SignedUpdate { update, signature }
}

/// A route for 100 from `from` to `to` over what `gossip` knows.
fn route_100(
    gossip: &Gossip,
    from: &PrivateKeySigner,
    to: &PrivateKeySigner,
) -> Result<keel_routing::Route, keel_routing::RouteError> {
    find_route(
        gossip.graph(),
        &Scorer::default(),
        from.address(),
        to.address(),
        U256::from(100),
        &RouteParams::default(),
        NOW,
    )
}

#[test]
fn verified_announcements_and_updates_make_a_routable_graph() {
    let (alice, bob, carol) = (key(1), key(2), key(3));
    let mut gossip = Gossip::new(100);
    let (ab, bc) = (params(&alice, &bob), params(&bob, &carol));
    assert!(gossip
        .announce(
            &DEPLOYMENT,
            &announce(&ab, [&alice, &bob]),
            U256::from(1_000)
        )
        .unwrap());
    assert!(gossip
        .announce(
            &DEPLOYMENT,
            &announce(&bc, [&bob, &carol]),
            U256::from(1_000)
        )
        .unwrap());
    gossip.update(&update(&bc, &bob, NOW), NOW).unwrap();
    let route = route_100(&gossip, &alice, &carol).unwrap();
    assert_eq!(route.sent(), U256::from(107));

    // Announced again after a deposit: the capacity follows, nothing else changes.
    assert!(!gossip
        .announce(&DEPLOYMENT, &announce(&bc, [&bob, &carol]), U256::from(50))
        .unwrap());
    assert!(route_100(&gossip, &alice, &carol).is_err());

    // Its vault seen to take in more: resized, and the route is back.
    let bc_id = channel_id(DEPLOYMENT.chain_id, DEPLOYMENT.factory, &bc);
    gossip.resized(&bc_id, U256::from(500)).unwrap();
    assert_eq!(
        gossip.graph().channel(&bc_id).unwrap().capacity,
        U256::from(500)
    );
    assert!(route_100(&gossip, &alice, &carol).is_ok());

    // Closed on chain: gone, its updates are no longer taken, nor is a resize. A search that
    // took a snapshot before keeps the graph it started with.
    let snapshot = gossip.snapshot();
    gossip.closed(&bc_id).unwrap();
    assert_eq!(gossip.graph().channel_count(), 1);
    assert_eq!(snapshot.channel_count(), 2);
    assert_eq!(snapshot.channel(&bc_id).unwrap().capacity, U256::from(500));
    assert!(matches!(
        gossip.resized(&bc_id, U256::from(1)),
        Err(GossipError::Unannounced(_))
    ));
    assert!(matches!(
        gossip.update(&update(&bc, &bob, NOW + 1), NOW),
        Err(GossipError::Unannounced(_))
    ));
}

#[test]
fn forged_or_misattributed_announcements_are_refused() {
    let (alice, bob, mallory) = (key(1), key(2), key(3));
    let mut gossip = Gossip::new(100);
    let ab = params(&alice, &bob);
    // Mallory cannot sign for Bob.
    let forged = announce(&ab, [&alice, &mallory]);
    assert!(matches!(
        gossip.announce(&DEPLOYMENT, &forged, U256::from(1)),
        Err(GossipError::Signature(_))
    ));
    // Nor claim Alice and Bob's channel id for a channel of hers.
    let mut stolen = announce(&params(&mallory, &bob), [&mallory, &bob]);
    stolen.announcement.channelId = channel_id(DEPLOYMENT.chain_id, DEPLOYMENT.factory, &ab);
    assert!(matches!(
        gossip.announce(&DEPLOYMENT, &stolen, U256::from(1)),
        Err(GossipError::WrongChannelId { .. })
    ));
    // Signed for another deployment (another factory): the id does not follow.
    let other = Deployment {
        factory: Address::repeat_byte(0xfb),
        ..DEPLOYMENT
    };
    assert!(matches!(
        gossip.announce(&other, &announce(&ab, [&alice, &bob]), U256::from(1)),
        Err(GossipError::WrongChannelId { .. })
    ));
    assert_eq!(gossip.graph().channel_count(), 0);
}

#[test]
fn bad_updates_are_refused_and_change_nothing() {
    let (alice, bob, mallory) = (key(1), key(2), key(3));
    let mut gossip = Gossip::new(100);
    let ab = params(&alice, &bob);
    gossip
        .announce(
            &DEPLOYMENT,
            &announce(&ab, [&alice, &bob]),
            U256::from(1_000),
        )
        .unwrap();
    let id = channel_id(DEPLOYMENT.chain_id, DEPLOYMENT.factory, &ab);
    gossip.update(&update(&ab, &alice, NOW), NOW).unwrap();

    assert!(matches!(
        gossip.update(&update(&ab, &alice, NOW), NOW),
        Err(GossipError::Graph(GraphError::Stale { .. }))
    ));
    assert!(matches!(
        gossip.update(&update(&ab, &mallory, NOW + 1), NOW),
        Err(GossipError::Signature(_))
    ));
    assert!(matches!(
        gossip.update(&update(&ab, &alice, NOW + 601), NOW),
        Err(GossipError::FromTheFuture { .. })
    ));

    let mut forged = update(&ab, &alice, NOW + 1);
    forged.update.feeBase = U256::ZERO;
    assert!(matches!(
        gossip.update(&forged, NOW),
        Err(GossipError::Signature(_))
    ));

    let rate = ExchangeRate {
        chainId: U256::from(10),
        token: Address::ZERO,
        upstream: U256::from(1),
        downstream: U256::from(1),
    };
    let mut many = update(&ab, &alice, NOW + 1).update;
    many.rates = vec![rate.clone(); MAX_RATES + 1];
    assert!(matches!(
        gossip.update(&resign(&ab, &alice, many), NOW),
        Err(GossipError::BadPolicy(_))
    ));
    let mut zero = update(&ab, &alice, NOW + 1).update;
    zero.rates = vec![ExchangeRate {
        upstream: U256::ZERO,
        ..rate
    }];
    assert!(matches!(
        gossip.update(&resign(&ab, &alice, zero), NOW),
        Err(GossipError::BadPolicy(_))
    ));

    // The policy held is still the first one.
    assert_eq!(
        gossip.graph().policy(&id, alice.address()).unwrap().updated,
        NOW
    );
}

#[test]
fn the_graph_stays_within_its_bound() {
    let mut gossip = Gossip::new(2);
    for n in 1..=2u8 {
        let (a, b) = (key(n), key(n + 10));
        gossip
            .announce(
                &DEPLOYMENT,
                &announce(&params(&a, &b), [&a, &b]),
                U256::from(1),
            )
            .unwrap();
    }
    let (a, b) = (key(3), key(13));
    assert!(matches!(
        gossip.announce(
            &DEPLOYMENT,
            &announce(&params(&a, &b), [&a, &b]),
            U256::from(1)
        ),
        Err(GossipError::Full(2))
    ));
    // A known channel may still be announced again.
    let (a, b) = (key(1), key(11));
    assert!(!gossip
        .announce(
            &DEPLOYMENT,
            &announce(&params(&a, &b), [&a, &b]),
            U256::from(5)
        )
        .unwrap());
}
