//! The IAM token service: `POST /identity/token` (reference section 3).
//!
//! Grants: `urn:ibm:params:oauth:grant-type:apikey` (form field `apikey`) and
//! `urn:ibm:params:oauth:grant-type:cr-token` (`cr_token` plus `profile_id` and/or
//! `profile_name`; when both are sent they must name the same profile). A profile's CR
//! token is read from its file at every exchange, since the kubelet rotates it; leading
//! and trailing whitespace is ignored on both sides.
//!
//! Errors use IAM's own shape, `{"errorCode","errorMessage","context"}` (reference 3.4).
//! Only `BXNIM0415E` for an unknown API key is attested; the other codes are UNCONFIRMED
//! and every failure is answered `400`, as the fixtures do for a bad API key (UNCONFIRMED).

pub(crate) mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::config::{EmulatorConfig, TrustedProfile};
use crate::server::AppState;
use tokens::{Principal, TokenIssuer};

/// The API key grant.
pub const GRANT_APIKEY: &str = "urn:ibm:params:oauth:grant-type:apikey";
/// The compute-resource (trusted profile) grant.
pub const GRANT_CR_TOKEN: &str = "urn:ibm:params:oauth:grant-type:cr-token";

/// Operation name of token requests in the request statistics.
pub(crate) const OPERATION: &str = "iam_token";

/// The identities IAM knows and the tokens it issued. Its `Debug` shows no API key.
pub(crate) struct Iam {
    pub(crate) tokens: TokenIssuer,
    api_keys: HashMap<String, Principal>,
    profiles: Vec<TrustedProfile>,
}

/// A refused token request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct IamError {
    code: &'static str,
    message: String,
}

impl IamError {
    fn missing(field: &str) -> Self {
        Self { code: "BXNIM0109E", message: format!("Property '{field}' missing or empty.") }
    }
}

impl fmt::Debug for Iam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iam")
            .field("tokens", &self.tokens)
            .field("api_keys", &self.api_keys.len())
            .field("profiles", &self.profiles)
            .finish()
    }
}

impl Iam {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        let api_keys = config
            .api_keys
            .iter()
            .map(|key| {
                let service_id = format!("ServiceId-{}", uuid::Uuid::new_v4());
                let principal =
                    Principal { iam_id: format!("iam-{service_id}"), sub: service_id, sub_type: "ServiceId" };
                (key.clone(), principal)
            })
            .collect();
        Self {
            tokens: TokenIssuer::new(config.token_lifetime, config.account_id.clone()),
            api_keys,
            profiles: config.trusted_profiles.clone(),
        }
    }

    /// Handles one token request given as form fields.
    fn exchange(&self, form: &HashMap<String, String>) -> Result<Value, IamError> {
        let field = |name: &str| form.get(name).map(String::as_str).filter(|value| !value.is_empty());
        let grant_type = field("grant_type").ok_or_else(|| IamError::missing("grant_type"))?;
        let principal = match grant_type {
            GRANT_APIKEY => {
                let key = field("apikey").ok_or_else(|| IamError::missing("apikey"))?;
                self.api_keys.get(key).cloned().ok_or_else(|| IamError {
                    code: "BXNIM0415E",
                    message: "Provided API key could not be found.".into(),
                })?
            }
            GRANT_CR_TOKEN => {
                let cr_token = field("cr_token").ok_or_else(|| IamError::missing("cr_token"))?;
                let profile = self.profile(field("profile_id"), field("profile_name"))?;
                let expected = profile.cr_token.current();
                if expected.as_deref().map(str::trim) != Some(cr_token.trim()) {
                    return Err(IamError {
                        code: "BXNIM0520E",
                        message: "The compute resource token could not be validated.".into(),
                    });
                }
                Principal {
                    iam_id: format!("iam-{}", profile.profile_id),
                    sub: profile.profile_id.clone(),
                    sub_type: "Profile",
                }
            }
            other => {
                return Err(IamError {
                    code: "BXNIM0103E",
                    message: format!("Unsupported grant type '{other}'."),
                });
            }
        };
        Ok(self.tokens.issue(&principal, grant_type))
    }

    /// The trusted profile that `profile_id` and/or `profile_name` name.
    fn profile(&self, id: Option<&str>, name: Option<&str>) -> Result<&TrustedProfile, IamError> {
        if id.is_none() && name.is_none() {
            return Err(IamError::missing("profile_id"));
        }
        self.profiles
            .iter()
            .find(|profile| {
                id.is_none_or(|id| profile.profile_id == id)
                    && name.is_none_or(|name| profile.profile_name.as_deref() == Some(name))
            })
            .ok_or_else(|| IamError {
                code: "BXNIM0502E",
                message: "The trusted profile could not be found, or its id and name do not match.".into(),
            })
    }
}

/// Short label of a grant type for the statistics.
fn grant_label(grant_type: Option<&str>) -> &str {
    match grant_type {
        Some(GRANT_APIKEY) => "apikey",
        Some(GRANT_CR_TOKEN) => "cr_token",
        Some(_) => "unsupported",
        None => "missing",
    }
}

/// `POST /identity/token`.
pub(crate) async fn token(State(app): State<Arc<AppState>>, headers: HeaderMap, body: Bytes) -> Response {
    let started = SystemTime::now();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let result = app.iam.exchange(&form);
    let response = match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(error) => {
            tracing::debug!(code = error.code, "token request refused");
            let user_agent =
                headers.get(header::USER_AGENT).and_then(|value| value.to_str().ok()).unwrap_or_default();
            let body = json!({
                "errorCode": error.code,
                "errorMessage": error.message,
                "context": {
                    "requestId": uuid::Uuid::new_v4().to_string(),
                    "requestType": "incoming.Identity_Token",
                    "userAgent": user_agent,
                    "url": app.base_url,
                    "instanceId": "sm-emulator",
                    "host": "sm-emulator",
                    "startTime": context_time(started),
                    "endTime": context_time(SystemTime::now()),
                    "locale": "en_US",
                    "clusterName": "sm-emulator",
                },
            });
            (StatusCode::BAD_REQUEST, Json(body)).into_response()
        }
    };
    let mut traffic = app.traffic();
    traffic.token_exchange(grant_label(form.get("grant_type").map(String::as_str)));
    traffic.answered(OPERATION, response.status().as_u16());
    response
}

/// IAM's `context` times look like `07.05.2025 10:00:00:000 UTC`; an RFC 3339 time is
/// close enough for clients, which never parse them.
fn context_time(time: SystemTime) -> String {
    jiff::Timestamp::try_from(time).map_or_else(|_| String::new(), |ts| format!("{ts:.3}"))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::CrTokenSource;

    fn form(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn iam(profiles: Vec<TrustedProfile>) -> Iam {
        Iam::new(&EmulatorConfig { trusted_profiles: profiles, ..EmulatorConfig::default() })
    }

    #[test]
    fn api_key_grant() {
        let iam = iam(Vec::new());
        let ok = iam.exchange(&form(&[("grant_type", GRANT_APIKEY), ("apikey", "emulator-api-key")]));
        assert_eq!(ok.unwrap()["token_type"], "Bearer");
        let bad = iam.exchange(&form(&[("grant_type", GRANT_APIKEY), ("apikey", "nope")]));
        assert_eq!(bad.unwrap_err().code, "BXNIM0415E");
        let missing = iam.exchange(&form(&[("grant_type", GRANT_APIKEY)]));
        assert_eq!(missing.unwrap_err(), IamError::missing("apikey"));
    }

    #[test]
    fn cr_token_grant_matches_id_and_name() {
        let iam = iam(vec![
            TrustedProfile {
                profile_id: "Profile-1".into(),
                profile_name: Some("one".into()),
                cr_token: CrTokenSource::Value("t1".into()),
            },
            TrustedProfile {
                profile_id: "Profile-2".into(),
                profile_name: None,
                cr_token: CrTokenSource::File(PathBuf::from("/nonexistent/token")),
            },
        ]);
        let exchange = |pairs: &[(&str, &str)]| {
            let mut all = vec![("grant_type", GRANT_CR_TOKEN)];
            all.extend_from_slice(pairs);
            iam.exchange(&form(&all))
        };
        assert!(exchange(&[("cr_token", "t1"), ("profile_id", "Profile-1")]).is_ok());
        assert!(exchange(&[("cr_token", "t1"), ("profile_name", "one")]).is_ok());
        assert!(
            exchange(&[("cr_token", "t1"), ("profile_id", "Profile-1"), ("profile_name", "one")]).is_ok()
        );
        assert_eq!(
            exchange(&[("cr_token", "t1"), ("profile_id", "Profile-2"), ("profile_name", "one")])
                .unwrap_err()
                .code,
            "BXNIM0502E"
        );
        assert_eq!(
            exchange(&[("cr_token", "t2"), ("profile_id", "Profile-1")]).unwrap_err().code,
            "BXNIM0520E"
        );
        assert_eq!(
            exchange(&[("cr_token", "x"), ("profile_id", "Profile-2")]).unwrap_err().code,
            "BXNIM0520E"
        );
        assert_eq!(exchange(&[("cr_token", "t1")]).unwrap_err(), IamError::missing("profile_id"));
    }
}
