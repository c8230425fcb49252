//! Preloading secrets from a JSON or YAML file (`--seed`).
//!
//! The file holds either a list of create bodies (reference 1.11) or an object whose
//! `secrets` key holds that list. A body may carry a fixed `id` and explicit generated
//! values (see [`Store::create_secret`]).

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{Store, StoreError};

/// Why a seed file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeedError {
    /// The file could not be read.
    #[error("cannot read seed file {path}")]
    Read {
        /// The seed file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is neither JSON nor YAML of the expected shape.
    #[error("seed file {path} is not a list of secrets in JSON or YAML")]
    Parse {
        /// The seed file.
        path: PathBuf,
        /// The parse failure, when there was one.
        #[source]
        source: Option<serde_yaml::Error>,
    },
    /// One secret was refused.
    #[error("seed file {path}: secret #{index} was refused")]
    Secret {
        /// The seed file.
        path: PathBuf,
        /// Position of the secret in the list, from 0.
        index: usize,
        /// Why the store refused it.
        #[source]
        source: StoreError,
    },
}

impl Store {
    /// Creates every secret listed in the seed file at `path`; returns how many.
    pub fn load_seed(&self, path: &Path) -> Result<usize, SeedError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SeedError::Read { path: path.to_owned(), source })?;
        // YAML 1.2 is a superset of JSON, so one parser reads both.
        let document: Value = serde_yaml::from_str(&text)
            .map_err(|source| SeedError::Parse { path: path.to_owned(), source: Some(source) })?;
        let secrets = match document {
            Value::Array(secrets) => secrets,
            Value::Object(mut object) => match object.remove("secrets") {
                Some(Value::Array(secrets)) => secrets,
                _ => {
                    return Err(SeedError::Parse { path: path.to_owned(), source: None });
                }
            },
            _ => {
                return Err(SeedError::Parse { path: path.to_owned(), source: None });
            }
        };
        let count = secrets.len();
        for (index, body) in secrets.into_iter().enumerate() {
            self.create_secret(body).map_err(|source| SeedError::Secret {
                path: path.to_owned(),
                index,
                source,
            })?;
        }
        Ok(count)
    }
}
