//! Sequential-read detection and prefetching, after Mountpoint's design.
//!
//! Each open file for reading has a [`Reader`]. It keeps a queue of ranged
//! GETs ("parts") ahead of the reader, covering `[queue start, requested_end)`.
//! A read that lands inside that range (the kernel's readahead may deliver
//! reads slightly out of order) is served from the parts and counts as
//! sequential: the window of bytes kept in flight doubles, up to
//! `max_window`. A read outside it is random: the queue is dropped (its
//! requests aborted) and the window starts over at `initial_window`, so
//! random reads fetch little more than they need.
//!
//! Memory is bounded per mount by a semaphore of `memory_budget` bytes
//! (counted in KiB): a part holds its permits until consumed. When the budget
//! is exhausted, prefetching stops; the bytes a read needs right now are
//! still fetched, unbudgeted, so a reader never waits on another file's
//! prefetched data.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;

use crate::metrics::Metrics;
use crate::store::{ObjectStore, Result, StoreError};

const KIB: u64 = 1024;

/// The default prefetch memory per mount, in MiB: eight 8 MiB parts in
/// flight. A part from COS takes about 100 ms (30–50 ms to the first byte,
/// then 8 MiB at 100–200 MB/s on one connection), so eight keep one reader
/// near 500 MB/s, more than a typical node's share of bandwidth to COS; the
/// bandwidth-delay product says raise it only on faster links or with many
/// concurrent readers.
pub const DEFAULT_MEMORY_MIB: u64 = 64;

/// Prefetch tuning.
#[derive(Debug, Clone, Copy)]
pub struct PrefetchConfig {
    /// Bytes requested after a random read (and at open).
    pub initial_window: u64,
    /// The largest number of bytes kept in flight ahead of a sequential reader.
    pub max_window: u64,
    /// The largest single ranged GET.
    pub part_size: u64,
    /// Prefetched bytes held at once, for the whole mount.
    pub memory_budget: u64,
}

impl Default for PrefetchConfig {
    fn default() -> Self {
        Self {
            initial_window: 256 * KIB,
            max_window: 128 * KIB * KIB,
            part_size: 8 * KIB * KIB,
            memory_budget: DEFAULT_MEMORY_MIB * KIB * KIB,
        }
    }
}

impl PrefetchConfig {
    /// The mount-wide memory budget as a semaphore.
    pub fn budget(&self) -> Arc<Semaphore> {
        Arc::new(Semaphore::new(usize::try_from(self.memory_budget / KIB).unwrap_or(Semaphore::MAX_PERMITS)))
    }
}

/// The prefetch window: how far ahead of the reader to fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    current: u64,
    initial: u64,
    max: u64,
}

impl Window {
    /// A window starting at `initial`, growing to `max`.
    pub fn new(initial: u64, max: u64) -> Self {
        let initial = initial.max(1);
        Self { current: initial, initial, max: max.max(initial) }
    }

    /// The current size.
    pub fn size(&self) -> u64 {
        self.current
    }

    /// Doubles after sequential progress, up to the maximum.
    pub fn grow(&mut self) {
        self.current = self.current.saturating_mul(2).min(self.max);
    }

    /// Starts over after a random read.
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

enum PartData {
    Pending(JoinHandle<Result<Bytes>>),
    Ready(Bytes),
}

struct Part {
    start: u64,
    end: u64,
    data: PartData,
    _permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Part {
    fn drop(&mut self) {
        if let PartData::Pending(task) = &self.data {
            task.abort();
        }
    }
}

impl Part {
    async fn bytes(&mut self) -> Result<&Bytes> {
        if let PartData::Pending(task) = &mut self.data {
            let bytes = task.await.unwrap_or_else(|error| {
                Err(StoreError::Malformed {
                    operation: "GetObject",
                    detail: format!("fetch task failed: {error}"),
                })
            })?;
            self.data = PartData::Ready(bytes);
        }
        match &self.data {
            PartData::Ready(bytes) => Ok(bytes),
            PartData::Pending(_) => unreachable!("resolved above"),
        }
    }
}

/// Reads one object through the prefetch queue.
pub struct Reader<S> {
    store: Arc<S>,
    key: String,
    size: u64,
    config: PrefetchConfig,
    budget: Arc<Semaphore>,
    metrics: Metrics,
    window: Window,
    parts: VecDeque<Part>,
    requested_end: u64,
    last_offset: u64,
}

impl<S> std::fmt::Debug for Reader<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("size", &self.size)
            .field("window", &self.window)
            .field("parts", &self.parts.len())
            .field("requested_end", &self.requested_end)
            .finish_non_exhaustive()
    }
}

impl<S: ObjectStore> Reader<S> {
    /// A reader of `key`, `size` bytes long.
    pub fn new(
        store: Arc<S>,
        key: String,
        size: u64,
        config: PrefetchConfig,
        budget: Arc<Semaphore>,
        metrics: Metrics,
    ) -> Self {
        let window = Window::new(config.initial_window, config.max_window);
        Self {
            store,
            key,
            size,
            config,
            budget,
            metrics,
            window,
            parts: VecDeque::new(),
            requested_end: 0,
            last_offset: 0,
        }
    }

    /// Starts the queue with `head`, the object's first bytes fetched
    /// already (at lookup), so reads from offset 0 begin without a request.
    pub fn seed(&mut self, head: Bytes) {
        if head.is_empty() || !self.parts.is_empty() {
            return;
        }
        let end = (head.len() as u64).min(self.size);
        self.parts.push_back(Part { start: 0, end, data: PartData::Ready(head), _permit: None });
        self.requested_end = end;
    }

    /// Starts fetching a file no larger than the first window, whole, so
    /// that its GET overlaps the reply to `open` and the first read request
    /// (a larger file waits for its first read, which may be anywhere).
    pub fn start(&mut self) {
        if self.parts.is_empty() && self.size > 0 && self.size <= self.window.size() {
            self.top_up(0, self.size);
        }
    }

    /// The current window (for tests and metrics).
    pub fn window(&self) -> Window {
        self.window
    }

    /// Reads up to `len` bytes at `offset`; fewer only at the end of the object.
    pub async fn read(&mut self, offset: u64, len: u64) -> Result<Bytes> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let in_window =
            self.parts.front().is_some_and(|first| first.start <= offset) && offset <= self.requested_end;
        if !in_window {
            self.parts.clear();
            self.window.reset();
            self.requested_end = offset;
            self.metrics.prefetch_window(self.window.size());
        } else if offset > self.last_offset {
            self.window.grow();
            self.metrics.prefetch_window(self.window.size());
        }
        self.last_offset = offset;
        // Keep one part behind the reader for slightly late readahead requests.
        while self.parts.len() > 1 && self.parts[1].end <= offset {
            self.parts.pop_front();
        }
        self.top_up(offset, end);
        let result = self.collect(offset, end).await;
        if result.is_err() {
            self.parts.clear();
            self.requested_end = 0;
        }
        result
    }

    fn top_up(&mut self, offset: u64, needed_end: u64) {
        let target = needed_end.max(offset.saturating_add(self.window.size()).min(self.size));
        while self.requested_end < target {
            let start = self.requested_end;
            // Bytes needed now come in one request; prefetch follows the window.
            let wanted = if start < needed_end {
                (needed_end - start).max(self.window.size())
            } else {
                self.window.size()
            };
            let len = wanted.min(self.config.part_size).min(self.size - start).max(1);
            let permits = u32::try_from(len.div_ceil(KIB)).unwrap_or(u32::MAX);
            let permit = self.budget.clone().try_acquire_many_owned(permits).ok();
            if permit.is_none() && start >= needed_end {
                break;
            }
            let store = self.store.clone();
            let key = self.key.clone();
            let task = tokio::spawn(async move { store.get_range(&key, start..start + len).await });
            self.parts.push_back(Part {
                start,
                end: start + len,
                data: PartData::Pending(task),
                _permit: permit,
            });
            self.requested_end = start + len;
        }
    }

    async fn collect(&mut self, offset: u64, end: u64) -> Result<Bytes> {
        let mut out: Option<BytesMut> = None;
        let mut single: Option<Bytes> = None;
        for part in &mut self.parts {
            if part.end <= offset {
                continue;
            }
            if part.start >= end {
                break;
            }
            let (part_start, part_end) = (part.start, part.end);
            let bytes = part.bytes().await?;
            let short = (bytes.len() as u64) < part_end - part_start;
            let from = usize::try_from(offset.max(part_start) - part_start).unwrap_or(usize::MAX);
            let to = usize::try_from(end.min(part_end) - part_start).unwrap_or(usize::MAX).min(bytes.len());
            let slice = bytes.slice(from.min(to)..to);
            match (&mut out, single.take()) {
                (None, None) => single = Some(slice),
                (None, Some(first)) => {
                    let mut buffer = BytesMut::with_capacity(usize::try_from(end - offset).unwrap_or(0));
                    buffer.extend_from_slice(&first);
                    buffer.extend_from_slice(&slice);
                    out = Some(buffer);
                }
                (Some(buffer), _) => buffer.extend_from_slice(&slice),
            }
            if short {
                // The object is shorter than expected: stop at what exists.
                break;
            }
        }
        Ok(out.map_or_else(|| single.unwrap_or_default(), BytesMut::freeze))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    #[test]
    fn the_window_doubles_to_its_maximum_and_resets() {
        let mut window = Window::new(256, 1000);
        window.grow();
        assert_eq!(window.size(), 512);
        window.grow();
        window.grow();
        assert_eq!(window.size(), 1000);
        window.reset();
        assert_eq!(window.size(), 256);
    }

    fn reader(store: &Arc<MemStore>, budget: u64) -> Reader<MemStore> {
        let config = PrefetchConfig {
            initial_window: 4 * KIB,
            max_window: 64 * KIB,
            part_size: 16 * KIB,
            memory_budget: budget,
        };
        Reader::new(store.clone(), "k".into(), 200 * KIB, config, config.budget(), Metrics::default())
    }

    fn body() -> Vec<u8> {
        (0..200 * KIB).map(|i| (i % 251) as u8).collect()
    }

    #[tokio::test]
    async fn sequential_reads_grow_the_window_and_return_the_right_bytes() {
        let store = Arc::new(MemStore::default());
        store.insert("k", body());
        let mut reader = reader(&store, 1024 * KIB);
        let mut got = Vec::new();
        let mut offset = 0;
        while offset < 200 * KIB {
            let chunk = reader.read(offset, 3 * KIB).await.unwrap();
            offset += chunk.len() as u64;
            got.extend_from_slice(&chunk);
        }
        assert_eq!(got, body());
        assert_eq!(reader.window().size(), 64 * KIB);
        assert!(store.gets() < 40, "{} GETs", store.gets());
    }

    #[tokio::test]
    async fn a_random_read_resets_the_window() {
        let store = Arc::new(MemStore::default());
        store.insert("k", body());
        let mut reader = reader(&store, 1024 * KIB);
        for i in 0..4 {
            reader.read(i * 4 * KIB, 4 * KIB).await.unwrap();
        }
        assert!(reader.window().size() > 4 * KIB);
        let chunk = reader.read(150 * KIB, 10).await.unwrap();
        assert_eq!(&chunk[..], &body()[150 * 1024..150 * 1024 + 10]);
        assert_eq!(reader.window().size(), 4 * KIB);
        // Slightly out-of-order reads inside the window do not reset it.
        reader.read(150 * KIB + 10, 100).await.unwrap();
        reader.read(150 * KIB + 5, 5).await.unwrap();
        assert!(reader.window().size() > 4 * KIB);
    }

    #[tokio::test]
    async fn an_exhausted_budget_still_serves_reads() {
        let store = Arc::new(MemStore::default());
        store.insert("k", body());
        let mut reader = reader(&store, KIB);
        let chunk = reader.read(0, 100 * KIB).await.unwrap();
        assert_eq!(&chunk[..], &body()[..100 * 1024]);
        let tail = reader.read(199 * KIB, 4 * KIB).await.unwrap();
        assert_eq!(tail.len(), 1024, "short read at the end of the object");
    }
}
