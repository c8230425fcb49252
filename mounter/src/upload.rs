//! Streaming uploads of new (or truncated) files.
//!
//! Writes must be sequential. Bytes collect in a buffer; each full part is
//! sent at once as an UploadPart, up to `max_parallel_parts` in flight per
//! file, so memory per writer stays at about
//! `(max_parallel_parts + 1) × part_size`. [`Upload::commit`] (on flush,
//! fsync or release) sends the last part and completes the multipart upload;
//! a file that never filled one part is sent with a single PutObject. A
//! failed upload is aborted so no parts are left behind.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::store::buffers::{BufferPool, Pooled};
use crate::store::{ObjectStore, Result, StoreError};

/// S3's part-count limit.
const MAX_PARTS: u16 = 10_000;

/// Upload tuning.
#[derive(Debug, Clone, Copy)]
pub struct UploadConfig {
    /// Bytes per part (S3 requires ≥ 5 MiB except for the last one).
    pub part_size: usize,
    /// Parts in flight per file.
    pub max_parallel_parts: usize,
}

impl Default for UploadConfig {
    fn default() -> Self {
        Self { part_size: 8 * 1024 * 1024, max_parallel_parts: 4 }
    }
}

/// Why a write was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The write is not at the end of what was written.
    #[error("only sequential writes are supported (write at {offset}, file has {written} bytes)")]
    NotSequential {
        /// Where the write was.
        offset: u64,
        /// How many bytes were written so far.
        written: u64,
    },
    /// The file was already committed (closed or synced).
    #[error("the file was already uploaded; reopen it with O_TRUNC to rewrite it")]
    Committed,
    /// The file would need more than 10 000 parts.
    #[error("the file is too large for a multipart upload with this part size")]
    TooLarge,
    /// The object store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

struct Multipart {
    id: String,
    parts: Vec<JoinHandle<Result<String>>>,
}

/// One file being written.
pub struct Upload<S> {
    store: Arc<S>,
    key: String,
    config: UploadConfig,
    /// The part being filled.
    buffer: Option<Pooled>,
    /// Buffers of parts sent, for the next parts.
    buffers: Arc<BufferPool>,
    written: u64,
    multipart: Option<Multipart>,
    in_flight: Arc<Semaphore>,
    committed: bool,
}

impl<S> std::fmt::Debug for Upload<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("written", &self.written)
            .field("committed", &self.committed)
            .finish_non_exhaustive()
    }
}

impl<S: ObjectStore> Upload<S> {
    /// An empty upload to `key`.
    pub fn new(store: Arc<S>, key: String, config: UploadConfig) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.max_parallel_parts.max(1)));
        Self {
            store,
            key,
            config,
            buffer: None,
            buffers: BufferPool::new(config.part_size.saturating_mul(config.max_parallel_parts + 1)),
            written: 0,
            multipart: None,
            in_flight,
            committed: false,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether the upload was committed.
    pub fn is_committed(&self) -> bool {
        self.committed
    }

    /// Appends `data`, which must start at `offset == written()`.
    pub async fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), UploadError> {
        if self.committed {
            return Err(UploadError::Committed);
        }
        if offset != self.written {
            return Err(UploadError::NotSequential { offset, written: self.written });
        }
        self.written += data.len() as u64;
        // Once the file is known to be large, each part fills a buffer of its
        // exact size, the buffer of a part already sent when there is one: a
        // growing buffer would reallocate and copy its contents several times
        // per part, and freed part buffers stay resident with glibc (see
        // `store::buffers`). The first part starts at the write's size and
        // grows, as a small file fits.
        let part_size = self.config.part_size;
        let mut data = data;
        while !data.is_empty() {
            let first_part = self.multipart.is_none();
            let buffer = self.buffer.get_or_insert_with(|| {
                self.buffers.take(if first_part { data.len().min(part_size) } else { part_size })
            });
            let take = data.len().min(part_size - buffer.len());
            buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if buffer.len() == part_size
                && let Some(part) = self.buffer.take()
            {
                self.send_part(part.freeze()).await?;
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, body: Bytes) -> Result<(), UploadError> {
        if self.multipart.is_none() {
            let id = self.store.create_multipart(&self.key).await?;
            self.multipart = Some(Multipart { id, parts: Vec::new() });
        }
        let multipart = self.multipart.as_mut().expect("created above");
        let number = u16::try_from(multipart.parts.len() + 1).map_err(|_| UploadError::TooLarge)?;
        if number > MAX_PARTS {
            return Err(UploadError::TooLarge);
        }
        let permit = self.in_flight.clone().acquire_owned().await.expect("the semaphore is never closed");
        let (store, key, id) = (self.store.clone(), self.key.clone(), multipart.id.clone());
        multipart.parts.push(tokio::spawn(async move {
            let etag = store.upload_part(&key, &id, number, body).await;
            drop(permit);
            etag
        }));
        Ok(())
    }

    /// Makes the written bytes the object's content. Idempotent.
    pub async fn commit(&mut self) -> Result<(), UploadError> {
        if self.committed {
            return Ok(());
        }
        let result = self.finish().await;
        if result.is_err()
            && let Some(multipart) = self.multipart.take()
            && let Err(error) = self.store.abort_multipart(&self.key, &multipart.id).await
        {
            tracing::warn!(%error, "could not abort the failed multipart upload");
        }
        // Committed either way: a failed upload cannot be resumed.
        self.committed = true;
        result
    }

    async fn finish(&mut self) -> Result<(), UploadError> {
        let rest = self.buffer.take().map(Pooled::freeze).unwrap_or_default();
        if self.multipart.is_none() {
            return Ok(self.store.put(&self.key, rest).await?);
        }
        if !rest.is_empty() {
            self.send_part(rest).await?;
        }
        let multipart = self.multipart.as_mut().expect("checked above");
        let mut etags = Vec::with_capacity(multipart.parts.len());
        for part in multipart.parts.drain(..) {
            let etag = part.await.unwrap_or_else(|error| {
                Err(StoreError::Malformed {
                    operation: "UploadPart",
                    detail: format!("upload task failed: {error}"),
                })
            })?;
            etags.push(etag);
        }
        let id = multipart.id.clone();
        self.store.complete_multipart(&self.key, &id, etags).await?;
        self.multipart = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    #[tokio::test]
    async fn small_files_are_one_put_and_large_ones_multipart() {
        let store = Arc::new(MemStore::default());
        let config = UploadConfig { part_size: 10, max_parallel_parts: 2 };
        let mut small = Upload::new(store.clone(), "small".into(), config);
        small.write(0, b"hello").await.unwrap();
        small.commit().await.unwrap();
        assert_eq!(store.object("small").unwrap(), "hello");

        let mut large = Upload::new(store.clone(), "large".into(), config);
        let body: Vec<u8> = (0..=255).collect();
        for (i, chunk) in body.chunks(7).enumerate() {
            large.write(i as u64 * 7, chunk).await.unwrap();
        }
        large.commit().await.unwrap();
        assert_eq!(store.object("large").unwrap(), body);
        assert!(matches!(large.write(256, b"x").await, Err(UploadError::Committed)));
    }

    #[tokio::test]
    async fn non_sequential_writes_are_refused() {
        let store = Arc::new(MemStore::default());
        let mut upload = Upload::new(store, "k".into(), UploadConfig::default());
        upload.write(0, b"abc").await.unwrap();
        let error = upload.write(10, b"x").await.unwrap_err();
        assert!(matches!(error, UploadError::NotSequential { offset: 10, written: 3 }));
    }
}
