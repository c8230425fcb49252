//! Helpers shared by the provider test files: a recording observer, a log
//! capture, a condition wait and a fast-retrying client configuration.
#![allow(dead_code, reason = "each test file uses a subset of these helpers")]

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use controller::provider::{
    AttemptOutcome, AuthConfig, CallObserver, ClientConfig, IbmSecretsManager, Operation, SecretsManager,
};
use serde_json::{Value, json};
use tracing_subscriber::fmt::MakeWriter;
use url::Url;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The API key the tests authenticate with.
pub const API_KEY: &str = "test-api-key-0f9e8d7c6b5a";

/// A client configuration for `sm_url` and `iam_url` with short backoff
/// waits, so retry tests run quickly.
pub fn config(sm_url: &str, iam_url: &str, auth: AuthConfig) -> ClientConfig {
    let mut config = ClientConfig::new(Url::parse(sm_url).expect("SM URL"), auth);
    config.iam_url = Url::parse(iam_url).expect("IAM URL");
    config.timeout = Duration::from_secs(10);
    config.max_retries = 3;
    config.retry_min_delay = Duration::from_millis(10);
    config.retry_max_delay = Duration::from_millis(200);
    config
}

/// Makes `server` answer `POST /identity/token` with hour-long tokens.
pub async fn mount_iam(server: &MockServer) {
    Mock::given(method("POST"))
        .and(path("/identity/token"))
        .respond_with(IssueTokens::hourly())
        .mount(server)
        .await;
}

/// API-key auth with [`API_KEY`].
pub fn api_key() -> AuthConfig {
    AuthConfig::ApiKey { api_key: API_KEY.into() }
}

/// Trusted-profile auth reading `token_file`.
pub fn trusted_profile(profile_id: &str, profile_name: &str, token_file: PathBuf) -> AuthConfig {
    AuthConfig::TrustedProfile {
        profile_id: Some(profile_id.to_owned()),
        profile_name: Some(profile_name.to_owned()),
        token_file,
    }
}

/// The access token of the `n`th exchange answered by [`IssueTokens`].
pub fn access_token(n: usize) -> String {
    format!("eyJhbGciOiJSUzI1NiJ9.access-token-{n}.c2ln")
}

/// An IAM token endpoint: the `n`th exchange gets [`access_token`]`(n)`,
/// with `expires_in` seconds of lifetime and an `expiration` of now plus
/// `expires_after` seconds.
#[derive(Debug)]
pub struct IssueTokens {
    issued: AtomicUsize,
    expires_in: i64,
    expires_after: i64,
}

impl IssueTokens {
    /// Hour-long tokens.
    pub fn hourly() -> Self {
        Self::new(3600, 3600)
    }

    /// Tokens with the given lifetime fields.
    pub fn new(expires_in: i64, expires_after: i64) -> Self {
        Self { issued: AtomicUsize::new(0), expires_in, expires_after }
    }
}

impl Respond for IssueTokens {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        token_response(&access_token(n), self.expires_in, self.expires_after)
    }
}

/// An IAM token response for `token` with `expires_in` seconds of lifetime
/// and an `expiration` of now plus `expires_after` seconds.
pub fn token_response(token: &str, expires_in: i64, expires_after: i64) -> ResponseTemplate {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs();
    let now = i64::try_from(now).expect("seconds fit");
    ResponseTemplate::new(200).set_body_json(json!({
        "access_token": token,
        "refresh_token": "not_supported",
        "token_type": "Bearer",
        "expires_in": expires_in,
        "expiration": now + expires_after,
        "scope": "ibm openid"
    }))
}

/// A secret as Secrets Manager returns it: common fields plus `values`.
pub fn secret_json(id: &str, secret_type: &str, values: Value) -> Value {
    let mut secret = json!({
        "id": id,
        "name": format!("name-{id}"),
        "secret_type": secret_type,
        "secret_group_id": "default",
        "crn": format!("crn:v1:bluemix:public:secrets-manager:us-south:a/acc:inst:secret:{id}"),
        "created_by": "iam-ServiceId-1",
        "created_at": "2025-01-10T09:00:00.000Z",
        "updated_at": "2025-01-10T09:00:00.000Z",
        "labels": [],
        "state": 1,
        "state_description": "active",
        "versions_total": 1
    });
    let Value::Object(values) = values else { panic!("values must be an object") };
    secret.as_object_mut().expect("object").extend(values);
    secret
}

/// Records every attempt and retry.
#[derive(Debug, Default)]
pub struct Recorder {
    attempts: Mutex<Vec<(Operation, AttemptOutcome)>>,
    retries: Mutex<Vec<(Operation, Duration)>>,
}

impl Recorder {
    /// Attempts of `operation` so far.
    pub fn attempts(&self, operation: Operation) -> Vec<AttemptOutcome> {
        let attempts = self.attempts.lock().expect("lock");
        attempts.iter().filter(|(op, _)| *op == operation).map(|(_, outcome)| *outcome).collect()
    }

    /// Retry waits scheduled so far.
    pub fn retry_delays(&self) -> Vec<Duration> {
        let retries = self.retries.lock().expect("lock");
        retries.iter().map(|(_, delay)| *delay).collect()
    }
}

impl CallObserver for Recorder {
    fn on_attempt(&self, operation: Operation, outcome: AttemptOutcome) {
        self.attempts.lock().expect("lock").push((operation, outcome));
    }

    fn on_retry(&self, operation: Operation, delay: Duration) {
        self.retries.lock().expect("lock").push((operation, delay));
    }
}

/// Collects everything logged at trace level on the current thread while the
/// returned guard lives.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    /// Starts capturing on this thread.
    pub fn start() -> (Self, tracing::subscriber::DefaultGuard) {
        let capture = Self::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        (capture, tracing::subscriber::set_default(subscriber))
    }

    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("lock")).into_owned()
    }
}

impl Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogCapture {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Polls `condition` until it holds; panics naming `what` after 20 s.
pub async fn wait_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `n` concurrent `get_secret(id)` calls; all must succeed.
pub async fn concurrent_reads(client: &IbmSecretsManager, id: &str, n: usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, id) = (client.clone(), id.to_owned());
        tasks.spawn(async move { client.get_secret(&id).await.map(drop) });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("read");
    }
}
