//! Access tokens: issuing JWT-shaped tokens and checking bearer headers.
//!
//! A token is `base64url(header).base64url(claims).base64url(random signature)`. Clients
//! never check the signature (reference 3.6); the emulator remembers every token it issued
//! and looks it up. `iat` is the issue time in whole seconds, `exp = iat + expires_in`, and
//! `expiration` equals `exp`; a token is accepted while the current time is before `exp`.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use serde_json::{Value, json};

/// How long an expired token is still recognised as "expired" rather than "unknown".
const EXPIRED_MEMORY_SECS: u64 = 86_400;

/// Who a token was issued to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// `iam_id` claim, e.g. `iam-ServiceId-<uuid>`; becomes `created_by` of writes.
    pub(crate) iam_id: String,
    /// `sub` claim.
    pub(crate) sub: String,
    /// `sub_type` claim: `ServiceId` or `Profile`.
    pub(crate) sub_type: &'static str,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Rejection {
    #[error("the Authorization header with a Bearer token is missing")]
    Missing,
    #[error("the access token is not valid")]
    Unknown,
    #[error("the access token has expired")]
    Expired,
}

struct Issued {
    principal: Principal,
    exp: u64,
}

/// Issues and checks access tokens. Its `Debug` shows no token.
pub(crate) struct TokenIssuer {
    lifetime_secs: u64,
    account_id: String,
    issued: Mutex<HashMap<String, Issued>>,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("lifetime_secs", &self.lifetime_secs)
            .field("issued", &self.lock().len())
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    pub(crate) fn new(lifetime: Duration, account_id: String) -> Self {
        Self { lifetime_secs: lifetime.as_secs(), account_id, issued: Mutex::new(HashMap::new()) }
    }

    /// Issues a token to `principal` and returns the IAM success body (reference 3.3).
    pub(crate) fn issue(&self, principal: &Principal, grant_type: &str) -> Value {
        let now = SystemTime::now();
        let iat = unix_secs(now);
        let exp = iat + self.lifetime_secs;
        let header = json!({ "kid": "sm-emulator", "alg": "RS256" });
        let claims = json!({
            "iam_id": principal.iam_id,
            "id": principal.iam_id,
            "realmid": "iam",
            "jti": uuid::Uuid::new_v4().to_string(),
            "identifier": principal.sub,
            "sub": principal.sub,
            "sub_type": principal.sub_type,
            "account": { "valid": true, "bss": self.account_id },
            "iat": iat,
            "exp": exp,
            "iss": "https://iam.cloud.ibm.com/identity",
            "grant_type": grant_type,
            "scope": "ibm openid",
            "client_id": "default",
            "acr": 1,
            "amr": ["pwd"],
        });
        let mut signature = [0u8; 64];
        rand::rng().fill(&mut signature);
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            URL_SAFE_NO_PAD.encode(signature)
        );
        let mut issued = self.lock();
        issued.retain(|_, token| token.exp + EXPIRED_MEMORY_SECS > iat);
        issued.insert(token.clone(), Issued { principal: principal.clone(), exp });
        json!({
            "access_token": token,
            "refresh_token": "not_supported",
            "token_type": "Bearer",
            "expires_in": self.lifetime_secs,
            "expiration": exp,
            "scope": "ibm openid",
        })
    }

    /// Checks an `Authorization` header value and returns the token's principal.
    pub(crate) fn authenticate(&self, header: Option<&str>) -> Result<Principal, Rejection> {
        let token = header
            .and_then(|value| {
                let (scheme, token) = value.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|token| !token.is_empty())
            .ok_or(Rejection::Missing)?;
        let issued = self.lock();
        let found = issued.get(token).ok_or(Rejection::Unknown)?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        #[allow(clippy::cast_precision_loss)] // Unix seconds fit an f64 exactly.
        let exp = found.exp as f64;
        if now < exp { Ok(found.principal.clone()) } else { Err(Rejection::Expired) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Issued>> {
        self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn unix_secs(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Principal {
        Principal { iam_id: "iam-ServiceId-x".into(), sub: "ServiceId-x".into(), sub_type: "ServiceId" }
    }

    #[test]
    fn token_is_jwt_shaped_and_agrees_with_the_body() {
        let issuer = TokenIssuer::new(Duration::from_secs(3600), "acct".into());
        let body = issuer.issue(&principal(), "urn:ibm:params:oauth:grant-type:apikey");
        let token = body["access_token"].as_str().unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["exp"], body["expiration"]);
        assert_eq!(
            claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
            body["expires_in"].as_u64().unwrap()
        );
        assert_eq!(claims["sub"], "ServiceId-x");
        let bearer = format!("Bearer {token}");
        assert_eq!(issuer.authenticate(Some(&bearer)), Ok(principal()));
        assert_eq!(issuer.authenticate(None), Err(Rejection::Missing));
        assert_eq!(issuer.authenticate(Some("Bearer nope")), Err(Rejection::Unknown));
    }

    #[test]
    fn zero_lifetime_tokens_are_expired() {
        let issuer = TokenIssuer::new(Duration::ZERO, "acct".into());
        let body = issuer.issue(&principal(), "grant");
        let bearer = format!("Bearer {}", body["access_token"].as_str().unwrap());
        assert_eq!(issuer.authenticate(Some(&bearer)), Err(Rejection::Expired));
    }
}
