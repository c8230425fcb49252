//! One mount: load and check credentials, check the bucket, mount, serve,
//! and unmount cleanly on shutdown.
//!
//! Every check that can fail because of the user's input runs before the
//! mount exists: the mount point must be a directory, the credentials must
//! parse, and a listing of the root (one page, kept as its cached listing:
//! see [`Fs::check_root`]) must succeed, so bad
//! credentials, an unknown bucket or a wrong endpoint fail with a message
//! naming the problem instead of a mount that answers `EIO`.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fuser::{MountOption, SessionACL};
use url::Url;

use crate::credentials::{self, CredentialStore, CredentialsError, Source};
use crate::fs::{Fs, FsConfig};
use crate::fuse::{FuseFs, MAX_REQUEST};
use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::s3::{S3Config, S3SetupError, S3Store};

/// Where the credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialsConfig {
    /// A directory of files (the Secret mounted as a volume).
    Dir(PathBuf),
    /// A Secret read through the Kubernetes API.
    Secret {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// A kubeconfig file; in-cluster configuration when absent.
        kubeconfig: Option<PathBuf>,
    },
}

/// Everything one mount needs.
#[derive(Debug, Clone)]
pub struct MountConfig {
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The bucket and endpoint.
    pub s3: S3Config,
    /// The credentials source.
    pub credentials: CredentialsConfig,
    /// How often a credentials directory is re-read.
    pub credentials_poll: Duration,
    /// Let users other than the mounting one access the mount.
    pub allow_other: bool,
    /// The filesystem settings.
    pub fs: FsConfig,
    /// FUSE worker threads.
    pub fuse_threads: usize,
}

/// Why a mount could not start or ended badly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MountError {
    /// The mount point is not an existing directory.
    #[error("mount point {} is not an existing directory", .0.display())]
    BadMountpoint(PathBuf),
    /// The credentials could not be loaded.
    #[error("cannot load the bucket credentials")]
    Credentials(#[source] CredentialsError),
    /// The kubeconfig or in-cluster configuration is unusable.
    #[error("cannot configure the Kubernetes client")]
    Kube(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The S3 client could not be built.
    #[error("invalid S3 settings")]
    Setup(#[source] S3SetupError),
    /// The bucket check failed.
    #[error("cannot access bucket {bucket} at {endpoint}")]
    Access {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: Url,
        /// The cause.
        #[source]
        source: StoreError,
    },
    /// FUSE refused to mount or the session failed.
    #[error("FUSE mount at {} failed", mountpoint.display())]
    Fuse {
        /// The mount point.
        mountpoint: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

async fn source(config: &CredentialsConfig) -> Result<Source, MountError> {
    Ok(match config {
        CredentialsConfig::Dir(dir) => Source::Dir(dir.clone()),
        CredentialsConfig::Secret { namespace, name, kubeconfig } => {
            let client_config = match kubeconfig {
                Some(path) => {
                    let kubeconfig =
                        kube::config::Kubeconfig::read_from(path).map_err(|e| MountError::Kube(e.into()))?;
                    kube::Config::from_custom_kubeconfig(
                        kubeconfig,
                        &kube::config::KubeConfigOptions::default(),
                    )
                    .await
                    .map_err(|e| MountError::Kube(e.into()))?
                }
                None => kube::Config::incluster().map_err(|e| MountError::Kube(e.into()))?,
            };
            let client = kube::Client::try_from(client_config).map_err(|e| MountError::Kube(e.into()))?;
            Source::Secret {
                api: Box::new(kube::Api::namespaced(client, namespace)),
                namespace: namespace.clone(),
                name: name.clone(),
            }
        }
    })
}

/// Loads the credentials, checks the bucket and returns the filesystem,
/// with the credentials watcher running.
pub async fn prepare(config: &MountConfig, metrics: &Metrics) -> Result<Arc<Fs<S3Store>>, MountError> {
    if !config.mountpoint.is_dir() {
        return Err(MountError::BadMountpoint(config.mountpoint.clone()));
    }
    let source = source(&config.credentials).await?;
    let credentials =
        CredentialStore::load(source, metrics.clone()).await.map_err(MountError::Credentials)?;
    let store = S3Store::new(&config.s3, credentials.clone(), metrics.clone()).map_err(MountError::Setup)?;
    let fs = Fs::new(Arc::new(store), config.fs.clone(), metrics.clone());
    fs.check_root().await.map_err(|source| MountError::Access {
        bucket: config.s3.bucket.clone(),
        endpoint: config.s3.endpoint.clone(),
        source,
    })?;
    credentials::spawn_watcher(credentials, config.credentials_poll);
    Ok(Arc::new(fs))
}

/// Mounts, serves until `shutdown` resolves or the mount is unmounted from
/// outside, then unmounts and returns.
pub async fn run(
    config: MountConfig,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), MountError> {
    let fs = prepare(&config, &metrics).await?;
    let adapter = FuseFs::new(fs, tokio::runtime::Handle::current(), metrics);
    let mut options = vec![
        MountOption::FSName(format!("cos:{}", config.s3.bucket)),
        MountOption::Subtype("cos".to_owned()),
        MountOption::AutoUnmount,
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    options.push(if config.fs.read_only { MountOption::RO } else { MountOption::RW });
    let mut fuse_config = fuser::Config::default();
    fuse_config.mount_options = options;
    fuse_config.acl = if config.allow_other { SessionACL::All } else { SessionACL::RootAndOwner };
    fuse_config.n_threads = Some(config.fuse_threads.max(1));
    let fuse_error = |source| MountError::Fuse { mountpoint: config.mountpoint.clone(), source };
    // Resolved before mounting: afterwards, resolving it would be a FUSE
    // request to this very process.
    let mount_path = std::fs::canonicalize(&config.mountpoint).map_err(fuse_error)?;
    let session = fuser::Session::new(adapter, &config.mountpoint, &fuse_config).map_err(fuse_error)?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fuse-session".into())
        .spawn(move || {
            let _ = done_tx.send(session.run());
        })
        .map_err(fuse_error)?;
    let _ = tokio::task::spawn_blocking(move || raise_readahead(&mount_path)).await;
    tracing::info!(mountpoint = %config.mountpoint.display(), bucket = %config.s3.bucket, "mounted");
    tokio::pin!(done_rx);
    let result = tokio::select! {
        () = shutdown => {
            tracing::info!("unmounting");
            unmount(&config.mountpoint).map_err(fuse_error)?;
            done_rx.await
        }
        result = &mut done_rx => result,
    };
    tracing::info!(mountpoint = %config.mountpoint.display(), "unmounted");
    match result {
        Ok(Ok(())) | Err(_) => Ok(()),
        Ok(Err(error)) => Err(fuse_error(error)),
    }
}

/// Raises the kernel's readahead on the mount to [`MAX_REQUEST`], so
/// sequential reads arrive as 1 MiB requests instead of 128 KiB ones.
/// FUSE's `init` can only lower the readahead the kernel offers (the
/// default of 128 KiB); the mount's backing device info in sysfs can raise
/// it. That needs root and a writable `/sys`; without them reads stay at
/// the default, which is slower but correct.
fn raise_readahead(mountpoint: &std::path::Path) {
    let result = mount_device(mountpoint).and_then(|device| {
        let path = PathBuf::from(format!("/sys/class/bdi/{device}/read_ahead_kb"));
        std::fs::write(&path, (MAX_REQUEST / 1024).to_string()).map(|()| path)
    });
    match result {
        Ok(path) => tracing::debug!(path = %path.display(), kib = MAX_REQUEST / 1024, "readahead raised"),
        Err(error) => {
            tracing::info!(%error, "could not raise the kernel readahead; reads stay at its default");
        }
    }
}

/// The `MAJOR:MINOR` device of the FUSE mount at `mountpoint` (a canonical
/// path), from `/proc/self/mountinfo`. Not from `stat`: that would be a FUSE
/// request to this very process, and a thread waiting on its own mount can
/// never finish if the process is killed meanwhile, which leaves the mount
/// behind.
fn mount_device(mountpoint: &std::path::Path) -> std::io::Result<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    device_of(&mountinfo, mountpoint).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not in mountinfo", mountpoint.display()),
        )
    })
}

/// The device field of the last (topmost) FUSE mount at `mountpoint` in a
/// mountinfo text. Mount points with spaces, tabs, newlines or backslashes
/// (octal-escaped there) are not matched.
fn device_of(mountinfo: &str, mountpoint: &std::path::Path) -> Option<String> {
    let wanted = mountpoint.to_str()?;
    mountinfo.lines().rev().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fields: Vec<&str> = left.split(' ').collect();
        let is_fuse = right.split(' ').next().is_some_and(|fs_type| fs_type.starts_with("fuse"));
        if is_fuse && fields.get(4) == Some(&wanted) {
            fields.get(2).map(|device| (*device).to_owned())
        } else {
            None
        }
    })
}

/// Unmounts through `fusermount3 -u -z`. With `auto_unmount`, fuser's own
/// unmount only closes the socket to fusermount, which unmounts once the
/// session's device fd closes, and the session holds that fd while waiting
/// for requests. Unmounting first ends that wait (lazily, so open files in
/// other processes do not block shutdown), and the session then returns.
fn unmount(mountpoint: &std::path::Path) -> std::io::Result<()> {
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(mountpoint)
        .stdin(std::process::Stdio::null())
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("fusermount3 -u -z failed: {status}")))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::device_of;

    #[test]
    fn the_device_comes_from_the_fuse_mount_at_the_path() {
        let mountinfo = "\
25 1 8:1 / / rw,relatime - ext4 /dev/vda rw
43 27 0:40 / /tmp/m rw,nosuid,nodev - fuse.cos cos:b rw,user_id=0
44 27 0:41 / /tmp/other rw - fuse.cos cos:c rw
";
        assert_eq!(device_of(mountinfo, Path::new("/tmp/m")).as_deref(), Some("0:40"));
        assert_eq!(device_of(mountinfo, Path::new("/")), None, "not a FUSE mount");
        assert_eq!(device_of(mountinfo, Path::new("/tmp/none")), None);
    }
}
