//! Wire-level tests of the IBM client against `wiremock`: request shapes,
//! paging, every error class, retries and the token cache.

mod provider_support;

use std::error::Error as _;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use controller::provider::{
    AttemptOutcome, DecodeError, Error, IbmSecretsManager, ListSecretsParams, Operation, SecretData,
    SecretType, SecretsManager, VersionRef,
};
use provider_support::{
    API_KEY, IssueTokens, Recorder, access_token, api_key, config, mount_iam, secret_json, token_response,
    trusted_profile, wait_until,
};
use serde_json::{Value, json};
use wiremock::matchers::{header, method, path, query_param, query_param_is_missing};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const ID: &str = "b49ad24d-81d4-5ebc-b9b9-b0937d1c84d5";

/// A mock Secrets Manager and IAM on one server, and a client for them.
struct Harness {
    server: MockServer,
    recorder: Arc<Recorder>,
    client: IbmSecretsManager,
}

impl Harness {
    /// IAM issues hour-long tokens.
    async fn new() -> Self {
        Self::with_tokens(IssueTokens::hourly()).await
    }

    async fn with_tokens(tokens: IssueTokens) -> Self {
        let server = MockServer::start().await;
        Mock::given(method("POST")).and(path("/identity/token")).respond_with(tokens).mount(&server).await;
        Self::with_server(server, |config| config)
    }

    fn with_server(
        server: MockServer,
        adjust: impl FnOnce(controller::provider::ClientConfig) -> controller::provider::ClientConfig,
    ) -> Self {
        let recorder = Arc::new(Recorder::default());
        let config = adjust(config(&server.uri(), &server.uri(), api_key()));
        let client = IbmSecretsManager::with_observer(&config, recorder.clone()).expect("client");
        Self { server, recorder, client }
    }

    async fn requests_to(&self, wanted: &str) -> Vec<Request> {
        let requests = self.server.received_requests().await.expect("recording");
        requests.into_iter().filter(|request| request.url.path() == wanted).collect()
    }

    async fn exchanges(&self) -> usize {
        self.requests_to("/identity/token").await.len()
    }

    async fn respond(&self, url_path: &str, response: ResponseTemplate) {
        Mock::given(method("GET")).and(path(url_path)).respond_with(response).mount(&self.server).await;
    }

    async fn respond_once(&self, url_path: &str, response: ResponseTemplate) {
        Mock::given(method("GET"))
            .and(path(url_path))
            .respond_with(response)
            .up_to_n_times(1)
            .mount(&self.server)
            .await;
    }

    fn statuses(&self, operation: Operation) -> Vec<AttemptOutcome> {
        self.recorder.attempts(operation)
    }
}

fn ok(body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn secret_path(id: &str) -> String {
    format!("/api/v2/secrets/{id}")
}

fn arbitrary(payload: &str) -> Value {
    secret_json(ID, "arbitrary", json!({"payload": payload}))
}

fn handbook_error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "errors": [{"code": code, "message": message, "more_info": "https://cloud.ibm.com/apidocs"}],
        "trace": "5c1b4e7a-trace",
        "status_code": status
    }))
}

fn status(code: u16) -> AttemptOutcome {
    AttemptOutcome::Status(code)
}

/// The whole error chain, as an operator would see it.
fn chain(error: &Error) -> String {
    let mut text = format!("{error} / {error:?}");
    let mut source = error.source();
    while let Some(cause) = source {
        write!(text, " / {cause}").expect("writing to a String");
        source = cause.source();
    }
    text
}

fn form(request: &Request) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .collect()
}

#[tokio::test]
async fn every_secret_type_decodes_over_the_wire() {
    let h = Harness::new().await;
    let cases = [
        ("arbitrary", json!({"payload": "p"}), None, "p"),
        ("username_password", json!({"username": "u", "password": "pw"}), Some("password"), "pw"),
        ("kv", json!({"data": {"a": {"b": "c"}}}), Some("a.b"), "c"),
        ("iam_credentials", json!({"api_key": "k", "reuse_api_key": true, "ttl": "1d"}), None, "k"),
        (
            "service_credentials",
            json!({"credentials": {"cos_hmac_keys": {"access_key_id": "AK"}}}),
            Some("credentials.cos_hmac_keys.access_key_id"),
            "AK",
        ),
        ("imported_cert", json!({"certificate": "C", "intermediate": "I"}), Some("intermediate"), "I"),
        ("public_cert", json!({"certificate": "C", "private_key": "K"}), Some("private_key"), "K"),
        ("private_cert", json!({"certificate": "C", "issuing_ca": "CA"}), Some("issuing_ca"), "CA"),
        ("custom_credentials", json!({"credentials_content": {"t": 1}}), Some("t"), "1"),
    ];
    for (index, (secret_type, values, property, expected)) in cases.into_iter().enumerate() {
        let id = format!("00000000-0000-0000-0000-00000000000{index}");
        h.respond(&secret_path(&id), ok(&secret_json(&id, secret_type, values))).await;
        let secret = h.client.get_secret(&id).await.expect(secret_type);
        assert_eq!(secret.metadata.id, id);
        assert_eq!(secret.data.secret_type().as_str(), secret_type);
        let value = secret.value(property).expect("value");
        assert_eq!(value.expose_secret(), expected.as_bytes(), "{secret_type}");
    }

    assert_eq!(h.exchanges().await, 1, "one token serves every request");
    let iam = &h.requests_to("/identity/token").await[0];
    assert_eq!(
        form(iam),
        [
            ("grant_type".to_owned(), "urn:ibm:params:oauth:grant-type:apikey".to_owned()),
            ("apikey".to_owned(), API_KEY.to_owned()),
            ("response_type".to_owned(), "cloud_iam".to_owned()),
        ]
    );
    assert_eq!(iam.headers["accept"], "application/json");
    assert_eq!(iam.headers["content-type"], "application/x-www-form-urlencoded");
    let get = &h.requests_to(&secret_path("00000000-0000-0000-0000-000000000000")).await[0];
    assert_eq!(get.headers["accept"], "application/json");
    assert_eq!(get.headers["authorization"], format!("Bearer {}", access_token(1)).as_str());
}

#[tokio::test]
async fn by_name_metadata_and_version_paths() {
    let h = Harness::new().await;
    let by_name = "/api/v2/secret_groups/team%2Fa/secret_types/username_password/secrets/db%20one";
    h.respond(by_name, ok(&secret_json(ID, "username_password", json!({"username": "u", "password": "p"}))))
        .await;
    h.respond(&format!("/api/v2/secrets/{ID}/metadata"), ok(&secret_json(ID, "kv", json!({})))).await;
    for version in ["current", "previous", "7a0d3c1e"] {
        h.respond(
            &format!("/api/v2/secrets/{ID}/versions/{version}"),
            ok(&json!({"id": version, "secret_type": "arbitrary", "payload": version})),
        )
        .await;
    }

    let secret =
        h.client.get_secret_by_name("team/a", SecretType::UsernamePassword, "db one").await.expect("by name");
    assert!(matches!(secret.data, SecretData::UsernamePassword(_)));

    let metadata = h.client.get_secret_metadata(ID).await.expect("metadata");
    assert_eq!(metadata.secret_type, SecretType::Kv);
    assert_eq!(metadata.name.as_deref(), Some(format!("name-{ID}").as_str()));

    for (version, expected) in [
        (VersionRef::Current, "current"),
        (VersionRef::Previous, "previous"),
        (VersionRef::Id("7a0d3c1e".into()), "7a0d3c1e"),
    ] {
        let read = h.client.get_secret_version(ID, &version).await.expect("version");
        assert_eq!(read.metadata.secret_id, ID);
        assert_eq!(read.value(None).expect("payload").expose_secret(), expected.as_bytes());
    }
}

#[tokio::test]
async fn empty_path_parameters_send_nothing() {
    let h = Harness::new().await;
    for result in [
        h.client.get_secret("").await.map(drop),
        h.client.get_secret_by_name("", SecretType::Kv, "x").await.map(drop),
        h.client.get_secret_by_name("default", SecretType::Kv, "").await.map(drop),
        h.client.get_secret_version(ID, &VersionRef::Id(String::new())).await.map(drop),
    ] {
        assert!(matches!(result, Err(Error::EmptyParameter { .. })), "{result:?}");
    }
    assert!(h.server.received_requests().await.expect("recording").is_empty());
}

#[tokio::test]
async fn list_all_follows_absolute_and_relative_next_links() {
    let h = Harness::new().await;
    let page = |ids: &[&str], next: Option<String>| {
        let secrets: Vec<Value> = ids.iter().map(|id| secret_json(id, "arbitrary", json!({}))).collect();
        let mut body = json!({
            "total_count": 5, "limit": 1000, "offset": 0,
            "first": {"href": "/api/v2/secrets?limit=1000"},
            "last": {"href": "/api/v2/secrets?offset=4&limit=1000"},
            "secrets": secrets
        });
        if let Some(next) = next {
            body["next"] = json!({"href": next});
        }
        ok(&body)
    };
    let list = || {
        Mock::given(method("GET"))
            .and(path("/api/v2/secrets"))
            .and(query_param("limit", "1000"))
            .and(query_param("secret_types", "arbitrary,kv"))
            .and(query_param("match_all_labels", "env:prod,team"))
    };
    list()
        .and(query_param_is_missing("offset"))
        .respond_with(page(
            &["s1", "s2"],
            Some(format!("{}/api/v2/secrets?limit=1000&offset=2", h.server.uri())),
        ))
        .mount(&h.server)
        .await;
    list()
        .and(query_param("offset", "2"))
        .respond_with(page(&["s3", "s4"], Some("/api/v2/secrets?offset=4&limit=1000".into())))
        .mount(&h.server)
        .await;
    list().and(query_param("offset", "4")).respond_with(page(&["s5"], None)).mount(&h.server).await;

    let params = ListSecretsParams {
        secret_types: vec![SecretType::Arbitrary, SecretType::Kv],
        match_all_labels: vec!["env:prod".into(), "team".into()],
        ..ListSecretsParams::default()
    };
    let all = h.client.list_all_secrets(&params).await.expect("list all");
    let ids: Vec<&str> = all.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["s1", "s2", "s3", "s4", "s5"]);

    let first = h
        .client
        .list_secrets(&ListSecretsParams { limit: Some(1000), ..params.clone() })
        .await
        .expect("one page");
    assert_eq!(first.total_count, 5);
    assert_eq!(first.next_offset, Some(2));
}

#[tokio::test]
async fn list_all_refuses_a_next_link_that_does_not_advance() {
    let h = Harness::new().await;
    h.respond(
        "/api/v2/secrets",
        ok(&json!({"total_count": 1, "secrets": [], "next": {"href": "/api/v2/secrets?offset=0"}})),
    )
    .await;
    let error = h.client.list_all_secrets(&ListSecretsParams::default()).await.expect_err("loop");
    assert!(matches!(error, Error::Decode { source: DecodeError::InvalidNextHref, .. }));
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let h = Harness::new().await;
    let path = secret_path(ID);
    h.respond_once(&path, ResponseTemplate::new(429).insert_header("Retry-After", "1")).await;
    h.respond(&path, ok(&arbitrary("p"))).await;

    h.client.get_secret(ID).await.expect("after one retry");
    assert_eq!(h.statuses(Operation::GetSecret), [status(429), status(200)]);
    // Seconds replace the backoff (10-200 ms here) and are not capped.
    assert_eq!(h.recorder.retry_delays(), [Duration::from_secs(1)]);
}

#[tokio::test]
async fn retry_after_date_is_honoured_up_to_the_max_delay() {
    let h = Harness::new().await;
    let path = secret_path(ID);
    let in_an_hour = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3600));
    h.respond_once(&path, ResponseTemplate::new(429).insert_header("Retry-After", in_an_hour)).await;
    h.respond(&path, ok(&arbitrary("p"))).await;

    h.client.get_secret(ID).await.expect("after one retry");
    assert_eq!(h.statuses(Operation::GetSecret), [status(429), status(200)]);
    assert_eq!(h.recorder.retry_delays(), [Duration::from_millis(200)], "capped at retry_max_delay");
}

#[tokio::test]
async fn throttling_gives_up_after_max_retries() {
    let h = Harness::new().await;
    h.respond(&secret_path(ID), handbook_error(429, "too_many_requests", "Slow down")).await;
    let error = h.client.get_secret(ID).await.expect_err("throttled");
    assert_eq!(error.metric_label(), "throttled");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(429));
    assert_eq!(h.statuses(Operation::GetSecret), [status(429); 4], "1 try + 3 retries");
    assert_eq!(h.recorder.retry_delays().len(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_until_success() {
    let h = Harness::new().await;
    let path = secret_path(ID);
    h.respond_once(&path, handbook_error(500, "internal_error", "boom")).await;
    h.respond_once(&path, ResponseTemplate::new(503)).await;
    h.respond(&path, ok(&arbitrary("p"))).await;

    let secret = h.client.get_secret(ID).await.expect("third time lucky");
    assert_eq!(secret.metadata.id, ID);
    assert_eq!(h.statuses(Operation::GetSecret), [status(500), status(503), status(200)]);
    assert_eq!(h.exchanges().await, 1, "retries reuse the token");
}

#[tokio::test]
async fn not_implemented_and_client_errors_are_not_retried() {
    for (code, label) in [(501, "server_error"), (404, "not_found"), (400, "rejected"), (403, "forbidden")] {
        let h = Harness::new().await;
        h.respond(&secret_path(ID), handbook_error(code, "some_code", "Some message")).await;
        let error = h.client.get_secret(ID).await.expect_err("refused");
        assert_eq!(h.statuses(Operation::GetSecret), [status(code)], "{code}");
        assert!(h.recorder.retry_delays().is_empty());
        assert_eq!(error.metric_label(), label);
        let Error::Service { operation, source } = &error else { panic!("unexpected {error:?}") };
        assert_eq!(*operation, Operation::GetSecret);
        assert_eq!(source.status.as_u16(), code);
        assert_eq!(source.code.as_deref(), Some("some_code"));
        assert_eq!(source.message, "Some message");
        assert_eq!(source.trace.as_deref(), Some("5c1b4e7a-trace"));
    }
}

#[tokio::test]
async fn non_json_error_bodies_are_not_parsed_or_echoed() {
    let h = Harness::new().await;
    h.respond_once(
        &secret_path(ID),
        ResponseTemplate::new(400).set_body_raw("<html>hunter2</html>", "text/html"),
    )
    .await;
    h.respond(
        &secret_path(ID),
        ResponseTemplate::new(409).set_body_raw(r#"{"message": "json but labelled text"}"#, "text/plain"),
    )
    .await;

    let error = h.client.get_secret(ID).await.expect_err("html");
    let Error::Service { source, .. } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(source.message, "Bad Request");
    assert_eq!(source.code, None);
    assert!(!chain(&error).contains("hunter2"), "{}", chain(&error));

    let error = h.client.get_secret(ID).await.expect_err("text");
    let Error::Service { source, .. } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(source.message, "Conflict", "only JSON content types are parsed");
}

#[tokio::test]
async fn malformed_json_is_a_typed_decode_error() {
    let h = Harness::new().await;
    h.respond(
        &secret_path(ID),
        ResponseTemplate::new(200).set_body_raw(
            r#"{"id": "x", "secret_type": "arbitrary", "payload": "hunter2"#,
            "application/json",
        ),
    )
    .await;
    let error = h.client.get_secret(ID).await.expect_err("truncated");
    assert!(
        matches!(
            error,
            Error::Decode { operation: Operation::GetSecret, source: DecodeError::Syntax { line: 1, .. } }
        ),
        "{error:?}"
    );
    assert_eq!(error.metric_label(), "decode");
    assert_eq!(h.statuses(Operation::GetSecret), [status(200)], "not retried");
    assert!(!chain(&error).contains("hunter2"));
}

#[tokio::test]
async fn wrongly_typed_values_do_not_leak_into_decode_errors() {
    let h = Harness::new().await;
    h.respond(
        &secret_path(ID),
        ok(&secret_json(ID, "username_password", json!({"username": "u", "password": {"x": "hunter2"}}))),
    )
    .await;
    let error = h.client.get_secret(ID).await.expect_err("object password");
    assert!(matches!(error, Error::Decode { source: DecodeError::InvalidField { .. }, .. }));
    assert!(!chain(&error).contains("hunter2"), "{}", chain(&error));
}

#[tokio::test]
async fn unknown_and_missing_secret_types_are_typed_errors() {
    let h = Harness::new().await;
    h.respond(&secret_path("unknown"), ok(&json!({"id": "unknown", "secret_type": "quantum"}))).await;
    h.respond(&secret_path("missing"), ok(&json!({"id": "missing", "payload": "p"}))).await;
    let unknown = h.client.get_secret("unknown").await.expect_err("unknown");
    let Error::Decode { source: DecodeError::UnknownSecretType(unknown), .. } = unknown else {
        panic!("unexpected {unknown:?}")
    };
    assert_eq!(unknown.name, "quantum");
    let missing = h.client.get_secret("missing").await.expect_err("missing");
    assert!(matches!(missing, Error::Decode { source: DecodeError::MissingSecretType, .. }));
}

#[tokio::test]
async fn unauthorized_triggers_one_re_exchange() {
    let h = Harness::new().await;
    let path = secret_path(ID);
    Mock::given(method("GET"))
        .and(wiremock::matchers::path(path.as_str()))
        .and(header("authorization", format!("Bearer {}", access_token(1)).as_str()))
        .respond_with(handbook_error(401, "unauthorized", "Token expired"))
        .mount(&h.server)
        .await;
    Mock::given(method("GET"))
        .and(wiremock::matchers::path(path.as_str()))
        .and(header("authorization", format!("Bearer {}", access_token(2)).as_str()))
        .respond_with(ok(&arbitrary("p")))
        .mount(&h.server)
        .await;

    h.client.get_secret(ID).await.expect("after re-exchange");
    assert_eq!(h.exchanges().await, 2);
    assert_eq!(h.statuses(Operation::GetSecret), [status(401), status(200)]);
    assert!(h.recorder.retry_delays().is_empty(), "a 401 is not a backoff retry");

    h.client.get_secret(ID).await.expect("new token cached");
    assert_eq!(h.exchanges().await, 2);
}

#[tokio::test]
async fn unauthorized_twice_is_an_error() {
    let h = Harness::new().await;
    h.respond(&secret_path(ID), handbook_error(401, "unauthorized", "Nope")).await;
    let error = h.client.get_secret(ID).await.expect_err("refused");
    assert_eq!(error.metric_label(), "unauthorized");
    assert_eq!(h.exchanges().await, 2, "exactly one re-exchange");
    assert_eq!(h.statuses(Operation::GetSecret), [status(401), status(401)]);
}

#[tokio::test]
async fn iam_errors_are_parsed_and_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/token"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "errorCode": "BXNIM0415E",
            "errorMessage": "Provided API key could not be found.",
            "context": {"requestId": "req-1", "url": "https://iam.cloud.ibm.com"}
        })))
        .mount(&server)
        .await;
    let h = Harness::with_server(server, |config| config);
    let error = h.client.get_secret(ID).await.expect_err("bad key");
    let Error::Iam { source } = &error else { panic!("unexpected {error:?}") };
    assert_eq!(source.status.as_u16(), 400);
    assert_eq!(source.code.as_deref(), Some("BXNIM0415E"));
    assert_eq!(source.message, "Provided API key could not be found.");
    assert_eq!(source.trace.as_deref(), Some("req-1"));
    assert_eq!(error.metric_label(), "iam_refused");
    assert_eq!(h.statuses(Operation::IamToken), [status(400)]);
    assert!(h.statuses(Operation::GetSecret).is_empty());
    assert!(!chain(&error).contains(API_KEY));
}

#[tokio::test]
async fn iam_url_may_include_the_token_path() {
    let server = MockServer::start().await;
    mount_iam(&server).await;
    let uri = server.uri();
    let h = Harness::with_server(server, |mut config| {
        config.iam_url = format!("{uri}/identity/token").parse().expect("url");
        config
    });
    h.respond(&secret_path(ID), ok(&arbitrary("p"))).await;
    h.client.get_secret(ID).await.expect("token path stripped and re-added");
    assert_eq!(h.exchanges().await, 1);
}

#[tokio::test]
async fn concurrent_requests_share_one_exchange() {
    let server = MockServer::start().await;
    // A slow exchange, so every request arrives while it is in flight.
    let tokens = IssueTokens::hourly();
    Mock::given(method("POST"))
        .and(path("/identity/token"))
        .respond_with(move |request: &Request| {
            wiremock::Respond::respond(&tokens, request).set_delay(Duration::from_millis(300))
        })
        .mount(&server)
        .await;
    let h = Harness::with_server(server, |config| config);
    h.respond(&secret_path(ID), ok(&arbitrary("p"))).await;

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let client = h.client.clone();
        tasks.spawn(async move { client.get_secret(ID).await.map(drop) });
    }
    while let Some(result) = tasks.join_next().await {
        result.expect("task").expect("request");
    }
    assert_eq!(h.exchanges().await, 1);
    assert_eq!(h.statuses(Operation::GetSecret).len(), 50);
}

#[tokio::test]
async fn token_past_refresh_time_is_refreshed_in_the_background() {
    let server = MockServer::start().await;
    // The first token is valid for another ~11 minutes but past 80 % of its
    // hour; the refreshed one is fresh.
    Mock::given(method("POST"))
        .and(path("/identity/token"))
        .respond_with(token_response(&access_token(1), 3600, 700))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/identity/token"))
        .respond_with(token_response(&access_token(2), 3600, 3600))
        .mount(&server)
        .await;
    let h = Harness::with_server(server, |config| config);
    h.respond(&secret_path(ID), ok(&arbitrary("p"))).await;
    let bearers = || async {
        let gets = h.requests_to(&secret_path(ID)).await;
        gets.iter()
            .map(|get| get.headers["authorization"].to_str().expect("ascii").to_owned())
            .collect::<Vec<_>>()
    };
    let (old, new) = (format!("Bearer {}", access_token(1)), format!("Bearer {}", access_token(2)));

    h.client.get_secret(ID).await.expect("first");
    assert_eq!(h.exchanges().await, 1);
    h.client.get_secret(ID).await.expect("second");
    assert_eq!(bearers().await, [old.clone(), old.clone()], "the cached token served it");

    wait_until("the refreshed token to serve reads", || async {
        h.client.get_secret(ID).await.expect("read");
        bearers().await.last() == Some(&new)
    })
    .await;
    assert_eq!(h.exchanges().await, 2, "one background refresh");
    let used = bearers().await;
    let switch = used.iter().position(|bearer| *bearer == new).expect("new token");
    assert!(used[..switch].iter().all(|bearer| *bearer == old));
    assert!(used[switch..].iter().all(|bearer| *bearer == new));
}

#[tokio::test]
async fn expired_token_is_replaced_before_the_request() {
    // Inside the 10 s expiry window from the start: never valid for reuse.
    let h = Harness::with_tokens(IssueTokens::new(3600, 5)).await;
    h.respond(&secret_path(ID), ok(&arbitrary("p"))).await;
    h.client.get_secret(ID).await.expect("first");
    h.client.get_secret(ID).await.expect("second");
    assert_eq!(h.exchanges().await, 2);
    let gets = h.requests_to(&secret_path(ID)).await;
    assert_eq!(gets[1].headers["authorization"], format!("Bearer {}", access_token(2)).as_str());
}

#[tokio::test]
async fn trusted_profile_re_reads_the_token_file_at_every_exchange() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("sa-token");
    std::fs::write(&token_file, "cr-token-one").expect("write");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/identity/token"))
        .respond_with(IssueTokens::new(3600, 5))
        .mount(&server)
        .await;
    let recorder = Arc::new(Recorder::default());
    let config = config(
        &server.uri(),
        &server.uri(),
        trusted_profile("Profile-1234", "sync-profile", token_file.clone()),
    );
    let client = IbmSecretsManager::with_observer(&config, recorder).expect("client");
    Mock::given(method("GET"))
        .and(path(secret_path(ID)))
        .respond_with(ok(&arbitrary("p")))
        .mount(&server)
        .await;

    client.get_secret(ID).await.expect("first");
    std::fs::write(&token_file, "cr-token-two").expect("rotate");
    client.get_secret(ID).await.expect("second");

    let requests = server.received_requests().await.expect("recording");
    let exchanges: Vec<_> = requests.iter().filter(|r| r.url.path() == "/identity/token").map(form).collect();
    let expected = |cr_token: &str| {
        [
            ("grant_type", "urn:ibm:params:oauth:grant-type:cr-token"),
            ("cr_token", cr_token),
            ("profile_id", "Profile-1234"),
            ("profile_name", "sync-profile"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
    };
    assert_eq!(exchanges, [expected("cr-token-one"), expected("cr-token-two")]);

    std::fs::remove_file(&token_file).expect("remove");
    let error = client.get_secret(ID).await.expect_err("no token file");
    assert!(matches!(error, Error::TokenFile { .. }), "{error:?}");
    assert_eq!(error.metric_label(), "token_file");
}

#[tokio::test]
async fn trusted_profile_needs_a_profile() {
    let config = config(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        controller::provider::AuthConfig::TrustedProfile {
            profile_id: Some(String::new()),
            profile_name: None,
            token_file: "/nonexistent".into(),
        },
    );
    let error = IbmSecretsManager::new(&config).expect_err("no profile");
    assert!(matches!(error, Error::Config { .. }));
}

#[tokio::test]
async fn timeouts_are_typed_and_retried() {
    let server = MockServer::start().await;
    mount_iam(&server).await;
    let h = Harness::with_server(server, |mut config| {
        config.timeout = Duration::from_millis(200);
        config.max_retries = 1;
        config
    });
    h.respond(&secret_path(ID), ok(&arbitrary("p")).set_delay(Duration::from_secs(5))).await;
    let error = h.client.get_secret(ID).await.expect_err("too slow");
    assert!(matches!(error, Error::Timeout { operation: Operation::GetSecret, .. }), "{error:?}");
    assert_eq!(error.metric_label(), "timeout");
    assert_eq!(h.statuses(Operation::GetSecret), [AttemptOutcome::Timeout; 2]);
}

#[tokio::test]
async fn connection_failures_are_typed_and_retried() {
    let server = MockServer::start().await;
    mount_iam(&server).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_endpoint = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let recorder = Arc::new(Recorder::default());
    let client =
        IbmSecretsManager::with_observer(&config(&dead_endpoint, &server.uri(), api_key()), recorder.clone())
            .expect("client");
    let error = client.get_secret(ID).await.expect_err("refused");
    assert!(matches!(error, Error::Transport { .. }), "{error:?}");
    assert_eq!(recorder.attempts(Operation::GetSecret), [AttemptOutcome::Transport; 4]);
}
