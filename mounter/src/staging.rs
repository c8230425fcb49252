//! Local staging of files opened for in-place changes.
//!
//! Random writes, appends and `O_RDWR` cannot be streamed to S3, which only
//! replaces whole objects. Such a file is downloaded into an anonymous local
//! file (in `$TMPDIR`, deleted when closed), changed there, and uploaded as a
//! whole on flush, fsync or close. Files larger than the configured maximum
//! are refused with `EFBIG` rather than filling the disk.
//!
//! The local file is accessed with plain positioned reads and writes: they
//! hit the page cache of a local disk and are short, so they run inline on
//! the runtime rather than through `spawn_blocking`.

use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;

use bytes::Bytes;

use crate::store::{ObjectStore, StoreError};
use crate::upload::{Upload, UploadConfig, UploadError};

/// Bytes per GET while downloading, and per write while uploading.
const CHUNK: u64 = 8 * 1024 * 1024;

/// What can go wrong with a staged file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StagingError {
    /// The file would exceed the staging limit.
    #[error("the file would exceed the local staging limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The local file failed.
    #[error("local staging file I/O failed")]
    Io(#[from] std::io::Error),
    /// Downloading failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Uploading failed.
    #[error(transparent)]
    Upload(#[from] UploadError),
}

/// A file held locally while it is changed.
pub struct Staged<S> {
    store: Arc<S>,
    key: String,
    file: File,
    len: u64,
    limit: u64,
    dirty: bool,
    upload: UploadConfig,
}

impl<S> std::fmt::Debug for Staged<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staged").field("len", &self.len).field("dirty", &self.dirty).finish_non_exhaustive()
    }
}

impl<S: ObjectStore> Staged<S> {
    /// Stages `key` (of `size` bytes), empty if `truncate`.
    pub async fn open(
        store: Arc<S>,
        key: String,
        size: u64,
        truncate: bool,
        limit: u64,
        upload: UploadConfig,
    ) -> Result<Self, StagingError> {
        let len = if truncate { 0 } else { size };
        if len > limit {
            return Err(StagingError::TooLarge { limit });
        }
        let file = tempfile::tempfile()?;
        let mut offset = 0;
        while offset < len {
            let end = (offset + CHUNK).min(len);
            let bytes = store.get_range(&key, offset..end).await?;
            file.write_all_at(&bytes, offset)?;
            offset = end;
        }
        Ok(Self { store, key, file, len, limit, dirty: truncate && size > 0, upload })
    }

    /// The current length.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Reads up to `size` bytes at `offset`.
    pub fn read(&self, offset: u64, size: u32) -> Result<Bytes, StagingError> {
        let end = offset.saturating_add(u64::from(size)).min(self.len);
        let mut buffer = vec![0; usize::try_from(end.saturating_sub(offset)).unwrap_or(0)];
        self.file.read_exact_at(&mut buffer, offset)?;
        Ok(Bytes::from(buffer))
    }

    /// Writes `data` at `offset`, growing the file if needed.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<(), StagingError> {
        let end = offset.saturating_add(data.len() as u64);
        if end > self.limit {
            return Err(StagingError::TooLarge { limit: self.limit });
        }
        self.file.write_all_at(data, offset)?;
        self.len = self.len.max(end);
        self.dirty = true;
        Ok(())
    }

    /// Truncates or extends (with zeros) to `len`.
    pub fn set_len(&mut self, len: u64) -> Result<(), StagingError> {
        if len > self.limit {
            return Err(StagingError::TooLarge { limit: self.limit });
        }
        self.file.set_len(len)?;
        self.len = len;
        self.dirty = true;
        Ok(())
    }

    /// Uploads the whole file if it changed since the last commit.
    pub async fn commit(&mut self) -> Result<(), StagingError> {
        if !self.dirty {
            return Ok(());
        }
        let mut upload = Upload::new(self.store.clone(), self.key.clone(), self.upload);
        let mut offset = 0;
        while offset < self.len {
            let chunk = self.read(offset, u32::try_from(CHUNK).unwrap_or(u32::MAX))?;
            upload.write(offset, &chunk).await?;
            offset += chunk.len() as u64;
        }
        upload.commit().await?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::mem::MemStore;

    #[tokio::test]
    async fn changes_in_place_are_uploaded_whole() {
        let store = Arc::new(MemStore::default());
        store.insert("k", "hello world");
        let config = UploadConfig { part_size: 4, max_parallel_parts: 2 };
        let mut staged = Staged::open(store.clone(), "k".into(), 11, false, 100, config).await.unwrap();
        staged.write(0, b"J").unwrap();
        staged.write(11, b"!!").unwrap();
        assert_eq!(&staged.read(0, 100).unwrap()[..], b"Jello world!!");
        assert_eq!(store.object("k").unwrap(), "hello world", "nothing uploaded before commit");
        staged.commit().await.unwrap();
        assert_eq!(store.object("k").unwrap(), "Jello world!!");
        staged.set_len(5).unwrap();
        staged.commit().await.unwrap();
        assert_eq!(store.object("k").unwrap(), "Jello");
    }

    #[tokio::test]
    async fn the_limit_is_enforced() {
        let store = Arc::new(MemStore::default());
        store.insert("big", vec![0; 50]);
        let config = UploadConfig::default();
        let error = Staged::open(store.clone(), "big".into(), 50, false, 10, config).await.unwrap_err();
        assert!(matches!(error, StagingError::TooLarge { limit: 10 }));
        let mut staged = Staged::open(store, "big".into(), 50, true, 10, config).await.unwrap();
        assert!(staged.is_empty());
        assert!(matches!(staged.write(8, b"xyz"), Err(StagingError::TooLarge { .. })));
    }
}
