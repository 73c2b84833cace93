//! Writes of ours the caches may not show yet: a reconcile woken by our own earlier write sees
//! the object as it was, and must neither repeat the write nor undo it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::locked;

/// How long a fresh write is remembered: the caches show it well before.
const REMEMBER: Duration = Duration::from_secs(60);

/// Writes of ours the caches may not show yet, forgotten after [`REMEMBER`].
pub(crate) struct Recent<K, V>(Mutex<HashMap<K, (V, Instant)>>);

impl<K, V> Default for Recent<K, V> {
    fn default() -> Self {
        Recent(Mutex::new(HashMap::new()))
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Recent<K, V> {
    pub(crate) fn insert(&self, k: K, v: V) {
        let mut m = locked(&self.0);
        m.retain(|_, (_, at)| at.elapsed() < REMEMBER);
        m.insert(k, (v, Instant::now()));
    }

    /// Forgets what the caches now show.
    pub(crate) fn forget(&self, shown: impl Fn(&K) -> bool) {
        let mut m = locked(&self.0);
        m.retain(|k, _| !shown(k));
    }

    /// Forgets one write the caches now show.
    pub(crate) fn remove(&self, k: &K) {
        locked(&self.0).remove(k);
    }

    pub(crate) fn entries(&self) -> Vec<(K, V)> {
        let m = locked(&self.0);
        m.iter()
            .filter(|(_, (_, at))| at.elapsed() < REMEMBER)
            .map(|(k, (v, _))| (k.clone(), v.clone()))
            .collect()
    }

    pub(crate) fn contains(&self, k: &K) -> bool {
        let m = locked(&self.0);
        m.get(k).is_some_and(|(_, at)| at.elapsed() < REMEMBER)
    }
}
