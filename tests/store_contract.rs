//! The store contract (`ferrolite::store::contract`) against the embedded SQLite backend.
//! A Redis or PostgreSQL backend's test calls the same suites with its own `make`.

use std::sync::atomic::{AtomicUsize, Ordering};

use ferrolite::store::{contract, SqliteStore};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_keeps_the_store_contract() {
    let dir = tempfile::tempdir().unwrap();
    let n = AtomicUsize::new(0);
    let make = || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        SqliteStore::open(&dir.path().join(format!("contract-{i}.db"))).unwrap()
    };
    contract::run_all(make).await;
}
