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

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not at the first poll: a signal that arrives while mounting
/// would otherwise take its default action and kill the process. Call it
/// inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let listen = |kind: SignalKind, name: &'static str| {
        let stream = signal(kind).inspect_err(|error| tracing::warn!(%error, signal = name, "cannot listen"));
        async move {
            match stream {
                Ok(mut stream) => {
                    stream.recv().await;
                    tracing::info!(signal = name, "received");
                }
                Err(_) => std::future::pending().await,
            }
        }
    };
    let (interrupt, terminate) =
        (listen(SignalKind::interrupt(), "SIGINT"), listen(SignalKind::terminate(), "SIGTERM"));
    async move {
        tokio::select! {
            () = interrupt => {}
            () = terminate => {}
        }
    }
}
