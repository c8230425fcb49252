//! The local platform: real services that the tests, the benchmarks and the
//! local demo run on, started on loopback with one call.
//!
//! Nothing here is a fake. [`TestCluster`] is a kube-apiserver backed by etcd,
//! with a kube-controller-manager running the garbage collector and the
//! namespace controller; [`TestS3`] is a MinIO server; [`FuseMount`] mounts a
//! real FUSE filesystem through `/dev/fuse`. The Go binaries are built from
//! the Go module proxy by `tests/scripts/build-platform.sh` and cached under
//! `~/.cache/cos-secrets-sync/bin` (see `docs/development.md`).
//!
//! Start-up is paid once per test binary ([`TestCluster::shared`],
//! [`TestS3::shared`]); isolation is per test: a fresh namespace
//! ([`TestCluster::namespace`]) or bucket ([`TestS3::bucket`]) each.
//!
//! Every service runs under a small supervisor that kills it and removes its
//! data directory when the test process exits, however it exits (see
//! [`process`]), so a panicking test leaves no orphan behind.
//!
//! # Layout
//! - [`binaries`]: finds (and on first use builds) the pinned Go binaries.
//! - [`process`]: supervised child processes, free ports, readiness waits.
//! - [`pki`]: the throwaway CA, serving certificate and service-account key.
//! - [`kube`]: etcd + kube-apiserver + kube-controller-manager, kubeconfig, namespaces.
//! - [`s3`]: MinIO, buckets, access keys.
//! - [`fuse`]: mounting helpers that wait for the mount and always unmount.

pub mod binaries;
pub mod fuse;
pub mod kube;
pub mod pki;
pub mod process;
pub mod s3;

pub use crate::fuse::FuseMount;
pub use crate::kube::{TestCluster, TestNamespace};
pub use crate::s3::{AccessKey, TestBucket, TestS3};

/// What can go wrong while bringing the platform up or using it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A pinned binary could not be found or built.
    #[error("could not provide binary {name}: {reason}")]
    Binary { name: String, reason: String },
    /// A process could not be started.
    #[error("could not start {name}")]
    Spawn {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// A service did not become ready in time; its log tail is included.
    #[error("{name} did not become ready within {waited:?}; last log lines:\n{log_tail}")]
    NotReady { name: String, waited: std::time::Duration, log_tail: String },
    /// A service process exited on its own.
    #[error("{name} exited early ({status}); last log lines:\n{log_tail}")]
    Exited { name: String, status: String, log_tail: String },
    /// Local file system work (data directories, certificates) failed.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed")]
    Pki(#[from] rcgen::Error),
    /// A Kubernetes API call failed.
    #[error("kubernetes API call failed: {context}")]
    Kube {
        context: String,
        #[source]
        source: ::kube::Error,
    },
    /// The kubeconfig could not be loaded into a client.
    #[error("invalid kubeconfig")]
    Kubeconfig(#[from] ::kube::config::KubeconfigError),
    /// An S3 request failed.
    #[error("S3 {operation} failed: {detail}")]
    S3 { operation: &'static str, detail: String },
    /// An HTTP request to a service failed.
    #[error("HTTP request failed")]
    Http(#[from] reqwest::Error),
    /// An admin command (e.g. `mc admin user add`) failed.
    #[error("`{command}` failed: {stderr}")]
    Command { command: String, stderr: String },
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io_context(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
