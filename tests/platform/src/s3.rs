//! A real S3-compatible server on loopback: MinIO, the local stand-in for
//! Cloud Object Storage that IBM's own documentation names.
//!
//! The harness creates one bucket per test and can create and revoke access
//! keys (through MinIO's admin client `mc`), which credential-rotation tests
//! need. Requests are signed with SigV4 by `rusty-s3`.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::sync::OnceCell;
use url::Url;

use crate::kube::random_suffix;
use crate::process::{PROBE_TIMEOUT, Supervised, free_port, wait_for_http};
use crate::{Error, Result, binaries, io_context};

/// The region MinIO reports by default.
pub const REGION: &str = "us-east-1";
const MC_ALIAS: &str = "local";
const SIGNATURE_TTL: Duration = Duration::from_secs(600);

/// An S3 access key pair.
#[derive(Clone)]
pub struct AccessKey {
    /// The access key id (not secret).
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("access_key", &self.access_key)
            .field("secret_key", &"[REDACTED]")
            .finish()
    }
}

impl AccessKey {
    /// The key pair as `rusty-s3` credentials.
    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.access_key.clone(), self.secret_key.clone())
    }
}

/// A running MinIO server.
#[derive(Debug)]
pub struct TestS3 {
    endpoint: Url,
    root: AccessKey,
    mc: PathBuf,
    mc_config: PathBuf,
    _server: Supervised,
}

static SHARED: OnceCell<Result<TestS3, String>> = OnceCell::const_new();

impl TestS3 {
    /// The server shared by every test of this binary, started on first use.
    /// Panics with the start-up error if it cannot start.
    pub async fn shared() -> &'static TestS3 {
        match SHARED.get_or_init(|| async { Self::start().await.map_err(|e| format!("{e}")) }).await {
            Ok(s3) => s3,
            Err(error) => panic!("the shared S3 server could not start: {error}"),
        }
    }

    /// Starts a private MinIO server with an empty data directory.
    pub async fn start() -> Result<Self> {
        let minio = binaries::path("minio")?;
        let mc = binaries::path("mc")?;
        let root_dir = tempfile::Builder::new()
            .prefix("cos-sync-s3-")
            .tempdir()
            .map_err(io_context("create the S3 data directory"))?
            .keep();
        let root = AccessKey {
            access_key: "minio-root".to_owned(),
            secret_key: format!("root-{}", random_suffix()),
        };
        let port = free_port()?;
        let endpoint = Url::parse(&format!("http://127.0.0.1:{port}")).expect("valid URL");
        let mut command = Command::new(minio);
        command
            .arg("server")
            .arg(root_dir.join("data"))
            .arg(format!("--address=127.0.0.1:{port}"))
            .arg(format!("--console-address=127.0.0.1:{}", free_port()?))
            .arg("--quiet")
            .env("MINIO_ROOT_USER", &root.access_key)
            .env("MINIO_ROOT_PASSWORD", &root.secret_key)
            .env("MINIO_BROWSER", "off")
            .env("MINIO_UPDATE", "off")
            .env("HOME", &root_dir);
        let mut server = Supervised::spawn("minio", &command, &root_dir.join("minio.log"), Some(&root_dir))?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let probe = http.get(endpoint.join("/minio/health/ready").expect("valid URL")).timeout(PROBE_TIMEOUT);
        wait_for_http(&mut server, Duration::from_secs(60), probe).await?;
        tracing::info!(%endpoint, "S3 server ready");
        Ok(Self { endpoint, root, mc, mc_config: root_dir.join("mc"), _server: server })
    }

    /// The server's endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// The administrator's key pair.
    pub fn root_key(&self) -> &AccessKey {
        &self.root
    }

    /// Creates an empty bucket with a random name for one test. It is left
    /// behind when the test ends and goes away with the server.
    pub async fn bucket(&self) -> Result<TestBucket> {
        let name = format!("test-{}", random_suffix());
        let bucket = Bucket::new(self.endpoint.clone(), UrlStyle::Path, name.clone(), REGION)
            .map_err(|e| Error::S3 { operation: "CreateBucket", detail: e.to_string() })?;
        let credentials = self.root.credentials();
        let url = bucket.create_bucket(&credentials).sign(SIGNATURE_TTL);
        // A client per bucket, bound to the calling test's runtime: pooled
        // connections of a client shared across tests would belong to the
        // runtime of whichever test opened them, and die with it.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        check("CreateBucket", http.put(url).send().await?).await?;
        Ok(TestBucket { name, bucket, credentials, http })
    }

    /// Creates a new user with read-write access and returns its key pair.
    pub fn create_access_key(&self) -> Result<AccessKey> {
        let key = AccessKey {
            access_key: format!("key{}", random_suffix()),
            secret_key: format!("secret-{}-{}", random_suffix(), random_suffix()),
        };
        self.mc(&["admin", "user", "add", MC_ALIAS, &key.access_key, &key.secret_key])?;
        self.mc(&["admin", "policy", "attach", MC_ALIAS, "readwrite", "--user", &key.access_key])?;
        Ok(key)
    }

    /// Deletes the user behind `key`: requests signed with it fail from now on.
    pub fn revoke_access_key(&self, key: &AccessKey) -> Result<()> {
        self.mc(&["admin", "user", "remove", MC_ALIAS, &key.access_key])
    }

    fn mc(&self, args: &[&str]) -> Result<()> {
        let host =
            format!("http://{}:{}@{}", self.root.access_key, self.root.secret_key, self.endpoint.authority());
        let output = Command::new(&self.mc)
            .arg("--config-dir")
            .arg(&self.mc_config)
            .arg("--no-color")
            .args(args)
            .env(format!("MC_HOST_{MC_ALIAS}"), host)
            .output()
            .map_err(|source| Error::Spawn { name: "mc".into(), source })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(Error::Command {
                // Only the verb: the arguments include secret keys.
                command: format!("mc {}", args.iter().take(3).copied().collect::<Vec<_>>().join(" ")),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            })
        }
    }
}

/// A bucket owned by one test, with a client signed by the root key.
#[derive(Debug)]
pub struct TestBucket {
    name: String,
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl TestBucket {
    /// The bucket's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Uploads `body` to `key`.
    pub async fn put(&self, key: &str, body: impl Into<reqwest::Body>) -> Result<()> {
        let url = self.bucket.put_object(Some(&self.credentials), key).sign(SIGNATURE_TTL);
        check("PutObject", self.http.put(url).body(body).send().await?).await?;
        Ok(())
    }

    /// Downloads the object at `key`.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.get_as(key, &self.credentials).await
    }

    /// Downloads the object at `key`, signing with `credentials`.
    pub async fn get_as(&self, key: &str, credentials: &Credentials) -> Result<Vec<u8>> {
        let url = self.bucket.get_object(Some(credentials), key).sign(SIGNATURE_TTL);
        let response = check("GetObject", self.http.get(url).send().await?).await?;
        Ok(response.bytes().await?.to_vec())
    }
}

async fn check(operation: &'static str, response: reqwest::Response) -> Result<reqwest::Response> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(Error::S3 { operation, detail: format!("{status}: {body}") })
}
