//! [`ObjectStore`] over any S3-compatible endpoint (IBM COS, MinIO, AWS).
//!
//! Requests are presigned with SigV4 by `rusty-s3` and sent with `reqwest`;
//! in IAM mode they are sent unsigned with `Authorization: Bearer` and
//! `ibm-service-instance-id`, as COS expects. Every request takes the
//! credentials current when it starts. A 401/403 re-reads the credentials
//! source and retries once, so a key revoked right after rotation never
//! surfaces as an I/O error. Transport errors and 5xx answers are retried a
//! few times with a short backoff.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use reqwest::{Method, StatusCode};
use rusty_s3::actions::{CompleteMultipartUpload, CreateMultipartUpload, ListObjectsV2};
use rusty_s3::{Bucket, S3Action, UrlStyle};
use secrecy::ExposeSecret as _;
use url::Url;

use super::buffers::BufferPool;
use super::{ListPage, ObjectHead, ObjectMeta, ObjectStore, Result, StoreError};
use crate::credentials::{CredentialStore, Credentials, IamTokens};
use crate::metrics::Metrics;

/// How long a presigned URL stays valid; requests are sent at once.
const SIGNATURE_TTL: Duration = Duration::from_secs(300);
/// Free body buffers kept for reuse. The pool allocates only when no free
/// buffer fits, so what it holds never exceeds the most bodies in use at
/// once (the prefetch budget, 64 MiB by default); this bounds it anyway.
/// Keeping less than the budget measured no better than no pool: the
/// excess went back to glibc, which kept it.
const KEPT_BUFFERS: usize = 64 * 1024 * 1024;
/// Attempts for transport errors and 5xx answers.
const TRANSIENT_ATTEMPTS: u32 = 4;

/// Where and how to reach the bucket.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The endpoint, e.g. `https://s3.eu-de.cloud-object-storage.appdomain.cloud`.
    pub endpoint: Url,
    /// The bucket name.
    pub bucket: String,
    /// The region used for SigV4 (COS accepts `us-east-1` for any endpoint).
    pub region: String,
    /// The IAM endpoint for IAM-mode credentials.
    pub iam_endpoint: Url,
}

/// What could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3SetupError {
    /// The endpoint and bucket do not form a valid URL.
    #[error("invalid endpoint or bucket name")]
    InvalidBucket(#[source] rusty_s3::BucketError),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// The S3 client of one mount.
#[derive(Debug)]
pub struct S3Store {
    bucket: Bucket,
    http: reqwest::Client,
    credentials: Arc<CredentialStore>,
    iam: IamTokens,
    buffers: Arc<BufferPool>,
    metrics: Metrics,
}

/// A request before signing: how to sign it, plus unsigned extras.
struct Request<'a> {
    operation: &'static str,
    method: Method,
    sign: &'a (dyn Fn(Option<&rusty_s3::Credentials>) -> Url + Send + Sync),
    headers: Vec<(&'static str, String)>,
    body: Option<Bytes>,
}

impl S3Store {
    /// A client for `config`, authenticating with `credentials`.
    pub fn new(
        config: &S3Config,
        credentials: Arc<CredentialStore>,
        metrics: Metrics,
    ) -> Result<Self, S3SetupError> {
        let bucket = Bucket::new(
            config.endpoint.clone(),
            UrlStyle::Path,
            config.bucket.clone(),
            config.region.clone(),
        )
        .map_err(S3SetupError::InvalidBucket)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build()
            .map_err(S3SetupError::Client)?;
        let iam = IamTokens::new(http.clone(), &config.iam_endpoint);
        Ok(Self { bucket, http, credentials, iam, buffers: BufferPool::new(KEPT_BUFFERS), metrics })
    }

    async fn send(&self, request: &Request<'_>) -> Result<reqwest::Response> {
        let mut credentials = self.credentials.current();
        let mut reloaded = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut builder = match &*credentials {
                Credentials::Hmac { access_key, secret_key } => {
                    let signing = rusty_s3::Credentials::new(access_key.clone(), secret_key.expose_secret());
                    self.http.request(request.method.clone(), (request.sign)(Some(&signing)))
                }
                Credentials::Iam { api_key, service_instance_id } => {
                    let token =
                        self.iam.token(api_key).await.map_err(crate::credentials::CredentialsError::from)?;
                    self.http
                        .request(request.method.clone(), (request.sign)(None))
                        .bearer_auth(token.expose_secret())
                        .header("ibm-service-instance-id", service_instance_id)
                }
            };
            for (name, value) in &request.headers {
                builder = builder.header(*name, value);
            }
            if let Some(body) = &request.body {
                builder = builder.body(body.clone());
            }
            let started = Instant::now();
            let outcome = builder.send().await;
            let status = outcome.as_ref().map_or(0, |response| response.status().as_u16());
            self.metrics.s3_request(request.operation, status, started.elapsed());
            let response = match outcome {
                Ok(response) => response,
                Err(error) if attempt < TRANSIENT_ATTEMPTS => {
                    tracing::debug!(%error, operation = request.operation, attempt, "S3 request failed; retrying");
                    backoff(attempt).await;
                    continue;
                }
                Err(error) => return Err(StoreError::Transport(error)),
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            if matches!(status, StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED) && !reloaded {
                tracing::info!(
                    operation = request.operation,
                    status = status.as_u16(),
                    "access denied; re-reading the credentials and retrying once"
                );
                reloaded = true;
                credentials = self.credentials.reload(&credentials).await?;
                continue;
            }
            if status.is_server_error() && attempt < TRANSIENT_ATTEMPTS {
                backoff(attempt).await;
                continue;
            }
            return Err(error_from(status, response).await);
        }
    }

    async fn send_text(&self, request: &Request<'_>) -> Result<String> {
        self.send(request).await?.text().await.map_err(StoreError::Transport)
    }
}

async fn backoff(attempt: u32) {
    tokio::time::sleep(Duration::from_millis(50 * 2u64.pow(attempt))).await;
}

async fn error_from(status: StatusCode, response: reqwest::Response) -> StoreError {
    let body = response.text().await.unwrap_or_default();
    let code = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code.to_owned())
        .unwrap_or_default();
    match (status, code.as_str()) {
        (_, "NoSuchBucket") => StoreError::NoSuchBucket,
        (StatusCode::NOT_FOUND, _) => StoreError::NotFound,
        (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED, _) => {
            StoreError::AccessDenied { status: status.as_u16(), code }
        }
        _ => StoreError::Service { status: status.as_u16(), code },
    }
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|value| value.to_str().ok())
}

/// The metadata HeadObject and GetObject answers carry in their headers.
fn object_meta(response: &reqwest::Response, size: u64) -> ObjectMeta {
    let modified = header(response, "last-modified")
        .and_then(|date| httpdate::parse_http_date(date).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    ObjectMeta { size, modified, etag: header(response, "etag").unwrap_or_default().to_owned() }
}

fn malformed(operation: &'static str, detail: &dyn std::fmt::Display) -> StoreError {
    StoreError::Malformed { operation, detail: detail.to_string() }
}

fn parse_time(text: &str) -> SystemTime {
    let millis = text.parse::<jiff::Timestamp>().map_or(0, jiff::Timestamp::as_millisecond);
    SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

impl ObjectStore for S3Store {
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let sign = |c: Option<&rusty_s3::Credentials>| self.bucket.head_object(c, key).sign(SIGNATURE_TTL);
        let request = Request {
            operation: "HeadObject",
            method: Method::HEAD,
            sign: &sign,
            headers: vec![],
            body: None,
        };
        let response = match self.send(&request).await {
            Ok(response) => response,
            Err(StoreError::NotFound) => return Ok(None),
            Err(error) => return Err(error),
        };
        let size = header(&response, "content-length")
            .and_then(|len| len.parse().ok())
            .ok_or_else(|| malformed("HeadObject", &"no Content-Length"))?;
        Ok(Some(object_meta(&response, size)))
    }

    async fn get_head(&self, key: &str, len: u64) -> Result<Option<ObjectHead>> {
        let sign = |c: Option<&rusty_s3::Credentials>| self.bucket.get_object(c, key).sign(SIGNATURE_TTL);
        let request = Request {
            operation: "GetObject",
            method: Method::GET,
            sign: &sign,
            headers: vec![("range", format!("bytes=0-{}", len.max(1) - 1))],
            body: None,
        };
        let mut response = match self.send(&request).await {
            Ok(response) => response,
            Err(StoreError::NotFound) => return Ok(None),
            // An empty object has no byte 0, so any range answers 416
            // (InvalidRange); HeadObject tells it apart from other refusals.
            Err(StoreError::Service { status: 416, .. }) => {
                return Ok(self.head(key).await?.map(|meta| ObjectHead { meta, bytes: Bytes::new() }));
            }
            Err(error) => return Err(error),
        };
        // 206 gives the size after the slash of `Content-Range: bytes 0-N/SIZE`;
        // a server that ignores the range answers 200 with the whole object.
        let partial = response.status() == StatusCode::PARTIAL_CONTENT;
        let size = if partial {
            header(&response, "content-range").and_then(|range| range.rsplit_once('/')?.1.parse().ok())
        } else {
            header(&response, "content-length").and_then(|len| len.parse().ok())
        };
        let size = size.ok_or_else(|| malformed("GetObject", &"no object size in the answer"))?;
        let meta = object_meta(&response, size);
        let wanted = usize::try_from(len.min(size)).unwrap_or(usize::MAX);
        let mut bytes = BytesMut::with_capacity(wanted);
        while let Some(chunk) = response.chunk().await.map_err(StoreError::Transport)? {
            let take = (wanted - bytes.len()).min(chunk.len());
            bytes.extend_from_slice(&chunk[..take]);
            // The rest of a whole object is not wanted: dropping the
            // answer closes its connection. A 206 is read to its end, so the
            // connection goes back to the pool.
            if !partial && bytes.len() == wanted && (wanted as u64) < size {
                break;
            }
        }
        if bytes.len() != wanted {
            return Err(malformed("GetObject", &format_args!("{} of {wanted} bytes", bytes.len())));
        }
        Ok(Some(ObjectHead { meta, bytes: bytes.freeze() }))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let sign = |c: Option<&rusty_s3::Credentials>| self.bucket.get_object(c, key).sign(SIGNATURE_TTL);
        let request = Request {
            operation: "GetObject",
            method: Method::GET,
            sign: &sign,
            headers: vec![("range", format!("bytes={}-{}", range.start, range.end - 1))],
            body: None,
        };
        // Stream the body into one buffer of the range's size. Collecting it
        // with `Response::bytes` holds every received chunk and then a
        // contiguous copy: about twice the part's size for a moment, more
        // than the prefetch budget counts.
        let mut response = self.send(&request).await?;
        // Sized by Content-Length: the range may run past the end of the object.
        let capacity = response.content_length().unwrap_or(u64::MAX).min(range.end - range.start);
        let mut body = self.buffers.take(usize::try_from(capacity).unwrap_or(0));
        while let Some(chunk) = response.chunk().await.map_err(StoreError::Transport)? {
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    }

    async fn list(&self, prefix: &str, max_keys: usize, continuation: Option<String>) -> Result<ListPage> {
        let sign = |c: Option<&rusty_s3::Credentials>| {
            let mut action = ListObjectsV2::new(&self.bucket, c);
            action.with_prefix(prefix);
            action.with_delimiter("/");
            action.with_max_keys(max_keys);
            if let Some(token) = &continuation {
                action.with_continuation_token(token.as_str());
            }
            action.sign(SIGNATURE_TTL)
        };
        let request = Request {
            operation: "ListObjectsV2",
            method: Method::GET,
            sign: &sign,
            headers: vec![],
            body: None,
        };
        let text = self.send_text(&request).await?;
        let parsed = ListObjectsV2::parse_response(&text).map_err(|e| malformed("ListObjectsV2", &e))?;
        Ok(ListPage {
            objects: parsed
                .contents
                .into_iter()
                .map(|object| {
                    let meta = ObjectMeta {
                        size: object.size.unwrap_or_default(),
                        modified: object.last_modified.as_deref().map_or(SystemTime::UNIX_EPOCH, parse_time),
                        etag: object.etag.unwrap_or_default(),
                    };
                    (object.key, meta)
                })
                .collect(),
            prefixes: parsed.common_prefixes.into_iter().map(|p| p.prefix).collect(),
            next: parsed.next_continuation_token,
        })
    }

    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        let sign = |c: Option<&rusty_s3::Credentials>| self.bucket.put_object(c, key).sign(SIGNATURE_TTL);
        let request = Request {
            operation: "PutObject",
            method: Method::PUT,
            sign: &sign,
            headers: vec![],
            body: Some(body),
        };
        self.send(&request).await.map(drop)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let sign = |c: Option<&rusty_s3::Credentials>| self.bucket.delete_object(c, key).sign(SIGNATURE_TTL);
        let request = Request {
            operation: "DeleteObject",
            method: Method::DELETE,
            sign: &sign,
            headers: vec![],
            body: None,
        };
        match self.send(&request).await {
            Ok(_) | Err(StoreError::NotFound) => Ok(()),
            Err(error) => Err(error),
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        // CopyObject is a PUT with the signed `x-amz-copy-source` header;
        // the source is `/bucket/key`, percent-encoded like the key in a URL.
        let source = self.bucket.object_url(from);
        let source = source.path().to_owned();
        let sign = |c: Option<&rusty_s3::Credentials>| {
            let mut action = self.bucket.put_object(c, to);
            action.headers_mut().insert("x-amz-copy-source", source.clone());
            action.sign(SIGNATURE_TTL)
        };
        let request = Request {
            operation: "CopyObject",
            method: Method::PUT,
            sign: &sign,
            headers: vec![("x-amz-copy-source", source.clone())],
            body: None,
        };
        // A copy can fail inside a 200 answer; the body then holds <Error>.
        let text = self.send_text(&request).await?;
        if text.contains("<Error>") {
            return Err(malformed("CopyObject", &"error inside a 200 answer"));
        }
        Ok(())
    }

    async fn create_multipart(&self, key: &str) -> Result<String> {
        let sign = |c: Option<&rusty_s3::Credentials>| {
            self.bucket.create_multipart_upload(c, key).sign(SIGNATURE_TTL)
        };
        let request = Request {
            operation: "CreateMultipartUpload",
            method: Method::POST,
            sign: &sign,
            headers: vec![],
            body: None,
        };
        let text = self.send_text(&request).await?;
        let parsed = CreateMultipartUpload::parse_response(&text)
            .map_err(|e| malformed("CreateMultipartUpload", &e))?;
        Ok(parsed.upload_id().to_owned())
    }

    async fn upload_part(&self, key: &str, upload_id: &str, part_number: u16, body: Bytes) -> Result<String> {
        let sign = |c: Option<&rusty_s3::Credentials>| {
            self.bucket.upload_part(c, key, part_number, upload_id).sign(SIGNATURE_TTL)
        };
        let request = Request {
            operation: "UploadPart",
            method: Method::PUT,
            sign: &sign,
            headers: vec![],
            body: Some(body),
        };
        let response = self.send(&request).await?;
        let etag = response.headers().get("etag").and_then(|value| value.to_str().ok());
        etag.map(str::to_owned).ok_or_else(|| malformed("UploadPart", &"no ETag"))
    }

    async fn complete_multipart(&self, key: &str, upload_id: &str, etags: Vec<String>) -> Result<()> {
        let body = CompleteMultipartUpload::new(
            &self.bucket,
            None,
            key,
            upload_id,
            etags.iter().map(String::as_str),
        )
        .body();
        let sign = |c: Option<&rusty_s3::Credentials>| {
            self.bucket
                .complete_multipart_upload(c, key, upload_id, etags.iter().map(String::as_str))
                .sign(SIGNATURE_TTL)
        };
        let request = Request {
            operation: "CompleteMultipartUpload",
            method: Method::POST,
            sign: &sign,
            headers: vec![],
            body: Some(Bytes::from(body)),
        };
        let text = self.send_text(&request).await?;
        if text.contains("<Error>") {
            return Err(malformed("CompleteMultipartUpload", &"error inside a 200 answer"));
        }
        Ok(())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let sign = |c: Option<&rusty_s3::Credentials>| {
            self.bucket.abort_multipart_upload(c, key, upload_id).sign(SIGNATURE_TTL)
        };
        let request = Request {
            operation: "AbortMultipartUpload",
            method: Method::DELETE,
            sign: &sign,
            headers: vec![],
            body: None,
        };
        self.send(&request).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use wiremock::matchers::{header, method, path, query_param_contains};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    use super::*;
    use crate::credentials::Source;

    async fn store(server: &MockServer, source: Source) -> S3Store {
        let metrics = Metrics::default();
        let credentials = CredentialStore::load(source, metrics.clone()).await.unwrap();
        let config = S3Config {
            endpoint: Url::parse(&server.uri()).unwrap(),
            bucket: "b".into(),
            region: "us-east-1".into(),
            iam_endpoint: Url::parse(&server.uri()).unwrap(),
        };
        S3Store::new(&config, credentials, metrics).unwrap()
    }

    fn hmac_dir(access_key: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("access-key"), access_key).unwrap();
        std::fs::write(dir.path().join("secret-key"), "secret").unwrap();
        dir
    }

    #[tokio::test]
    async fn a_503_is_retried() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/b/k"))
            .respond_with(ResponseTemplate::new(503).set_body_string("<Error><Code>SlowDown</Code></Error>"))
            .up_to_n_times(2)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/b/k"))
            .respond_with(ResponseTemplate::new(206).set_body_string("abc"))
            .mount(&server)
            .await;
        let dir = hmac_dir("AK");
        let store = store(&server, Source::Dir(dir.path().to_owned())).await;
        assert_eq!(store.get_range("k", 0..3).await.unwrap(), "abc");
    }

    #[tokio::test]
    async fn a_ranged_get_returns_the_whole_body_whatever_its_length() {
        let server = MockServer::start().await;
        // Large enough to arrive in many chunks.
        let large: Vec<u8> = (0..3 * 1024 * 1024).map(|i: u32| i.to_le_bytes()[0] ^ 0x5a).collect();
        Mock::given(method("GET"))
            .and(path("/b/large"))
            .and(header("range", "bytes=0-3145727"))
            .respond_with(ResponseTemplate::new(206).set_body_bytes(large.clone()))
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/b/short"))
            .respond_with(ResponseTemplate::new(206).set_body_string("end"))
            .mount(&server)
            .await;
        let dir = hmac_dir("AK");
        let store = store(&server, Source::Dir(dir.path().to_owned())).await;
        assert_eq!(store.get_range("large", 0..large.len() as u64).await.unwrap(), large);
        // Fewer bytes than asked (the object ends inside the range).
        assert_eq!(store.get_range("short", 10..1000).await.unwrap(), "end");
    }

    #[tokio::test]
    async fn the_head_of_an_object_comes_with_its_size_from_content_range() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/b/k"))
            .and(header("range", "bytes=0-3"))
            .respond_with(
                ResponseTemplate::new(206)
                    .insert_header("content-range", "bytes 0-3/1000")
                    .insert_header("etag", "\"e\"")
                    .insert_header("last-modified", "Wed, 21 Oct 2026 07:28:00 GMT")
                    .set_body_string("abcd"),
            )
            .mount(&server)
            .await;
        // A server that ignores the range sends the whole object.
        Mock::given(method("GET"))
            .and(path("/b/whole"))
            .respond_with(ResponseTemplate::new(200).set_body_string("0123456789"))
            .mount(&server)
            .await;
        let dir = hmac_dir("AK");
        let store = store(&server, Source::Dir(dir.path().to_owned())).await;
        let head = store.get_head("k", 4).await.unwrap().unwrap();
        assert_eq!((head.meta.size, head.meta.etag.as_str(), &head.bytes[..]), (1000, "\"e\"", &b"abcd"[..]));
        assert_eq!(head.meta.modified, httpdate::parse_http_date("Wed, 21 Oct 2026 07:28:00 GMT").unwrap());
        let head = store.get_head("whole", 4).await.unwrap().unwrap();
        assert_eq!((head.meta.size, &head.bytes[..]), (10, &b"0123"[..]));
    }

    #[tokio::test]
    async fn the_head_of_an_empty_object_or_a_missing_one() {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/b/empty"))
            .respond_with(
                ResponseTemplate::new(416).set_body_string("<Error><Code>InvalidRange</Code></Error>"),
            )
            .mount(&server)
            .await;
        Mock::given(method("HEAD"))
            .and(path("/b/empty"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-length", "0")
                    .insert_header("etag", "\"z\""),
            )
            .expect(1)
            .mount(&server)
            .await;
        Mock::given(path("/b/missing"))
            .respond_with(ResponseTemplate::new(404).set_body_string("<Error><Code>NoSuchKey</Code></Error>"))
            .mount(&server)
            .await;
        let dir = hmac_dir("AK");
        let store = store(&server, Source::Dir(dir.path().to_owned())).await;
        let head = store.get_head("empty", 4).await.unwrap().unwrap();
        assert_eq!((head.meta.size, head.meta.etag.as_str(), head.bytes.len()), (0, "\"z\"", 0));
        assert!(store.get_head("missing", 4).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_403_rereads_the_credentials_and_retries_once() {
        let server = MockServer::start().await;
        Mock::given(query_param_contains("X-Amz-Credential", "OLD/"))
            .respond_with(
                ResponseTemplate::new(403).set_body_string("<Error><Code>InvalidAccessKeyId</Code></Error>"),
            )
            .mount(&server)
            .await;
        Mock::given(query_param_contains("X-Amz-Credential", "NEW/"))
            .respond_with(ResponseTemplate::new(200).insert_header("content-length", "0"))
            .expect(1)
            .mount(&server)
            .await;
        let dir = hmac_dir("OLD");
        let store = store(&server, Source::Dir(dir.path().to_owned())).await;
        std::fs::write(dir.path().join("access-key"), "NEW").unwrap();
        store.put("k", Bytes::from_static(b"x")).await.unwrap();

        // Refused again after the reload: a clear AccessDenied, no loop.
        std::fs::write(dir.path().join("access-key"), "OLD").unwrap();
        let store = self::store(&server, Source::Dir(dir.path().to_owned())).await;
        let error = store.put("k", Bytes::new()).await.unwrap_err();
        assert!(
            matches!(error, StoreError::AccessDenied { status: 403, ref code } if code == "InvalidAccessKeyId")
        );
    }

    #[tokio::test]
    async fn iam_credentials_send_a_bearer_token_and_the_instance_id() {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/identity/token"))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(serde_json::json!({"access_token": "tok", "expires_in": 3600})),
            )
            .mount(&server)
            .await;
        Mock::given(method("HEAD"))
            .and(path("/b/k"))
            .and(header("authorization", "Bearer tok"))
            .and(header("ibm-service-instance-id", "crn:v1:instance"))
            .respond_with(
                ResponseTemplate::new(200)
                    .insert_header("content-length", "7")
                    .insert_header("etag", "\"e\""),
            )
            .expect(1)
            .mount(&server)
            .await;
        let credentials = Credentials::Iam {
            api_key: "key".to_owned().into(),
            service_instance_id: "crn:v1:instance".into(),
        };
        let store = store(&server, Source::Fixed(credentials)).await;
        let meta = store.head("k").await.unwrap().unwrap();
        assert_eq!(meta.size, 7);
    }
}
