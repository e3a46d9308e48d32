//! Fencing tokens for the roles that run once per cluster (poller, importer, callback
//! sender).
//!
//! A lease's epoch ([`LeaseStore::take_lease_epoch`](super::LeaseStore::take_lease_epoch))
//! grows every time the lease changes hands (it is the store clock's time of the hand-over,
//! and at least the previous epoch + 1, so it keeps growing even when a Redis master that
//! lost recent writes is promoted). Every write a role makes carries its tenure's [`Fence`];
//! the backend that takes the write checks it in the same atomic step (a SQLite or
//! PostgreSQL transaction, a Redis Lua script) against the highest epoch it has seen for
//! that lease — and, where the lease itself lives in the same backend, against the lease's
//! current epoch — and refuses it with [`StoreError::Fenced`](super::StoreError::Fenced)
//! when it is older. So a holder that was paused past its lease (a stopped VM, a long GC,
//! a network partition) and wakes up cannot overwrite what the new holder wrote.
//!
//! Writes made by an operator (the CLI) carry no fence and are never refused.

/// The epoch of one tenure of a lease, carried by the writes made under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The lease's name (`poller`, `importer`, `callbacks`).
    pub lease: String,
    pub epoch: u64,
}

impl Fence {
    pub fn new(lease: &str, epoch: u64) -> Fence {
        Fence {
            lease: lease.to_string(),
            epoch,
        }
    }

    /// The epoch as the backends store it (SQL integers are signed).
    pub fn epoch_i64(&self) -> i64 {
        self.epoch.min(i64::MAX as u64) as i64
    }

    /// The error for a write refused because `newer` was seen.
    pub fn refused(&self, newer: i64) -> super::StoreError {
        super::StoreError::Fenced(format!(
            "the {} lease's epoch {} is older than {newer}: another process holds it now",
            self.lease, self.epoch
        ))
    }
}
