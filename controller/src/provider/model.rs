//! Typed models of Secrets Manager v2 secrets, metadata and versions.
//!
//! A secret is its common metadata ([`SecretMetadata`]) plus the value fields
//! of its type ([`SecretData`]), which sit at the top level of the JSON object
//! (reference 1.7). `secret_type` picks the model: an absent discriminator is
//! [`DecodeError::MissingSecretType`] and an unknown one
//! [`DecodeError::UnknownSecretType`], as in the Go SDK's `UnmarshalSecret`.
//!
//! Only `id` and `secret_type` are required. The Go SDK tags more fields as
//! required but does not enforce the tags when decoding (reference 1.6), so
//! everything else is optional here too. Value fields are optional as well: a
//! destroyed secret is still readable but has no value (reference 1.10).
//!
//! Decoding goes through a parsed [`serde_json::Value`] so the discriminator
//! can be read first; all errors map to [`DecodeError`], which never quotes
//! the input.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::{DecodeError, Result};
use super::extract;
use super::value::{SecretBytes, SecretJson, SecretText};

/// The type of a secret: the `secret_type` discriminator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecretType {
    /// `arbitrary`: a `payload` string.
    Arbitrary,
    /// `username_password`: `username` and `password`.
    UsernamePassword,
    /// `kv`: a JSON object in `data`.
    Kv,
    /// `iam_credentials`: a service ID API key in `api_key`.
    IamCredentials,
    /// `service_credentials`: a service's resource key in `credentials`.
    ServiceCredentials,
    /// `imported_cert`: an imported certificate.
    ImportedCert,
    /// `public_cert`: a certificate ordered from a public CA.
    PublicCert,
    /// `private_cert`: a certificate issued by a private CA.
    PrivateCert,
    /// `custom_credentials`: credentials from a custom provider in
    /// `credentials_content`.
    CustomCredentials,
}

impl SecretType {
    /// Every type, in the order of the API reference.
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

    /// The wire name, e.g. `username_password`.
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
}

impl fmt::Display for SecretType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretType {
    type Err = UnknownSecretType;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|secret_type| secret_type.as_str() == name)
            .ok_or_else(|| UnknownSecretType::new(name))
    }
}

/// A `secret_type` that names no known type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown secret type `{name}`")]
pub struct UnknownSecretType {
    /// The unrecognized name, cut to 64 characters.
    pub name: String,
}

impl UnknownSecretType {
    fn new(name: &str) -> Self {
        Self { name: name.chars().take(64).collect() }
    }
}

/// The fields every secret has, with or without its value (reference 1.6).
#[derive(Clone, Debug, Deserialize)]
pub struct SecretMetadata {
    /// The secret id (a UUID).
    pub id: String,
    /// The type of the secret.
    pub secret_type: SecretType,
    /// The secret name.
    pub name: Option<String>,
    /// The secret group: a UUID or `default`.
    pub secret_group_id: Option<String>,
    /// The CRN of the secret.
    pub crn: Option<String>,
    /// The description.
    pub description: Option<String>,
    /// The labels.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Who created the secret, e.g. `iam-ServiceId-…`.
    pub created_by: Option<String>,
    /// When the secret was created.
    pub created_at: Option<Timestamp>,
    /// When the secret was last modified.
    pub updated_at: Option<Timestamp>,
    /// When the secret data was last read (the epoch if never).
    pub retrieved_at: Option<Timestamp>,
    /// When the secret expires.
    pub expiration_date: Option<Timestamp>,
    /// Whether the secret data was ever read through the API.
    pub downloaded: Option<bool>,
    /// The number of versions.
    pub versions_total: Option<u64>,
    /// The number of locks.
    pub locks_total: Option<u64>,
    /// `0` pre-activation, `1` active, `2` suspended, `3` deactivated,
    /// `5` destroyed.
    pub state: Option<i64>,
    /// The state as text, e.g. `active`.
    pub state_description: Option<String>,
    /// User-defined metadata.
    pub custom_metadata: Option<Map<String, Value>>,
}

/// A secret with its value, as returned by `get_secret` and
/// `get_secret_by_name`.
#[derive(Clone, Debug)]
pub struct Secret {
    /// The common fields.
    pub metadata: SecretMetadata,
    /// The value fields of the secret's type.
    pub data: SecretData,
}

impl Secret {
    /// Extracts the value named by `property`; see [`extract`](extract::extract).
    pub fn value(&self, property: Option<&str>) -> Result<SecretBytes> {
        extract::extract(&self.data, &self.metadata.id, property)
    }
}

/// The metadata of one secret version (reference 1.9).
#[derive(Clone, Debug, Deserialize)]
pub struct SecretVersionMetadata {
    /// The version id (a UUID).
    pub id: String,
    /// The id of the secret this version belongs to. Filled from the request
    /// when the response omits it.
    #[serde(default)]
    pub secret_id: String,
    /// The type of the secret.
    pub secret_type: SecretType,
    /// The name of the secret.
    pub secret_name: Option<String>,
    /// The secret group of the secret.
    pub secret_group_id: Option<String>,
    /// `current` or `previous`, when the version has an alias.
    pub alias: Option<String>,
    /// Who created the version.
    pub created_by: Option<String>,
    /// When the version was created.
    pub created_at: Option<Timestamp>,
    /// When the version expires.
    pub expiration_date: Option<Timestamp>,
    /// Whether the version's data is still stored.
    pub payload_available: Option<bool>,
    /// Whether the version's data was ever read through the API.
    pub downloaded: Option<bool>,
    /// Whether the version was created by automatic rotation.
    pub auto_rotated: Option<bool>,
    /// User-defined metadata of the version.
    pub version_custom_metadata: Option<Map<String, Value>>,
}

/// One version of a secret with its value, as returned by
/// `get_secret_version`.
#[derive(Clone, Debug)]
pub struct SecretVersion {
    /// The version's metadata.
    pub metadata: SecretVersionMetadata,
    /// The value fields of the secret's type.
    pub data: SecretData,
}

impl SecretVersion {
    /// Extracts the value named by `property`; see [`extract`](extract::extract).
    pub fn value(&self, property: Option<&str>) -> Result<SecretBytes> {
        extract::extract(&self.data, &self.metadata.secret_id, property)
    }
}

/// The value fields of a secret, by type.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum SecretData {
    /// `arbitrary`.
    Arbitrary(ArbitraryData),
    /// `username_password`.
    UsernamePassword(UsernamePasswordData),
    /// `kv`.
    Kv(KvData),
    /// `iam_credentials`.
    IamCredentials(IamCredentialsData),
    /// `service_credentials`.
    ServiceCredentials(ServiceCredentialsData),
    /// `imported_cert`.
    ImportedCert(CertificateData),
    /// `public_cert`.
    PublicCert(CertificateData),
    /// `private_cert`.
    PrivateCert(CertificateData),
    /// `custom_credentials`.
    CustomCredentials(CustomCredentialsData),
}

impl SecretData {
    /// The type these fields belong to.
    pub fn secret_type(&self) -> SecretType {
        match self {
            Self::Arbitrary(_) => SecretType::Arbitrary,
            Self::UsernamePassword(_) => SecretType::UsernamePassword,
            Self::Kv(_) => SecretType::Kv,
            Self::IamCredentials(_) => SecretType::IamCredentials,
            Self::ServiceCredentials(_) => SecretType::ServiceCredentials,
            Self::ImportedCert(_) => SecretType::ImportedCert,
            Self::PublicCert(_) => SecretType::PublicCert,
            Self::PrivateCert(_) => SecretType::PrivateCert,
            Self::CustomCredentials(_) => SecretType::CustomCredentials,
        }
    }

    fn from_json(secret_type: SecretType, json: &Value) -> Result<Self, serde_json::Error> {
        Ok(match secret_type {
            SecretType::Arbitrary => Self::Arbitrary(Deserialize::deserialize(json)?),
            SecretType::UsernamePassword => Self::UsernamePassword(Deserialize::deserialize(json)?),
            SecretType::Kv => Self::Kv(Deserialize::deserialize(json)?),
            SecretType::IamCredentials => Self::IamCredentials(Deserialize::deserialize(json)?),
            SecretType::ServiceCredentials => Self::ServiceCredentials(Deserialize::deserialize(json)?),
            SecretType::ImportedCert => Self::ImportedCert(Deserialize::deserialize(json)?),
            SecretType::PublicCert => Self::PublicCert(Deserialize::deserialize(json)?),
            SecretType::PrivateCert => Self::PrivateCert(Deserialize::deserialize(json)?),
            SecretType::CustomCredentials => Self::CustomCredentials(Deserialize::deserialize(json)?),
        })
    }
}

/// The value of an `arbitrary` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct ArbitraryData {
    /// The payload (binary content is stored base64-encoded).
    pub payload: Option<SecretText>,
}

/// The value of a `username_password` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct UsernamePasswordData {
    /// The user name.
    pub username: Option<SecretText>,
    /// The password.
    pub password: Option<SecretText>,
}

/// The value of a `kv` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct KvData {
    /// The key-value document, a JSON object of any depth.
    pub data: Option<SecretJson>,
}

/// The value of an `iam_credentials` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct IamCredentialsData {
    /// The API key.
    pub api_key: Option<SecretText>,
    /// The id of the API key.
    pub api_key_id: Option<String>,
    /// The service ID the key belongs to.
    pub service_id: Option<String>,
    /// Whether reads reuse the key until its TTL expires.
    pub reuse_api_key: Option<bool>,
}

/// The value of a `service_credentials` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct ServiceCredentialsData {
    /// The resource key of the source service, e.g. for Cloud Object Storage
    /// `apikey`, `cos_hmac_keys.access_key_id`, `resource_instance_id`.
    pub credentials: Option<SecretJson>,
}

/// The value of an `imported_cert`, `public_cert` or `private_cert` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct CertificateData {
    /// The certificate (PEM).
    pub certificate: Option<SecretText>,
    /// The intermediate certificate (PEM); imported and public certificates.
    pub intermediate: Option<SecretText>,
    /// The private key (PEM).
    pub private_key: Option<SecretText>,
    /// The issuing CA certificate (PEM); private certificates.
    pub issuing_ca: Option<SecretText>,
    /// The CA chain (PEM certificates); private certificates.
    pub ca_chain: Option<Vec<SecretText>>,
    /// The common name of the certificate.
    pub common_name: Option<String>,
    /// The serial number of the certificate.
    pub serial_number: Option<String>,
}

/// The value of a `custom_credentials` secret.
#[derive(Clone, Debug, Deserialize)]
pub struct CustomCredentialsData {
    /// The credentials: an object of strings, integers and booleans.
    pub credentials_content: Option<SecretJson>,
}

/// Decodes a secret with its value.
pub(crate) fn decode_secret(body: &[u8]) -> Result<Secret, DecodeError> {
    let json = parse(body)?;
    let secret_type = secret_type_of(&json)?;
    Ok(Secret {
        metadata: SecretMetadata::deserialize(&json)?,
        data: SecretData::from_json(secret_type, &json)?,
    })
}

/// Decodes secret metadata (a metadata response).
pub(crate) fn decode_metadata(body: &[u8]) -> Result<SecretMetadata, DecodeError> {
    metadata_from_json(&parse(body)?)
}

/// Decodes secret metadata from an already parsed object (a list item).
pub(crate) fn metadata_from_json(json: &Value) -> Result<SecretMetadata, DecodeError> {
    secret_type_of(json)?;
    Ok(SecretMetadata::deserialize(json)?)
}

/// Decodes a secret version with its value. `secret_id` fills in an absent
/// `secret_id` field.
pub(crate) fn decode_version(body: &[u8], secret_id: &str) -> Result<SecretVersion, DecodeError> {
    let json = parse(body)?;
    let secret_type = secret_type_of(&json)?;
    let mut metadata = SecretVersionMetadata::deserialize(&json)?;
    if metadata.secret_id.is_empty() {
        secret_id.clone_into(&mut metadata.secret_id);
    }
    Ok(SecretVersion { metadata, data: SecretData::from_json(secret_type, &json)? })
}

fn parse(body: &[u8]) -> Result<Value, DecodeError> {
    Ok(serde_json::from_slice(body)?)
}

fn secret_type_of(json: &Value) -> Result<SecretType, DecodeError> {
    match json.get("secret_type") {
        None | Some(Value::Null) => Err(DecodeError::MissingSecretType),
        Some(Value::String(name)) => Ok(name.parse()?),
        Some(_) => Err(DecodeError::InvalidField { line: 0, column: 0 }),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn common(secret_type: &str) -> Value {
        json!({
            "id": "b49ad24d-81d4-5ebc-b9b9-b0937d1c84d5",
            "name": "db-password",
            "secret_type": secret_type,
            "secret_group_id": "default",
            "crn": "crn:v1:bluemix:public:secrets-manager:us-south:a/acc:inst:secret:b49ad24d",
            "created_by": "iam-ServiceId-1",
            "created_at": "2022-04-12T23:20:50.520Z",
            "updated_at": "2025-01-10T09:00:00Z",
            "retrieved_at": "1970-01-01T00:00:00Z",
            "downloaded": true,
            "labels": ["dev"],
            "locks_total": 0,
            "state": 1,
            "state_description": "active",
            "versions_total": 1,
            "custom_metadata": {"team": "a"}
        })
    }

    fn with(secret_type: &str, values: Value) -> Vec<u8> {
        let mut json = common(secret_type);
        let Value::Object(values) = values else { panic!("values must be an object") };
        json.as_object_mut().expect("object").extend(values);
        serde_json::to_vec(&json).expect("encode")
    }

    #[test]
    fn every_type_decodes() {
        let cases = [
            ("arbitrary", json!({"payload": "s3cr3t"})),
            ("username_password", json!({"username": "u", "password": "p"})),
            ("kv", json!({"data": {"a": {"b": 1}}})),
            (
                "iam_credentials",
                json!({"api_key": "k", "api_key_id": "ApiKey-1", "reuse_api_key": true, "ttl": "1d"}),
            ),
            (
                "service_credentials",
                json!({"credentials": {"apikey": "k"}, "source_service": {"instance": {"crn": "c"}}}),
            ),
            ("imported_cert", json!({"certificate": "C", "intermediate": "I", "private_key": "K"})),
            ("public_cert", json!({"certificate": "C", "private_key": "K", "key_algorithm": "RSA2048"})),
            (
                "private_cert",
                json!({"certificate": "C", "private_key": "K", "issuing_ca": "CA", "ca_chain": ["CA", "ROOT"]}),
            ),
            ("custom_credentials", json!({"credentials_content": {"token": "t", "port": 5}})),
        ];
        for (name, values) in cases {
            let secret = decode_secret(&with(name, values)).expect(name);
            assert_eq!(secret.metadata.secret_type.as_str(), name);
            assert_eq!(secret.data.secret_type().as_str(), name);
            assert_eq!(secret.metadata.name.as_deref(), Some("db-password"));
            assert_eq!(secret.metadata.labels, ["dev"]);
            assert_eq!(secret.metadata.versions_total, Some(1));
            assert_eq!(
                secret.metadata.created_at,
                Some("2022-04-12T23:20:50.520Z".parse().expect("timestamp"))
            );
        }
        assert_eq!(SecretType::ALL.len(), 9);
    }

    #[test]
    fn minimal_and_destroyed_secrets_decode() {
        let secret = decode_secret(br#"{"id": "x", "secret_type": "arbitrary"}"#).expect("minimal");
        let SecretData::Arbitrary(data) = secret.data else { panic!("wrong type") };
        assert!(data.payload.is_none());
    }

    #[test]
    fn discriminator_errors_are_typed() {
        assert_eq!(decode_secret(br#"{"id": "x"}"#).expect_err("missing"), DecodeError::MissingSecretType);
        assert_eq!(
            decode_secret(br#"{"id": "x", "secret_type": "quantum"}"#).expect_err("unknown"),
            DecodeError::UnknownSecretType(UnknownSecretType { name: "quantum".into() })
        );
        assert!(matches!(
            decode_metadata(br#"{"id": "x", "secret_type": 7}"#),
            Err(DecodeError::InvalidField { .. })
        ));
    }

    #[test]
    fn malformed_values_do_not_leak() {
        let body = with("username_password", json!({"username": "u", "password": ["hunter2"]}));
        let error = decode_secret(&body).expect_err("wrong type");
        assert!(matches!(error, DecodeError::InvalidField { .. }));
        assert!(!format!("{error} {error:?}").contains("hunter2"));

        let error = decode_secret(b"{\"payload\": \"hunter2").expect_err("truncated");
        assert!(matches!(error, DecodeError::Syntax { .. }));
        assert!(!format!("{error} {error:?}").contains("hunter2"));
    }

    #[test]
    fn secret_debug_redacts_values() {
        let secret = decode_secret(&with(
            "service_credentials",
            json!({"credentials": {"apikey": "hunter2", "cos_hmac_keys": {"secret_access_key": "hunter3"}}}),
        ))
        .expect("decode");
        let shown = format!("{secret:?} {secret:#?}");
        assert!(!shown.contains("hunter"), "{shown}");
        assert!(shown.contains("[REDACTED]"));
        assert!(shown.contains("db-password"), "metadata stays visible");
    }

    #[test]
    fn version_decodes_and_fills_secret_id() {
        let body = json!({
            "id": "v1", "secret_type": "kv", "alias": "current",
            "payload_available": true, "data": {"k": "v"}
        });
        let version = decode_version(&serde_json::to_vec(&body).expect("encode"), "s1").expect("decode");
        assert_eq!(version.metadata.secret_id, "s1");
        assert_eq!(version.metadata.alias.as_deref(), Some("current"));
        assert_eq!(version.value(Some("k")).expect("k").expose_secret(), b"v");
    }

    #[test]
    fn secret_type_round_trips() {
        for secret_type in SecretType::ALL {
            assert_eq!(secret_type.as_str().parse::<SecretType>(), Ok(secret_type));
        }
        assert!("Arbitrary".parse::<SecretType>().is_err());
    }
}
