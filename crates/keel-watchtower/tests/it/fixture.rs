//! A channel between two keys, signed appointments for it, and an intake over a temp database.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        atomic::{AtomicU32, Ordering},
        Arc, Mutex,
    },
};

use alloy::{primitives::Bytes, signers::local::PrivateKeySigner};
use keel_core::{
    Address, BalanceProof, ChannelDomain, ChannelParams, Lock, TowerAuthorisation,
    TowerRegistration, B256, U256,
};
use keel_watchtower::{
    api::{AppointmentRequest, ChannelJson, LockJson, ProofJson, RegistrationRequest, ReleaseJson},
    ChannelLookup, Intake, IntakeConfig, SqliteStore, VaultStatus,
};

pub(crate) const CHAIN_ID: u64 = 31337;
pub(crate) const FACTORY: Address = Address::repeat_byte(0xfa);
pub(crate) const IMPLEMENTATION: Address = Address::repeat_byte(0x1e);
pub(crate) const NOW: u64 = 1_800_000_000;
pub(crate) const WATCH: u64 = 30 * 86_400;

/// Vault statuses by address; a missing entry is a vault never opened.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vaults(pub Arc<Mutex<HashMap<Address, VaultStatus>>>);

impl Vaults {
    pub(crate) fn set(&self, vault: Address, status: VaultStatus) {
        self.0.lock().unwrap().insert(vault, status);
    }
}

impl ChannelLookup for Vaults {
    async fn status(&self, vault: Address) -> Result<VaultStatus, String> {
        Ok(*self
            .0
            .lock()
            .unwrap()
            .get(&vault)
            .unwrap_or(&VaultStatus::Missing))
    }
}

/// Alice pays Bob; Bob is the tower's customer.
pub(crate) struct Fixture {
    pub(crate) alice: PrivateKeySigner,
    pub(crate) bob: PrivateKeySigner,
    pub(crate) tower: PrivateKeySigner,
    pub(crate) params: ChannelParams,
    pub(crate) channel_id: B256,
    pub(crate) vault: Address,
    pub(crate) store: Arc<SqliteStore>,
    pub(crate) vaults: Vaults,
    pub(crate) intake: Intake<SqliteStore, Vaults>,
    /// Vaults the intake asked to have watched.
    pub(crate) watched: Arc<Mutex<Vec<(Address, B256, VaultStatus)>>>,
    path: PathBuf,
}

pub(crate) fn temp_db(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("keel-tower-{name}-{}-{n}.db", std::process::id()))
}

pub(crate) fn remove_db(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

impl Fixture {
    pub(crate) async fn new(quota: u32) -> Self {
        let alice = PrivateKeySigner::random();
        let bob = PrivateKeySigner::random();
        let tower = PrivateKeySigner::random();
        let params = ChannelParams {
            participant_a: alice.address(),
            participant_b: bob.address(),
            token: Address::ZERO,
            challenge_period: 3_600,
            salt: B256::repeat_byte(7),
        };
        let channel_id = keel_core::channel_id(CHAIN_ID, FACTORY, &params);
        let vault = keel_core::vault_address(FACTORY, IMPLEMENTATION, channel_id, params.token);
        let path = temp_db("it");
        let store = Arc::new(SqliteStore::open(&path).await.unwrap());
        let vaults = Vaults::default();
        vaults.set(vault, VaultStatus::Open);
        let watched = Arc::new(Mutex::new(Vec::new()));
        let on_accepted = {
            let watched = watched.clone();
            Arc::new(move |v, id, s| watched.lock().unwrap().push((v, id, s)))
        };
        let intake = Intake::new(
            IntakeConfig {
                chain_id: CHAIN_ID,
                factory: FACTORY,
                vault_implementation: IMPLEMENTATION,
                quota,
                watch_period: WATCH,
            },
            tower.clone(),
            store.clone(),
            vaults.clone(),
            on_accepted,
        );
        Self {
            alice,
            bob,
            tower,
            params,
            channel_id,
            vault,
            store,
            vaults,
            intake,
            watched,
            path,
        }
    }

    /// Bob's registration with the tower.
    pub(crate) fn registration(&self, who: &PrivateKeySigner) -> RegistrationRequest {
        let msg = TowerRegistration {
            customer: who.address(),
            tower: self.tower.address(),
        };
        let digest = ChannelDomain::new(CHAIN_ID, self.tower.address()).signing_hash(&msg);
        RegistrationRequest {
            customer: who.address(),
            signature: sig(&keel_core::sign_hash(who, &digest).unwrap()),
        }
    }

    pub(crate) async fn register_bob(&self) {
        self.intake
            .register(&self.registration(&self.bob), NOW)
            .await
            .unwrap();
    }

    /// The proof numbered `nonce` Alice sent Bob (`transferred` = nonce ETH-wei × 1000),
    /// signed by Alice, authorised by Bob.
    pub(crate) fn appointment(&self, nonce: u64) -> AppointmentRequest {
        self.locked_appointment(nonce, &[], &[])
    }

    /// [`Fixture::appointment`] whose proof commits to `locks` and which carries them and
    /// `secrets`.
    pub(crate) fn locked_appointment(
        &self,
        nonce: u64,
        locks: &[Lock],
        secrets: &[B256],
    ) -> AppointmentRequest {
        let proof = BalanceProof {
            channelId: self.channel_id,
            nonce,
            transferredAmount: U256::from(nonce * 1000),
            lockedAmount: locks.iter().map(|l| l.amount).sum(),
            locksRoot: keel_core::locks_root(locks),
        };
        let domain = ChannelDomain::new(CHAIN_ID, self.vault);
        let sender = keel_core::sign_hash(&self.alice, &domain.signing_hash(&proof)).unwrap();
        let auth = TowerAuthorisation {
            balanceProof: proof.clone(),
        };
        let authorisation = keel_core::sign_hash(&self.bob, &domain.signing_hash(&auth)).unwrap();
        AppointmentRequest {
            chain_id: CHAIN_ID,
            channel: ChannelJson {
                participant_a: self.params.participant_a,
                participant_b: self.params.participant_b,
                token: self.params.token,
                challenge_period: self.params.challenge_period,
                salt: self.params.salt,
            },
            customer: self.bob.address(),
            proof: ProofJson {
                nonce,
                transferred_amount: proof.transferredAmount,
                locked_amount: proof.lockedAmount,
                locks_root: proof.locksRoot,
            },
            sender_signature: sig(&sender),
            authorisation: sig(&authorisation),
            locks: locks.iter().map(LockJson::from).collect(),
            secrets: secrets.to_vec(),
            releases: Vec::new(),
        }
    }

    /// `signer`'s `LockRelease` of `lock` in channel `channel_id` under the domain of `vault`
    /// (Alice's in this channel: the release of one of Bob's outgoing locks).
    pub(crate) fn release_by(
        signer: &PrivateKeySigner,
        channel_id: B256,
        vault: Address,
        lock: &Lock,
    ) -> ReleaseJson {
        let release = keel_core::LockRelease {
            channelId: channel_id,
            secretHash: lock.secret_hash,
            amount: lock.amount,
            expiration: lock.expiration,
        };
        let digest = ChannelDomain::new(CHAIN_ID, vault).signing_hash(&release);
        ReleaseJson {
            lock: lock.into(),
            signature: sig(&keel_core::sign_hash(signer, &digest).unwrap()),
        }
    }

    /// Alice's release of Bob's `lock` in this channel.
    pub(crate) fn release(&self, lock: &Lock) -> ReleaseJson {
        Self::release_by(&self.alice, self.channel_id, self.vault, lock)
    }
}

impl Fixture {
    /// Another intake over the same database, tower key and vaults (for the API's state).
    pub(crate) fn another_intake(&self) -> Intake<SqliteStore, Vaults> {
        Intake::new(
            IntakeConfig {
                chain_id: CHAIN_ID,
                factory: FACTORY,
                vault_implementation: IMPLEMENTATION,
                quota: 10,
                watch_period: WATCH,
            },
            self.tower.clone(),
            self.store.clone(),
            self.vaults.clone(),
            Arc::new(|_, _, _| {}),
        )
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        remove_db(&self.path);
    }
}

pub(crate) fn sig(bytes: &[u8; 65]) -> Bytes {
    bytes.to_vec().into()
}

/// The `n`th test secret and a lock of `amount` behind it, expiring at `expiration`.
pub(crate) fn secret_lock(n: u8, amount: u64, expiration: u64) -> (B256, Lock) {
    let secret = B256::repeat_byte(n);
    let lock = Lock {
        expiration,
        amount: U256::from(amount),
        secret_hash: keel_core::secret_hash(secret),
    };
    (secret, lock)
}
