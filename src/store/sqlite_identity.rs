//! The SQLite file's identity: a random id written once into the file (schema step
//! `0700-store-identity`), so processes can tell whether they share one file or each have
//! their own — which `serve` checks before sharing Redis with other processes
//! (`backends::open_to_serve`).

use rusqlite::OptionalExtension;

use super::sqlite::backend;
use super::{SqliteStore, StoreResult};

impl SqliteStore {
    /// This file's id: made on the first call, the same ever after (for every process that
    /// opens the file).
    pub async fn identity(&self) -> StoreResult<String> {
        self.write(|this| {
            let conn = this.writer()?;
            conn.execute(
                "INSERT OR IGNORE INTO store_identity (one, id) VALUES (1, ?1)",
                [uuid::Uuid::new_v4().simple().to_string()],
            )
            .map_err(backend)?;
            conn.query_row("SELECT id FROM store_identity WHERE one = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .map_err(backend)?
            .ok_or_else(|| backend("the store identity vanished"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_file_keeps_one_identity_and_another_file_has_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let a = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        let id = a.identity().await.unwrap();
        assert_eq!(a.identity().await.unwrap(), id);
        let again = SqliteStore::open(&dir.path().join("a.db")).unwrap();
        assert_eq!(
            again.identity().await.unwrap(),
            id,
            "per file, not per process"
        );
        let b = SqliteStore::open(&dir.path().join("b.db")).unwrap();
        assert_ne!(b.identity().await.unwrap(), id);
    }
}
