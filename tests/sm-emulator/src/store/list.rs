//! `GET /api/v2/secrets`: query parameters, filtering, sorting and the paginated envelope
//! (reference 1.4).
//!
//! Without `sort`, secrets come in creation order (the real default is UNCONFIRMED).
//! Every `href` is absolute and repeats the request's filters with `limit` and `offset`, so
//! the Go pager, which reads `offset` out of `next.href`, pages correctly.

use std::cmp::Ordering;

use serde_json::{Value, json};

use super::StoreError;
use super::model::StoredSecret;
use crate::secret_type::SecretType;

const DEFAULT_LIMIT: usize = 200;
const MAX_LIMIT: usize = 1000;
/// Fields `sort` accepts.
const SORT_FIELDS: [&str; 7] =
    ["id", "created_at", "updated_at", "retrieved_at", "expiration_date", "secret_type", "name"];

/// The parsed query of a list request.
#[derive(Debug, Clone)]
pub(crate) struct ListQuery {
    offset: usize,
    limit: usize,
    /// Sort field and whether it is descending.
    sort: Option<(&'static str, bool)>,
    search: Option<String>,
    groups: Vec<String>,
    secret_types: Vec<SecretType>,
    match_all_labels: Vec<String>,
    /// The filters as sent, repeated in every `href`.
    filters: Vec<(String, String)>,
}

impl ListQuery {
    /// Parses a raw query string; a bad value is a `400` naming the parameter.
    pub(crate) fn parse(query: &str) -> Result<Self, StoreError> {
        let mut parsed = Self {
            offset: 0,
            limit: DEFAULT_LIMIT,
            sort: None,
            search: None,
            groups: Vec::new(),
            secret_types: Vec::new(),
            match_all_labels: Vec::new(),
            filters: Vec::new(),
        };
        let list = |value: &str| -> Vec<String> {
            value.split(',').filter(|item| !item.is_empty()).map(str::to_owned).collect()
        };
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match key.as_ref() {
                "offset" => {
                    parsed.offset = value
                        .parse()
                        .map_err(|_| StoreError::invalid("offset", "must be a non-negative integer"))?;
                }
                "limit" => {
                    parsed.limit =
                        value.parse().ok().filter(|limit| (1..=MAX_LIMIT).contains(limit)).ok_or_else(
                            || StoreError::invalid("limit", "must be an integer from 1 to 1000"),
                        )?;
                }
                "sort" => {
                    let (field, descending) = match value.strip_prefix('-') {
                        Some(field) => (field, true),
                        None => (value.as_ref(), false),
                    };
                    let field = SORT_FIELDS.into_iter().find(|known| *known == field).ok_or_else(|| {
                        StoreError::invalid(
                            "sort",
                            format!(
                                "must be one of {}, optionally prefixed with '-'",
                                SORT_FIELDS.join(", ")
                            ),
                        )
                    })?;
                    parsed.sort = Some((field, descending));
                }
                "search" => parsed.search = Some(value.to_string()),
                "groups" => parsed.groups = list(&value),
                "secret_types" => {
                    parsed.secret_types = list(&value)
                        .iter()
                        .map(|name| {
                            name.parse().map_err(|_| {
                                StoreError::invalid("secret_types", format!("unknown secret type '{name}'"))
                            })
                        })
                        .collect::<Result<_, _>>()?;
                }
                "match_all_labels" => parsed.match_all_labels = list(&value),
                _ => continue,
            }
            if !matches!(key.as_ref(), "offset" | "limit") {
                parsed.filters.push((key.into_owned(), value.into_owned()));
            }
        }
        Ok(parsed)
    }

    /// Filters, sorts and pages `secrets`: the total count of matches and the page.
    pub(crate) fn apply<'a>(&self, secrets: impl Iterator<Item = &'a StoredSecret>) -> (usize, Vec<Value>) {
        let mut matches: Vec<&StoredSecret> = secrets.filter(|secret| self.matches(secret)).collect();
        matches.sort_by_key(|secret| secret.seq);
        if let Some((field, descending)) = self.sort {
            matches.sort_by(|a, b| {
                let order = compare(a, b, field);
                if descending { order.reverse() } else { order }
            });
        }
        let total = matches.len();
        let page = matches
            .into_iter()
            .skip(self.offset)
            .take(self.limit)
            .map(|secret| Value::Object(secret.metadata_json()))
            .collect();
        (total, page)
    }

    fn matches(&self, secret: &StoredSecret) -> bool {
        let in_group = self.groups.is_empty() || self.groups.contains(&secret.group_id);
        let of_type = self.secret_types.is_empty() || self.secret_types.contains(&secret.kind);
        let labelled = self.match_all_labels.iter().all(|label| secret.labels.contains(label));
        let found = self.search.as_deref().is_none_or(|needle| {
            secret.id.contains(needle)
                || secret.name.contains(needle)
                || secret.description.as_deref().is_some_and(|d| d.contains(needle))
                || secret.labels.iter().any(|label| label.contains(needle))
                || secret.kind.as_str().contains(needle)
        });
        in_group && of_type && labelled && found
    }

    /// The `SecretMetadataPaginatedCollection` of a page, with hrefs under `base_url`.
    pub(crate) fn envelope(&self, base_url: &str, total: usize, secrets: Vec<Value>) -> Value {
        let href = |offset: usize| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.extend_pairs(&self.filters);
            query.append_pair("limit", &self.limit.to_string());
            query.append_pair("offset", &offset.to_string());
            json!({ "href": format!("{base_url}/api/v2/secrets?{}", query.finish()) })
        };
        let last = total.saturating_sub(1) / self.limit * self.limit;
        let mut envelope = json!({
            "total_count": total,
            "limit": self.limit,
            "offset": self.offset,
            "first": href(0),
            "last": href(last),
            "secrets": Value::Array(secrets),
        });
        if self.offset + self.limit < total {
            envelope["next"] = href(self.offset + self.limit);
        }
        if self.offset > 0 {
            envelope["previous"] = href(self.offset.saturating_sub(self.limit));
        }
        envelope
    }
}

fn compare(a: &StoredSecret, b: &StoredSecret, field: &str) -> Ordering {
    match field {
        "id" => a.id.cmp(&b.id),
        "created_at" => a.created_at.cmp(&b.created_at),
        "updated_at" => a.updated_at.cmp(&b.updated_at),
        "retrieved_at" => a.retrieved_at.cmp(&b.retrieved_at),
        "expiration_date" => a.expiration_date.cmp(&b.expiration_date),
        "secret_type" => a.kind.as_str().cmp(b.kind.as_str()),
        "name" => a.name.cmp(&b.name),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_enforced() {
        assert_eq!(ListQuery::parse("").unwrap().limit, 200);
        assert_eq!(ListQuery::parse("limit=1000").unwrap().limit, 1000);
        for bad in ["limit=1001", "limit=0", "limit=x", "offset=-1", "sort=size", "secret_types=nope"] {
            assert!(ListQuery::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn envelope_links() {
        let query = ListQuery::parse("limit=2&offset=2&sort=-name&groups=default").unwrap();
        let envelope = query.envelope("http://h", 5, Vec::new());
        assert_eq!(
            envelope["next"]["href"],
            "http://h/api/v2/secrets?sort=-name&groups=default&limit=2&offset=4"
        );
        assert_eq!(
            envelope["previous"]["href"],
            "http://h/api/v2/secrets?sort=-name&groups=default&limit=2&offset=0"
        );
        assert_eq!(
            envelope["last"]["href"],
            "http://h/api/v2/secrets?sort=-name&groups=default&limit=2&offset=4"
        );
        let last_page = ListQuery::parse("limit=2&offset=4").unwrap().envelope("http://h", 5, Vec::new());
        assert!(last_page.get("next").is_none());
    }
}
