//! A FUSE mounter for Cloud Object Storage buckets (any S3-compatible
//! endpoint) that picks up rotated credentials without a remount.
//!
//! # Layout
//! - [`cli`]: the command line (`mount`, `agent`), converted to config structs.
//! - [`mount`]: one mount from start to clean unmount; [`agent`] runs several
//!   from a YAML file.
//! - [`fs`]: the async filesystem core, independent of FUSE, with
//!   [`fs::error`] holding the one errno mapping.
//! - [`fuse`]: the thin `fuser` adapter.
//! - [`inode`], [`prefetch`], [`upload`], [`staging`]: the inode table,
//!   sequential-read prefetching, streaming multipart uploads, and local
//!   staging of files changed in place.
//! - [`store`]: the object store trait, the S3 client and an in-memory store.
//! - [`credentials`]: the `ibm/ibmc-s3fs` credentials, watched and swapped.
//! - [`metrics`], [`logging`]: telemetry.

pub mod agent;
pub mod cli;
pub mod credentials;
pub mod fs;
pub mod fuse;
pub mod inode;
pub mod logging;
pub mod metrics;
pub mod mount;
pub mod prefetch;
pub mod staging;
pub mod store;
pub mod upload;

use std::fmt::Write as _;

/// Formats an error with its whole `source` chain: `a: b: c`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let _ = write!(text, ": {cause}");
        source = cause.source();
    }
    text
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        () = terminate => tracing::info!("SIGTERM received"),
    }
}
