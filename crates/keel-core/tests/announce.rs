//! The routing messages (channel announcements, policy updates, payment requests): their
//! EIP-712 type strings, digests equal to alloy's own EIP-712 implementation (the one wallets
//! follow), and signatures that verify only for their signer, channel, chain and deployment.

use alloy::{
    signers::local::PrivateKeySigner,
    sol_types::{Eip712Domain, SolStruct},
};
use keel_core::{
    domain,
    eip712::{ChannelDomain, Message},
    forwarding::{
        announce::{deployment_domain, MAX_DESCRIPTION},
        verify_announcement, verify_update, AnnouncementError, ChannelAnnouncement, ChannelUpdate,
        ExchangeRate, PaymentRequest, Rate,
    },
    signing::sign_hash,
    Address, B256, U256,
};

const CHAIN_ID: u64 = 31337;
const NOW: u64 = 1_800_000_000;

fn keys() -> (PrivateKeySigner, PrivateKeySigner, PrivateKeySigner) {
    let key = |n: u8| PrivateKeySigner::from_bytes(&B256::repeat_byte(n)).unwrap();
    (key(1), key(2), key(3))
}

fn announcement(a: Address, b: Address) -> ChannelAnnouncement {
    ChannelAnnouncement {
        channelId: B256::repeat_byte(0xc),
        participantA: a,
        participantB: b,
        token: Address::ZERO,
        challengePeriod: 86_400,
        salt: B256::ZERO,
    }
}

fn update(node: Address) -> ChannelUpdate {
    ChannelUpdate {
        channelId: B256::repeat_byte(0xc),
        node,
        timestamp: NOW,
        feeBase: U256::from(1_000),
        feeProportionalMillionths: 100,
        expiryDelta: 900,
        minAmount: U256::from(1),
        enabled: true,
        rates: vec![ExchangeRate {
            chainId: U256::from(10),
            token: Address::ZERO,
            upstream: U256::from(3),
            downstream: U256::from(2),
        }],
    }
}

fn check_digest<T: Message>(msg: &T, domain: &Eip712Domain) {
    let cached = ChannelDomain::new(CHAIN_ID, domain.verifying_contract.unwrap()).signing_hash(msg);
    assert_eq!(cached, msg.eip712_signing_hash(domain));
}

#[test]
fn type_strings_are_pinned_and_digests_match_alloys() {
    assert_eq!(
        ChannelAnnouncement::eip712_encode_type(),
        "ChannelAnnouncement(bytes32 channelId,address participantA,address participantB,address token,uint32 challengePeriod,bytes32 salt)"
    );
    assert_eq!(
        ChannelUpdate::eip712_encode_type(),
        "ChannelUpdate(bytes32 channelId,address node,uint64 timestamp,uint256 feeBase,uint32 feeProportionalMillionths,uint64 expiryDelta,uint256 minAmount,bool enabled,ExchangeRate[] rates)ExchangeRate(uint256 chainId,address token,uint256 upstream,uint256 downstream)"
    );
    assert_eq!(
        PaymentRequest::eip712_encode_type(),
        "PaymentRequest(bytes32 paymentHash,address payee,uint256 chainId,address token,uint256 amount,uint64 expiry,uint64 minFinalLifetime,string description)"
    );
    let vault = Address::repeat_byte(0x44);
    let domain = domain(CHAIN_ID, vault);
    check_digest(
        &announcement(Address::repeat_byte(1), Address::repeat_byte(2)),
        &domain,
    );
    check_digest(&update(Address::repeat_byte(1)), &domain);
}

#[test]
fn an_announcement_needs_both_participants_on_this_channel() {
    let (alice, bob, mallory) = keys();
    let msg = announcement(alice.address(), bob.address());
    let vault = Address::repeat_byte(0x44);
    let channel = ChannelDomain::new(CHAIN_ID, vault);
    let digest = channel.signing_hash(&msg);
    let (sig_a, sig_b) = (
        sign_hash(&alice, &digest).unwrap(),
        sign_hash(&bob, &digest).unwrap(),
    );
    verify_announcement(&msg, &channel, [&sig_a, &sig_b]).unwrap();

    let forged = sign_hash(&mallory, &digest).unwrap();
    assert!(matches!(
        verify_announcement(&msg, &channel, [&sig_a, &forged]),
        Err(AnnouncementError::Signature(_))
    ));
    assert!(verify_announcement(&msg, &channel, [&sig_b, &sig_a]).is_err());
    // The same signatures name one vault on one chain.
    let elsewhere = ChannelDomain::new(CHAIN_ID + 1, vault);
    assert!(verify_announcement(&msg, &elsewhere, [&sig_a, &sig_b]).is_err());
    let other_vault = ChannelDomain::new(CHAIN_ID, Address::repeat_byte(0x45));
    assert!(verify_announcement(&msg, &other_vault, [&sig_a, &sig_b]).is_err());
}

#[test]
fn an_update_is_its_participants_and_covers_every_field() {
    let (alice, bob, mallory) = keys();
    let channel = ChannelDomain::new(CHAIN_ID, Address::repeat_byte(0x44));
    let announced = announcement(alice.address(), bob.address());
    let msg = update(alice.address());
    let signature = sign_hash(&alice, &channel.signing_hash(&msg)).unwrap();
    verify_update(&msg, &announced, &channel, &signature).unwrap();
    assert_eq!(
        msg.rate_from(10, Address::ZERO).unwrap(),
        Some(Rate::new(U256::from(3), U256::from(2)).unwrap())
    );
    assert_eq!(msg.rate_from(11, Address::ZERO).unwrap(), None);

    let mut cheaper = msg.clone();
    cheaper.feeBase = U256::ZERO;
    assert!(matches!(
        verify_update(&cheaper, &announced, &channel, &signature),
        Err(AnnouncementError::Signature(_))
    ));
    let mut better_rate = msg.clone();
    better_rate.rates[0].upstream = U256::from(2);
    assert!(verify_update(&better_rate, &announced, &channel, &signature).is_err());

    let outsider = update(mallory.address());
    let signature = sign_hash(&mallory, &channel.signing_hash(&outsider)).unwrap();
    assert!(matches!(
        verify_update(&outsider, &announced, &channel, &signature),
        Err(AnnouncementError::NotAParticipant(_))
    ));
}

#[test]
fn a_payment_request_binds_payee_chain_deployment_and_expiry() {
    let (_, bob, mallory) = keys();
    let factory = Address::repeat_byte(0xfa);
    let request = PaymentRequest {
        paymentHash: B256::repeat_byte(9),
        payee: bob.address(),
        chainId: U256::from(CHAIN_ID),
        token: Address::ZERO,
        amount: U256::from(5_000),
        expiry: NOW + 3_600,
        minFinalLifetime: 1_200,
        description: "coffee".into(),
    };
    let digest = request.signing_hash(factory).unwrap();
    assert_eq!(
        digest,
        request.eip712_signing_hash(&deployment_domain(CHAIN_ID, factory))
    );
    let signature = sign_hash(&bob, &digest).unwrap();
    request.verify(factory, &signature, NOW).unwrap();

    assert!(matches!(
        request.verify(factory, &signature, NOW + 3_601),
        Err(AnnouncementError::Expired(_))
    ));
    assert!(request
        .verify(Address::repeat_byte(0xfb), &signature, NOW)
        .is_err());
    let forged = sign_hash(&mallory, &digest).unwrap();
    assert!(request.verify(factory, &forged, NOW).is_err());
    let mut more = request.clone();
    more.amount = U256::from(5_001);
    assert!(more.verify(factory, &signature, NOW).is_err());
    let mut long = request.clone();
    long.description = "x".repeat(MAX_DESCRIPTION + 1);
    assert!(matches!(
        long.verify(factory, &signature, NOW),
        Err(AnnouncementError::Invalid(_))
    ));
}
