//! Stored secrets and versions, and their JSON forms (reference 1.6, 1.7 and 1.9).

use std::fmt;

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::secret_type::{Object, SecretType};

/// Formats a time the way the service does: RFC 3339, UTC, milliseconds.
pub(crate) fn format_time(time: Timestamp) -> String {
    format!("{time:.3}")
}

/// One secret and its version history.
#[derive(Debug, Clone)]
pub(crate) struct StoredSecret {
    pub(crate) id: String,
    /// Creation sequence number: the default list order.
    pub(crate) seq: u64,
    pub(crate) kind: SecretType,
    pub(crate) name: String,
    pub(crate) group_id: String,
    pub(crate) crn: String,
    pub(crate) created_by: String,
    pub(crate) created_at: Timestamp,
    pub(crate) updated_at: Timestamp,
    /// When a value was last read; `None` shows as the epoch.
    pub(crate) retrieved_at: Option<Timestamp>,
    pub(crate) description: Option<String>,
    pub(crate) labels: Vec<String>,
    pub(crate) custom_metadata: Object,
    pub(crate) expiration_date: Option<String>,
    /// Type-specific non-value fields (`ttl`, `source_service`, `rotation`, …).
    pub(crate) attributes: Object,
    /// Oldest first; never empty.
    pub(crate) versions: Vec<Version>,
}

/// One version of a secret. Its `Debug` leaves out the values.
#[derive(Clone)]
pub(crate) struct Version {
    pub(crate) id: String,
    pub(crate) created_by: String,
    pub(crate) created_at: Timestamp,
    pub(crate) downloaded: bool,
    /// The value fields; `None` once the version is older than `previous`.
    pub(crate) values: Option<Object>,
    /// Type-specific version metadata (`api_key_id`, `validity`, `resource_key`, …).
    pub(crate) meta: Object,
    pub(crate) custom_metadata: Object,
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Version")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("downloaded", &self.downloaded)
            .field("has_values", &self.values.is_some())
            .field("meta", &self.meta)
            .finish_non_exhaustive()
    }
}

/// Which versions keep their data: `current` and `previous` (reference 1.11).
const VERSIONS_WITH_DATA: usize = 2;

impl StoredSecret {
    /// The newest version.
    pub(crate) fn current_version(&self) -> &Version {
        self.versions.last().expect("a secret has at least one version")
    }

    /// The newest version, mutably.
    pub(crate) fn current_version_mut(&mut self) -> &mut Version {
        self.versions.last_mut().expect("a secret has at least one version")
    }

    /// Whether any version's value has been read.
    pub(crate) fn downloaded(&self) -> bool {
        self.retrieved_at.is_some()
    }

    /// Appends a version, which becomes `current`; versions older than `previous` lose
    /// their data.
    pub(crate) fn push_version(&mut self, version: Version) {
        self.versions.push(version);
        let keep_from = self.versions.len().saturating_sub(VERSIONS_WITH_DATA);
        for old in &mut self.versions[..keep_from] {
            old.values = None;
        }
    }

    /// Finds a version by id or by the alias `current` or `previous`.
    pub(crate) fn version_index(&self, id: &str) -> Option<usize> {
        let len = self.versions.len();
        match id {
            "current" => Some(len - 1),
            "previous" => len.checked_sub(2),
            _ => self.versions.iter().position(|version| version.id == id),
        }
    }

    /// `SecretMetadata`: every field except the values.
    pub(crate) fn metadata_json(&self) -> Object {
        let mut out = Object::new();
        out.insert("id".into(), json!(self.id));
        out.insert("name".into(), json!(self.name));
        out.insert("secret_type".into(), json!(self.kind.as_str()));
        out.insert("secret_group_id".into(), json!(self.group_id));
        out.insert("crn".into(), json!(self.crn));
        out.insert("created_by".into(), json!(self.created_by));
        out.insert("created_at".into(), json!(format_time(self.created_at)));
        out.insert("updated_at".into(), json!(format_time(self.updated_at)));
        out.insert(
            "retrieved_at".into(),
            json!(format_time(self.retrieved_at.unwrap_or(Timestamp::UNIX_EPOCH))),
        );
        out.insert("downloaded".into(), json!(self.downloaded()));
        out.insert("versions_total".into(), json!(self.versions.len()));
        out.insert("locks_total".into(), json!(0));
        out.insert("labels".into(), json!(self.labels));
        if let Some(description) = &self.description {
            out.insert("description".into(), json!(description));
        }
        out.insert("custom_metadata".into(), Value::Object(self.custom_metadata.clone()));
        out.insert("state".into(), json!(1));
        out.insert("state_description".into(), json!("active"));
        if let Some(expiration) = &self.expiration_date {
            out.insert("expiration_date".into(), json!(expiration));
        }
        out.extend(self.attributes.clone());
        let current = self.current_version();
        for field in self.kind.version_fields_on_secret() {
            if let Some(value) = current.meta.get(*field) {
                out.insert((*field).to_owned(), value.clone());
            }
        }
        out
    }

    /// `Secret`: the metadata plus the current version's values.
    pub(crate) fn secret_json(&self) -> Object {
        let mut out = self.metadata_json();
        if let Some(values) = &self.current_version().values {
            out.extend(values.clone());
        }
        out
    }

    /// `SecretVersionMetadata` of the version at `index`.
    pub(crate) fn version_metadata_json(&self, index: usize) -> Object {
        let version = &self.versions[index];
        let mut out = Object::new();
        out.insert("id".into(), json!(version.id));
        out.insert("secret_id".into(), json!(self.id));
        out.insert("secret_name".into(), json!(self.name));
        out.insert("secret_type".into(), json!(self.kind.as_str()));
        out.insert("secret_group_id".into(), json!(self.group_id));
        out.insert("created_by".into(), json!(version.created_by));
        out.insert("created_at".into(), json!(format_time(version.created_at)));
        out.insert("auto_rotated".into(), json!(false));
        out.insert("downloaded".into(), json!(version.downloaded));
        out.insert("payload_available".into(), json!(version.values.is_some()));
        let len = self.versions.len();
        if index + 1 == len {
            out.insert("alias".into(), json!("current"));
        } else if index + 2 == len {
            out.insert("alias".into(), json!("previous"));
        }
        out.insert("version_custom_metadata".into(), Value::Object(version.custom_metadata.clone()));
        if let Some(expiration) = &self.expiration_date {
            out.insert("expiration_date".into(), json!(expiration));
        }
        out.extend(version.meta.clone());
        out
    }

    /// `SecretVersion`: the version metadata plus its values, when it still has them.
    pub(crate) fn version_json(&self, index: usize) -> Object {
        let mut out = self.version_metadata_json(index);
        if let Some(values) = &self.versions[index].values {
            out.extend(values.clone());
        }
        out
    }
}
