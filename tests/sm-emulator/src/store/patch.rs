//! `PATCH /api/v2/secrets/{id}/metadata` (reference 1.11).
//!
//! Only the fields of the type's `*MetadataPatch` model may be sent; anything else (a value
//! field, `secret_group_id`, …) is a `400` naming the field. Objects follow JSON merge
//! patch (RFC 7396): `custom_metadata`, `rotation`, `password_generation_policy` and
//! `managed_csr` are merged key by key, `null` removes a key; `labels` is replaced whole.
//! `null` for `description` or `expiration_date` removes it; `null` for `labels` or
//! `custom_metadata` empties them. How the real service treats `null` outside
//! `expiration_date` is UNCONFIRMED.

use serde_json::Value;

use super::{StoreError, validate};
use crate::body::Body;
use crate::secret_type::{
    IAM_TTL, Object, SERVICE_TTL, SecretType, default_rotation, parse_ttl, validate_password_policy,
    validate_rotation,
};
use crate::store::model::{StoredSecret, Version};

/// Applies `patch` to `secret` in place; the caller checks name uniqueness.
pub(super) fn apply(secret: &mut StoredSecret, patch: &Body<'_>) -> Result<(), StoreError> {
    for (field, value) in patch.fields() {
        match field.as_str() {
            "name" => {
                let name = patch.str("name")?;
                validate::secret_name(name)?;
                name.clone_into(&mut secret.name);
            }
            "description" => {
                secret.description = patch.opt_str("description")?.map(str::to_owned);
                if let Some(description) = &secret.description {
                    validate::description(description)?;
                }
            }
            "labels" => {
                secret.labels = patch.opt_strings("labels")?.unwrap_or_default();
                validate::labels(&secret.labels)?;
            }
            "custom_metadata" => {
                match patch.opt_object("custom_metadata")? {
                    Some(sent) => merge(&mut secret.custom_metadata, &sent.to_map()),
                    None => secret.custom_metadata.clear(),
                }
                validate::custom_metadata("custom_metadata", &secret.custom_metadata)?;
            }
            other if secret.kind.patchable_fields().contains(&other) => {
                apply_type_field(secret, patch, other, value)?;
            }
            other => {
                return Err(StoreError::invalid(
                    other,
                    format!("cannot be changed by a metadata patch of a {} secret", secret.kind),
                ));
            }
        }
    }
    Ok(())
}

fn apply_type_field(
    secret: &mut StoredSecret,
    patch: &Body<'_>,
    field: &str,
    value: &Value,
) -> Result<(), StoreError> {
    match field {
        "expiration_date" => {
            secret.expiration_date =
                patch.opt_str(field)?.map(|date| validate::timestamp(field, date)).transpose()?;
        }
        "ttl" => {
            let (min, max) = ttl_bounds(secret.kind);
            let ttl = parse_ttl(patch, field, min, max)?
                .ok_or_else(|| StoreError::invalid(field, "cannot be removed"))?;
            secret.attributes.insert(field.to_owned(), ttl);
        }
        "rotation" => {
            let mut merged = attribute(secret, field).unwrap_or_else(|| object_of(default_rotation()));
            match value {
                Value::Null => merged = object_of(default_rotation()),
                _ => merge(&mut merged, &patch.object(field)?.to_map()),
            }
            validate_rotation(&Body::at(&merged, field))?;
            secret.attributes.insert(field.to_owned(), Value::Object(merged));
        }
        "password_generation_policy" => {
            let sent = patch.object(field)?;
            validate_password_policy(&sent)?;
            let mut merged = attribute(secret, field).unwrap_or_default();
            merge(&mut merged, &sent.to_map());
            secret.attributes.insert(field.to_owned(), Value::Object(merged));
        }
        "managed_csr" | "parameters" => {
            let mut merged = attribute(secret, field).unwrap_or_default();
            match patch.opt_object(field)? {
                Some(sent) => merge(&mut merged, &sent.to_map()),
                None => merged.clear(),
            }
            secret.attributes.insert(field.to_owned(), Value::Object(merged));
        }
        _ => unreachable!("every patchable field is handled"),
    }
    Ok(())
}

/// Applies a version metadata patch, which may carry only `version_custom_metadata`.
pub(super) fn apply_version(version: &mut Version, patch: &Body<'_>) -> Result<(), StoreError> {
    const FIELD: &str = "version_custom_metadata";
    if let Some((other, _)) = patch.fields().find(|(field, _)| *field != FIELD) {
        return Err(StoreError::invalid(other.as_str(), "cannot be changed by a version metadata patch"));
    }
    match patch.opt_object(FIELD)? {
        Some(sent) => merge(&mut version.custom_metadata, &sent.to_map()),
        None if patch.fields().next().is_some() => version.custom_metadata.clear(),
        None => {}
    }
    validate::custom_metadata(FIELD, &version.custom_metadata)
}

/// TTL bounds in seconds, per type (reference 2.5).
fn ttl_bounds(kind: SecretType) -> (u64, u64) {
    match kind {
        SecretType::IamCredentials => IAM_TTL,
        SecretType::ServiceCredentials => SERVICE_TTL,
        _ => (1, u64::MAX),
    }
}

fn attribute(secret: &StoredSecret, field: &str) -> Option<Object> {
    secret.attributes.get(field).and_then(Value::as_object).cloned()
}

fn object_of(value: Value) -> Object {
    match value {
        Value::Object(object) => object,
        _ => Object::new(),
    }
}

/// RFC 7396 merge of `patch` into `target`.
fn merge(target: &mut Object, patch: &Object) {
    for (key, value) in patch {
        match (value, target.get_mut(key)) {
            (Value::Null, _) => {
                target.remove(key);
            }
            (Value::Object(inner), Some(Value::Object(existing))) => merge(existing, inner),
            (Value::Object(inner), _) => {
                let mut fresh = Object::new();
                merge(&mut fresh, inner);
                target.insert(key.clone(), Value::Object(fresh));
            }
            (value, _) => {
                target.insert(key.clone(), value.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_follows_rfc_7396() {
        let mut target = object_of(json!({"a": "b", "c": {"d": "e", "f": "g"}}));
        merge(&mut target, &object_of(json!({"a": "z", "c": {"f": null}, "n": {"x": null}})));
        assert_eq!(Value::Object(target), json!({"a": "z", "c": {"d": "e"}, "n": {}}));
    }
}
