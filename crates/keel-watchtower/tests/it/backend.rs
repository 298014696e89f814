//! A fresh database of either backend for a test: a temp SQLite file, or a new database on the
//! PostgreSQL server named by `KEEL_TEST_POSTGRES_URL` (script/postgres.sh starts one and sets
//! it). Without the variable the PostgreSQL variants skip with a message, except under CI
//! (`CI=true`), where they fail: a CI run must not pass without them.

use std::sync::atomic::{AtomicU32, Ordering};

use keel_watchtower::{PostgresStore, SqliteStore, Store};
use sqlx::{Connection, Executor, PgConnection};

use crate::fixture::{remove_db, temp_db};

/// The server the PostgreSQL variants create their databases on.
pub(crate) const POSTGRES_URL: &str = "KEEL_TEST_POSTGRES_URL";

/// Where one test's database lives.
pub(crate) enum TestDb {
    Sqlite(std::path::PathBuf),
    Postgres {
        /// The server's URL (its maintenance database).
        server: String,
        /// The test's own database on it.
        name: String,
    },
}

impl TestDb {
    pub(crate) fn sqlite() -> Self {
        Self::Sqlite(temp_db("store"))
    }

    /// A new, empty database on the test server; `None` (after saying so) when no server is
    /// configured outside CI.
    pub(crate) async fn postgres() -> Option<Self> {
        let Ok(server) = std::env::var(POSTGRES_URL) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{POSTGRES_URL} is not set: CI must run the PostgreSQL tests (script/postgres.sh)"
            );
            eprintln!("skipped: {POSTGRES_URL} is not set (script/postgres.sh starts a server)");
            return None;
        };
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "keel_tower_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut admin = PgConnection::connect(&server).await.unwrap();
        admin
            .execute(format!("CREATE DATABASE {name}").as_str())
            .await
            .unwrap();
        admin.close().await.unwrap();
        Some(Self::Postgres { server, name })
    }

    /// The URL of the test's database: the server's with its database replaced.
    fn postgres_url(server: &str, name: &str) -> String {
        let (base, _) = server
            .rsplit_once('/')
            .expect("a postgres:// URL with a database path");
        format!("{base}/{name}")
    }

    /// Removes the database.
    pub(crate) async fn remove(self) {
        match self {
            Self::Sqlite(path) => remove_db(&path),
            Self::Postgres { server, name } => {
                let mut admin = PgConnection::connect(&server).await.unwrap();
                admin
                    .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .unwrap();
                admin.close().await.unwrap();
            }
        }
    }
}

/// A store the suite can open (again) over a [`TestDb`] and close.
pub(crate) trait TestStore: Store + Clone + Sized {
    async fn open(db: &TestDb) -> Self;
    async fn close(&self);
}

impl TestStore for SqliteStore {
    async fn open(db: &TestDb) -> Self {
        let TestDb::Sqlite(path) = db else {
            panic!("a SQLite store over a PostgreSQL database")
        };
        Self::open(path).await.unwrap()
    }

    async fn close(&self) {
        Self::close(self).await;
    }
}

impl TestStore for PostgresStore {
    async fn open(db: &TestDb) -> Self {
        let TestDb::Postgres { server, name } = db else {
            panic!("a PostgreSQL store over a SQLite file")
        };
        Self::connect(&TestDb::postgres_url(server, name))
            .await
            .unwrap()
    }

    async fn close(&self) {
        Self::close(self).await;
    }
}

/// Runs the generic test `$test::<S>(&TestDb)` over both backends, as `$test::sqlite` and
/// `$test::postgres`.
macro_rules! both_backends {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            use crate::backend::TestDb;

            #[tokio::test]
            async fn sqlite() {
                let db = TestDb::sqlite();
                super::$test::<keel_watchtower::SqliteStore>(&db).await;
                db.remove().await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(db) = TestDb::postgres().await else { return };
                super::$test::<keel_watchtower::PostgresStore>(&db).await;
                db.remove().await;
            }
        }
    )*};
}
pub(crate) use both_backends;
