//! Striped locks that serialize commands on the same streams inside this process, so concurrent
//! requests for one contact queue up instead of conflicting and retrying. Correctness never
//! depends on them: the expected versions do that.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};
use wagate_domain::StreamKey;

const STRIPES: usize = 512;

#[derive(Debug)]
pub struct StreamLocks {
    stripes: Vec<Mutex<()>>,
}

impl Default for StreamLocks {
    fn default() -> Self {
        Self {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }
}

impl StreamLocks {
    /// Locks the stripes of `keys`, always in stripe order so two callers cannot deadlock.
    pub async fn lock(&self, keys: &[&StreamKey]) -> Vec<MutexGuard<'_, ()>> {
        let mut indexes: Vec<usize> = keys.iter().map(|key| stripe(key)).collect();
        indexes.sort_unstable();
        indexes.dedup();
        let mut guards = Vec::with_capacity(indexes.len());
        for index in indexes {
            guards.push(self.stripes[index].lock().await);
        }
        guards
    }
}

fn stripe(key: &StreamKey) -> usize {
    let mut hasher = DefaultHasher::new();
    key.hash(&mut hasher);
    // The modulo keeps the value below STRIPES, so the cast cannot truncate meaningfully.
    (hasher.finish() % STRIPES as u64) as usize
}
