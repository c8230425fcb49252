//! Picks the value an ExternalSecret entry asks for out of a secret.
//!
//! An entry names a secret and, optionally, a `property`. What the property
//! means depends on the secret's type:
//!
//! | Type | `property` | No `property` |
//! |---|---|---|
//! | `arbitrary` | `payload` | the payload |
//! | `username_password` | `username`, `password` | `{"username":…,"password":…}` |
//! | `kv` | a key or dotted path into `data` | `data` |
//! | `iam_credentials` | `api_key` | the API key |
//! | `service_credentials` | a key or dotted path into `credentials` | `credentials` |
//! | `imported_cert`, `public_cert` | `certificate`, `private_key`, `intermediate` | an object of those present |
//! | `private_cert` | `certificate`, `private_key`, `issuing_ca`, `ca_chain` | an object of those present |
//! | `custom_credentials` | a key or dotted path into `credentials_content` | `credentials_content` |
//!
//! Path rules for the three JSON documents (`data`, `credentials`,
//! `credentials_content`):
//!
//! - The property is first tried as one literal key (so a key containing `.`
//!   still works, as in ESO), then as a `.`-separated path; a segment that is
//!   a number indexes an array.
//! - A leading segment naming the document itself is accepted and skipped, so
//!   both `cos_hmac_keys.access_key_id` and
//!   `credentials.cos_hmac_keys.access_key_id` work for `service_credentials`
//!   (the second is the path in the GET response, reference 1.8). For `kv`
//!   the v2 field `data` and KES's v1 field `payload` are both accepted, so
//!   KES manifests written as `payload.<key>` keep working. The prefix is only
//!   skipped when the literal path finds nothing, so a real key of that name
//!   wins.
//!
//! Rendering: strings are returned raw; numbers and booleans as their JSON
//! text; objects, arrays and `null` JSON-encoded. `ca_chain` is returned as
//! one PEM bundle, its certificates joined by newlines.
//!
//! The multi-field defaults (`username_password` and certificates without a
//! property) follow KES, which stored the JSON of the whole value. KES's
//! quoting quirk for `iam_credentials` (a JSON string literal, quotes
//! included) is not reproduced: the raw key is returned.
//!
//! A property the secret does not have, or a value that is absent (for
//! example on a destroyed secret), is [`Error::MissingProperty`], naming the
//! property and the secret id, never a value.

use serde_json::{Map, Value};

use super::error::{Error, Result};
use super::model::{CertificateData, SecretData};
use super::value::{SecretBytes, SecretJson, SecretText};

/// Extracts the value named by `property` from the value fields of the
/// secret `secret_id`. See the module documentation for the rules.
pub fn extract(data: &SecretData, secret_id: &str, property: Option<&str>) -> Result<SecretBytes> {
    let missing =
        |name: &str| Error::MissingProperty { secret_id: secret_id.to_owned(), property: name.to_owned() };
    let text = |value: Option<&SecretText>, name: &str| {
        value
            .map(|value| SecretBytes::from(value.expose_secret().as_bytes().to_vec()))
            .ok_or_else(|| missing(name))
    };
    match data {
        SecretData::Arbitrary(data) => match property {
            None | Some("payload") => text(data.payload.as_ref(), "payload"),
            Some(other) => Err(missing(other)),
        },
        SecretData::UsernamePassword(data) => match property {
            Some("username") => text(data.username.as_ref(), "username"),
            Some("password") => text(data.password.as_ref(), "password"),
            None => Ok(object_of([
                ("username", data.username.as_ref().map(json_text)),
                ("password", data.password.as_ref().map(json_text)),
            ])),
            Some(other) => Err(missing(other)),
        },
        SecretData::IamCredentials(data) => match property {
            None | Some("api_key") => text(data.api_key.as_ref(), "api_key"),
            Some(other) => Err(missing(other)),
        },
        SecretData::Kv(data) => document(data.data.as_ref(), &["data", "payload"], property)
            .ok_or_else(|| missing(property.unwrap_or("data"))),
        SecretData::ServiceCredentials(data) => {
            document(data.credentials.as_ref(), &["credentials"], property)
                .ok_or_else(|| missing(property.unwrap_or("credentials")))
        }
        SecretData::CustomCredentials(data) => {
            document(data.credentials_content.as_ref(), &["credentials_content"], property)
                .ok_or_else(|| missing(property.unwrap_or("credentials_content")))
        }
        SecretData::ImportedCert(cert) | SecretData::PublicCert(cert) => match property {
            Some("certificate") => text(cert.certificate.as_ref(), "certificate"),
            Some("private_key") => text(cert.private_key.as_ref(), "private_key"),
            Some("intermediate") => text(cert.intermediate.as_ref(), "intermediate"),
            None => Ok(object_of([
                ("certificate", cert.certificate.as_ref().map(json_text)),
                ("intermediate", cert.intermediate.as_ref().map(json_text)),
                ("private_key", cert.private_key.as_ref().map(json_text)),
            ])),
            Some(other) => Err(missing(other)),
        },
        SecretData::PrivateCert(cert) => match property {
            Some("certificate") => text(cert.certificate.as_ref(), "certificate"),
            Some("private_key") => text(cert.private_key.as_ref(), "private_key"),
            Some("issuing_ca") => text(cert.issuing_ca.as_ref(), "issuing_ca"),
            Some("ca_chain") => ca_chain(cert).ok_or_else(|| missing("ca_chain")),
            None => Ok(object_of([
                ("certificate", cert.certificate.as_ref().map(json_text)),
                ("private_key", cert.private_key.as_ref().map(json_text)),
                ("issuing_ca", cert.issuing_ca.as_ref().map(json_text)),
                ("ca_chain", cert.ca_chain.as_ref().map(|chain| chain.iter().map(json_text).collect())),
            ])),
            Some(other) => Err(missing(other)),
        },
    }
}

/// Resolves `property` in a JSON document; `None` when absent.
fn document(doc: Option<&SecretJson>, aliases: &[&str], property: Option<&str>) -> Option<SecretBytes> {
    let root = doc?.expose_secret();
    let Some(property) = property else {
        return Some(render(root));
    };
    if let Some(found) = lookup(root, property) {
        return Some(render(found));
    }
    aliases.iter().find_map(|alias| {
        if property == *alias {
            Some(render(root))
        } else {
            let rest = property.strip_prefix(alias)?.strip_prefix('.')?;
            lookup(root, rest).map(render)
        }
    })
}

/// A literal key first, then a `.`-separated path (numbers index arrays).
fn lookup<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(found) = root.get(path) {
        return Some(found);
    }
    path.split('.').try_fold(root, |node, segment| match node {
        Value::Object(fields) => fields.get(segment),
        Value::Array(items) => items.get(segment.parse::<usize>().ok()?),
        _ => None,
    })
}

fn render(value: &Value) -> SecretBytes {
    let bytes = match value {
        Value::String(text) => text.as_bytes().to_vec(),
        other => serde_json::to_vec(other).expect("a JSON value always serializes"),
    };
    SecretBytes::from(bytes)
}

fn ca_chain(cert: &CertificateData) -> Option<SecretBytes> {
    let chain = cert.ca_chain.as_ref()?;
    let pems: Vec<&str> = chain.iter().map(SecretText::expose_secret).collect();
    Some(SecretBytes::from(pems.join("\n").into_bytes()))
}

/// A JSON object of the fields that are present.
fn object_of<const N: usize>(fields: [(&str, Option<Value>); N]) -> SecretBytes {
    let object: Map<String, Value> =
        fields.into_iter().filter_map(|(name, value)| Some((name.to_owned(), value?))).collect();
    // Held as a `SecretJson` so the copies of the values are zeroized on drop.
    render(SecretJson::from(Value::Object(object)).expose_secret())
}

fn json_text(value: &SecretText) -> Value {
    Value::from(value.expose_secret())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::model::decode_secret;

    const ID: &str = "0b5571f7-21e6-42b7-91c5-3f5ac9793a46";

    fn secret(secret_type: &str, values: Value) -> crate::provider::Secret {
        let mut json = json!({"id": ID, "secret_type": secret_type});
        let Value::Object(values) = values else { panic!("values must be an object") };
        json.as_object_mut().expect("object").extend(values);
        decode_secret(&serde_json::to_vec(&json).expect("encode")).expect("decode")
    }

    fn get(secret: &crate::provider::Secret, property: Option<&str>) -> String {
        let bytes = secret.value(property).expect("value");
        String::from_utf8(bytes.expose_secret().to_vec()).expect("utf8")
    }

    fn assert_missing(secret: &crate::provider::Secret, property: Option<&str>, named: &str) {
        let error = secret.value(property).expect_err("missing");
        let Error::MissingProperty { secret_id, property } = &error else { panic!("unexpected {error:?}") };
        assert_eq!(secret_id, ID);
        assert_eq!(property, named);
        let shown = error.to_string();
        assert!(shown.contains(ID) && shown.contains(named), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn arbitrary() {
        let s = secret("arbitrary", json!({"payload": "hunter2"}));
        assert_eq!(get(&s, None), "hunter2");
        assert_eq!(get(&s, Some("payload")), "hunter2");
        assert_missing(&s, Some("password"), "password");
        let destroyed = secret("arbitrary", json!({}));
        assert_missing(&destroyed, None, "payload");
    }

    #[test]
    fn username_password() {
        let s = secret("username_password", json!({"username": "admin", "password": "hunter2"}));
        assert_eq!(get(&s, Some("username")), "admin");
        assert_eq!(get(&s, Some("password")), "hunter2");
        let whole: Value = serde_json::from_str(&get(&s, None)).expect("json");
        assert_eq!(whole, json!({"username": "admin", "password": "hunter2"}));
        assert_missing(&s, Some("api_key"), "api_key");
        let no_password = secret("username_password", json!({"username": "admin"}));
        assert_missing(&no_password, Some("password"), "password");
    }

    #[test]
    fn kv_paths() {
        let s = secret(
            "kv",
            json!({"data": {
                "plain": "hunter2",
                "nested": {"deep": {"key": "v"}, "list": ["a", {"b": true}]},
                "dotted.key": "literal",
                "num": 42, "flag": false, "nothing": null, "float": 1.5
            }}),
        );
        assert_eq!(get(&s, Some("plain")), "hunter2");
        assert_eq!(get(&s, Some("nested.deep.key")), "v");
        assert_eq!(get(&s, Some("nested.deep")), r#"{"key":"v"}"#);
        assert_eq!(get(&s, Some("nested.list")), r#"["a",{"b":true}]"#);
        assert_eq!(get(&s, Some("nested.list.0")), "a");
        assert_eq!(get(&s, Some("nested.list.1.b")), "true");
        assert_eq!(get(&s, Some("dotted.key")), "literal");
        assert_eq!(get(&s, Some("num")), "42");
        assert_eq!(get(&s, Some("float")), "1.5");
        assert_eq!(get(&s, Some("flag")), "false");
        assert_eq!(get(&s, Some("nothing")), "null");
        assert_eq!(get(&s, Some("data.nested.deep.key")), "v");
        assert_eq!(get(&s, Some("payload.nested.deep.key")), "v", "KES v1 spelling");
        let whole: Value = serde_json::from_str(&get(&s, None)).expect("json");
        assert_eq!(whole["plain"], "hunter2");
        assert_eq!(get(&s, Some("payload")), get(&s, None));
        assert_missing(&s, Some("nested.absent"), "nested.absent");
        assert_missing(&s, Some("plain.deeper"), "plain.deeper");
        assert_missing(&s, Some("nested.list.9"), "nested.list.9");
    }

    #[test]
    fn kv_real_key_named_like_the_document_wins() {
        let s = secret("kv", json!({"data": {"data": {"x": "inner"}, "x": "outer"}}));
        assert_eq!(get(&s, Some("data.x")), "inner");
    }

    #[test]
    fn iam_credentials() {
        let s = secret("iam_credentials", json!({"api_key": "hunter2", "api_key_id": "ApiKey-1"}));
        assert_eq!(get(&s, None), "hunter2");
        assert_eq!(get(&s, Some("api_key")), "hunter2");
        assert_missing(&s, Some("apikey"), "apikey");
    }

    #[test]
    fn service_credentials_paths() {
        let s = secret(
            "service_credentials",
            json!({"credentials": {
                "apikey": "hunter2",
                "cos_hmac_keys": {"access_key_id": "AK", "secret_access_key": "SK"},
                "resource_instance_id": "crn:v1:cos"
            }}),
        );
        assert_eq!(get(&s, Some("credentials.cos_hmac_keys.access_key_id")), "AK");
        assert_eq!(get(&s, Some("cos_hmac_keys.secret_access_key")), "SK");
        assert_eq!(get(&s, Some("credentials.apikey")), "hunter2");
        assert_eq!(get(&s, Some("resource_instance_id")), "crn:v1:cos");
        assert_eq!(get(&s, Some("cos_hmac_keys")), r#"{"access_key_id":"AK","secret_access_key":"SK"}"#);
        let whole: Value = serde_json::from_str(&get(&s, None)).expect("json");
        assert_eq!(whole["apikey"], "hunter2");
        assert_eq!(get(&s, Some("credentials")), get(&s, None));
        assert_missing(&s, Some("credentials.cos_hmac_keys.nope"), "credentials.cos_hmac_keys.nope");
        let no_credentials = secret("service_credentials", json!({}));
        assert_missing(&no_credentials, None, "credentials");
    }

    #[test]
    fn certificates() {
        for secret_type in ["imported_cert", "public_cert"] {
            let s = secret(
                secret_type,
                json!({"certificate": "CERT", "private_key": "hunter2", "intermediate": "INT"}),
            );
            assert_eq!(get(&s, Some("certificate")), "CERT");
            assert_eq!(get(&s, Some("private_key")), "hunter2");
            assert_eq!(get(&s, Some("intermediate")), "INT");
            let whole: Value = serde_json::from_str(&get(&s, None)).expect("json");
            assert_eq!(
                whole,
                json!({"certificate": "CERT", "private_key": "hunter2", "intermediate": "INT"})
            );
            assert_missing(&s, Some("issuing_ca"), "issuing_ca");
            let bare = secret(secret_type, json!({"certificate": "CERT"}));
            assert_missing(&bare, Some("intermediate"), "intermediate");
            assert_missing(&bare, Some("private_key"), "private_key");
        }
        let s = secret(
            "private_cert",
            json!({"certificate": "CERT", "private_key": "hunter2", "issuing_ca": "CA", "ca_chain": ["CA", "ROOT"]}),
        );
        assert_eq!(get(&s, Some("certificate")), "CERT");
        assert_eq!(get(&s, Some("private_key")), "hunter2");
        assert_eq!(get(&s, Some("issuing_ca")), "CA");
        assert_eq!(get(&s, Some("ca_chain")), "CA\nROOT");
        let whole: Value = serde_json::from_str(&get(&s, None)).expect("json");
        assert_eq!(whole["ca_chain"], json!(["CA", "ROOT"]));
        assert_missing(&s, Some("intermediate"), "intermediate");
        let bare = secret("private_cert", json!({"certificate": "CERT"}));
        assert_missing(&bare, Some("ca_chain"), "ca_chain");
    }

    #[test]
    fn custom_credentials() {
        let s = secret(
            "custom_credentials",
            json!({"credentials_content": {"token": "hunter2", "port": 5432, "tls": true}}),
        );
        assert_eq!(get(&s, Some("token")), "hunter2");
        assert_eq!(get(&s, Some("credentials_content.port")), "5432");
        assert_eq!(get(&s, Some("tls")), "true");
        let whole: Value = serde_json::from_str(&get(&s, None)).expect("json");
        assert_eq!(whole["port"], 5432);
        assert_missing(&s, Some("user"), "user");
    }
}
