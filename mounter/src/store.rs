//! The object store the filesystem is built on.
//!
//! [`ObjectStore`] is the narrow set of S3 operations the filesystem needs.
//! [`s3::S3Store`] speaks to any S3-compatible endpoint; [`mem::MemStore`]
//! keeps objects in memory for unit tests of the filesystem core.

pub mod buffers;
pub mod mem;
pub mod s3;

use std::future::Future;
use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;

use crate::credentials::CredentialsError;

/// What an object store operation can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key (or upload) does not exist.
    #[error("no such key")]
    NotFound,
    /// The bucket does not exist.
    #[error("the bucket does not exist")]
    NoSuchBucket,
    /// The credentials were refused (after one reload and retry).
    #[error("access denied (HTTP {status} {code}); check the credentials and their permissions")]
    AccessDenied {
        /// The HTTP status (401 or 403).
        status: u16,
        /// The S3 error code, if any.
        code: String,
    },
    /// Any other error answer from the service.
    #[error("the object store answered HTTP {status} {code}")]
    Service {
        /// The HTTP status.
        status: u16,
        /// The S3 error code, if any.
        code: String,
    },
    /// The request did not complete (connection, timeout).
    #[error("request to the object store failed")]
    Transport(#[source] reqwest::Error),
    /// A response body could not be parsed.
    #[error("malformed {operation} response from the object store: {detail}")]
    Malformed {
        /// The operation.
        operation: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The credentials could not be obtained.
    #[error("no usable credentials")]
    Credentials(#[from] CredentialsError),
}

/// Result alias of the store layer.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Metadata of one object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub modified: SystemTime,
    /// The entity tag, used to detect changes while reading.
    pub etag: String,
}

/// The first bytes of an object and its metadata, from one GetObject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    /// The whole object's metadata.
    pub meta: ObjectMeta,
    /// Its first `min(size, asked)` bytes.
    pub bytes: Bytes,
}

/// One page of a delimited listing.
#[derive(Debug, Clone, Default)]
pub struct ListPage {
    /// Objects directly under the prefix: (full key, metadata).
    pub objects: Vec<(String, ObjectMeta)>,
    /// Common prefixes (sub-"directories"), full, ending in `/`.
    pub prefixes: Vec<String>,
    /// Token for the next page, if any.
    pub next: Option<String>,
}

/// The S3 operations the filesystem uses.
pub trait ObjectStore: Send + Sync + 'static {
    /// HeadObject; `Ok(None)` if absent.
    fn head(&self, key: &str) -> impl Future<Output = Result<Option<ObjectMeta>>> + Send;
    /// GetObject of the first `len` bytes, with the object's metadata:
    /// what HeadObject answers plus the start of the body, in one request.
    /// `Ok(None)` if absent.
    fn get_head(&self, key: &str, len: u64) -> impl Future<Output = Result<Option<ObjectHead>>> + Send;
    /// A ranged GetObject.
    fn get_range(&self, key: &str, range: Range<u64>) -> impl Future<Output = Result<Bytes>> + Send;
    /// ListObjectsV2 with delimiter `/`, one page.
    fn list(
        &self,
        prefix: &str,
        max_keys: usize,
        continuation: Option<String>,
    ) -> impl Future<Output = Result<ListPage>> + Send;
    /// PutObject.
    fn put(&self, key: &str, body: Bytes) -> impl Future<Output = Result<()>> + Send;
    /// DeleteObject (absent keys are not an error).
    fn delete(&self, key: &str) -> impl Future<Output = Result<()>> + Send;
    /// Server-side CopyObject.
    fn copy(&self, from: &str, to: &str) -> impl Future<Output = Result<()>> + Send;
    /// CreateMultipartUpload; returns the upload id.
    fn create_multipart(&self, key: &str) -> impl Future<Output = Result<String>> + Send;
    /// UploadPart; returns the part's ETag.
    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u16,
        body: Bytes,
    ) -> impl Future<Output = Result<String>> + Send;
    /// CompleteMultipartUpload with the parts' ETags in order.
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        etags: Vec<String>,
    ) -> impl Future<Output = Result<()>> + Send;
    /// AbortMultipartUpload.
    fn abort_multipart(&self, key: &str, upload_id: &str) -> impl Future<Output = Result<()>> + Send;
}
