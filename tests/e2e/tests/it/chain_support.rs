//! Fixtures shared by the chain tests: whole channel lifecycles driven through keel-client's
//! `Chain` (each returning the vault events it must have produced), and a batch consumer for
//! the `Monitor`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use alloy::{
    primitives::{utils::parse_ether, Address, B256, U256},
    providers::Provider,
};
use eyre::{bail, ensure, eyre, Result};
use keel_bindings::ChannelVault::ChannelVaultErrors;
use keel_client::{
    chain::{
        BalanceData, Batch, ChainError, ChainEvent, ChainEventKind, DisputeState, Health,
        LockState, Monitor, Revert, TxReceipt,
    },
    store::Store,
};
use keel_core::{BalanceProof, CooperativeClose, Lock, Side, TowerAuthorisation, Withdrawal};
use keel_e2e::{Channel, Devnet, Participant, MIN_PERIOD};
use tokio::sync::mpsc;

/// Longest wait for anything the monitor should deliver; only reached when a test fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// `s` ether (or whole tokens of 18 decimals).
pub(crate) fn units(s: &str) -> U256 {
    parse_ether(s).expect("a valid constant")
}

/// `who`'s signature over `msg` for `ch`.
pub(crate) fn sign<T: keel_core::eip712::Message>(
    net: &Devnet,
    ch: &Channel,
    who: &Participant,
    msg: &T,
) -> Result<[u8; 65]> {
    Ok(keel_core::sign_message(
        &who.signer,
        msg,
        net.chain_id,
        ch.vault,
    )?)
}

/// A balance proof of `ch`.
pub(crate) fn proof(
    ch: &Channel,
    nonce: u64,
    transferred: U256,
    locked: U256,
    locks_root: B256,
) -> BalanceProof {
    BalanceProof {
        channelId: ch.id,
        nonce,
        transferredAmount: transferred,
        lockedAmount: locked,
        locksRoot: locks_root,
    }
}

/// Checks that `receipt` carries exactly `expected` from `ch`'s vault, in order.
pub(crate) fn assert_emitted(
    net: &Devnet,
    ch: &Channel,
    receipt: &TxReceipt,
    expected: &[ChainEventKind],
) -> Result<()> {
    let kinds: Vec<ChainEventKind> =
        ChainEvent::from_receipt(net.chain_id, ch.vault, ch.id, receipt)?
            .into_iter()
            .map(|e| e.kind)
            .collect();
    ensure!(
        kinds == expected,
        "emitted {kinds:#?}\nexpected {expected:#?}"
    );
    Ok(())
}

/// Whether `err` is the vault error `matches` accepts.
pub(crate) fn vault_error(err: &ChainError, matches: impl Fn(&ChannelVaultErrors) -> bool) -> bool {
    matches!(err, ChainError::Rejected { reason: Revert::Vault(e), .. } if matches(e))
}

/// A channel and the vault events its flow produced, in order.
pub(crate) struct Flow {
    /// The channel.
    pub(crate) channel: Channel,
    /// The block it was opened in.
    pub(crate) opened_at: u64,
    /// Its vault's events.
    pub(crate) events: Vec<ChainEventKind>,
}

/// Alice opens a channel in `asset` with 10, bob deposits 4 and carol 1 for bob; alice
/// withdraws 2 (both sign, carol submits); carol submits the close both signed (6 / 7).
/// Checks every balance that must move.
pub(crate) async fn cooperative_flow(net: &Devnet, asset: Address, salt: u64) -> Result<Flow> {
    let (alice, bob, carol) = (
        net.chain(&net.alice).await?,
        net.chain(&net.bob).await?,
        net.chain(&net.carol).await?,
    );
    let ch = net.channel(net.params(asset, salt));
    let vault = net.vault_for(&ch, &net.carol);

    let opened = alice.open(&ch.params, units("10")).await?;
    let opened_at = opened
        .block_number
        .ok_or_else(|| eyre!("no block number"))?;
    assert_emitted(net, &ch, &opened, &[])?;
    assert_eq!(vault.totalDeposit(0).call().await?, units("10"));

    let deposited = bob.deposit(&ch.params, Side::B, units("4")).await?;
    let mut events = vec![ChainEventKind::Deposited {
        side: Side::B,
        total: units("4"),
    }];
    assert_emitted(net, &ch, &deposited, &events[0..1])?;
    // Anyone may pay into either side.
    let deposited = carol.deposit(&ch.params, Side::B, units("1")).await?;
    events.push(ChainEventKind::Deposited {
        side: Side::B,
        total: units("5"),
    });
    assert_emitted(net, &ch, &deposited, &events[1..2])?;
    assert_eq!(vault.totalDeposit(1).call().await?, units("5"));
    let zero = carol
        .deposit(&ch.params, Side::A, U256::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(zero, ChainError::Invalid(_)), "{zero}");

    let w = Withdrawal {
        channelId: ch.id,
        participant: net.alice.address(),
        totalWithdrawn: units("2"),
        expiry: u64::MAX,
        target: Address::ZERO,
        targetSide: 0,
    };
    let (sig_a, sig_b) = (
        sign(net, &ch, &net.alice, &w)?,
        sign(net, &ch, &net.bob, &w)?,
    );
    let a0 = net.alice.balance_of(asset).await?;
    let withdrawn = carol.withdraw(&ch.params, &w, &sig_a, &sig_b).await?;
    events.push(ChainEventKind::Withdrawn {
        side: Side::A,
        total: units("2"),
    });
    assert_emitted(net, &ch, &withdrawn, &events[2..3])?;
    assert_eq!(net.alice.balance_of(asset).await?, a0 + units("2"));
    // Cumulative: the same signed withdrawal cannot be paid twice.
    let replay = carol
        .withdraw(&ch.params, &w, &sig_a, &sig_b)
        .await
        .unwrap_err();
    assert!(
        vault_error(&replay, |e| matches!(
            e,
            ChannelVaultErrors::TotalNotIncreasing(_)
        )),
        "{replay}"
    );

    let close = CooperativeClose {
        channelId: ch.id,
        payoutA: units("6"),
        payoutB: units("7"),
        depositA: units("10"),
        depositB: units("5"),
        totalWithdrawn: units("2"),
        expiry: u64::MAX,
    };
    let (sig_a, sig_b) = (
        sign(net, &ch, &net.alice, &close)?,
        sign(net, &ch, &net.bob, &close)?,
    );
    let (a0, b0) = (
        net.alice.balance_of(asset).await?,
        net.bob.balance_of(asset).await?,
    );
    let closed = carol
        .cooperative_close(&ch.params, &close, &sig_a, &sig_b)
        .await?;
    events.push(ChainEventKind::CooperativelyClosed {
        payout_a: units("6"),
        payout_b: units("7"),
    });
    assert_emitted(net, &ch, &closed, &events[3..4])?;
    assert_eq!(net.alice.balance_of(asset).await?, a0 + units("6"));
    assert_eq!(net.bob.balance_of(asset).await?, b0 + units("7"));
    assert_eq!(vault.status().call().await?, 3);
    Ok(Flow {
        channel: ch,
        opened_at,
        events,
    })
}

/// Alice (10) and bob (10) transact off-chain: alice's newest proof (nonce 5) has paid 3 and
/// locks 1.5 + 0.5; bob's (nonce 2) has paid 1. Alice closes with bob's proof, hiding hers;
/// bob refutes with her nonce-4 proof and carol, his watchtower, with her nonce-5 proof. After
/// the challenge period carol settles (alice 6, bob 12, 2 retained), registers the secret of
/// the 1.5 lock, and unlocks once the other has expired (1.5 to bob, 0.5 back to alice).
pub(crate) async fn dispute_flow(net: &Devnet, asset: Address, salt: u64) -> Result<Flow> {
    let (alice, bob, carol) = (
        net.chain(&net.alice).await?,
        net.chain(&net.bob).await?,
        net.chain(&net.carol).await?,
    );
    let ch = net.channel(net.params(asset, salt));
    let opened = alice.open(&ch.params, units("10")).await?;
    let opened_at = opened
        .block_number
        .ok_or_else(|| eyre!("no block number"))?;
    bob.deposit(&ch.params, Side::B, units("10")).await?;
    let mut events = vec![ChainEventKind::Deposited {
        side: Side::B,
        total: units("10"),
    }];

    let now = alice.block_timestamp().await?;
    let secret = B256::repeat_byte(0x5e);
    let locks = [
        Lock {
            expiration: now + 2 * u64::from(MIN_PERIOD),
            amount: units("1.5"),
            secret_hash: keel_core::secret_hash(secret),
        },
        Lock {
            expiration: now + 2 * u64::from(MIN_PERIOD),
            amount: units("0.5"),
            secret_hash: keel_core::secret_hash(B256::repeat_byte(0x99)),
        },
    ];
    let root = keel_core::locks_root(&locks);
    let from_alice_4 = proof(&ch, 4, units("3"), U256::ZERO, B256::ZERO);
    let from_alice_5 = proof(&ch, 5, units("3"), units("2"), root);
    let from_bob = proof(&ch, 2, units("1"), U256::ZERO, B256::ZERO);

    // Alice closes with bob's proof: her own direction is on record as empty.
    let closed = alice
        .close(
            &ch.params,
            Some((&from_bob, &sign(net, &ch, &net.bob, &from_bob)?)),
        )
        .await?;
    let closed_at = net
        .alice
        .provider
        .get_block_by_number(closed.block_number.ok_or_else(|| eyre!("no block"))?.into())
        .await?
        .ok_or_else(|| eyre!("no block"))?
        .header
        .timestamp;
    let state = DisputeState {
        closer: Side::A,
        deadline: closed_at + u64::from(MIN_PERIOD),
        total: units("20"),
        deposit_a: units("10"),
        withdrawn_a: U256::ZERO,
        from_a: BalanceData::default(),
        from_b: BalanceData::from(&from_bob),
    };
    events.push(ChainEventKind::Closed(state));
    assert_emitted(net, &ch, &closed, &events[1..2])?;

    // Bob refutes with alice's nonce-4 proof; carol with nonce 5 and bob's authorisation.
    let refuted = bob
        .refute(
            &ch.params,
            &state,
            &from_alice_4,
            &sign(net, &ch, &net.alice, &from_alice_4)?,
        )
        .await?;
    let state = DisputeState {
        from_a: BalanceData::from(&from_alice_4),
        ..state
    };
    events.push(ChainEventKind::Refuted(state));
    assert_emitted(net, &ch, &refuted, &events[2..3])?;
    let auth = TowerAuthorisation {
        balanceProof: from_alice_5.clone(),
    };
    let refuted = carol
        .refute_with_authorisation(
            &ch.params,
            &state,
            &from_alice_5,
            &sign(net, &ch, &net.alice, &from_alice_5)?,
            &sign(net, &ch, &net.bob, &auth)?,
        )
        .await?;
    let state = DisputeState {
        from_a: BalanceData::from(&from_alice_5),
        ..state
    };
    events.push(ChainEventKind::Refuted(state));
    assert_emitted(net, &ch, &refuted, &events[3..4])?;

    let early = carol.settle(&ch.params, &state).await.unwrap_err();
    assert!(
        vault_error(&early, |e| matches!(
            e,
            ChannelVaultErrors::ChallengePeriodNotOver(_)
        )),
        "{early}"
    );
    carol.register_secret(secret).await?;

    net.advance_time(u64::from(MIN_PERIOD) + 1).await?;
    let expected = state.settlement()?;
    assert_eq!(
        (expected.payout_a, expected.payout_b),
        (units("6"), units("12"))
    );
    let (a0, b0) = (
        net.alice.balance_of(asset).await?,
        net.bob.balance_of(asset).await?,
    );
    let settled = carol.settle(&ch.params, &state).await?;
    let lock_state = LockState {
        retained_a: units("2"),
        locks_root_a: root,
        retained_b: U256::ZERO,
        locks_root_b: B256::ZERO,
    };
    events.push(ChainEventKind::LocksRetained(lock_state));
    events.push(ChainEventKind::Settled {
        payout_a: units("6"),
        payout_b: units("12"),
    });
    assert_emitted(net, &ch, &settled, &events[4..6])?;
    assert_eq!(net.alice.balance_of(asset).await?, a0 + units("6"));
    assert_eq!(net.bob.balance_of(asset).await?, b0 + units("12"));

    // The unrevealed lock has not expired: nothing can be decided yet.
    let early = carol
        .unlock(&ch.params, &lock_state, Side::A, &locks)
        .await
        .unwrap_err();
    assert!(
        vault_error(&early, |e| matches!(
            e,
            ChannelVaultErrors::LockNotExpired(_)
        )),
        "{early}"
    );
    net.advance_time(u64::from(MIN_PERIOD)).await?;
    let (a0, b0) = (
        net.alice.balance_of(asset).await?,
        net.bob.balance_of(asset).await?,
    );
    let unlocked = carol
        .unlock(&ch.params, &lock_state, Side::A, &locks)
        .await?;
    events.push(ChainEventKind::Unlocked {
        sender: Side::A,
        to_receiver: units("1.5"),
        to_sender: units("0.5"),
        state: LockState::default(),
    });
    assert_emitted(net, &ch, &unlocked, &events[6..7])?;
    assert_eq!(net.alice.balance_of(asset).await?, a0 + units("0.5"));
    assert_eq!(net.bob.balance_of(asset).await?, b0 + units("1.5"));
    Ok(Flow {
        channel: ch,
        opened_at,
        events,
    })
}

/// A blocklist-token channel whose close pays bob while the token refuses him: his payout is
/// deferred, and he claims it once unblocked.
pub(crate) async fn deferred_payout_flow(net: &Devnet, salt: u64) -> Result<Flow> {
    let asset = net.blocklist_token;
    let (alice, bob, carol) = (
        net.chain(&net.alice).await?,
        net.chain(&net.bob).await?,
        net.chain(&net.carol).await?,
    );
    let ch = net.channel(net.params(asset, salt));
    let opened = alice.open(&ch.params, units("3")).await?;
    let opened_at = opened
        .block_number
        .ok_or_else(|| eyre!("no block number"))?;
    bob.deposit(&ch.params, Side::B, units("2")).await?;
    let mut events = vec![ChainEventKind::Deposited {
        side: Side::B,
        total: units("2"),
    }];

    let close = CooperativeClose {
        channelId: ch.id,
        payoutA: units("1"),
        payoutB: units("4"),
        depositA: units("3"),
        depositB: units("2"),
        totalWithdrawn: U256::ZERO,
        expiry: u64::MAX,
    };
    let (sig_a, sig_b) = (
        sign(net, &ch, &net.alice, &close)?,
        sign(net, &ch, &net.bob, &close)?,
    );
    net.set_blocked(net.bob.address(), true).await?;
    let closed = carol
        .cooperative_close(&ch.params, &close, &sig_a, &sig_b)
        .await?;
    events.push(ChainEventKind::CooperativelyClosed {
        payout_a: units("1"),
        payout_b: units("4"),
    });
    events.push(ChainEventKind::PayoutDeferred {
        to: net.bob.address(),
        amount: units("4"),
    });
    assert_emitted(net, &ch, &closed, &events[1..3])?;

    net.set_blocked(net.bob.address(), false).await?;
    let b0 = net.bob.balance_of(asset).await?;
    let claimed = bob.claim(&ch.params, net.bob.address()).await?;
    events.push(ChainEventKind::Claimed {
        owner: net.bob.address(),
        to: net.bob.address(),
        amount: units("4"),
    });
    assert_emitted(net, &ch, &claimed, &events[3..4])?;
    assert_eq!(net.bob.balance_of(asset).await?, b0 + units("4"));
    Ok(Flow {
        channel: ch,
        opened_at,
        events,
    })
}

/// A store in a fresh temporary file, removed on drop.
pub(crate) struct TempStore {
    pub(crate) store: Arc<Store>,
    path: PathBuf,
}

impl TempStore {
    pub(crate) async fn new(net: &Devnet, name: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("keel-chain-{}-{name}.db", net.chain_id));
        remove(&path);
        Ok(Self {
            store: Arc::new(Store::open(&path).await?),
            path,
        })
    }
}

impl Drop for TempStore {
    fn drop(&mut self) {
        remove(&self.path);
    }
}

fn remove(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Receives the monitor's batches.
pub(crate) struct Consumer {
    rx: mpsc::Receiver<Batch>,
}

impl Consumer {
    pub(crate) fn new(rx: mpsc::Receiver<Batch>) -> Self {
        Self { rx }
    }

    /// The next batch, unacknowledged.
    pub(crate) async fn batch(&mut self) -> Result<Batch> {
        match tokio::time::timeout(PATIENCE, self.rx.recv()).await {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => bail!("the monitor stopped"),
            Err(_) => bail!("no batch within {PATIENCE:?}"),
        }
    }

    /// Acknowledges batches until `n` events have arrived; fails on a batch that would exceed `n`.
    pub(crate) async fn events(&mut self, n: usize) -> Result<Vec<ChainEvent>> {
        let mut events = Vec::new();
        while events.len() < n {
            let batch = self.batch().await?;
            events.extend(batch.events.iter().cloned());
            batch.ack();
        }
        ensure!(events.len() == n, "expected {n} events, got {events:#?}");
        Ok(events)
    }

    /// Whether a batch is waiting.
    pub(crate) fn is_empty(&mut self) -> bool {
        matches!(self.rx.try_recv(), Err(mpsc::error::TryRecvError::Empty))
    }
}

/// Waits until the monitor's health satisfies `done`.
pub(crate) async fn wait_for(
    monitor: &Monitor,
    what: &str,
    done: impl Fn(&Health) -> bool,
) -> Result<Health> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let health = monitor.health();
        if done(&health) {
            return Ok(health);
        }
        if tokio::time::Instant::now() > deadline {
            bail!("waited {PATIENCE:?} for {what}; health {health:#?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the monitor has processed every block up to `block`.
pub(crate) async fn wait_for_checkpoint(monitor: &Monitor, block: u64) -> Result<Health> {
    wait_for(monitor, &format!("checkpoint {block}"), |h| {
        h.checkpoint.is_some_and(|cp| cp.block >= block)
    })
    .await
}

/// The kinds of `events` that belong to `ch`, in order.
pub(crate) fn kinds_of(events: &[ChainEvent], ch: &Channel) -> Vec<ChainEventKind> {
    events
        .iter()
        .filter(|e| e.vault == ch.vault)
        .map(|e| e.kind.clone())
        .collect()
}
