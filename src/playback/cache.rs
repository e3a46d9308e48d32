//! A short-lived in-memory cache of access facts (recording id → published, protected,
//! tenant, formats) in front of the store, so nginx's `auth_request` is answered without a
//! database query for the recordings being played right now.
//!
//! Changes made through this process (import, publish, protect, delete) invalidate the
//! entry at once; changes made by another process (the CLI, another node) are seen within
//! [`TTL`]. Misses (unknown recordings) are cached too, so probing random ids costs one
//! query per id per TTL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::store::playback::PlaybackAccess;

/// How long an entry is trusted.
pub const TTL: Duration = Duration::from_secs(2);
/// Entries kept at most; the cache is emptied when full (simple, and bounded).
pub const MAX_ENTRIES: usize = 50_000;

#[derive(Default)]
pub struct AccessCache {
    map: Mutex<HashMap<String, (Instant, Option<PlaybackAccess>)>>,
}

impl AccessCache {
    /// The cached answer for `rid` if fresh at `now` (`Some(None)`: known to be unknown).
    pub fn get(&self, rid: &str, now: Instant) -> Option<Option<PlaybackAccess>> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(rid)
            .filter(|(at, _)| now.duration_since(*at) < TTL)
            .map(|(_, a)| a.clone())
    }

    pub fn put(&self, rid: &str, access: Option<PlaybackAccess>, now: Instant) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(rid.to_string(), (now, access));
    }

    pub fn invalidate(&self, rid: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(rid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_invalidated() {
        let c = AccessCache::default();
        let t0 = Instant::now();
        assert_eq!(c.get("r", t0), None);
        c.put("r", Some(PlaybackAccess::default()), t0);
        assert_eq!(c.get("r", t0), Some(Some(PlaybackAccess::default())));
        assert_eq!(c.get("r", t0 + TTL), None);
        c.put("x", None, t0);
        assert_eq!(c.get("x", t0), Some(None));
        c.invalidate("x");
        assert_eq!(c.get("x", t0), None);
    }
}
