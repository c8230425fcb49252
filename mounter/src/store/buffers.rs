//! Reused buffers for large GET bodies.
//!
//! A sequential read allocates one body buffer per prefetch part (up to
//! 8 MiB) and frees it once the reader has moved past. With glibc's
//! allocator, the first free of such a block raises the threshold under
//! which blocks come from the heap instead of `mmap`, and freed heap blocks
//! of that size mostly stay resident across the per-thread arenas: about
//! 50 MiB above the prefetch budget on a 1 GiB read. Handing finished
//! buffers back here, and taking them again for the next part, keeps the
//! resident memory at what is in use plus at most `retain` bytes, and
//! skips the page faults of fresh memory. When no buffer is in use the
//! kept ones are released, so an idle mount holds none.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

/// Smaller buffers are not kept (the allocator serves them well).
pub const MIN_POOLED: usize = 1024 * 1024;

#[derive(Debug, Default)]
struct Free {
    buffers: Vec<Vec<u8>>,
    bytes: usize,
    in_use: usize,
}

/// A bounded pool of large byte buffers.
#[derive(Debug)]
pub struct BufferPool {
    retain: usize,
    free: Mutex<Free>,
}

/// A buffer taken from a [`BufferPool`]; it goes back when dropped, or
/// when the last [`Bytes`] made of it by [`Pooled::freeze`] drops.
#[derive(Debug)]
pub struct Pooled {
    buffer: Vec<u8>,
    pool: Arc<BufferPool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buffer
    }
}

impl Pooled {
    /// Appends `bytes` (within the capacity asked, no reallocation).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The bytes written.
    pub fn len(&self) -> usize {
        self.buffer.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buffer.is_empty()
    }

    /// The contents as [`Bytes`], without a copy.
    pub fn freeze(self) -> Bytes {
        Bytes::from_owner(self)
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.buffer));
    }
}

impl BufferPool {
    /// A pool keeping at most `retain` bytes of free buffers.
    pub fn new(retain: usize) -> Arc<Self> {
        Arc::new(Self { retain, free: Mutex::new(Free::default()) })
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// An empty buffer of at least `capacity` bytes (and at most twice
    /// that), reused if one is free.
    pub fn take(self: &Arc<Self>, capacity: usize) -> Pooled {
        let mut free = self.free();
        free.in_use += 1;
        let fits = free.buffers.iter().position(|b| b.capacity() >= capacity && b.capacity() / 2 <= capacity);
        let buffer = if let Some(index) = fits {
            let buffer = free.buffers.swap_remove(index);
            free.bytes -= buffer.capacity();
            buffer
        } else {
            drop(free);
            Vec::with_capacity(capacity)
        };
        Pooled { buffer, pool: self.clone() }
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        buffer.clear();
        let mut free = self.free();
        free.in_use = free.in_use.saturating_sub(1);
        if free.in_use == 0 {
            // Idle: keep nothing.
            free.buffers.clear();
            free.bytes = 0;
            return;
        }
        if buffer.capacity() >= MIN_POOLED && free.bytes + buffer.capacity() <= self.retain {
            free.bytes += buffer.capacity();
            free.buffers.push(buffer);
        }
    }

    /// Free bytes kept (for tests).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.free().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_while_others_are_in_use_and_released_when_idle() {
        const MIB: usize = MIN_POOLED;
        let pool = BufferPool::new(100 * MIB);
        let mut first = pool.take(40 * MIB);
        first.extend_from_slice(b"first");
        let first_ptr = first.as_ref().as_ptr();
        let first = first.freeze();
        let second = pool.take(40 * MIB);
        assert_eq!(&first[..], b"first");
        let slice = first.slice(1..3);
        drop(first);
        assert_eq!(pool.kept(), 0, "a slice still holds it");
        drop(slice);
        assert_eq!(pool.kept(), 40 * MIB, "kept while another buffer is in use");
        let reused = pool.take(30 * MIB);
        assert!(reused.is_empty());
        assert_eq!(reused.as_ref().as_ptr(), first_ptr, "the same memory");
        assert!(
            pool.take(10 * MIB).buffer.capacity() < 40 * MIB,
            "not a buffer more than twice the size asked"
        );
        drop((reused, second));
        assert_eq!(pool.kept(), 0, "nothing kept once idle");
    }
}
