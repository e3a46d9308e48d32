//! A named lease in the store, for the roles only one process may run at a time (poller,
//! recording importer, callback delivery).
//!
//! Each role calls [`Lease::acquire`] every cycle: it takes the lease if it is free or
//! expired, renews it if this process holds it, and logs when it changes hands. A process
//! that dies simply stops renewing, and another takes over once the TTL has passed — except
//! on the same node: the holder is `<node id>:<pid>` (`NODE_ID`, default the host name), so
//! a restarted process that finds its node's lease held by a pid that is gone takes it back
//! at once ([`reclaimable`]) instead of waiting for the TTL. Work that outlasts a cycle runs
//! under a [`Heartbeat`], which renews the lease until the work ends. Each tenure has an
//! epoch ([`Lease::fence`]) that the role's writes carry, so a holder that was paused past
//! its lease cannot overwrite the new holder's work (`store::fence`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::app::App;
use crate::config::Config;
use crate::store::{Fence, LeaseRole};

/// This node's id: `NODE_ID`, else the host name, else `node`.
pub fn node_id(config: &Config) -> String {
    if let Some(id) = &config.node_id {
        return id.clone();
    }
    host_name().to_string()
}

/// The machine's host name (read once), else `node`.
pub fn host_name() -> &'static str {
    static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HOST.get_or_init(|| {
        ["/proc/sys/kernel/hostname", "/etc/hostname"]
            .iter()
            .find_map(|p| {
                std::fs::read_to_string(p)
                    .ok()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
            })
            .unwrap_or_else(|| "node".to_string())
    })
}

/// `node` with every character outside `[A-Za-z0-9._-]` replaced by `_` (for file names).
pub fn node_label(node: &str) -> String {
    node.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The lease holder name of process `pid` on `node`.
pub fn holder_name(node: &str, pid: u32) -> String {
    format!("{}:{pid}", node_label(node))
}

/// Whether process `pid` runs on this machine (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Whether `holder` (`<node>:<pid>`) is a process of `this_node`, other than `this_pid`,
/// that `alive` says is gone: its lease may be taken back without waiting. Pure.
pub fn reclaimable(
    holder: &str,
    this_node: &str,
    this_pid: u32,
    alive: impl Fn(u32) -> bool,
) -> bool {
    match holder.rsplit_once(':') {
        Some((node, pid)) => match pid.parse::<u32>() {
            Ok(pid) => node == node_label(this_node) && pid != this_pid && !alive(pid),
            Err(_) => false,
        },
        None => false,
    }
}

pub struct Lease {
    app: Arc<App>,
    role: LeaseRole,
    name: &'static str,
    /// `<node>:<pid>`: says which process on which node holds it.
    holder: String,
    node: String,
    ttl_ms: i64,
    /// The epoch of this process's tenure while it holds the lease.
    epoch: Option<u64>,
}

impl Lease {
    pub fn new(app: Arc<App>, role: LeaseRole, ttl: Duration) -> Lease {
        let node = node_id(&app.config);
        Lease {
            holder: holder_name(&node, std::process::id()),
            node,
            app,
            role,
            name: role.name(),
            ttl_ms: ttl.as_millis() as i64,
            epoch: None,
        }
    }

    /// This process's holder name.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Takes or renews the lease; true while this process holds it.
    pub async fn acquire(&mut self) -> bool {
        let mut result = self
            .app
            .leases
            .take_lease_epoch(self.name, &self.holder, self.ttl_ms)
            .await;
        if let Ok(None) = result {
            result = self.take_back().await;
        }
        match result {
            Ok(epoch) => {
                if epoch != self.epoch {
                    let role = self.role.label();
                    match epoch {
                        Some(e) => {
                            tracing::info!(holder = %self.holder, epoch = e, "this process is now the {role}")
                        }
                        None => tracing::info!("another process is now the {role}"),
                    }
                }
                self.epoch = epoch;
            }
            Err(e) => {
                tracing::warn!(role = self.name, error = %e, "could not take the {} lease", self.name)
            }
        }
        self.held()
    }

    /// The fence of this tenure, for the role's writes; `None` when not held.
    pub fn fence(&self) -> Option<Fence> {
        self.epoch.map(|e| Fence::new(self.name, e))
    }

    /// Takes the lease from a gone predecessor on this node (a crashed `serve` restarted).
    async fn take_back(&self) -> Result<Option<u64>, crate::store::StoreError> {
        let Some((previous, _)) = self.app.leases.lease_holder(self.name).await? else {
            return Ok(None);
        };
        if !reclaimable(&previous, &self.node, std::process::id(), process_alive) {
            return Ok(None);
        }
        let taken = self
            .app
            .leases
            .replace_lease(self.name, &previous, &self.holder, self.ttl_ms)
            .await?;
        if taken.is_some() {
            tracing::info!(previous = %previous, "took the {} lease back from a process of this node that is gone", self.name);
        }
        Ok(taken)
    }

    /// Whether the last [`Lease::acquire`] found this process holding the lease.
    pub fn held(&self) -> bool {
        self.epoch.is_some()
    }

    /// Renews the lease if held (for work that outlasts a cycle).
    pub async fn renew(&self) {
        if self.held() {
            self.renewer().renew().await;
        }
    }

    /// A handle that can renew from another task (a heartbeat during long work).
    pub fn renewer(&self) -> Renewer {
        Renewer {
            app: self.app.clone(),
            name: self.name,
            holder: self.holder.clone(),
            ttl_ms: self.ttl_ms,
            epoch: self.epoch,
        }
    }

    /// Renews the lease every third of its TTL until the returned guard is stopped or
    /// dropped: wrap every piece of work done under the lease in one.
    pub fn heartbeat(&self) -> Heartbeat {
        let held = Arc::new(AtomicBool::new(self.held()));
        let (renewer, flag) = (self.renewer(), held.clone());
        let every = Duration::from_millis((self.ttl_ms / 3).max(50) as u64);
        let task = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let still = renewer.renew().await;
                if !still && flag.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        "lost the {} lease during work; stopping after the current step",
                        renewer.name
                    );
                }
            }
        });
        Heartbeat { task, held }
    }

    /// Gives the lease up on shutdown, so another process need not wait for the TTL.
    pub async fn release(self) {
        if self.held() {
            let _ = self.app.leases.release_lease(self.name, &self.holder).await;
        }
    }
}

/// Renews a lease while work runs; see [`Lease::heartbeat`].
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    held: Arc<AtomicBool>,
}

impl Heartbeat {
    /// False once a renewal found the lease taken by another process.
    pub fn held(&self) -> bool {
        self.held.load(Ordering::Relaxed)
    }

    pub async fn stop(self) {
        self.task.abort();
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Renews a lease from another task; see [`Lease::renewer`].
#[derive(Clone)]
pub struct Renewer {
    app: Arc<App>,
    name: &'static str,
    holder: String,
    ttl_ms: i64,
    epoch: Option<u64>,
}

impl Renewer {
    /// Renews; true while this process still holds the lease in the same tenure (a store
    /// error counts as held: the lease is only lost when another holder is seen, and the
    /// fenced writes refuse what a lost tenure still tries to write).
    pub async fn renew(&self) -> bool {
        match self
            .app
            .leases
            .take_lease_epoch(self.name, &self.holder, self.ttl_ms)
            .await
        {
            Ok(Some(e)) => self.epoch.is_none_or(|mine| mine == e),
            Ok(None) => false,
            Err(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_gone_process_of_this_node_is_reclaimed() {
        let gone = |_| false;
        let alive = |_| true;
        assert_eq!(holder_name("bbb-lb 1", 42), "bbb-lb_1:42");
        assert!(reclaimable("lb1:42", "lb1", 7, gone));
        assert!(reclaimable("bbb-lb_1:42", "bbb-lb 1", 7, gone));
        assert!(!reclaimable("lb1:42", "lb1", 7, alive), "still running");
        assert!(!reclaimable("lb1:7", "lb1", 7, gone), "this process");
        assert!(!reclaimable("lb2:42", "lb1", 7, gone), "another node");
        assert!(
            !reclaimable("42-0b6f1c", "lb1", 7, gone),
            "an old holder name"
        );
        assert!(!reclaimable("lb1:x", "lb1", 7, gone));
        assert!(process_alive(std::process::id()));
    }
}
