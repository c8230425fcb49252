//! Turns an ExternalSecret into the Secret it asks for, without I/O.
//!
//! Two pure steps bracket the Secrets Manager calls of a reconcile:
//!
//! 1. [`plan`] validates the spec and lists the remote secrets to read,
//!    each once: entries naming the same remote secret share one fetch.
//! 2. [`materialize`] picks each entry's value out of the fetched secrets
//!    and builds the [`DesiredSecret`]: data, type, labels, annotations and a
//!    data hash.
//!
//! Every error names the offending field (`spec.data[1].secretType`) and the
//! remote key, never a value, so its message can go to status and events.
//!
//! Rules, with the KES behaviour they follow or replace documented in
//! `docs/migration-from-kes.md`:
//!
//! - `data` is applied after `dataFrom`, and `template.data` sits under
//!   both: a later source overwrites an earlier key.
//! - The type is `template.type`, else the deprecated `spec.type`, else
//!   `Opaque`.
//! - An `ibm/ibmc-s3fs` Secret is checked before it is written: the COS
//!   plug-in switches to IAM mode when an `api-key` key exists, even empty,
//!   so an empty `api-key`, an `api-key` without `service-instance-id`, or an
//!   HMAC Secret without both keys is refused.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::crd::{ExternalSecretSpec, IBM_BACKEND};
use crate::provider::{self, Secret, SecretBytes, SecretType};

/// The label marking a Secret as written by this controller.
pub const MANAGED_LABEL: &str = "app.kubernetes.io/managed-by";
/// The value of [`MANAGED_LABEL`].
pub const MANAGED_VALUE: &str = "cos-secrets-sync";
/// The annotation holding the SHA-256 of the Secret's type and data.
pub const DATA_HASH_ANNOTATION: &str = "cos-secrets-sync/data-hash";
/// With change detection, the annotation recording the version of every
/// remote secret the Secret was built from (secret ids, version counts,
/// update times and group ids; never values), from which a restarted
/// controller resumes change detection without reading the secrets again
/// (see `changes::encode_reads`).
pub const VERSIONS_ANNOTATION: &str = "cos-secrets-sync/versions";
/// The Secret type of the IBM Cloud Object Storage plug-in.
pub const COS_SECRET_TYPE: &str = "ibm/ibmc-s3fs";
/// The secret group used by `keyByName` keys without a `/`.
pub const DEFAULT_GROUP: &str = "default";

/// Why an ExternalSecret cannot be materialized. Every variant names a field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `spec.backendType` is not `ibmcloudSecretsManager`.
    #[error("spec.backendType `{backend}` is not supported; only `ibmcloudSecretsManager` is")]
    UnsupportedBackend {
        /// The backend asked for (cut to 64 characters).
        backend: String,
    },

    /// Neither `data` nor `dataFrom` has an entry.
    #[error("spec.data and spec.dataFrom are both empty")]
    NoData,

    /// A required field is absent or empty.
    #[error("{field} is required")]
    MissingField {
        /// The field, e.g. `spec.data[0].key`.
        field: String,
    },

    /// A field has a value this controller does not accept.
    #[error("{field}: {reason}")]
    InvalidField {
        /// The field, e.g. `spec.data[1].secretType`.
        field: String,
        /// Why it is refused.
        reason: String,
    },

    /// The remote secret has no value at the entry's property.
    #[error("{field}: secret {key} has no property `{property}`")]
    MissingProperty {
        /// The field, e.g. `spec.data[1].property`.
        field: String,
        /// The remote key.
        key: String,
        /// The property asked for.
        property: String,
    },

    /// The remote secret is of another type than the entry says.
    #[error("{field}: secret {key} is of type {actual}, not {expected}")]
    TypeMismatch {
        /// The field, `spec.data[i].secretType`.
        field: String,
        /// The remote key.
        key: String,
        /// The type in the spec.
        expected: SecretType,
        /// The type Secrets Manager reports.
        actual: SecretType,
    },

    /// An `isBinary` value, a `template.data` value or a `dataFrom` value
    /// does not decode.
    #[error("{field}: the value of {key} {reason}")]
    InvalidValue {
        /// The field, e.g. `spec.data[0].isBinary`.
        field: String,
        /// The remote key, or the template data key.
        key: String,
        /// What is wrong, never the value itself.
        reason: &'static str,
    },

    /// The `ibm/ibmc-s3fs` Secret would be unusable or would switch the
    /// plug-in to the wrong mode.
    #[error("spec.template.type ibm/ibmc-s3fs: {reason}")]
    InvalidCosSecret {
        /// What is wrong.
        reason: &'static str,
    },
}

impl Error {
    /// The `Ready` condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnsupportedBackend { .. } => "UnsupportedBackend",
            _ => "InvalidSpec",
        }
    }

    /// A bounded metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::UnsupportedBackend { .. } => "unsupported_backend",
            Self::MissingProperty { .. } => "missing_property",
            _ => "invalid_spec",
        }
    }
}

/// A remote secret to read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RemoteRef {
    /// By id (`GET /api/v2/secrets/{id}`).
    Id(String),
    /// By group, type and name.
    Name {
        /// The secret group name or id.
        group: String,
        /// The secret type.
        secret_type: SecretType,
        /// The secret name.
        name: String,
    },
}

impl RemoteRef {
    /// The key as written in the spec, for messages.
    pub fn key(&self) -> String {
        match self {
            Self::Id(id) => id.clone(),
            Self::Name { group, name, .. } => format!("{group}/{name}"),
        }
    }
}

/// Where a source's value goes.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Target {
    /// One Secret key (a `data` entry).
    Key(String),
    /// Every top-level key of a JSON object (a `dataFrom` entry).
    Merge,
}

/// One `dataFrom` or `data` entry, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Source {
    /// The entry's path, e.g. `spec.data[1]`.
    field: String,
    target: Target,
    /// Index into [`Plan::fetches`].
    fetch: usize,
    property: Option<String>,
    expected_type: Option<SecretType>,
    is_binary: bool,
}

/// The validated spec: what to fetch and where each value goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The distinct remote secrets, in first-use order.
    pub fetches: Vec<RemoteRef>,
    sources: Vec<Source>,
}

impl Plan {
    /// The spec path of the first entry using fetch `index`, e.g.
    /// `spec.data[0]`, for messages about a failed fetch.
    pub fn field_of(&self, index: usize) -> &str {
        self.sources.iter().find(|source| source.fetch == index).map_or("spec", |source| &source.field)
    }
}

/// The Secret an ExternalSecret asks for. `Debug` redacts the values.
#[derive(Clone, Debug)]
pub struct DesiredSecret {
    /// The Secret type.
    pub type_: String,
    /// The Secret data.
    pub data: BTreeMap<String, SecretBytes>,
    /// Labels: the template's plus [`MANAGED_LABEL`].
    pub labels: BTreeMap<String, String>,
    /// Annotations: the template's plus [`DATA_HASH_ANNOTATION`].
    pub annotations: BTreeMap<String, String>,
}

/// Validates `spec` and lists what to fetch.
pub fn plan(spec: &ExternalSecretSpec) -> Result<Plan, Error> {
    if spec.backend_type != IBM_BACKEND {
        return Err(Error::UnsupportedBackend { backend: spec.backend_type.chars().take(64).collect() });
    }
    if spec.data.is_empty() && spec.data_from.is_empty() {
        return Err(Error::NoData);
    }
    let by_name = spec.key_by_name.unwrap_or(false);
    let mut fetches: Vec<RemoteRef> = Vec::new();
    let mut fetch_index = |remote: RemoteRef| {
        fetches.iter().position(|known| *known == remote).unwrap_or_else(|| {
            fetches.push(remote);
            fetches.len() - 1
        })
    };
    let mut sources = Vec::new();
    for (i, key) in spec.data_from.iter().enumerate() {
        let field = format!("spec.dataFrom[{i}]");
        let key = non_empty(Some(key), &field)?;
        sources.push(Source {
            fetch: fetch_index(RemoteRef::Id(key.to_owned())),
            field,
            target: Target::Merge,
            property: None,
            expected_type: None,
            is_binary: false,
        });
    }
    for (i, entry) in spec.data.iter().enumerate() {
        let field = format!("spec.data[{i}]");
        let key = non_empty(entry.key.as_deref(), &format!("{field}.key"))?;
        let name = non_empty(entry.name.as_deref(), &format!("{field}.name"))?;
        check_secret_key(name, &format!("{field}.name"))?;
        let expected_type = match entry.secret_type.as_deref() {
            None | Some("") => None,
            Some(secret_type) => Some(secret_type.parse::<SecretType>().map_err(|error| {
                Error::InvalidField { field: format!("{field}.secretType"), reason: error.to_string() }
            })?),
        };
        let remote = if by_name {
            let secret_type =
                expected_type.ok_or_else(|| Error::MissingField { field: format!("{field}.secretType") })?;
            let (group, name) = match key.split_once('/') {
                None => (DEFAULT_GROUP, key),
                Some((group, name)) if !group.is_empty() && !name.is_empty() && !name.contains('/') => {
                    (group, name)
                }
                Some(_) => {
                    return Err(Error::InvalidField {
                        field: format!("{field}.key"),
                        reason: "a keyByName key is `<name>` or `<group>/<name>`".to_owned(),
                    });
                }
            };
            RemoteRef::Name { group: group.to_owned(), secret_type, name: name.to_owned() }
        } else {
            RemoteRef::Id(key.to_owned())
        };
        sources.push(Source {
            fetch: fetch_index(remote),
            field,
            target: Target::Key(name.to_owned()),
            property: entry.property.clone().filter(|property| !property.is_empty()),
            expected_type,
            is_binary: entry.is_binary.unwrap_or(false),
        });
    }
    Ok(Plan { fetches, sources })
}

/// Builds the Secret from the fetched secrets; `fetched[i]` answers
/// `plan.fetches[i]`.
pub fn materialize(
    spec: &ExternalSecretSpec,
    plan: &Plan,
    fetched: &[Secret],
) -> Result<DesiredSecret, Error> {
    assert_eq!(plan.fetches.len(), fetched.len(), "one fetched secret per planned fetch");
    let template = spec.template.as_ref();
    let mut data = BTreeMap::new();
    for (key, encoded) in template.and_then(|template| template.data.as_ref()).into_iter().flatten() {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| Error::InvalidValue {
            field: format!("spec.template.data.{key}"),
            key: key.clone(),
            reason: "is not valid base64",
        })?;
        data.insert(key.clone(), SecretBytes::from(bytes));
    }
    for source in &plan.sources {
        let secret = &fetched[source.fetch];
        let key = plan.fetches[source.fetch].key();
        if let Some(expected) = source.expected_type {
            let actual = secret.data.secret_type();
            if actual != expected {
                return Err(Error::TypeMismatch {
                    field: format!("{}.secretType", source.field),
                    key,
                    expected,
                    actual,
                });
            }
        }
        let value = secret.value(source.property.as_deref()).map_err(|error| match error {
            provider::Error::MissingProperty { property, .. } => Error::MissingProperty {
                field: format!("{}.property", source.field),
                key: key.clone(),
                property,
            },
            other => Error::InvalidField { field: source.field.clone(), reason: other.to_string() },
        })?;
        match &source.target {
            Target::Key(name) => {
                let value =
                    if source.is_binary { decode_binary(&value, &source.field, &key)? } else { value };
                data.insert(name.clone(), value);
            }
            Target::Merge => merge_object(&mut data, &value, &source.field, &key)?,
        }
    }
    let type_ = template
        .and_then(|template| template.type_.clone())
        .or_else(|| spec.type_.clone())
        .unwrap_or_else(|| "Opaque".to_owned());
    if type_.trim() == COS_SECRET_TYPE {
        check_cos(&data)?;
    }
    let metadata = template.and_then(|template| template.metadata.as_ref());
    let mut labels = metadata.and_then(|metadata| metadata.labels.clone()).unwrap_or_default();
    labels.insert(MANAGED_LABEL.to_owned(), MANAGED_VALUE.to_owned());
    let mut annotations = metadata.and_then(|metadata| metadata.annotations.clone()).unwrap_or_default();
    annotations.insert(DATA_HASH_ANNOTATION.to_owned(), data_hash(&type_, &data));
    Ok(DesiredSecret { type_, data, labels, annotations })
}

/// The SHA-256 (hex) of the type and every key and value, length-prefixed
/// so that no two different Secrets share an input.
pub fn data_hash(type_: &str, data: &BTreeMap<String, SecretBytes>) -> String {
    hash_entries(type_, data.iter().map(|(key, value)| (key.as_str(), value.expose_secret())))
}

/// Whether `secret` still holds the data it was written with: its data
/// (all of it) has the hash in its [`DATA_HASH_ANNOTATION`]. `false` after
/// a hand edit, or when another manager added keys.
pub fn intact(secret: &k8s_openapi::api::core::v1::Secret) -> bool {
    let type_ = secret.type_.as_deref().unwrap_or("Opaque");
    let data = secret.data.iter().flatten().map(|(key, value)| (key.as_str(), value.0.as_slice()));
    let recorded =
        secret.metadata.annotations.as_ref().and_then(|annotations| annotations.get(DATA_HASH_ANNOTATION));
    recorded.is_some_and(|recorded| *recorded == hash_entries(type_, data))
}

/// [`data_hash`] over entries in key order.
fn hash_entries<'a>(type_: &str, entries: impl Iterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut hasher = Sha256::new();
    let mut chunk = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    chunk(type_.as_bytes());
    for (key, value) in entries {
        chunk(key.as_bytes());
        chunk(value);
    }
    hasher.finalize().iter().fold(String::with_capacity(64), |mut hex, byte| {
        let _ = write!(hex, "{byte:02x}");
        hex
    })
}

fn non_empty<'a>(value: Option<&'a str>, field: &str) -> Result<&'a str, Error> {
    value.filter(|value| !value.is_empty()).ok_or_else(|| Error::MissingField { field: field.to_owned() })
}

/// A Secret data key: 1–253 characters of `[-._a-zA-Z0-9]`.
fn check_secret_key(name: &str, field: &str) -> Result<(), Error> {
    let valid = name.len() <= 253
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidField {
            field: field.to_owned(),
            reason: "a Secret key is 1-253 characters of letters, digits, `-`, `_` and `.`".to_owned(),
        })
    }
}

fn decode_binary(value: &SecretBytes, field: &str, key: &str) -> Result<SecretBytes, Error> {
    let invalid = || Error::InvalidValue {
        field: format!("{field}.isBinary"),
        key: key.to_owned(),
        reason: "is not valid base64",
    };
    let text = std::str::from_utf8(value.expose_secret()).map_err(|_| invalid())?;
    STANDARD.decode(text.trim()).map(SecretBytes::from).map_err(|_| invalid())
}

/// Merges the top-level keys of a JSON object value; strings raw, anything
/// else as JSON text.
fn merge_object(
    data: &mut BTreeMap<String, SecretBytes>,
    value: &SecretBytes,
    field: &str,
    key: &str,
) -> Result<(), Error> {
    let not_object = || Error::InvalidValue {
        field: field.to_owned(),
        key: key.to_owned(),
        reason: "is not a JSON object",
    };
    let parsed: serde_json::Value =
        serde_json::from_slice(value.expose_secret()).map_err(|_| not_object())?;
    let serde_json::Value::Object(object) = parsed else {
        return Err(not_object());
    };
    for (name, value) in object {
        check_secret_key(&name, field)?;
        let bytes = match value {
            serde_json::Value::String(text) => text.into_bytes(),
            other => other.to_string().into_bytes(),
        };
        data.insert(name, SecretBytes::from(bytes));
    }
    Ok(())
}

/// The COS plug-in's rules (reference 6.2): IAM mode whenever `api-key`
/// exists, which then needs `service-instance-id`; HMAC mode otherwise.
fn check_cos(data: &BTreeMap<String, SecretBytes>) -> Result<(), Error> {
    let present = |key: &str| data.get(key).is_some_and(|value| !value.expose_secret().is_empty());
    if data.contains_key("api-key") {
        if !present("api-key") {
            return Err(Error::InvalidCosSecret {
                reason: "api-key is empty; it would switch the plug-in to IAM mode",
            });
        }
        if !present("service-instance-id") {
            return Err(Error::InvalidCosSecret { reason: "api-key needs a non-empty service-instance-id" });
        }
    } else if !(present("access-key") && present("secret-key")) {
        return Err(Error::InvalidCosSecret {
            reason: "needs non-empty access-key and secret-key (HMAC) or api-key and service-instance-id (IAM)",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::crd::{DataEntry, Template};
    use crate::fixtures::{cos_credentials, secret, spec};

    fn value(desired: &DesiredSecret, key: &str) -> String {
        String::from_utf8(desired.data[key].expose_secret().to_vec()).unwrap()
    }

    #[test]
    fn kes_username_password_manifest_fetches_once() {
        let spec = spec(json!([
            {"key": "id-1", "name": "username", "property": "username", "secretType": "username_password"},
            {"key": "id-1", "name": "password", "property": "password", "secretType": "username_password"},
        ]));
        let plan = plan(&spec).unwrap();
        assert_eq!(plan.fetches, [RemoteRef::Id("id-1".into())]);
        let fetched = [secret(
            json!({"secret_type": "username_password", "username": "app", "password": "hunter2-pw"}),
        )];
        let desired = materialize(&spec, &plan, &fetched).unwrap();
        assert_eq!(value(&desired, "username"), "app");
        assert_eq!(value(&desired, "password"), "hunter2-pw");
        assert_eq!(desired.type_, "Opaque");
        assert_eq!(desired.labels[MANAGED_LABEL], MANAGED_VALUE);
        assert_eq!(desired.annotations[DATA_HASH_ANNOTATION], data_hash("Opaque", &desired.data));
        assert!(!format!("{desired:?}").contains("hunter2"), "Debug must redact values");
    }

    #[test]
    fn key_by_name_uses_default_group_or_prefix() {
        let mut spec = spec(json!([
            {"key": "db", "name": "a", "property": "payload", "secretType": "arbitrary"},
            {"key": "team/db", "name": "b", "secretType": "arbitrary"},
        ]));
        spec.key_by_name = Some(true);
        let plan = plan(&spec).unwrap();
        let name = |group: &str| RemoteRef::Name {
            group: group.into(),
            secret_type: SecretType::Arbitrary,
            name: "db".into(),
        };
        assert_eq!(plan.fetches, [name("default"), name("team")]);
    }

    #[test]
    fn spec_errors_name_the_field() {
        let cases = [
            (json!([{"name": "a", "secretType": "arbitrary"}]), "spec.data[0].key is required"),
            (
                json!([{"key": "k", "name": "a"}, {"key": "k", "name": "b", "secretType": "bogus"}]),
                "spec.data[1].secretType",
            ),
            (json!([{"key": "k", "secretType": "arbitrary"}]), "spec.data[0].name is required"),
            (json!([{"key": "k", "name": "a/b"}]), "spec.data[0].name"),
        ];
        for (data, field) in cases {
            let error = plan(&spec(data)).unwrap_err();
            assert!(error.to_string().starts_with(field), "{error} does not name {field}");
            assert_eq!(error.reason(), "InvalidSpec");
        }
        let mut by_name = spec(json!([{"key": "a/b/c", "name": "x", "secretType": "arbitrary"}]));
        by_name.key_by_name = Some(true);
        assert!(plan(&by_name).unwrap_err().to_string().starts_with("spec.data[0].key"));
        by_name.data[0].secret_type = None;
        assert!(plan(&by_name).unwrap_err().to_string().starts_with("spec.data[0].secretType is required"));
    }

    #[test]
    fn other_backends_are_unsupported() {
        let mut spec = spec(json!([{"key": "k", "name": "a"}]));
        spec.backend_type = "vault".into();
        let error = plan(&spec).unwrap_err();
        assert_eq!(error.reason(), "UnsupportedBackend");
        assert!(error.to_string().contains("vault"));
    }

    #[test]
    fn missing_property_names_field_and_key_not_value() {
        let spec = spec(json!([
            {"key": "id-1", "name": "u", "property": "username"},
            {"key": "id-1", "name": "x", "property": "nope"},
        ]));
        let plan = plan(&spec).unwrap();
        let fetched =
            [secret(json!({"secret_type": "username_password", "username": "app", "password": "hunter2"}))];
        let error = materialize(&spec, &plan, &fetched).unwrap_err();
        let message = error.to_string();
        assert!(message.starts_with("spec.data[1].property"), "{message}");
        assert!(message.contains("id-1") && !message.contains("hunter2"), "{message}");
    }

    #[test]
    fn type_mismatch_is_reported() {
        let spec = spec(json!([{"key": "id-1", "name": "u", "secretType": "kv"}]));
        let fetched = [secret(json!({"secret_type": "arbitrary", "payload": "p"}))];
        let error = materialize(&spec, &plan(&spec).unwrap(), &fetched).unwrap_err();
        assert!(error.to_string().starts_with("spec.data[0].secretType"), "{error}");
    }

    #[test]
    fn is_binary_decodes_and_rejects_bad_base64() {
        let spec = spec(json!([{"key": "id-1", "name": "bin", "isBinary": true}]));
        let plan = plan(&spec).unwrap();
        let good = [secret(json!({"secret_type": "arbitrary", "payload": "AAEC"}))];
        let desired = materialize(&spec, &plan, &good).unwrap();
        assert_eq!(desired.data["bin"].expose_secret(), [0, 1, 2]);
        let bad = [secret(json!({"secret_type": "arbitrary", "payload": "not base64!"}))];
        let error = materialize(&spec, &plan, &bad).unwrap_err();
        assert!(error.to_string().starts_with("spec.data[0].isBinary"), "{error}");
    }

    #[test]
    fn data_from_merges_under_data_and_template_data_under_both() {
        let mut spec = spec(json!([{"key": "kv-1", "name": "a", "property": "a"}]));
        spec.data_from = vec!["kv-1".into()];
        spec.template = Some(Template {
            data: Some(
                [("a".to_owned(), "dGVtcGxhdGU=".to_owned()), ("t".to_owned(), "dA==".to_owned())].into(),
            ),
            ..Template::default()
        });
        let plan = plan(&spec).unwrap();
        assert_eq!(plan.fetches.len(), 1, "dataFrom and data share the fetch");
        let fetched = [secret(json!({"secret_type": "kv", "data": {"a": "from-kv", "n": 3}}))];
        let desired = materialize(&spec, &plan, &fetched).unwrap();
        assert_eq!(value(&desired, "a"), "from-kv");
        assert_eq!(value(&desired, "n"), "3");
        assert_eq!(value(&desired, "t"), "t");
    }

    #[test]
    fn cos_hmac_and_api_key_secrets() {
        let entry = |name: &str, property: &str| DataEntry {
            key: Some("cos-id".into()),
            name: Some(name.into()),
            property: Some(property.into()),
            secret_type: Some("service_credentials".into()),
            is_binary: None,
        };
        let cos = |entries: Vec<DataEntry>| ExternalSecretSpec {
            backend_type: IBM_BACKEND.into(),
            data: entries,
            template: Some(Template { type_: Some(COS_SECRET_TYPE.into()), ..Template::default() }),
            ..ExternalSecretSpec::default()
        };
        let fetched = [secret(cos_credentials(true))];

        let hmac = cos(vec![
            entry("access-key", "credentials.cos_hmac_keys.access_key_id"),
            entry("secret-key", "credentials.cos_hmac_keys.secret_access_key"),
        ]);
        let desired = materialize(&hmac, &plan(&hmac).unwrap(), &fetched).unwrap();
        assert_eq!(desired.type_, COS_SECRET_TYPE);
        assert_eq!(desired.data.keys().collect::<Vec<_>>(), ["access-key", "secret-key"]);
        assert_eq!(value(&desired, "access-key"), "0123456789abcdef0123456789abcdef");

        let iam = cos(vec![
            entry("api-key", "credentials.apikey"),
            entry("service-instance-id", "credentials.resource_instance_id"),
        ]);
        let desired = materialize(&iam, &plan(&iam).unwrap(), &fetched).unwrap();
        assert_eq!(value(&desired, "api-key"), "cos-api-key");
        assert!(value(&desired, "service-instance-id").starts_with("crn:"));

        // An HMAC mapping against credentials without HMAC keys is a missing
        // property, never an empty value.
        let no_hmac = [secret(cos_credentials(false))];
        let error = materialize(&hmac, &plan(&hmac).unwrap(), &no_hmac).unwrap_err();
        assert!(error.to_string().starts_with("spec.data[0].property"), "{error}");

        let only_key = cos(vec![entry("api-key", "credentials.apikey")]);
        let error = materialize(&only_key, &plan(&only_key).unwrap(), &fetched).unwrap_err();
        assert!(matches!(error, Error::InvalidCosSecret { .. }), "{error}");
    }

    #[test]
    fn empty_api_key_is_refused() {
        let mut data = BTreeMap::new();
        data.insert("api-key".to_owned(), SecretBytes::from(Vec::new()));
        data.insert("service-instance-id".to_owned(), SecretBytes::from(b"crn".to_vec()));
        assert!(check_cos(&data).is_err());
        data.remove("api-key");
        data.insert("access-key".to_owned(), SecretBytes::from(b"a".to_vec()));
        assert!(check_cos(&data).is_err(), "HMAC needs both keys");
        data.insert("secret-key".to_owned(), SecretBytes::from(b"s".to_vec()));
        assert!(check_cos(&data).is_ok());
    }

    #[test]
    fn hash_changes_with_any_value() {
        let one: BTreeMap<_, _> = [("a".to_owned(), SecretBytes::from(b"1".to_vec()))].into();
        let two: BTreeMap<_, _> = [("a".to_owned(), SecretBytes::from(b"2".to_vec()))].into();
        assert_ne!(data_hash("Opaque", &one), data_hash("Opaque", &two));
        assert_ne!(data_hash("Opaque", &one), data_hash("ibm/ibmc-s3fs", &one));
        assert_eq!(data_hash("Opaque", &one).len(), 64);
    }
}
