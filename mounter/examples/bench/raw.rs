//! The raw ceiling of the S3 server: each workload done straight over
//! HTTP, without FUSE, with the mounter's own S3 client (`S3Store`) so the
//! HTTP stack is the same as the mounter's.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use mounter::credentials::{CredentialStore, Source};
use mounter::metrics::Metrics;
use mounter::store::ObjectStore as _;
use mounter::store::s3::{S3Config, S3Store};
use rusty_s3::{Bucket, S3Action as _, UrlStyle};
use test_platform::s3::{AccessKey, REGION};
use url::Url;

/// Size of a ranged GET or an uploaded part.
pub const PART: u64 = 8 * 1024 * 1024;
/// Requests in flight for parallel GETs and multipart uploads.
pub const PARALLEL: usize = 16;
/// Keys per ListObjectsV2 page (the S3 maximum).
const PAGE: usize = 1000;

/// A client of the benchmark bucket.
#[derive(Debug)]
pub struct Raw {
    store: Arc<S3Store>,
    bucket: Bucket,
    key: AccessKey,
    http: reqwest::Client,
}

impl Raw {
    /// A client of `bucket`, with the credentials in `credentials_dir`.
    pub async fn new(
        endpoint: &Url,
        bucket: &str,
        key: &AccessKey,
        credentials_dir: &Path,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::default();
        let credentials =
            CredentialStore::load(Source::Dir(credentials_dir.to_owned()), metrics.clone()).await?;
        let config = S3Config {
            endpoint: endpoint.clone(),
            bucket: bucket.to_owned(),
            region: REGION.to_owned(),
            iam_endpoint: Url::parse("http://127.0.0.1:1")?,
        };
        Ok(Self {
            store: Arc::new(S3Store::new(&config, credentials, metrics)?),
            bucket: Bucket::new(endpoint.clone(), UrlStyle::Path, bucket.to_owned(), REGION)?,
            key: key.clone(),
            http: reqwest::Client::new(),
        })
    }

    /// Reads `size` bytes of `key` with `PARALLEL` ranged GETs of `PART` in flight.
    pub async fn parallel_get(&self, key: &str, size: u64) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let total: usize = futures::stream::iter((0..size.div_ceil(PART)).map(|i| {
            let range = i * PART..((i + 1) * PART).min(size);
            async move { self.store.get_range(key, range).await.map(|body| body.len()) }
        }))
        .buffer_unordered(PARALLEL)
        .try_fold(0, |sum, n| async move { Ok(sum + n) })
        .await?;
        anyhow::ensure!(total as u64 == size, "raw read {total} of {size} bytes");
        Ok(started.elapsed())
    }

    /// Uploads `size` bytes to `key` as a multipart upload of `PART`-sized
    /// parts, `PARALLEL` in flight.
    pub async fn multipart_put(&self, key: &str, size: u64) -> anyhow::Result<Duration> {
        let chunk = Bytes::from(vec![0x5a; usize::try_from(PART)?]);
        let started = Instant::now();
        let upload = self.store.create_multipart(key).await?;
        let mut etags: Vec<(u16, String)> = futures::stream::iter((0..size.div_ceil(PART)).map(|i| {
            let body = chunk.slice(..usize::try_from(PART.min(size - i * PART)).unwrap_or_default());
            let (store, upload) = (&self.store, &upload);
            async move {
                let number = u16::try_from(i + 1)?;
                anyhow::Ok((number, store.upload_part(key, upload, number, body).await?))
            }
        }))
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await?;
        etags.sort_unstable();
        self.store
            .complete_multipart(key, &upload, etags.into_iter().map(|(_, etag)| etag).collect())
            .await?;
        Ok(started.elapsed())
    }

    /// Lists every key under `prefix`, page after page; returns the time and
    /// the number of objects.
    pub async fn list(&self, prefix: &str) -> anyhow::Result<(Duration, usize)> {
        let started = Instant::now();
        let (mut count, mut next) = (0, None);
        loop {
            let page = self.store.list(prefix, PAGE, next).await?;
            count += page.objects.len();
            next = page.next;
            if next.is_none() {
                return Ok((started.elapsed(), count));
            }
        }
    }

    /// GETs each of `keys` in turn, checking each is `size` bytes.
    pub async fn get_each(&self, keys: &[String], size: u64) -> anyhow::Result<Duration> {
        let started = Instant::now();
        for key in keys {
            let body = self.store.get_range(key, 0..size).await?;
            anyhow::ensure!(body.len() as u64 == size, "raw GET of {key} returned {} bytes", body.len());
        }
        Ok(started.elapsed())
    }

    /// The time from sending a plain GET of `key` to its first body bytes.
    pub async fn first_byte(&self, key: &str) -> anyhow::Result<Duration> {
        let url = self.bucket.get_object(Some(&self.key.credentials()), key).sign(Duration::from_secs(600));
        let started = Instant::now();
        let mut response = self.http.get(url).send().await?.error_for_status()?;
        let first = response.chunk().await?;
        let elapsed = started.elapsed();
        anyhow::ensure!(first.is_some_and(|chunk| !chunk.is_empty()), "the GET of {key} returned no body");
        Ok(elapsed)
    }

    /// Uploads `count` objects of `size` bytes named `{prefix}{i:05}`.
    pub async fn put_many(&self, prefix: &str, count: usize, size: usize) -> anyhow::Result<Vec<String>> {
        let keys: Vec<String> = (0..count).map(|i| format!("{prefix}{i:05}")).collect();
        let body = Bytes::from(vec![0xa5; size]);
        futures::stream::iter(keys.iter().map(|key| self.store.put(key, body.clone())))
            .buffer_unordered(32)
            .try_collect::<()>()
            .await?;
        Ok(keys)
    }

    /// Waits until `key` exists with `size` bytes (some FUSE clients finish
    /// uploading after `close` returns).
    pub async fn wait_for(&self, key: &str, size: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            if self.store.head(key).await?.is_some_and(|meta| meta.size == size) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "{key} never reached {size} bytes");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Deletes `key`.
    pub async fn delete(&self, key: &str) -> anyhow::Result<()> {
        Ok(self.store.delete(key).await?)
    }
}
