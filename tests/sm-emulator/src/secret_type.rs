//! The nine secret types: their wire names, value fields, patchable fields, and how a
//! create or a new version builds their data (reference 1.7, 1.8 and 1.11).
//!
//! Each group of types lives in a submodule:
//! - [`plain`]: `arbitrary`, `username_password`, `kv`, whose values the caller sends;
//! - [`credentials`]: `iam_credentials`, `service_credentials`, `custom_credentials`, whose
//!   values the service generates (the emulator also accepts explicit values, an extension
//!   that lets tests seed keys a real S3 server accepts);
//! - [`certificates`]: `imported_cert`, `public_cert`, `private_cert`, with PEM-shaped
//!   placeholders where the service would issue a certificate.

mod certificates;
mod credentials;
mod plain;

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::body::Body;
use crate::store::StoreError;
use crate::store::model::StoredSecret;

pub(crate) use plain::validate_password_policy;

/// TTL bounds of `iam_credentials` in seconds: 1 minute to 90 days (reference 2.5).
pub(crate) const IAM_TTL: (u64, u64) = (60, 7_776_000);
/// TTL bounds of `service_credentials` in seconds: 1 to 90 days (reference 2.5).
pub(crate) const SERVICE_TTL: (u64, u64) = (86_400, 7_776_000);

/// A JSON object.
pub(crate) type Object = Map<String, Value>;

/// The `secret_type` discriminator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretType {
    /// `arbitrary`: a string `payload`.
    Arbitrary,
    /// `username_password`: `username` and `password`.
    UsernamePassword,
    /// `kv`: a JSON object `data`.
    Kv,
    /// `iam_credentials`: a generated IAM `api_key`.
    IamCredentials,
    /// `service_credentials`: generated `credentials` of a service instance (e.g. COS HMAC keys).
    ServiceCredentials,
    /// `imported_cert`: a certificate the caller imports.
    ImportedCert,
    /// `public_cert`: a certificate ordered from a public CA.
    PublicCert,
    /// `private_cert`: a certificate issued by a private CA.
    PrivateCert,
    /// `custom_credentials`: `credentials_content` made by a credentials provider.
    CustomCredentials,
}

impl SecretType {
    /// Every type, in the order the SDK lists them.
    pub const ALL: [Self; 9] = [
        Self::Arbitrary,
        Self::UsernamePassword,
        Self::Kv,
        Self::IamCredentials,
        Self::ServiceCredentials,
        Self::ImportedCert,
        Self::PublicCert,
        Self::PrivateCert,
        Self::CustomCredentials,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arbitrary => "arbitrary",
            Self::UsernamePassword => "username_password",
            Self::Kv => "kv",
            Self::IamCredentials => "iam_credentials",
            Self::ServiceCredentials => "service_credentials",
            Self::ImportedCert => "imported_cert",
            Self::PublicCert => "public_cert",
            Self::PrivateCert => "private_cert",
            Self::CustomCredentials => "custom_credentials",
        }
    }

    /// The fields that carry the secret's value: present in GET and version reads, absent
    /// from metadata and list items (reference 1.7).
    pub fn value_fields(self) -> &'static [&'static str] {
        match self {
            Self::Arbitrary => &["payload"],
            Self::UsernamePassword => &["username", "password"],
            Self::Kv => &["data"],
            Self::IamCredentials => &["api_key"],
            Self::ServiceCredentials => &["credentials"],
            Self::ImportedCert | Self::PublicCert => &["certificate", "intermediate", "private_key"],
            Self::PrivateCert => &["certificate", "private_key", "issuing_ca", "ca_chain"],
            Self::CustomCredentials => &["credentials_content"],
        }
    }

    /// Fields that `PATCH …/metadata` may change besides `name`, `description`, `labels`
    /// and `custom_metadata` (the per-type `*MetadataPatch` models of the Go SDK).
    pub(crate) fn patchable_fields(self) -> &'static [&'static str] {
        match self {
            Self::Arbitrary => &["expiration_date"],
            Self::UsernamePassword => &["expiration_date", "rotation", "password_generation_policy"],
            Self::Kv => &[],
            Self::IamCredentials | Self::ServiceCredentials => &["ttl", "rotation"],
            Self::ImportedCert => &["managed_csr"],
            Self::PublicCert | Self::PrivateCert => &["rotation"],
            Self::CustomCredentials => &["ttl", "parameters"],
        }
    }

    /// Whether the create body may set `expiration_date` (reference 1.11).
    pub(crate) fn accepts_expiration_date(self) -> bool {
        matches!(self, Self::Arbitrary | Self::UsernamePassword)
    }

    /// Version metadata fields that the secret itself also shows, from its current version.
    pub(crate) fn version_fields_on_secret(self) -> &'static [&'static str] {
        match self {
            Self::IamCredentials => &["api_key_id", "service_id"],
            Self::ImportedCert | Self::PublicCert | Self::PrivateCert => &["serial_number", "validity"],
            _ => &[],
        }
    }

    /// Builds the data of a new secret from its create body.
    pub(crate) fn create(self, body: &Body<'_>, draft: &Draft<'_>) -> Result<NewData, StoreError> {
        match self {
            Self::Arbitrary => plain::create_arbitrary(body),
            Self::UsernamePassword => plain::create_username_password(body),
            Self::Kv => plain::create_kv(body),
            Self::IamCredentials => credentials::create_iam(body),
            Self::ServiceCredentials => credentials::create_service(body, draft),
            Self::CustomCredentials => credentials::create_custom(body),
            Self::ImportedCert => certificates::create_imported(body, draft),
            Self::PublicCert => certificates::create_public(body, draft),
            Self::PrivateCert => certificates::create_private(body, draft),
        }
    }

    /// Builds the data of a new version of `secret` from a create-version body.
    pub(crate) fn rotate(
        self,
        secret: &StoredSecret,
        body: &Body<'_>,
        draft: &Draft<'_>,
    ) -> Result<NewData, StoreError> {
        match self {
            Self::Arbitrary => plain::rotate_arbitrary(secret, body),
            Self::UsernamePassword => plain::rotate_username_password(secret, body),
            Self::Kv => plain::rotate_kv(secret, body),
            Self::IamCredentials => credentials::rotate_iam(secret, body),
            Self::ServiceCredentials => credentials::rotate_service(secret, body, draft),
            Self::CustomCredentials => credentials::rotate_custom(secret, body),
            Self::ImportedCert => certificates::rotate_imported(secret, body, draft),
            Self::PublicCert | Self::PrivateCert => certificates::rotate_issued(secret, body, draft),
        }
    }

    /// Bookkeeping of a value read: `iam_credentials` with `reuse_api_key: false` hand out a
    /// new API key on every read (reference 1.10).
    pub(crate) fn on_value_read(self, secret: &mut StoredSecret) {
        if self == Self::IamCredentials {
            credentials::renew_iam_key_on_read(secret);
        }
    }
}

impl fmt::Display for SecretType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretType {
    type Err = StoreError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
            .ok_or_else(|| StoreError::invalid("secret_type", format!("unknown secret type '{name}'")))
    }
}

/// Facts a type needs while building a secret or a version.
#[derive(Debug)]
pub(crate) struct Draft<'a> {
    /// The secret's name.
    pub(crate) name: &'a str,
    /// The account that owns the instance, for CRNs.
    pub(crate) account_id: &'a str,
    /// The time of the write.
    pub(crate) now: Timestamp,
}

/// The type-specific data of a new secret or version. Its `Debug` leaves out the values.
#[derive(Default)]
pub(crate) struct NewData {
    /// Non-value fields of the secret (replacing the stored ones).
    pub(crate) attributes: Object,
    /// The value fields of the version.
    pub(crate) values: Object,
    /// Type-specific metadata of the version (`api_key_id`, `validity`, …).
    pub(crate) version_meta: Object,
    /// The secret's `expiration_date`, when the type derives or accepts one.
    pub(crate) expiration_date: Option<String>,
}

impl fmt::Debug for NewData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewData")
            .field("attributes", &self.attributes)
            .field("values", &self.values.keys().collect::<Vec<_>>())
            .field("version_meta", &self.version_meta)
            .field("expiration_date", &self.expiration_date)
            .finish()
    }
}

impl NewData {
    /// The stored non-value data of `secret`, for a rotation that leaves it unchanged.
    pub(crate) fn keeping(secret: &StoredSecret) -> Self {
        Self {
            attributes: secret.attributes.clone(),
            expiration_date: secret.expiration_date.clone(),
            ..Self::default()
        }
    }
}

/// Parses a TTL (`"3600"`, `3600`, `"90m"`, `"24h"`, `"7d"`) into seconds, within bounds.
pub(crate) fn parse_ttl(
    body: &Body<'_>,
    field: &str,
    min: u64,
    max: u64,
) -> Result<Option<Value>, StoreError> {
    let Some(value) = body.get(field) else {
        return Ok(None);
    };
    let text = match value {
        Value::String(text) => text.clone(),
        Value::Number(number) => number.to_string(),
        _ => {
            return Err(StoreError::invalid(body.name(field), "must be a string of seconds or a duration"));
        }
    };
    let (digits, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text.as_str(), 's'),
    };
    let multiplier = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => 0,
    };
    let seconds = digits
        .parse::<u64>()
        .ok()
        .filter(|_| multiplier > 0)
        .map(|n| n.saturating_mul(multiplier))
        .ok_or_else(|| StoreError::invalid(body.name(field), format!("'{text}' is not a valid TTL")))?;
    if !(min..=max).contains(&seconds) {
        return Err(StoreError::invalid(
            body.name(field),
            format!("must be between {min} and {max} seconds"),
        ));
    }
    Ok(Some(Value::String(text)))
}

/// Validates an optional `rotation` policy object (`auto_rotate` is required once sent).
pub(crate) fn parse_rotation(body: &Body<'_>) -> Result<Option<Object>, StoreError> {
    let Some(rotation) = body.opt_object("rotation")? else {
        return Ok(None);
    };
    validate_rotation(&rotation)?;
    Ok(Some(rotation.to_map()))
}

/// Checks a rotation policy: `auto_rotate` (required), `interval`, `unit`.
pub(crate) fn validate_rotation(rotation: &Body<'_>) -> Result<(), StoreError> {
    rotation.bool("auto_rotate")?;
    rotation.opt_u64("interval")?;
    if let Some(unit) = rotation.opt_str("unit")?
        && !["day", "hour", "month"].contains(&unit)
    {
        return Err(StoreError::invalid(rotation.name("unit"), "must be day, hour or month"));
    }
    Ok(())
}

/// The rotation policy a secret shows when none was sent.
pub(crate) fn default_rotation() -> Value {
    serde_json::json!({ "auto_rotate": false })
}

/// The current version's value of `field`, for rotations that keep part of the value.
pub(crate) fn current_value<'a>(secret: &'a StoredSecret, field: &str) -> Option<&'a Value> {
    secret.current_version().values.as_ref().and_then(|values| values.get(field))
}

/// An object with the given entries, dropping `None`s.
pub(crate) fn object<const N: usize>(entries: [(&str, Option<Value>); N]) -> Object {
    entries.into_iter().filter_map(|(key, value)| value.map(|value| (key.to_owned(), value))).collect()
}
