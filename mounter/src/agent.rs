//! Agent mode: mounts every bucket a YAML file lists and unmounts them all
//! on shutdown. The same [`MountSpec`] is what `mounter mount` builds from
//! its flags, so both paths share one conversion and one set of defaults.
//!
//! ```yaml
//! metricsAddr: 0.0.0.0:9102       # optional
//! mounts:
//!   - mountpoint: /mnt/data
//!     bucket: my-bucket
//!     endpoint: https://s3.eu-de.cloud-object-storage.appdomain.cloud
//!     prefix: team-a/             # optional
//!     credentialsDir: /etc/cos    # or: secret: namespace/name (+ kubeconfig)
//!     uid: 1000
//!     gid: 1000
//!     readOnly: false
//!     pageCache: false            # true: every read through the page cache
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::FutureExt as _;
use serde::Deserialize;
use url::Url;

use crate::fs::FsConfig;
use crate::metrics::Metrics;
use crate::mount::{self, CredentialsConfig, MountConfig, MountError};
use crate::prefetch::PrefetchConfig;
use crate::store::s3::S3Config;
use crate::upload::UploadConfig;

const MIB: u64 = 1024 * 1024;

/// What can go wrong in agent mode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// The config file could not be read.
    #[error("cannot read agent config {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid agent config {}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_yaml::Error,
    },
    /// A mount entry is invalid.
    #[error("invalid mount {mountpoint}: {reason}")]
    Spec {
        /// The entry's mount point.
        mountpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// A mount failed.
    #[error("mount {} failed", mountpoint.display())]
    Mount {
        /// The mount point.
        mountpoint: PathBuf,
        /// The cause.
        #[source]
        source: Box<MountError>,
    },
}

/// The agent's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentConfig {
    /// Where to serve metrics.
    pub metrics_addr: Option<SocketAddr>,
    /// The mounts.
    pub mounts: Vec<MountSpec>,
}

impl AgentConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, AgentError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| AgentError::Read { path: path.to_owned(), source })?;
        serde_yaml::from_str(&text).map_err(|source| AgentError::Parse { path: path.to_owned(), source })
    }
}

fn default_region() -> String {
    "us-east-1".to_owned()
}
fn default_iam_endpoint() -> String {
    "https://iam.cloud.ibm.com".to_owned()
}
const fn default_file_mode() -> u16 {
    0o644
}
const fn default_dir_mode() -> u16 {
    0o755
}
const fn default_poll_secs() -> u64 {
    5
}
const fn default_ttl_ms() -> u64 {
    1000
}
const fn default_memory_mib() -> u64 {
    crate::prefetch::DEFAULT_MEMORY_MIB
}
const fn default_part_mib() -> u64 {
    8
}
const fn default_upload_parallelism() -> usize {
    4
}
const fn default_fuse_threads() -> usize {
    4
}
const fn default_staging_limit_mib() -> u64 {
    1024
}

fn current_owner() -> (u32, u32) {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").map_or((0, 0), |meta| (meta.uid(), meta.gid()))
}

/// One mount, as written in the agent's config or built from `mounter mount`'s flags.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(clippy::struct_excessive_bools)]
pub struct MountSpec {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The bucket.
    pub bucket: String,
    /// The S3 endpoint URL.
    pub endpoint: String,
    /// The key prefix to show as the root.
    #[serde(default)]
    pub prefix: Option<String>,
    /// The SigV4 region.
    #[serde(default = "default_region")]
    pub region: String,
    /// The IAM endpoint for `api-key` credentials.
    #[serde(default = "default_iam_endpoint")]
    pub iam_endpoint: String,
    /// A directory of credential files.
    #[serde(default)]
    pub credentials_dir: Option<PathBuf>,
    /// A Secret as `namespace/name`.
    #[serde(default)]
    pub secret: Option<String>,
    /// The kubeconfig for `secret`.
    #[serde(default)]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds between reads of `credentials_dir`.
    #[serde(default = "default_poll_secs")]
    pub credentials_poll_secs: u64,
    /// Owner of files (default: the mounter's user).
    #[serde(default)]
    pub uid: Option<u32>,
    /// Group of files (default: the mounter's group).
    #[serde(default)]
    pub gid: Option<u32>,
    /// File permission bits.
    #[serde(default = "default_file_mode")]
    pub file_mode: u16,
    /// Directory permission bits.
    #[serde(default = "default_dir_mode")]
    pub dir_mode: u16,
    /// Let other users access the mount.
    #[serde(default)]
    pub allow_other: bool,
    /// Refuse changes.
    #[serde(default)]
    pub read_only: bool,
    /// Metadata cache TTL in milliseconds.
    #[serde(default = "default_ttl_ms")]
    pub metadata_ttl_ms: u64,
    /// Negative lookup cache TTL in milliseconds.
    #[serde(default = "default_ttl_ms")]
    pub negative_ttl_ms: u64,
    /// Prefetch memory budget in MiB.
    #[serde(default = "default_memory_mib")]
    pub prefetch_memory_mib: u64,
    /// Upload part size in MiB.
    #[serde(default = "default_part_mib")]
    pub part_size_mib: u64,
    /// Parts uploaded in parallel per file.
    #[serde(default = "default_upload_parallelism")]
    pub upload_parallelism: usize,
    /// FUSE worker threads.
    #[serde(default = "default_fuse_threads")]
    pub fuse_threads: usize,
    /// The largest file changed in place through a local copy, in MiB (0: never).
    #[serde(default = "default_staging_limit_mib")]
    pub staging_limit_mib: u64,
    /// Read every file through the kernel's page cache (faster for small
    /// reads) instead of large files directly (faster for large reads).
    #[serde(default)]
    pub page_cache: bool,
}

impl MountSpec {
    /// Validates the spec and converts it.
    pub fn into_config(self) -> Result<MountConfig, AgentError> {
        let invalid = |reason: &str| AgentError::Spec {
            mountpoint: self.mountpoint.display().to_string(),
            reason: reason.to_owned(),
        };
        let credentials = match (&self.credentials_dir, &self.secret) {
            (Some(dir), None) => CredentialsConfig::Dir(dir.clone()),
            (None, Some(secret)) => {
                let (namespace, name) = secret
                    .split_once('/')
                    .filter(|(ns, name)| !ns.is_empty() && !name.is_empty() && !name.contains('/'))
                    .ok_or_else(|| invalid("secret must be NAMESPACE/NAME"))?;
                CredentialsConfig::Secret {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    kubeconfig: self.kubeconfig.clone(),
                }
            }
            _ => return Err(invalid("exactly one of credentials dir and secret is required")),
        };
        if self.bucket.is_empty() {
            return Err(invalid("the bucket name is empty"));
        }
        let url = |text: &str, what: &str| {
            Url::parse(text)
                .ok()
                .filter(|url| matches!(url.scheme(), "http" | "https") && url.has_host())
                .ok_or_else(|| invalid(&format!("the {what} must be an http:// or https:// URL")))
        };
        let endpoint = url(&self.endpoint, "endpoint")?;
        let iam_endpoint = url(&self.iam_endpoint, "IAM endpoint")?;
        if !(5..=5 * 1024).contains(&self.part_size_mib) {
            return Err(invalid("the part size must be between 5 and 5120 MiB"));
        }
        if self.file_mode > 0o7777 || self.dir_mode > 0o7777 {
            return Err(invalid("modes are permission bits (at most 0o7777)"));
        }
        let prefix = match self.prefix.as_deref().map(|p| p.trim_matches('/')) {
            None | Some("") => String::new(),
            Some(prefix) => format!("{prefix}/"),
        };
        let (uid, gid) = current_owner();
        Ok(MountConfig {
            mountpoint: self.mountpoint,
            s3: S3Config { endpoint, bucket: self.bucket, region: self.region, iam_endpoint },
            credentials,
            credentials_poll: Duration::from_secs(self.credentials_poll_secs.max(1)),
            allow_other: self.allow_other,
            fs: FsConfig {
                prefix,
                uid: self.uid.unwrap_or(uid),
                gid: self.gid.unwrap_or(gid),
                file_mode: self.file_mode,
                dir_mode: self.dir_mode,
                read_only: self.read_only,
                metadata_ttl: Duration::from_millis(self.metadata_ttl_ms),
                negative_ttl: Duration::from_millis(self.negative_ttl_ms),
                prefetch: PrefetchConfig {
                    memory_budget: self.prefetch_memory_mib * MIB,
                    ..PrefetchConfig::default()
                },
                upload: UploadConfig {
                    part_size: usize::try_from(self.part_size_mib * MIB).unwrap_or(usize::MAX),
                    max_parallel_parts: self.upload_parallelism.max(1),
                },
                staging_limit: self.staging_limit_mib.saturating_mul(MIB),
                page_cache: self.page_cache,
            },
            fuse_threads: self.fuse_threads,
        })
    }
}

/// Runs every mount of `config` until `shutdown`; fails if any mount fails.
pub async fn run(
    config: AgentConfig,
    metrics: Metrics,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), AgentError> {
    let configs = config.mounts.into_iter().map(MountSpec::into_config).collect::<Result<Vec<_>, _>>()?;
    let shutdown = shutdown.shared();
    let mounts = configs.into_iter().map(|config| {
        let (metrics, shutdown) = (metrics.clone(), shutdown.clone());
        async move {
            let mountpoint = config.mountpoint.clone();
            mount::run(config, metrics, shutdown)
                .await
                .map_err(|source| AgentError::Mount { mountpoint, source: Box::new(source) })
        }
    });
    futures::future::try_join_all(mounts).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_is_parsed_with_defaults_and_validated() {
        let config: AgentConfig = serde_yaml::from_str(
            "mounts:\n- mountpoint: /mnt/a\n  bucket: b\n  endpoint: http://127.0.0.1:9000\n  credentialsDir: /c\n  prefix: /team/\n",
        )
        .unwrap();
        let mount = config.mounts[0].clone().into_config().unwrap();
        assert_eq!(mount.fs.prefix, "team/");
        assert_eq!(mount.s3.region, "us-east-1");
        let mut both = config.mounts[0].clone();
        both.secret = Some("ns/name".into());
        assert!(both.into_config().unwrap_err().to_string().contains("exactly one"));
        let mut bad = config.mounts[0].clone();
        bad.credentials_dir = None;
        bad.secret = Some("no-namespace".into());
        assert!(bad.into_config().unwrap_err().to_string().contains("NAMESPACE/NAME"));
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let error = serde_yaml::from_str::<AgentConfig>("mounts: []\nbogus: 1\n").unwrap_err();
        assert!(error.to_string().contains("bogus"), "{error}");
    }
}
