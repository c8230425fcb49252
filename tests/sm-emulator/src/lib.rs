//! Emulator of IBM Cloud Secrets Manager v2 and the IAM token service, for tests,
//! benchmarks and the local demo (IBM Cloud is unreachable from CI).
//!
//! It follows `shared/reference/secrets-manager-api.md` sections 1–3: the same paths, JSON
//! field names, status codes and error containers. One listener serves `/api/v2/…`,
//! `/identity/token` and the emulator's own `/__admin/…`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sm_emulator::{Emulator, EmulatorConfig};
//! let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! let secret = emulator
//!     .store()
//!     .create_secret(serde_json::json!({"secret_type": "arbitrary", "name": "db", "payload": "s3cr3t"}))
//!     .unwrap();
//! println!("{} {}", emulator.url(), secret["id"]);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`EmulatorConfig`], trusted profiles and CR token sources.
//! - `server`: [`Emulator`], the running server and its router.
//! - `routes`: the `/api/v2` handlers behind the admission and auth layers.
//! - `iam`: `/identity/token` and access tokens.
//! - [`store`]: secrets, versions and groups; listing, patching, seeding.
//! - `secret_type`: the nine secret types and how their values are made.
//! - `rate_limit`, `stats`, `faults`, `admin`: throttling, accounting, fault injection.
//! - `error`: the IBM error container; `body`, `generate`: helpers.

mod admin;
mod body;
pub mod config;
mod error;
mod faults;
mod generate;
mod iam;
mod rate_limit;
mod routes;
mod secret_type;
mod server;
mod stats;
pub mod store;

pub use config::{CrTokenSource, EmulatorConfig, TrustedProfile};
pub use faults::{Faults, FaultsError};
pub use iam::{GRANT_APIKEY, GRANT_CR_TOKEN};
pub use secret_type::SecretType;
pub use server::Emulator;
pub use stats::{RequestStats, SecondBucket};
pub use store::{SeedError, Store, StoreError};
