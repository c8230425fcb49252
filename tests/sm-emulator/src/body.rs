//! Typed access to JSON request bodies, with errors that name the offending field.

use std::fmt;

use serde_json::{Map, Value};

use crate::store::StoreError;

/// A JSON object taken from a request body. Its `Debug` shows only the field names.
#[derive(Clone)]
pub(crate) struct Body<'a> {
    map: &'a Map<String, Value>,
    /// Dotted path of this object inside the request body; empty at the top level.
    path: String,
}

impl fmt::Debug for Body<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body")
            .field("path", &self.path)
            .field("fields", &self.map.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl<'a> Body<'a> {
    /// Interprets `value` as a request body, which must be a JSON object.
    pub(crate) fn new(value: &'a Value) -> Result<Self, StoreError> {
        value
            .as_object()
            .map(|map| Self { map, path: String::new() })
            .ok_or_else(|| StoreError::invalid("body", "the request body must be a JSON object"))
    }

    /// Views `map` as the object found at the dotted `path` of a request body.
    pub(crate) fn at(map: &'a Map<String, Value>, path: &str) -> Self {
        Self { map, path: path.to_owned() }
    }

    /// The dotted name of `field`, as error messages show it.
    pub(crate) fn name(&self, field: &str) -> String {
        if self.path.is_empty() { field.to_owned() } else { format!("{}.{field}", self.path) }
    }

    fn invalid(&self, field: &str, message: &str) -> StoreError {
        StoreError::invalid(self.name(field), message)
    }

    fn child(&self, field: &str, map: &'a Map<String, Value>) -> Body<'a> {
        Body { map, path: self.name(field) }
    }

    /// The raw value of `field`, treating `null` as absent.
    pub(crate) fn get(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|value| !value.is_null())
    }

    /// A required string field.
    pub(crate) fn str(&self, field: &str) -> Result<&'a str, StoreError> {
        self.opt_str(field)?.ok_or_else(|| self.invalid(field, "is required"))
    }

    /// An optional string field.
    pub(crate) fn opt_str(&self, field: &str) -> Result<Option<&'a str>, StoreError> {
        self.get(field)
            .map(|value| value.as_str().ok_or_else(|| self.invalid(field, "must be a string")))
            .transpose()
    }

    /// A required boolean field.
    pub(crate) fn bool(&self, field: &str) -> Result<bool, StoreError> {
        self.opt_bool(field)?.ok_or_else(|| self.invalid(field, "is required"))
    }

    /// An optional boolean field.
    pub(crate) fn opt_bool(&self, field: &str) -> Result<Option<bool>, StoreError> {
        self.get(field)
            .map(|value| value.as_bool().ok_or_else(|| self.invalid(field, "must be a boolean")))
            .transpose()
    }

    /// A required object field.
    pub(crate) fn object(&self, field: &str) -> Result<Body<'a>, StoreError> {
        self.opt_object(field)?.ok_or_else(|| self.invalid(field, "is required"))
    }

    /// An optional object field.
    pub(crate) fn opt_object(&self, field: &str) -> Result<Option<Body<'a>>, StoreError> {
        self.get(field)
            .map(|value| {
                value
                    .as_object()
                    .map(|map| self.child(field, map))
                    .ok_or_else(|| self.invalid(field, "must be a JSON object"))
            })
            .transpose()
    }

    /// An optional array of strings.
    pub(crate) fn opt_strings(&self, field: &str) -> Result<Option<Vec<String>>, StoreError> {
        let Some(value) = self.get(field) else {
            return Ok(None);
        };
        let items = value.as_array().ok_or_else(|| self.invalid(field, "must be an array of strings"))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| self.invalid(field, "must be an array of strings"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional integer field.
    pub(crate) fn opt_u64(&self, field: &str) -> Result<Option<u64>, StoreError> {
        self.get(field)
            .map(|value| value.as_u64().ok_or_else(|| self.invalid(field, "must be a non-negative integer")))
            .transpose()
    }

    /// The owned object, for storing it as sent.
    pub(crate) fn to_map(&self) -> Map<String, Value> {
        self.map.clone()
    }

    /// Every field the body sends, `null` values included.
    pub(crate) fn fields(&self) -> impl Iterator<Item = (&'a String, &'a Value)> + use<'a> {
        self.map.iter()
    }
}
