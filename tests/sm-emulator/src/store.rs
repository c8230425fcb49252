//! The state of one emulated instance: secrets, their versions, and secret groups.
//!
//! [`Store`] is what both the HTTP routes and tests use. Its public methods are synchronous
//! and count against no rate limit; tests call them to seed, rotate and delete secrets.
//! The public read methods ([`Store::secret`] and friends) only peek: they leave
//! `retrieved_at` and `downloaded` alone, unlike the API's reads.
//!
//! Parts:
//! - `model`: stored secrets and versions and their JSON forms;
//! - `validate`: the naming and size rules of reference 1.6 and 2.5;
//! - `patch`: `PATCH …/metadata` semantics;
//! - `list`: filtering, sorting and paging of `GET /api/v2/secrets`;
//! - `seed`: loading secrets from a JSON or YAML file.

pub(crate) mod list;
pub(crate) mod model;
mod patch;
mod seed;
mod validate;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::Timestamp;
use serde_json::{Value, json};

use crate::body::Body;
use crate::config::EmulatorConfig;
use crate::secret_type::{Draft, Object, SecretType};
use model::{StoredSecret, Version, format_time};

use list::ListQuery;
pub use seed::SeedError;

/// `created_by` of what the store's own methods create (no bearer token is involved).
pub const STORE_CREATOR: &str = "iam-ServiceId-00000000-0000-4000-8000-00000000e001";

/// Id and name of the group that always exists.
pub const DEFAULT_GROUP: &str = "default";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The secret, version or group does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, e.g. `secret 'b49a…'`.
        what: String,
    },
    /// The request failed validation.
    #[error("invalid field '{field}': {message}")]
    Invalid {
        /// The offending field, dotted for nested ones.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// The write conflicts with existing state, e.g. a duplicate name.
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
}

impl StoreError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { field: field.into(), message: message.into() }
    }

    pub(crate) fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }
}

/// Shared, thread-safe state of one instance. Cloning shares the state.
#[derive(Debug, Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    instance: Arc<InstanceIdentity>,
}

#[derive(Debug)]
struct InstanceIdentity {
    instance_id: String,
    region: String,
    account_id: String,
}

#[derive(Debug)]
struct Inner {
    secrets: HashMap<String, StoredSecret>,
    /// The default group first, then created groups in creation order.
    groups: Vec<Object>,
    /// Creation sequence of the next secret (the default list order).
    next_seq: u64,
}

impl Store {
    /// An empty store (only the default group) for the instance that `config` describes.
    pub fn new(config: &EmulatorConfig) -> Self {
        let now = format_time(Timestamp::now());
        let default_group = json!({
            "id": DEFAULT_GROUP,
            "name": DEFAULT_GROUP,
            "description": "The default secret group.",
            "created_at": now,
            "created_by": STORE_CREATOR,
            "updated_at": now,
        });
        Self {
            inner: Arc::new(Mutex::new(Inner {
                secrets: HashMap::new(),
                groups: vec![into_object(default_group)],
                next_seq: 0,
            })),
            instance: Arc::new(InstanceIdentity {
                instance_id: config.instance_id.clone(),
                region: config.region.clone(),
                account_id: config.account_id.clone(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Creates a secret from a create body (reference 1.11) and returns it whole, values
    /// included. Extensions: a fixed `id`, and explicit generated values (`api_key`,
    /// `credentials`, `credentials_content`, certificate PEMs).
    #[allow(clippy::needless_pass_by_value)] // Callers pass `json!(…)` literals.
    pub fn create_secret(&self, body: Value) -> Result<Value, StoreError> {
        self.create_secret_as(&body, STORE_CREATOR)
    }

    /// Creates a new version of secret `id` (a rotation) and returns it with its value.
    #[allow(clippy::needless_pass_by_value)] // Callers pass `json!(…)` literals.
    pub fn create_version(&self, id: &str, body: Value) -> Result<Value, StoreError> {
        self.create_version_as(id, &body, STORE_CREATOR)
    }

    /// Applies a metadata patch (reference 1.11) and returns the secret's metadata.
    #[allow(clippy::needless_pass_by_value)] // Callers pass `json!(…)` literals.
    pub fn update_metadata(&self, id: &str, patch: Value) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let body = Body::new(&patch)?;
        let mut updated = inner.secret(id)?.clone();
        patch::apply(&mut updated, &body)?;
        if inner
            .secrets
            .values()
            .any(|other| other.id != updated.id && other.kind == updated.kind && other.name == updated.name)
        {
            return Err(duplicate_name(updated.kind, &updated.name));
        }
        updated.updated_at = Timestamp::now();
        let metadata = updated.metadata_json();
        inner.secrets.insert(updated.id.clone(), updated);
        Ok(Value::Object(metadata))
    }

    /// Deletes secret `id`.
    pub fn delete(&self, id: &str) -> Result<(), StoreError> {
        self.lock().secrets.remove(id).map(drop).ok_or_else(|| secret_not_found(id))
    }

    /// Secret `id` with its current value, without read bookkeeping.
    pub fn secret(&self, id: &str) -> Result<Value, StoreError> {
        Ok(Value::Object(self.lock().secret(id)?.secret_json()))
    }

    /// The metadata of secret `id`.
    pub fn secret_metadata(&self, id: &str) -> Result<Value, StoreError> {
        Ok(Value::Object(self.lock().secret(id)?.metadata_json()))
    }

    /// The secret of type `secret_type` named `name` in group `group` (an id or a name;
    /// `default` is the default group), without read bookkeeping.
    pub fn secret_by_name(&self, group: &str, secret_type: &str, name: &str) -> Result<Value, StoreError> {
        let inner = self.lock();
        let id = inner.id_by_name(group, secret_type, name)?;
        Ok(Value::Object(inner.secret(&id)?.secret_json()))
    }

    /// Ids of all secrets, in creation order.
    pub fn secret_ids(&self) -> Vec<String> {
        let inner = self.lock();
        let mut secrets: Vec<&StoredSecret> = inner.secrets.values().collect();
        secrets.sort_by_key(|secret| secret.seq);
        secrets.into_iter().map(|secret| secret.id.clone()).collect()
    }

    /// Number of secrets.
    pub fn len(&self) -> usize {
        self.lock().secrets.len()
    }

    /// Whether there are no secrets.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates a secret group (2–64 character name, unique) and returns it.
    pub fn create_group(&self, name: &str, description: Option<&str>) -> Result<Value, StoreError> {
        validate::group_name(name)?;
        if let Some(description) = description {
            validate::description(description)?;
        }
        let mut inner = self.lock();
        if inner.groups.iter().any(|group| group["name"] == name) {
            return Err(StoreError::Conflict {
                message: format!("a secret group named '{name}' already exists"),
            });
        }
        let now = format_time(Timestamp::now());
        let mut group = into_object(json!({
            "id": uuid::Uuid::new_v4().to_string(),
            "name": name,
            "created_at": now,
            "created_by": STORE_CREATOR,
            "updated_at": now,
        }));
        if let Some(description) = description {
            group.insert("description".into(), json!(description));
        }
        inner.groups.push(group.clone());
        Ok(Value::Object(group))
    }

    /// All secret groups, the default group first.
    pub fn groups(&self) -> Vec<Value> {
        self.lock().groups.iter().cloned().map(Value::Object).collect()
    }

    /// Secret group `id` (`default` is the default group).
    pub fn group(&self, id: &str) -> Result<Value, StoreError> {
        self.lock()
            .groups
            .iter()
            .find(|group| group["id"] == id)
            .cloned()
            .map(Value::Object)
            .ok_or_else(|| StoreError::not_found(format!("secret group '{id}'")))
    }

    /// Creates a secret on behalf of `created_by`.
    pub(crate) fn create_secret_as(&self, body: &Value, created_by: &str) -> Result<Value, StoreError> {
        let body = Body::new(body)?;
        let kind: SecretType = body.str("secret_type")?.parse()?;
        let name = body.str("name")?;
        validate::secret_name(name)?;
        let group_id = body.opt_str("secret_group_id")?.unwrap_or(DEFAULT_GROUP);
        let common = validate::common_fields(&body)?;
        let expiration_date = if kind.accepts_expiration_date() {
            body.opt_str("expiration_date")?
                .map(|date| validate::timestamp("expiration_date", date))
                .transpose()?
        } else {
            None
        };
        let id = match body.opt_str("id")? {
            Some(id) => uuid::Uuid::parse_str(id)
                .map_err(|_| StoreError::invalid("id", "must be a UUID"))?
                .to_string(),
            None => uuid::Uuid::new_v4().to_string(),
        };
        let now = Timestamp::now();
        let draft = Draft { name, account_id: &self.instance.account_id, now };
        let data = kind.create(&body, &draft)?;

        let mut inner = self.lock();
        if !inner.groups.iter().any(|group| group["id"] == group_id) {
            return Err(StoreError::invalid(
                "secret_group_id",
                format!("secret group '{group_id}' does not exist"),
            ));
        }
        if inner.secrets.contains_key(&id) {
            return Err(StoreError::Conflict { message: format!("a secret with id '{id}' already exists") });
        }
        if inner.secrets.values().any(|other| other.kind == kind && other.name == name) {
            return Err(duplicate_name(kind, name));
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let secret = StoredSecret {
            crn: format!(
                "crn:v1:bluemix:public:secrets-manager:{}:a/{}:{}:secret:{id}",
                self.instance.region, self.instance.account_id, self.instance.instance_id
            ),
            id: id.clone(),
            seq,
            kind,
            name: name.to_owned(),
            group_id: group_id.to_owned(),
            created_by: created_by.to_owned(),
            created_at: now,
            updated_at: now,
            retrieved_at: None,
            description: common.description,
            labels: common.labels.unwrap_or_default(),
            custom_metadata: common.custom_metadata.unwrap_or_default(),
            expiration_date: data.expiration_date.or(expiration_date),
            attributes: data.attributes,
            versions: vec![Version {
                id: uuid::Uuid::new_v4().to_string(),
                created_by: created_by.to_owned(),
                created_at: now,
                downloaded: false,
                values: Some(data.values),
                meta: data.version_meta,
                custom_metadata: common.version_custom_metadata.unwrap_or_default(),
            }],
        };
        let json = secret.secret_json();
        inner.secrets.insert(id, secret);
        Ok(Value::Object(json))
    }

    /// Creates a version of secret `id` on behalf of `created_by`.
    pub(crate) fn create_version_as(
        &self,
        id: &str,
        body: &Value,
        created_by: &str,
    ) -> Result<Value, StoreError> {
        let body = Body::new(body)?;
        let common = validate::common_fields(&body)?;
        let mut inner = self.lock();
        let secret = inner.secret_mut(id)?;
        let now = Timestamp::now();
        let draft = Draft { name: &secret.name, account_id: &self.instance.account_id, now };
        let data = secret.kind.rotate(secret, &body, &draft)?;
        secret.push_version(Version {
            id: uuid::Uuid::new_v4().to_string(),
            created_by: created_by.to_owned(),
            created_at: now,
            downloaded: false,
            values: Some(data.values),
            meta: data.version_meta,
            custom_metadata: common.version_custom_metadata.unwrap_or_default(),
        });
        if let Some(custom_metadata) = common.custom_metadata {
            secret.custom_metadata = custom_metadata;
        }
        secret.attributes = data.attributes;
        secret.expiration_date = data.expiration_date;
        // Reference 1.11 leaves this UNCONFIRMED and infers that a rotation moves
        // `updated_at`; the emulator follows that inference.
        secret.updated_at = now;
        Ok(Value::Object(secret.version_json(secret.versions.len() - 1)))
    }

    /// `GET /secrets/{id}`: the secret with its value, recording the read.
    pub(crate) fn read_secret(&self, id: &str) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let secret = inner.secret_mut(id)?;
        let index = secret.versions.len() - 1;
        record_value_read(secret, index);
        Ok(Value::Object(secret.secret_json()))
    }

    /// `GET /secret_groups/{group}/secret_types/{type}/secrets/{name}`, recording the read.
    pub(crate) fn read_secret_by_name(
        &self,
        group: &str,
        secret_type: &str,
        name: &str,
    ) -> Result<Value, StoreError> {
        let id = self.lock().id_by_name(group, secret_type, name)?;
        self.read_secret(&id)
    }

    /// `GET /secrets/{id}/versions/{version}`: the version with its value, recording the read.
    pub(crate) fn read_version(&self, id: &str, version: &str) -> Result<Value, StoreError> {
        let mut inner = self.lock();
        let secret = inner.secret_mut(id)?;
        let index = version_index(secret, version)?;
        record_value_read(secret, index);
        Ok(Value::Object(secret.version_json(index)))
    }

    /// `GET /secrets/{id}/versions/{version}/metadata`.
    pub(crate) fn version_metadata(&self, id: &str, version: &str) -> Result<Value, StoreError> {
        let inner = self.lock();
        let secret = inner.secret(id)?;
        let index = version_index(secret, version)?;
        Ok(Value::Object(secret.version_metadata_json(index)))
    }

    /// `PATCH /secrets/{id}/versions/{version}/metadata`: changes `version_custom_metadata`.
    pub(crate) fn update_version_metadata(
        &self,
        id: &str,
        version: &str,
        patch: &Value,
    ) -> Result<Value, StoreError> {
        let body = Body::new(patch)?;
        let mut inner = self.lock();
        let secret = inner.secret_mut(id)?;
        let index = version_index(secret, version)?;
        patch::apply_version(&mut secret.versions[index], &body)?;
        Ok(Value::Object(secret.version_metadata_json(index)))
    }

    /// `GET /secrets/{id}/versions`: metadata of every version, oldest first.
    pub(crate) fn versions(&self, id: &str) -> Result<Vec<Value>, StoreError> {
        let inner = self.lock();
        let secret = inner.secret(id)?;
        Ok((0..secret.versions.len())
            .map(|index| Value::Object(secret.version_metadata_json(index)))
            .collect())
    }

    /// `GET /secrets`: the total count and the requested page of secret metadata.
    pub(crate) fn list(&self, query: &ListQuery) -> (usize, Vec<Value>) {
        let inner = self.lock();
        query.apply(inner.secrets.values())
    }
}

impl Inner {
    fn secret(&self, id: &str) -> Result<&StoredSecret, StoreError> {
        self.secrets.get(id).ok_or_else(|| secret_not_found(id))
    }

    fn secret_mut(&mut self, id: &str) -> Result<&mut StoredSecret, StoreError> {
        self.secrets.get_mut(id).ok_or_else(|| secret_not_found(id))
    }

    fn id_by_name(&self, group: &str, secret_type: &str, name: &str) -> Result<String, StoreError> {
        let kind: SecretType = secret_type.parse()?;
        let group_id = self
            .groups
            .iter()
            .find(|candidate| candidate["id"] == group || candidate["name"] == group)
            .and_then(|candidate| candidate["id"].as_str())
            .ok_or_else(|| StoreError::not_found(format!("secret group '{group}'")))?;
        self.secrets
            .values()
            .find(|secret| secret.kind == kind && secret.name == name && secret.group_id == group_id)
            .map(|secret| secret.id.clone())
            .ok_or_else(|| StoreError::not_found(format!("{kind} secret '{name}' in secret group '{group}'")))
    }
}

fn version_index(secret: &StoredSecret, version: &str) -> Result<usize, StoreError> {
    secret
        .version_index(version)
        .ok_or_else(|| StoreError::not_found(format!("version '{version}' of secret '{}'", secret.id)))
}

/// Records that the value of version `index` was read (`retrieved_at`, `downloaded`).
fn record_value_read(secret: &mut StoredSecret, index: usize) {
    if secret.versions[index].values.is_none() {
        return;
    }
    if index + 1 == secret.versions.len() {
        let kind = secret.kind;
        kind.on_value_read(secret);
    }
    secret.versions[index].downloaded = true;
    secret.retrieved_at = Some(Timestamp::now());
}

fn secret_not_found(id: &str) -> StoreError {
    StoreError::not_found(format!("secret '{id}'"))
}

fn duplicate_name(kind: SecretType, name: &str) -> StoreError {
    StoreError::Conflict {
        message: format!("a {kind} secret named '{name}' already exists in this instance"),
    }
}

fn into_object(value: Value) -> Object {
    match value {
        Value::Object(object) => object,
        _ => unreachable!("built from an object literal"),
    }
}
