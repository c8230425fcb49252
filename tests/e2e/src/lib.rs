//! End-to-end runs of both programs, as separate processes, on the local
//! platform (`test-platform`) with the Secrets Manager emulator.
//!
//! # Layout
//! - [`programs`]: starts the controller and the mounter binaries.
//! - [`demo`]: the local demo: an ExternalSecret becomes a COS credential
//!   Secret, the mounter mounts the bucket with it, and a rotation goes
//!   through without a remount.
//! - [`scale`]: the scale benchmark, the controller against a KES-like
//!   poller at thousands of ExternalSecrets.

pub mod demo;
pub mod programs;
pub mod scale;
