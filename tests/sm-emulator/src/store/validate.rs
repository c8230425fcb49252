//! Naming and size rules (reference 1.6 and 2.5), with errors that name the field.

use std::str::FromStr;

use jiff::Timestamp;
use serde_json::Value;

use super::StoreError;
use super::model::format_time;
use crate::body::Body;
use crate::secret_type::Object;

/// Largest `custom_metadata` or `version_custom_metadata`, as JSON (reference 2.5).
const MAX_CUSTOM_METADATA: usize = 10_000;

/// Secret names: 2–256 characters, only alphanumerics, `-` and `.`, starting and ending
/// with an alphanumeric (reference 1.6, SM-docs `limits.md`).
pub(crate) fn secret_name(name: &str) -> Result<(), StoreError> {
    let bytes = name.as_bytes();
    let allowed = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.';
    if !(2..=256).contains(&bytes.len()) {
        return Err(StoreError::invalid("name", "must be 2 to 256 characters"));
    }
    let edges_ok = bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if !bytes.iter().all(allowed) || !edges_ok {
        return Err(StoreError::invalid(
            "name",
            "may contain only alphanumerics, '-' and '.', and must start and end with an alphanumeric",
        ));
    }
    Ok(())
}

/// Secret group names: 2–64 characters.
pub(crate) fn group_name(name: &str) -> Result<(), StoreError> {
    if (2..=64).contains(&name.chars().count()) {
        Ok(())
    } else {
        Err(StoreError::invalid("name", "must be 2 to 64 characters"))
    }
}

/// Descriptions: 2–1024 characters.
pub(crate) fn description(description: &str) -> Result<(), StoreError> {
    if (2..=1024).contains(&description.chars().count()) {
        Ok(())
    } else {
        Err(StoreError::invalid("description", "must be 2 to 1024 characters"))
    }
}

/// Labels: at most 30, each 2–64 characters.
pub(crate) fn labels(labels: &[String]) -> Result<(), StoreError> {
    if labels.len() > 30 {
        return Err(StoreError::invalid("labels", "at most 30 labels are allowed"));
    }
    if labels.iter().any(|label| !(2..=64).contains(&label.chars().count())) {
        return Err(StoreError::invalid("labels", "each label must be 2 to 64 characters"));
    }
    Ok(())
}

/// A custom metadata object of at most 10 KB.
pub(crate) fn custom_metadata(field: &str, metadata: &Object) -> Result<(), StoreError> {
    if Value::Object(metadata.clone()).to_string().len() > MAX_CUSTOM_METADATA {
        return Err(StoreError::invalid(field, "must be at most 10 KB"));
    }
    Ok(())
}

/// An RFC 3339 time, normalised to the service's format.
pub(crate) fn timestamp(field: &str, text: &str) -> Result<String, StoreError> {
    Timestamp::from_str(text)
        .map(format_time)
        .map_err(|_| StoreError::invalid(field, "must be an RFC 3339 date-time"))
}

/// The fields every create and version body may carry.
#[derive(Debug, Default)]
pub(crate) struct CommonFields {
    pub(crate) description: Option<String>,
    pub(crate) labels: Option<Vec<String>>,
    pub(crate) custom_metadata: Option<Object>,
    pub(crate) version_custom_metadata: Option<Object>,
}

/// Reads and validates `description`, `labels`, `custom_metadata` and
/// `version_custom_metadata`.
pub(crate) fn common_fields(body: &Body<'_>) -> Result<CommonFields, StoreError> {
    let description = body.opt_str("description")?;
    if let Some(text) = description {
        self::description(text)?;
    }
    let labels = body.opt_strings("labels")?;
    if let Some(labels) = &labels {
        self::labels(labels)?;
    }
    let metadata = |field: &str| -> Result<Option<Object>, StoreError> {
        let Some(object) = body.opt_object(field)? else {
            return Ok(None);
        };
        let object = object.to_map();
        custom_metadata(field, &object)?;
        Ok(Some(object))
    };
    Ok(CommonFields {
        description: description.map(str::to_owned),
        labels,
        custom_metadata: metadata("custom_metadata")?,
        version_custom_metadata: metadata("version_custom_metadata")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names_follow_the_documented_rules() {
        for good in ["ab", "db-password", "a.b-c", "A1", &"x".repeat(256)] {
            assert!(secret_name(good).is_ok(), "{good}");
        }
        for bad in ["a", "-ab", "ab-", "a_b", "a b", "ab/", &"x".repeat(257), ""] {
            assert!(secret_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn labels_are_bounded() {
        assert!(labels(&["ok".into()]).is_ok());
        assert!(labels(&["x".into()]).is_err());
        assert!(labels(&vec!["ok".to_owned(); 31]).is_err());
    }

    #[test]
    fn timestamps_are_normalised() {
        assert_eq!(timestamp("expiration_date", "2030-01-01T00:00:00Z").unwrap(), "2030-01-01T00:00:00.000Z");
        assert!(timestamp("expiration_date", "tomorrow").is_err());
    }
}
