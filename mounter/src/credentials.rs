//! The bucket credentials: parsed from the `ibm/ibmc-s3fs` Secret the
//! controller syncs, watched for changes and swapped atomically.
//!
//! The Secret reaches the mounter in one of two ways:
//!
//! - as a directory of files (the Secret mounted as a volume), polled every
//!   few seconds; the kubelet swaps the whole directory through its `..data`
//!   symlink, so one read sees one consistent version;
//! - through the Kubernetes API, watching one named Secret.
//!
//! Keys follow the COS plug-in (reference section 6.2): `api-key` selects IAM
//! mode (with `service-instance-id`, required as the provisioner requires it);
//! otherwise `access-key` and `secret-key` are HMAC keys. Values are trimmed
//! of surrounding whitespace, since hand-made Secrets often end in a newline.
//!
//! Requests read [`CredentialStore::current`] once; a swap never disturbs a
//! request in flight. A request refused with 403 calls
//! [`CredentialStore::reload`] and retries once, which covers the window
//! between the server revoking the old key and the watcher noticing the new.

mod iam;
mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use secrecy::{ExposeSecret as _, SecretString};

pub use self::iam::{IamError, IamTokens};
pub use self::watch::spawn_watcher;
use crate::metrics::Metrics;

/// Secret key naming the HMAC access key id.
pub const ACCESS_KEY: &str = "access-key";
/// Secret key naming the HMAC secret access key.
pub const SECRET_KEY: &str = "secret-key";
/// Secret key naming the IAM API key.
pub const API_KEY: &str = "api-key";
/// Secret key naming the COS service instance id (IAM mode).
pub const SERVICE_INSTANCE_ID: &str = "service-instance-id";

const IAM_MODE: &str = "IAM mode, because `api-key` is present";
const HMAC_MODE: &str = "HMAC mode, because `api-key` is absent";

/// What can go wrong while reading credentials.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// A required key is absent from the Secret.
    #[error("the credentials have no `{key}` key ({mode})")]
    MissingKey {
        /// The missing key.
        key: &'static str,
        /// Which mode required it.
        mode: &'static str,
    },
    /// A value is not UTF-8.
    #[error("the `{key}` value is not UTF-8")]
    NotUtf8 {
        /// The offending key.
        key: &'static str,
    },
    /// The credentials directory could not be read.
    #[error("cannot read credentials file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The Secret could not be read from the Kubernetes API.
    #[error("cannot read Secret {namespace}/{name}")]
    Kube {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The IAM token exchange failed.
    #[error(transparent)]
    Iam(#[from] IamError),
}

/// One version of the credentials.
#[derive(Clone)]
pub enum Credentials {
    /// HMAC keys, used to sign requests with SigV4.
    Hmac {
        /// The access key id (not secret, logged).
        access_key: String,
        /// The secret access key.
        secret_key: SecretString,
    },
    /// An IBM Cloud IAM API key, exchanged for bearer tokens.
    Iam {
        /// The API key.
        api_key: SecretString,
        /// The COS instance, sent as `ibm-service-instance-id`.
        service_instance_id: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Hmac { access_key, .. } => f
                .debug_struct("Hmac")
                .field("access_key", access_key)
                .field("secret_key", &"[REDACTED]")
                .finish(),
            Self::Iam { service_instance_id, .. } => f
                .debug_struct("Iam")
                .field("api_key", &"[REDACTED]")
                .field("service_instance_id", service_instance_id)
                .finish(),
        }
    }
}

impl PartialEq for Credentials {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Hmac { access_key: a, secret_key: s }, Self::Hmac { access_key: b, secret_key: t }) => {
                a == b && s.expose_secret() == t.expose_secret()
            }
            (
                Self::Iam { api_key: a, service_instance_id: s },
                Self::Iam { api_key: b, service_instance_id: t },
            ) => a.expose_secret() == b.expose_secret() && s == t,
            _ => false,
        }
    }
}

impl Credentials {
    /// Parses the Secret's data, given as key → raw value.
    pub fn from_data(data: &BTreeMap<String, Vec<u8>>) -> Result<Self, CredentialsError> {
        let text = |key: &'static str| -> Result<Option<String>, CredentialsError> {
            data.get(key)
                .map(|raw| {
                    std::str::from_utf8(raw)
                        .map(|value| value.trim().to_owned())
                        .map_err(|_| CredentialsError::NotUtf8 { key })
                })
                .transpose()
        };
        let required = |key: &'static str, mode: &'static str| {
            text(key)?.ok_or(CredentialsError::MissingKey { key, mode })
        };
        if let Some(api_key) = text(API_KEY)? {
            return Ok(Self::Iam {
                api_key: api_key.into(),
                service_instance_id: required(SERVICE_INSTANCE_ID, IAM_MODE)?,
            });
        }
        Ok(Self::Hmac {
            access_key: required(ACCESS_KEY, HMAC_MODE)?,
            secret_key: required(SECRET_KEY, HMAC_MODE)?.into(),
        })
    }

    /// Reads the credential files of a Secret volume.
    pub fn from_dir(dir: &Path) -> Result<Self, CredentialsError> {
        let mut data = BTreeMap::new();
        for key in [ACCESS_KEY, SECRET_KEY, API_KEY, SERVICE_INSTANCE_ID] {
            let path = dir.join(key);
            match std::fs::read(&path) {
                Ok(value) => {
                    data.insert(key.to_owned(), value);
                }
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(CredentialsError::Read { path, source }),
            }
        }
        Self::from_data(&data)
    }

    /// A short label for logs: the mode and, for HMAC, the access key id.
    pub fn describe(&self) -> String {
        match self {
            Self::Hmac { access_key, .. } => format!("hmac:{access_key}"),
            Self::Iam { .. } => "iam".to_owned(),
        }
    }
}

/// Where the credentials come from.
#[derive(Clone)]
pub enum Source {
    /// A directory holding one file per key.
    Dir(PathBuf),
    /// One Secret read through the Kubernetes API.
    Secret {
        /// The API handle, scoped to the Secret's namespace.
        api: Box<kube::Api<k8s_openapi::api::core::v1::Secret>>,
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
    /// Fixed credentials (tests).
    Fixed(Credentials),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "Dir({})", dir.display()),
            Self::Secret { namespace, name, .. } => write!(f, "Secret({namespace}/{name})"),
            Self::Fixed(credentials) => f.debug_tuple("Fixed").field(credentials).finish(),
        }
    }
}

impl Source {
    /// Reads the credentials once.
    pub async fn read(&self) -> Result<Credentials, CredentialsError> {
        match self {
            Self::Dir(dir) => {
                let dir = dir.clone();
                tokio::task::spawn_blocking(move || Credentials::from_dir(&dir))
                    .await
                    .expect("reading credential files does not panic")
            }
            Self::Secret { api, namespace, name } => {
                let secret = api.get(name).await.map_err(|source| CredentialsError::Kube {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    source,
                })?;
                Credentials::from_data(&secret_data(&secret))
            }
            Self::Fixed(credentials) => Ok(credentials.clone()),
        }
    }
}

/// The data of a Secret as key → raw bytes.
pub(crate) fn secret_data(secret: &k8s_openapi::api::core::v1::Secret) -> BTreeMap<String, Vec<u8>> {
    secret.data.iter().flatten().map(|(key, value)| (key.clone(), value.0.clone())).collect()
}

/// The current credentials, swapped atomically when the source changes.
#[derive(Debug)]
pub struct CredentialStore {
    source: Source,
    current: RwLock<Arc<Credentials>>,
    reload_lock: tokio::sync::Mutex<()>,
    metrics: Metrics,
}

impl CredentialStore {
    /// Reads the source once; fails if the credentials are unusable.
    pub async fn load(source: Source, metrics: Metrics) -> Result<Arc<Self>, CredentialsError> {
        let credentials = source.read().await?;
        tracing::info!(credentials = %credentials.describe(), source = ?source, "credentials loaded");
        Ok(Arc::new(Self {
            source,
            current: RwLock::new(Arc::new(credentials)),
            reload_lock: tokio::sync::Mutex::new(()),
            metrics,
        }))
    }

    /// The credentials to use for the next request.
    pub fn current(&self) -> Arc<Credentials> {
        self.current.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The source the credentials come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// Installs `credentials` if they differ from the current ones; returns
    /// whether they did.
    pub fn swap(&self, credentials: Credentials) -> bool {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if **current == credentials {
            return false;
        }
        tracing::info!(
            from = %current.describe(),
            to = %credentials.describe(),
            "credentials changed; new requests use the new ones"
        );
        *current = Arc::new(credentials);
        self.metrics.credential_reload();
        true
    }

    /// Re-reads the source now (after a 403). Concurrent callers share one
    /// read. Returns the credentials to retry with.
    pub async fn reload(&self, refused: &Arc<Credentials>) -> Result<Arc<Credentials>, CredentialsError> {
        let _guard = self.reload_lock.lock().await;
        let current = self.current();
        if !Arc::ptr_eq(&current, refused) {
            // Another caller (or the watcher) already swapped.
            return Ok(current);
        }
        let fresh = self.source.read().await?;
        self.swap(fresh);
        Ok(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn hmac_keys_are_parsed_and_trimmed() {
        let credentials =
            Credentials::from_data(&data(&[("access-key", "AK\n"), ("secret-key", " SK \n")])).unwrap();
        let Credentials::Hmac { access_key, secret_key } = credentials else { panic!("not HMAC") };
        assert_eq!(access_key, "AK");
        assert_eq!(secret_key.expose_secret(), "SK");
    }

    #[test]
    fn api_key_selects_iam_mode_and_requires_the_instance_id() {
        let error =
            Credentials::from_data(&data(&[("api-key", "k"), ("access-key", "a"), ("secret-key", "s")]))
                .unwrap_err();
        assert!(error.to_string().contains("`service-instance-id`"), "{error}");
        let credentials =
            Credentials::from_data(&data(&[("api-key", "k"), ("service-instance-id", "crn:1")])).unwrap();
        assert!(
            matches!(credentials, Credentials::Iam { ref service_instance_id, .. } if service_instance_id == "crn:1")
        );
    }

    #[test]
    fn missing_hmac_keys_are_named() {
        let error = Credentials::from_data(&data(&[("access-key", "a")])).unwrap_err();
        assert!(error.to_string().contains("no `secret-key` key"), "{error}");
        let error = Credentials::from_data(&BTreeMap::new()).unwrap_err();
        assert!(error.to_string().contains("no `access-key` key"), "{error}");
    }

    #[test]
    fn debug_is_redacted() {
        let hmac =
            Credentials::from_data(&data(&[("access-key", "AKID"), ("secret-key", "hunter2")])).unwrap();
        let iam =
            Credentials::from_data(&data(&[("api-key", "topsecret"), ("service-instance-id", "i")])).unwrap();
        let shown = format!("{hmac:?} {iam:?} {:?}", Source::Fixed(hmac.clone()));
        assert!(!shown.contains("hunter2") && !shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("AKID"));
    }

    #[test]
    fn files_of_a_secret_volume_are_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("access-key"), "AK").unwrap();
        std::fs::write(dir.path().join("secret-key"), "SK").unwrap();
        let credentials = Credentials::from_dir(dir.path()).unwrap();
        assert_eq!(credentials.describe(), "hmac:AK");
        std::fs::remove_file(dir.path().join("secret-key")).unwrap();
        assert!(matches!(
            Credentials::from_dir(dir.path()),
            Err(CredentialsError::MissingKey { key: "secret-key", .. })
        ));
    }

    #[tokio::test]
    async fn reload_swaps_once_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("access-key"), "old").unwrap();
        std::fs::write(dir.path().join("secret-key"), "s").unwrap();
        let metrics = Metrics::default();
        let store = CredentialStore::load(Source::Dir(dir.path().to_owned()), metrics.clone()).await.unwrap();
        let refused = store.current();
        std::fs::write(dir.path().join("access-key"), "new").unwrap();
        let fresh = store.reload(&refused).await.unwrap();
        assert_eq!(fresh.describe(), "hmac:new");
        // A second caller refused with the old credentials gets the new ones without a re-read.
        assert!(Arc::ptr_eq(&store.reload(&refused).await.unwrap(), &fresh));
        assert_eq!(metrics.credential_reloads(), 1);
    }
}
