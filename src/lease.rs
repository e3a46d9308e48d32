//! A named lease in the store, for the roles only one process may run at a time (poller,
//! recording importer, callback delivery).
//!
//! Each role calls [`Lease::acquire`] every cycle: it takes the lease if it is free or
//! expired, renews it if this process holds it, and logs when it changes hands. A process
//! that dies simply stops renewing, and another takes over once the TTL has passed.

use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::store::LeaseRole;

pub struct Lease {
    app: Arc<App>,
    role: LeaseRole,
    name: &'static str,
    /// `<pid>-<uuid>`: unique per process, and says which process holds it.
    holder: String,
    ttl_ms: i64,
    held: bool,
}

impl Lease {
    pub fn new(app: Arc<App>, role: LeaseRole, ttl: Duration) -> Lease {
        Lease {
            app,
            role,
            name: role.name(),
            holder: format!("{}-{}", std::process::id(), uuid::Uuid::new_v4()),
            ttl_ms: ttl.as_millis() as i64,
            held: false,
        }
    }

    /// Takes or renews the lease; true while this process holds it.
    pub async fn acquire(&mut self) -> bool {
        match self
            .app
            .leases
            .take_lease(self.name, &self.holder, self.ttl_ms)
            .await
        {
            Ok(held) => {
                if held != self.held {
                    let role = self.role.label();
                    if held {
                        tracing::info!("this process is now the {role}");
                    } else {
                        tracing::info!("another process is now the {role}");
                    }
                }
                self.held = held;
            }
            Err(e) => {
                tracing::warn!(role = self.name, error = %e, "could not take the {} lease", self.name)
            }
        }
        self.held
    }

    /// Whether the last [`Lease::acquire`] found this process holding the lease.
    pub fn held(&self) -> bool {
        self.held
    }

    /// Renews the lease if held (for work that outlasts a cycle).
    pub async fn renew(&self) {
        if self.held {
            let _ = self
                .app
                .leases
                .take_lease(self.name, &self.holder, self.ttl_ms)
                .await;
        }
    }

    /// A handle that can renew from another task (a heartbeat during long work).
    pub fn renewer(&self) -> Renewer {
        Renewer {
            app: self.app.clone(),
            name: self.name,
            holder: self.holder.clone(),
            ttl_ms: self.ttl_ms,
        }
    }

    /// Gives the lease up on shutdown, so another process need not wait for the TTL.
    pub async fn release(self) {
        if self.held {
            let _ = self.app.leases.release_lease(self.name, &self.holder).await;
        }
    }
}

/// Renews a lease from another task; see [`Lease::renewer`].
#[derive(Clone)]
pub struct Renewer {
    app: Arc<App>,
    name: &'static str,
    holder: String,
    ttl_ms: i64,
}

impl Renewer {
    pub async fn renew(&self) {
        let _ = self
            .app
            .leases
            .take_lease(self.name, &self.holder, self.ttl_ms)
            .await;
    }
}
