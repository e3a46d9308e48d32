//! The SQLite side of [`Fence`]: the check a fenced write makes inside its own transaction.

use rusqlite::{params, Connection};

use super::{Fence, StoreError, StoreResult};

/// The check runs inside a write transaction that already holds the lock, so no busy
/// error can arise here; any other failure is the database's.
fn backend(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("sqlite: {e}"))
}

/// Refuses the write (`StoreError::Fenced`) when `fence` is older than the lease's current
/// epoch in this file or the newest epoch a write of this lease carried here; otherwise
/// records its epoch as the newest. Call it inside the write's transaction (or on the
/// writer connection before its one statement), so check and write are one step.
pub(super) fn check(conn: &Connection, fence: Option<&Fence>) -> StoreResult<()> {
    let Some(f) = fence else {
        return Ok(());
    };
    let newest: i64 = conn
        .prepare_cached(
            "SELECT MAX(COALESCE((SELECT epoch FROM leases WHERE name = ?1), 0),
                        COALESCE((SELECT epoch FROM fences WHERE name = ?1), 0))",
        )
        .and_then(|mut s| s.query_row([&f.lease], |r| r.get(0)))
        .map_err(backend)?;
    if f.epoch_i64() < newest {
        return Err(f.refused(newest));
    }
    conn.prepare_cached(
        "INSERT INTO fences (name, epoch) VALUES (?1, ?2)
         ON CONFLICT(name) DO UPDATE SET epoch = excluded.epoch WHERE excluded.epoch > fences.epoch",
    )
    .and_then(|mut s| s.execute(params![f.lease, f.epoch_i64()]))
    .map_err(backend)?;
    Ok(())
}
