//! An in-memory [`ObjectStore`] for unit tests of the filesystem core.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use super::{ListPage, ObjectHead, ObjectMeta, ObjectStore, Result, StoreError};

/// Objects in a map, with multipart uploads assembled in memory.
#[derive(Debug, Default)]
pub struct MemStore {
    objects: Mutex<BTreeMap<String, (Bytes, ObjectMeta)>>,
    uploads: Mutex<HashMap<String, BTreeMap<u16, Bytes>>>,
    next_id: AtomicU64,
    gets: AtomicU64,
    heads: AtomicU64,
    lists: AtomicU64,
}

impl MemStore {
    /// The body of `key`, if present.
    pub fn object(&self, key: &str) -> Option<Bytes> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).get(key).map(|(body, _)| body.clone())
    }

    /// All keys, sorted.
    pub fn keys(&self) -> Vec<String> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    /// How many GETs (ranged or of the head) were served.
    pub fn gets(&self) -> u64 {
        self.gets.load(Ordering::Relaxed)
    }

    /// How many HeadObject requests were served.
    pub fn heads(&self) -> u64 {
        self.heads.load(Ordering::Relaxed)
    }

    /// How many listing pages were served.
    pub fn lists(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// Stores `body` at `key`.
    pub fn insert(&self, key: &str, body: impl Into<Bytes>) {
        let body = body.into();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let meta =
            ObjectMeta { size: body.len() as u64, modified: SystemTime::now(), etag: format!("\"{id}\"") };
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).insert(key.to_owned(), (body, meta));
    }
}

impl ObjectStore for MemStore {
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        self.heads.fetch_add(1, Ordering::Relaxed);
        Ok(self.objects.lock().unwrap_or_else(PoisonError::into_inner).get(key).map(|(_, meta)| meta.clone()))
    }

    async fn get_head(&self, key: &str, len: u64) -> Result<Option<ObjectHead>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(objects.get(key).map(|(body, meta)| {
            let end = usize::try_from(len).unwrap_or(usize::MAX).min(body.len());
            ObjectHead { meta: meta.clone(), bytes: body.slice(..end) }
        }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let body = self.object(key).ok_or(StoreError::NotFound)?;
        let len = body.len() as u64;
        let (start, end) = (range.start.min(len), range.end.min(len));
        Ok(body
            .slice(usize::try_from(start).unwrap_or(usize::MAX)..usize::try_from(end).unwrap_or(usize::MAX)))
    }

    async fn list(&self, prefix: &str, max_keys: usize, continuation: Option<String>) -> Result<ListPage> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        let objects = self.objects.lock().unwrap_or_else(PoisonError::into_inner);
        let start = continuation.unwrap_or_default();
        // (name, metadata): a common prefix has no metadata.
        let mut entries: Vec<(String, Option<ObjectMeta>)> = Vec::new();
        for (key, (_, meta)) in objects.range(prefix.to_owned()..) {
            let Some(rest) = key.strip_prefix(prefix) else { break };
            let entry = match rest.find('/') {
                Some(slash) => (format!("{prefix}{}", &rest[..=slash]), None),
                None => (key.clone(), Some(meta.clone())),
            };
            if entry.0 <= start || entries.last().is_some_and(|last| last.0 == entry.0) {
                continue;
            }
            entries.push(entry);
            if entries.len() > max_keys {
                break;
            }
        }
        let mut page = ListPage::default();
        if entries.len() > max_keys {
            entries.truncate(max_keys);
            page.next = entries.last().map(|(name, _)| name.clone());
        }
        for (name, meta) in entries {
            match meta {
                Some(meta) => page.objects.push((name, meta)),
                None => page.prefixes.push(name),
            }
        }
        Ok(page)
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.insert(key, body);
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner).remove(key);
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let body = self.object(from).ok_or(StoreError::NotFound)?;
        self.insert(to, body);
        Ok(())
    }

    async fn create_multipart(&self, _key: &str) -> Result<String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), BTreeMap::new());
        Ok(id)
    }

    async fn upload_part(
        &self,
        _key: &str,
        upload_id: &str,
        part_number: u16,
        body: Bytes,
    ) -> Result<String> {
        let mut uploads = self.uploads.lock().unwrap_or_else(PoisonError::into_inner);
        uploads.get_mut(upload_id).ok_or(StoreError::NotFound)?.insert(part_number, body);
        Ok(format!("\"part{part_number}\""))
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, etags: Vec<String>) -> Result<()> {
        let parts = self.uploads.lock().unwrap_or_else(PoisonError::into_inner).remove(upload_id);
        let parts = parts.ok_or(StoreError::NotFound)?;
        if parts.len() != etags.len() {
            return Err(StoreError::Service { status: 400, code: "InvalidPart".into() });
        }
        let mut body = BytesMut::new();
        for part in parts.values() {
            body.extend_from_slice(part);
        }
        self.insert(key, body.freeze());
        Ok(())
    }

    async fn abort_multipart(&self, _key: &str, upload_id: &str) -> Result<()> {
        self.uploads.lock().unwrap_or_else(PoisonError::into_inner).remove(upload_id);
        Ok(())
    }
}
