//! `imported_cert`, `public_cert` and `private_cert`.
//!
//! The emulator neither parses nor issues real certificates: it stores the PEM strings a
//! body sends and, where the service would issue a certificate, makes PEM-shaped
//! placeholders. Serial numbers and validity are generated; `expiration_date` is the end
//! of the validity.

use jiff::SignedDuration;
use serde_json::{Value, json};

use super::{Draft, NewData, Object, default_rotation, object, parse_rotation};
use crate::body::Body;
use crate::generate;
use crate::store::StoreError;
use crate::store::model::{StoredSecret, format_time};

/// Largest certificate, key or intermediate (reference 2.5).
const MAX_PEM: usize = 100_000;
const SIGNING_ALGORITHM: &str = "SHA256-RSA";
const DEFAULT_KEY_ALGORITHM: &str = "RSA2048";

pub(super) fn create_imported(body: &Body<'_>, draft: &Draft<'_>) -> Result<NewData, StoreError> {
    let values = sent_pems(body, &["certificate", "intermediate", "private_key"])?;
    let mut attributes = imported_flags(&values);
    if let Some(csr) = body.opt_object("managed_csr")? {
        attributes.insert("managed_csr".into(), Value::Object(csr.to_map()));
    }
    attributes.insert("key_algorithm".into(), json!(DEFAULT_KEY_ALGORITHM));
    attributes.insert("signing_algorithm".into(), json!(SIGNING_ALGORITHM));
    Ok(with_validity(attributes, values, draft, 365))
}

pub(super) fn rotate_imported(
    secret: &StoredSecret,
    body: &Body<'_>,
    draft: &Draft<'_>,
) -> Result<NewData, StoreError> {
    body.str("certificate")?;
    let values = sent_pems(body, &["certificate", "intermediate", "private_key"])?;
    let mut attributes = secret.attributes.clone();
    attributes.extend(imported_flags(&values));
    Ok(with_validity(attributes, values, draft, 365))
}

pub(super) fn create_public(body: &Body<'_>, draft: &Draft<'_>) -> Result<NewData, StoreError> {
    let common_name = body.str("common_name")?;
    let rotation = parse_rotation(body)?.unwrap_or_else(|| {
        object([("auto_rotate", Some(json!(false))), ("rotate_keys", Some(json!(false)))])
    });
    let attributes = object([
        ("common_name", Some(json!(common_name))),
        ("alt_names", body.opt_strings("alt_names")?.map(|names| json!(names))),
        ("key_algorithm", Some(json!(key_algorithm(body)?))),
        ("ca", body.opt_str("ca")?.map(|ca| json!(ca))),
        ("dns", body.opt_str("dns")?.map(|dns| json!(dns))),
        ("bundle_certs", Some(json!(body.opt_bool("bundle_certs")?.unwrap_or(true)))),
        ("issuer", Some(json!("CN=Emulator Public CA,O=sm-emulator"))),
        ("signing_algorithm", Some(json!(SIGNING_ALGORITHM))),
        (
            "issuance_info",
            Some(json!({
                "ordered_on": format_time(draft.now),
                "state": 1,
                "state_description": "active",
                "auto_rotated": false,
            })),
        ),
        ("rotation", Some(Value::Object(rotation))),
    ]);
    let values = issued_values(body, Issuance::Public)?;
    Ok(with_validity(attributes, values, draft, 90))
}

pub(super) fn create_private(body: &Body<'_>, draft: &Draft<'_>) -> Result<NewData, StoreError> {
    let template = body.str("certificate_template")?;
    let common_name = body.str("common_name")?;
    let attributes = object([
        ("certificate_template", Some(json!(template))),
        ("common_name", Some(json!(common_name))),
        ("alt_names", body.opt_strings("alt_names")?.map(|names| json!(names))),
        ("key_algorithm", Some(json!(key_algorithm(body)?))),
        ("certificate_authority", Some(json!("emulator-intermediate-ca"))),
        ("issuer", Some(json!("CN=Emulator Private CA,O=sm-emulator"))),
        ("signing_algorithm", Some(json!(SIGNING_ALGORITHM))),
        ("rotation", Some(parse_rotation(body)?.map_or_else(default_rotation, Value::Object))),
    ]);
    let values = issued_values(body, Issuance::Private)?;
    Ok(with_validity(attributes, values, draft, 365))
}

/// A new version of a `public_cert` or `private_cert`: a re-issued certificate.
pub(super) fn rotate_issued(
    secret: &StoredSecret,
    body: &Body<'_>,
    draft: &Draft<'_>,
) -> Result<NewData, StoreError> {
    let kind = if secret.attributes.contains_key("certificate_template") {
        Issuance::Private
    } else {
        Issuance::Public
    };
    let values = issued_values(body, kind)?;
    let days = if kind == Issuance::Public { 90 } else { 365 };
    Ok(with_validity(secret.attributes.clone(), values, draft, days))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Issuance {
    Public,
    Private,
}

/// The PEM fields the body sends, each at most 100 KB.
fn sent_pems(body: &Body<'_>, fields: &[&str]) -> Result<Object, StoreError> {
    let mut values = Object::new();
    for field in fields {
        if let Some(pem) = body.opt_str(field)? {
            if pem.len() > MAX_PEM {
                return Err(StoreError::invalid(*field, "must be at most 100 KB"));
            }
            values.insert((*field).to_owned(), json!(pem));
        }
    }
    Ok(values)
}

/// The value fields of an issued certificate: as sent, else placeholders.
fn issued_values(body: &Body<'_>, kind: Issuance) -> Result<Object, StoreError> {
    let mut values = match kind {
        Issuance::Public => object([
            ("certificate", Some(json!(generate::pem("CERTIFICATE")))),
            ("intermediate", Some(json!(generate::pem("CERTIFICATE")))),
            ("private_key", Some(json!(generate::pem("PRIVATE KEY")))),
        ]),
        Issuance::Private => {
            let issuing_ca = generate::pem("CERTIFICATE");
            object([
                ("certificate", Some(json!(generate::pem("CERTIFICATE")))),
                ("private_key", Some(json!(generate::pem("PRIVATE KEY")))),
                ("ca_chain", Some(json!([issuing_ca]))),
                ("issuing_ca", Some(json!(issuing_ca))),
            ])
        }
    };
    let pem_fields: &[&str] = match kind {
        Issuance::Public => &["certificate", "intermediate", "private_key"],
        Issuance::Private => &["certificate", "private_key", "issuing_ca"],
    };
    values.extend(sent_pems(body, pem_fields)?);
    if kind == Issuance::Private
        && let Some(chain) = body.opt_strings("ca_chain")?
    {
        values.insert("ca_chain".into(), json!(chain));
    }
    Ok(values)
}

fn imported_flags(values: &Object) -> Object {
    object([
        ("intermediate_included", Some(json!(values.contains_key("intermediate")))),
        ("private_key_included", Some(json!(values.contains_key("private_key")))),
    ])
}

fn key_algorithm(body: &Body<'_>) -> Result<String, StoreError> {
    Ok(body.opt_str("key_algorithm")?.unwrap_or(DEFAULT_KEY_ALGORITHM).to_owned())
}

/// Completes a certificate version with a serial number and a validity of `days` days.
fn with_validity(attributes: Object, values: Object, draft: &Draft<'_>, days: i64) -> NewData {
    let not_after =
        draft.now.checked_add(SignedDuration::from_hours(24 * days)).expect("validity end is representable");
    let not_after = format_time(not_after);
    NewData {
        attributes,
        values,
        version_meta: object([
            ("serial_number", Some(json!(generate::serial_number()))),
            ("validity", Some(json!({ "not_before": format_time(draft.now), "not_after": not_after }))),
        ]),
        expiration_date: Some(not_after),
    }
}
