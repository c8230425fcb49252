//! Redacting holders for secret values.
//!
//! Every value read from Secrets Manager (a payload, a password, an API key,
//! a `kv` document, a private key) lives in one of these types from the moment
//! it is decoded. Their `Debug` and `Display` print `[REDACTED]`, so a value
//! cannot reach a log line, an error message or a status condition by
//! accident; reading it takes an explicit `expose_secret()`. Text and bytes
//! are zeroized on drop (via `secrecy`), and so are the strings inside a
//! [`SecretJson`] document.

use std::fmt;

use secrecy::zeroize::Zeroize;
use secrecy::{ExposeSecret, SecretSlice, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

const REDACTED: &str = "[REDACTED]";

/// A secret text value, such as a payload, password, API key or PEM block.
#[derive(Clone)]
pub struct SecretText(SecretString);

impl SecretText {
    /// The value itself. Do not log it.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }
}

impl From<String> for SecretText {
    fn from(value: String) -> Self {
        Self(SecretString::from(value))
    }
}

impl From<&str> for SecretText {
    fn from(value: &str) -> Self {
        Self(SecretString::from(value))
    }
}

impl<'de> Deserialize<'de> for SecretText {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self::from)
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A secret JSON document, such as the `data` of a `kv` secret or the
/// `credentials` of a `service_credentials` secret.
///
/// On drop, every string in the document is zeroized (numbers, booleans and
/// object keys are not).
#[derive(Clone)]
pub struct SecretJson(Value);

impl SecretJson {
    /// The document itself. Do not log it.
    pub fn expose_secret(&self) -> &Value {
        &self.0
    }
}

impl From<Value> for SecretJson {
    fn from(value: Value) -> Self {
        Self(value)
    }
}

impl<'de> Deserialize<'de> for SecretJson {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Value::deserialize(deserializer).map(Self)
    }
}

impl Drop for SecretJson {
    fn drop(&mut self) {
        zeroize_strings(&mut self.0);
    }
}

fn zeroize_strings(value: &mut Value) {
    match value {
        Value::String(text) => text.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(zeroize_strings),
        Value::Object(fields) => fields.values_mut().for_each(zeroize_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

impl fmt::Debug for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A secret value ready to be stored in a Kubernetes Secret: the result of
/// [`extract`](super::extract::extract).
#[derive(Clone)]
pub struct SecretBytes(SecretSlice<u8>);

impl SecretBytes {
    /// The bytes themselves. Do not log them.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(value: Vec<u8>) -> Self {
        Self(SecretSlice::from(value))
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let text = SecretText::from("hunter2");
        let json = SecretJson::from(serde_json::json!({"password": "hunter2"}));
        let bytes = SecretBytes::from(b"hunter2".to_vec());
        for shown in [
            format!("{text:?} {text} {text:#?}"),
            format!("{json:?} {json} {json:#?}"),
            format!("{bytes:?} {bytes} {bytes:#?}"),
        ] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("[REDACTED]"), "{shown}");
        }
        assert_eq!(text.expose_secret(), "hunter2");
        assert_eq!(json.expose_secret()["password"], "hunter2");
        assert_eq!(bytes.expose_secret(), b"hunter2");
    }

    #[test]
    fn zeroize_reaches_nested_strings() {
        let mut value = serde_json::json!({"a": ["xy", {"b": "zz"}], "n": 1});
        zeroize_strings(&mut value);
        assert_eq!(value, serde_json::json!({"a": ["", {"b": ""}], "n": 1}));
    }
}
