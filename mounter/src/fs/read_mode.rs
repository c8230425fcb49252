//! Which files the kernel's page cache serves.
//!
//! A file read directly (`FOPEN_DIRECT_IO`) reaches the mounter at the
//! caller's `read(2)` size and is copied once, into the caller's buffer:
//! the faster path for large reads, about even at 64 KiB. Through the page
//! cache the kernel's readahead turns small reads into large requests, at
//! the cost of a second copy: much faster for small reads. On the benchmark
//! machine (docs/performance.md) a 1 GiB object read in 1 MiB pieces comes
//! at 98 % of the raw S3 ceiling directly against 69 % cached, and in 4 KiB
//! pieces at about 150 MiB/s directly against 1.2 GiB/s cached. So a file
//! opened for reading is read directly unless
//! - the mount asks for the page cache (`--page-cache`), or the kernel
//!   could not map direct files shared (before Linux 6.6);
//! - it is no larger than the first prefetch window: it is fetched whole at
//!   open, and direct I/O would only add a round trip per small read; or
//! - the process opening it was recently seen reading a direct file in
//!   small pieces: its next files get the page cache. A program's read size
//!   rarely changes from one file to the next; the first file it reads this
//!   way is the price of learning it. A caller FUSE reports as pid 0 (a
//!   process outside the mounter's pid namespace) is never judged: that
//!   would judge every such process at once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Reads observed on a direct handle before judging its reader.
pub(crate) const SAMPLE_READS: u32 = 256;
/// A reader whose sampled reads average less than this is a small reader.
const SMALL_READ: u64 = 32 * 1024;
/// The pid FUSE reports for a caller it cannot name.
const UNKNOWN_PID: u32 = 0;
/// How long a process stays known as a small reader.
const REMEMBERED: Duration = Duration::from_secs(600);
/// The most processes remembered at once.
const CAPACITY: usize = 1024;

/// The read sizes seen on one direct handle.
#[derive(Debug, Default)]
pub struct ReadStats {
    reads: AtomicU32,
    bytes: AtomicU64,
}

/// The mount's choice of read path, and what it learned of its readers.
#[derive(Debug)]
pub struct ReadModes {
    page_cache: AtomicBool,
    small_readers: Mutex<HashMap<u32, Instant>>,
}

impl ReadModes {
    /// The choice for a mount; `page_cache` sends every read through it.
    pub fn new(page_cache: bool) -> Self {
        Self { page_cache: AtomicBool::new(page_cache), small_readers: Mutex::new(HashMap::new()) }
    }

    /// Sends every read through the page cache from now on.
    pub fn page_cache_only(&self) {
        self.page_cache.store(true, Ordering::Relaxed);
    }

    /// Whether a file of `size` bytes opened for reading by process `pid`
    /// is read directly; files of at most `whole_at_open` bytes are not.
    pub fn direct(&self, pid: u32, size: u64, whole_at_open: u64) -> bool {
        if self.page_cache.load(Ordering::Relaxed) || size <= whole_at_open {
            return false;
        }
        if pid == UNKNOWN_PID {
            return true;
        }
        let mut readers = self.readers();
        match readers.get(&pid) {
            Some(seen) if seen.elapsed() < REMEMBERED => false,
            Some(_) => {
                readers.remove(&pid);
                true
            }
            None => true,
        }
    }

    /// Records a read of `len` bytes on a direct handle opened by `pid`.
    /// The [`SAMPLE_READS`]th read judges the handle's reads so far.
    pub fn observe(&self, stats: &ReadStats, pid: u32, len: u64) {
        // Once the handle is judged, its reads cost no more bookkeeping.
        if pid == UNKNOWN_PID || stats.reads.load(Ordering::Relaxed) >= SAMPLE_READS {
            return;
        }
        let bytes = stats.bytes.fetch_add(len, Ordering::Relaxed) + len;
        if stats.reads.fetch_add(1, Ordering::Relaxed) + 1 != SAMPLE_READS {
            return;
        }
        let average = bytes / u64::from(SAMPLE_READS);
        if average < SMALL_READ {
            tracing::debug!(pid, average, "small reads: page cache from now on");
            let mut readers = self.readers();
            if readers.len() >= CAPACITY {
                readers.retain(|_, seen| seen.elapsed() < REMEMBERED);
            }
            if readers.len() < CAPACITY {
                readers.insert(pid, Instant::now());
            }
        }
    }

    fn readers(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Instant>> {
        self.small_readers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 1 << 30;
    const WHOLE: u64 = 256 * 1024;

    #[test]
    fn large_files_are_read_directly_unless_the_mount_asks_for_the_page_cache() {
        let modes = ReadModes::new(false);
        assert!(modes.direct(1, BIG, WHOLE));
        assert!(!modes.direct(1, WHOLE, WHOLE), "a file fetched whole at open");
        assert!(!ReadModes::new(true).direct(1, BIG, WHOLE));
        modes.page_cache_only();
        assert!(!modes.direct(1, BIG, WHOLE), "no shared mmap of direct files on this kernel");
    }

    #[test]
    fn callers_fuse_cannot_name_are_never_judged() {
        let modes = ReadModes::new(false);
        let stats = ReadStats::default();
        for _ in 0..SAMPLE_READS {
            modes.observe(&stats, UNKNOWN_PID, 4096);
        }
        assert!(modes.direct(UNKNOWN_PID, BIG, WHOLE));
        assert!(modes.readers().is_empty());
    }

    #[test]
    fn a_process_seen_reading_in_small_pieces_gets_the_page_cache_next() {
        let modes = ReadModes::new(false);
        let (small, large) = (ReadStats::default(), ReadStats::default());
        for _ in 0..SAMPLE_READS - 1 {
            modes.observe(&small, 7, 4096);
            modes.observe(&large, 8, 1 << 20);
        }
        assert!(modes.direct(7, BIG, WHOLE), "judged only after the sample");
        modes.observe(&small, 7, 4096);
        modes.observe(&large, 8, 1 << 20);
        assert!(!modes.direct(7, BIG, WHOLE), "a small reader");
        assert!(modes.direct(8, BIG, WHOLE), "a large reader stays direct");
        assert!(modes.direct(9, BIG, WHOLE), "other processes are not affected");
        // Later reads of the same handle judge nothing again.
        let stats = ReadStats::default();
        for _ in 0..SAMPLE_READS {
            modes.observe(&stats, 8, 1 << 20);
        }
        for _ in 0..4 * SAMPLE_READS {
            modes.observe(&stats, 8, 1);
        }
        assert!(modes.direct(8, BIG, WHOLE));
    }

    #[test]
    fn the_reader_memory_is_bounded() {
        let modes = ReadModes::new(false);
        for pid in 1..=u32::try_from(CAPACITY).unwrap() + 10 {
            let stats = ReadStats::default();
            for _ in 0..SAMPLE_READS {
                modes.observe(&stats, pid, 1);
            }
        }
        assert_eq!(modes.readers().len(), CAPACITY);
        assert!(!modes.direct(1, BIG, WHOLE));
        assert!(modes.direct(u32::try_from(CAPACITY).unwrap() + 5, BIG, WHOLE), "not remembered when full");
    }
}
