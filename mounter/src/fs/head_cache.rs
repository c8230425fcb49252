//! The first bytes of recently looked-up files.
//!
//! `lookup` of a name no listing knows fetches the start of the object
//! (GetObject of its first [`HEAD_BYTES`]) instead of HeadObject: the same
//! round trip, and the answer carries the size, ETag and modification time
//! too. Kept here, those bytes serve the first reads after `open` with no
//! further request, so reading a small file costs one GET, as it does
//! without FUSE.
//!
//! An entry is used only while the attributes it came with are trusted
//! (the metadata TTL) and only if the inode still has the same ETag; a
//! change through the mount evicts it. Entries are held in arrival order
//! and the oldest go first once their bytes pass the cache's capacity.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::store::ObjectHead;

/// How much of an object `lookup` fetches.
pub const HEAD_BYTES: u64 = 64 * 1024;
/// The bytes the cache holds at most, per mount.
pub const CAPACITY: usize = 8 * 1024 * 1024;

struct Entry {
    etag: String,
    bytes: Bytes,
    fetched: Instant,
}

#[derive(Default)]
struct Entries {
    by_ino: HashMap<u64, Entry>,
    /// Inode numbers in arrival order (a number may appear again after a
    /// newer insert; stale places are skipped).
    order: VecDeque<(u64, Instant)>,
    bytes: usize,
}

/// Object heads by inode number.
pub struct HeadCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<Entries>,
}

impl std::fmt::Debug for HeadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeadCache")
            .field("ttl", &self.ttl)
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl HeadCache {
    /// A cache whose entries live `ttl`, holding at most `capacity` bytes.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self { ttl, capacity, entries: Mutex::new(Entries::default()) }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Keeps `head` for inode `ino`.
    pub fn insert(&self, ino: u64, head: ObjectHead) {
        if head.bytes.is_empty() || head.bytes.len() > self.capacity || self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut entries = self.entries();
        let entry = Entry { etag: head.meta.etag, bytes: head.bytes, fetched: now };
        entries.bytes += entry.bytes.len();
        if let Some(old) = entries.by_ino.insert(ino, entry) {
            entries.bytes -= old.bytes.len();
        }
        entries.order.push_back((ino, now));
        // Drop the expired, then the oldest while over capacity.
        while let Some(&(oldest, at)) = entries.order.front() {
            if at.elapsed() < self.ttl && entries.bytes <= self.capacity {
                break;
            }
            entries.order.pop_front();
            if entries.by_ino.get(&oldest).is_some_and(|entry| entry.fetched == at) {
                let removed = entries.by_ino.remove(&oldest).map_or(0, |entry| entry.bytes.len());
                entries.bytes -= removed;
            }
        }
    }

    /// The head of inode `ino` if fresh and fetched from the object whose
    /// ETag is `etag`.
    pub fn get(&self, ino: u64, etag: &str) -> Option<Bytes> {
        let entries = self.entries();
        let entry = entries.by_ino.get(&ino)?;
        (entry.etag == etag && entry.fetched.elapsed() < self.ttl).then(|| entry.bytes.clone())
    }

    /// Forgets the head of inode `ino` (the file changed).
    pub fn remove(&self, ino: u64) {
        let mut entries = self.entries();
        if let Some(entry) = entries.by_ino.remove(&ino) {
            entries.bytes -= entry.bytes.len();
        }
    }

    /// The bytes held (for tests).
    #[cfg(test)]
    pub fn len_bytes(&self) -> usize {
        self.entries().bytes
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::store::ObjectMeta;

    fn head(etag: &str, len: usize) -> ObjectHead {
        let meta = ObjectMeta { size: len as u64, modified: SystemTime::now(), etag: etag.to_owned() };
        ObjectHead { meta, bytes: Bytes::from(vec![7; len]) }
    }

    #[test]
    fn an_entry_is_served_for_its_etag_only() {
        let cache = HeadCache::new(Duration::from_secs(60), 100);
        cache.insert(1, head("a", 10));
        assert_eq!(cache.get(1, "a").unwrap().len(), 10);
        assert!(cache.get(1, "b").is_none(), "another version of the object");
        assert!(cache.get(2, "a").is_none());
        cache.remove(1);
        assert!(cache.get(1, "a").is_none());
        assert_eq!(cache.len_bytes(), 0);
    }

    #[test]
    fn the_oldest_entries_go_first_when_over_capacity() {
        let cache = HeadCache::new(Duration::from_secs(60), 100);
        cache.insert(1, head("a", 40));
        cache.insert(2, head("a", 40));
        cache.insert(1, head("b", 40));
        cache.insert(3, head("a", 40));
        assert!(cache.get(2, "a").is_none(), "the oldest entry is evicted");
        assert!(cache.get(1, "b").is_some(), "a replaced entry counts from its newer insert");
        assert!(cache.get(3, "a").is_some());
        assert_eq!(cache.len_bytes(), 80);
    }

    #[test]
    fn nothing_is_kept_without_a_ttl() {
        let cache = HeadCache::new(Duration::ZERO, 100);
        cache.insert(1, head("a", 10));
        assert!(cache.get(1, "a").is_none());
        assert_eq!(cache.len_bytes(), 0);
    }
}
