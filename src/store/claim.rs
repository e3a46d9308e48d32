//! A claim on one recording: a short lease (`recording:<id>`, [`super::recording_claim`])
//! held while its files and its index row change together — a publish, an unpublish or a
//! delete — so two of them never interleave, on one node or several.
//!
//! Release it with [`RecordingClaim::release`]; dropping it releases it in a background
//! task (which a process that exits at once never runs), and a holder that dies leaves it
//! to expire after [`CLAIM_TTL`].

use std::sync::Arc;
use std::time::Duration;

use super::{recording_claim, LeaseStore, StoreError, StoreResult};

/// How long a claim lasts if its holder dies without releasing it.
pub const CLAIM_TTL: Duration = Duration::from_secs(60);
/// How long [`RecordingClaim::take`] waits for another holder to finish.
pub const CLAIM_WAIT: Duration = Duration::from_secs(15);
const RETRY_EVERY: Duration = Duration::from_millis(25);

pub struct RecordingClaim {
    leases: Arc<dyn LeaseStore>,
    name: String,
    holder: String,
}

impl RecordingClaim {
    /// Claims `record_id`, waiting up to [`CLAIM_WAIT`] for a current holder;
    /// [`StoreError::Busy`] if it does not let go.
    pub async fn take(
        leases: &Arc<dyn LeaseStore>,
        record_id: &str,
    ) -> StoreResult<RecordingClaim> {
        let name = recording_claim(record_id);
        let holder = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4().simple());
        let ttl = CLAIM_TTL.as_millis() as i64;
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            if leases.take_lease(&name, &holder, ttl).await? {
                return Ok(RecordingClaim {
                    leases: leases.clone(),
                    name,
                    holder,
                });
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::Busy(format!(
                    "recording '{record_id}' is being changed by another request"
                )));
            }
            tokio::time::sleep(RETRY_EVERY).await;
        }
    }

    /// Releases the claim now (rather than on drop).
    pub async fn release(mut self) {
        let _ = self.leases.release_lease(&self.name, &self.holder).await;
        self.name.clear();
    }
}

impl Drop for RecordingClaim {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let (leases, name, holder) = (
            self.leases.clone(),
            std::mem::take(&mut self.name),
            std::mem::take(&mut self.holder),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let _ = leases.release_lease(&name, &holder).await;
            });
        }
    }
}
