//! Create → get by id / by name / metadata / list round-trips for every secret type,
//! checked field for field against reference 1.6–1.8.

mod common;

use std::collections::BTreeSet;

use common::Harness;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Fields every secret shows (reference 1.6); `description` only when set.
const COMMON: &[&str] = &[
    "id",
    "name",
    "secret_type",
    "secret_group_id",
    "crn",
    "created_by",
    "created_at",
    "updated_at",
    "retrieved_at",
    "downloaded",
    "versions_total",
    "locks_total",
    "labels",
    "custom_metadata",
    "state",
    "state_description",
];

const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----";

/// One case: the create body, the type's non-value fields, and its value fields.
struct Case {
    body: Value,
    metadata: &'static [&'static str],
    values: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            body: json!({"secret_type": "arbitrary", "name": "db-password", "payload": "s3cr3t",
                         "description": "a test secret", "labels": ["dev", "team-a"],
                         "custom_metadata": {"owner": "ops"}, "expiration_date": "2031-01-01T00:00:00Z"}),
            metadata: &["description", "expiration_date"],
            values: &["payload"],
        },
        Case {
            body: json!({"secret_type": "username_password", "name": "db-user", "username": "admin", "password": "hunter2!"}),
            metadata: &["rotation", "password_generation_policy"],
            values: &["username", "password"],
        },
        Case {
            body: json!({"secret_type": "kv", "name": "app-config", "data": {"a": "b", "nested": {"n": 1}}}),
            metadata: &[],
            values: &["data"],
        },
        Case {
            body: json!({"secret_type": "iam_credentials", "name": "ci-key", "ttl": "1d", "reuse_api_key": true,
                         "access_groups": ["AccessGroupId-1"], "api_key": "seeded-key"}),
            metadata: &[
                "ttl",
                "reuse_api_key",
                "access_groups",
                "service_id_is_static",
                "rotation",
                "api_key_id",
                "service_id",
            ],
            values: &["api_key"],
        },
        Case {
            body: json!({"secret_type": "service_credentials", "name": "cos-writer", "ttl": "86400",
                         "source_service": {
                             "instance": {"crn": "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-guid::"},
                             "role": {"crn": "crn:v1:bluemix:public:iam::::serviceRole:Writer"},
                             "parameters": {"HMAC": true}}}),
            metadata: &["source_service", "ttl", "rotation"],
            values: &["credentials"],
        },
        Case {
            body: json!({"secret_type": "imported_cert", "name": "web-cert", "certificate": CERT, "private_key": KEY}),
            metadata: &[
                "intermediate_included",
                "private_key_included",
                "key_algorithm",
                "signing_algorithm",
                "serial_number",
                "validity",
                "expiration_date",
            ],
            values: &["certificate", "private_key"],
        },
        Case {
            body: json!({"secret_type": "public_cert", "name": "public-web", "common_name": "example.com",
                         "ca": "letsencrypt", "dns": "cis"}),
            metadata: &[
                "common_name",
                "key_algorithm",
                "ca",
                "dns",
                "bundle_certs",
                "issuer",
                "signing_algorithm",
                "issuance_info",
                "rotation",
                "serial_number",
                "validity",
                "expiration_date",
            ],
            values: &["certificate", "intermediate", "private_key"],
        },
        Case {
            body: json!({"secret_type": "private_cert", "name": "internal-web", "certificate_template": "web",
                         "common_name": "internal.example.com"}),
            metadata: &[
                "certificate_template",
                "common_name",
                "key_algorithm",
                "certificate_authority",
                "issuer",
                "signing_algorithm",
                "rotation",
                "serial_number",
                "validity",
                "expiration_date",
            ],
            values: &["certificate", "private_key", "issuing_ca", "ca_chain"],
        },
        Case {
            body: json!({"secret_type": "custom_credentials", "name": "custom", "configuration": "my-provider",
                         "parameters": {"x": 1}, "credentials_content": {"token": "abc", "port": 5432, "tls": true}}),
            metadata: &["configuration", "parameters", "rotation"],
            values: &["credentials_content"],
        },
    ]
}

fn keys(object: &Value) -> BTreeSet<String> {
    object.as_object().expect("object").keys().cloned().collect()
}

fn set(fields: &[&[&str]]) -> BTreeSet<String> {
    fields.iter().flat_map(|part| part.iter().map(|f| (*f).to_owned())).collect()
}

#[tokio::test]
async fn every_type_round_trips_field_for_field() {
    let h = Harness::unlimited().await;
    assert_eq!(cases().len(), sm_emulator::SecretType::ALL.len());
    for case in cases() {
        let kind = case.body["secret_type"].as_str().unwrap().to_owned();
        let name = case.body["name"].as_str().unwrap().to_owned();
        let metadata_keys = set(&[COMMON, case.metadata]);
        let full_keys = set(&[COMMON, case.metadata, case.values]);

        let created = h.post("/api/v2/secrets", &case.body).await;
        assert_eq!(created.status, StatusCode::CREATED, "{kind}: {}", created.body);
        let secret = created.body;
        assert_eq!(keys(&secret), full_keys, "{kind}: create response");
        assert_eq!(secret["secret_type"], kind);
        assert_eq!(secret["name"], name.as_str());
        assert_eq!(secret["secret_group_id"], "default");
        assert_eq!(secret["versions_total"], 1);
        assert_eq!(secret["state"], 1);
        assert_eq!(secret["state_description"], "active");
        assert_eq!(secret["downloaded"], false);
        assert_eq!(secret["retrieved_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(secret["created_at"], secret["updated_at"]);
        assert!(secret["created_by"].as_str().unwrap().starts_with("iam-ServiceId-"));
        let id = secret["id"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        assert!(
            secret["crn"].as_str().unwrap().starts_with("crn:v1:bluemix:public:secrets-manager:us-south:a/")
        );
        assert!(secret["crn"].as_str().unwrap().ends_with(&format!(":secret:{id}")));
        for field in case.values {
            if let Some(sent) = case.body.get(*field) {
                assert_eq!(&secret[*field], sent, "{kind}: {field} as sent");
            }
        }

        let by_id = h.get(&format!("/api/v2/secrets/{id}")).await;
        assert_eq!(by_id.status, StatusCode::OK);
        assert_eq!(keys(&by_id.body), full_keys, "{kind}: GET by id");
        assert_eq!(by_id.body["downloaded"], true, "{kind}: a read marks it downloaded");
        assert_ne!(by_id.body["retrieved_at"], "1970-01-01T00:00:00.000Z");
        assert_eq!(by_id.body["updated_at"], secret["updated_at"], "{kind}: reads leave updated_at");
        for field in case.values {
            assert_eq!(by_id.body[*field], secret[*field], "{kind}: {field} stable across reads");
        }

        let by_name =
            h.get(&format!("/api/v2/secret_groups/default/secret_types/{kind}/secrets/{name}")).await;
        assert_eq!(by_name.status, StatusCode::OK, "{kind}: {}", by_name.body);
        assert_eq!(by_name.body["id"], id.as_str());
        assert_eq!(keys(&by_name.body), full_keys, "{kind}: GET by name");

        let metadata = h.get(&format!("/api/v2/secrets/{id}/metadata")).await;
        assert_eq!(metadata.status, StatusCode::OK);
        assert_eq!(keys(&metadata.body), metadata_keys, "{kind}: metadata has no values");

        let list = h.get(&format!("/api/v2/secrets?secret_types={kind}")).await;
        assert_eq!(list.status, StatusCode::OK);
        assert_eq!(list.body["total_count"], 1);
        assert_eq!(keys(&list.body["secrets"][0]), metadata_keys, "{kind}: list item has no values");
        assert_eq!(list.body["secrets"][0]["id"], id.as_str());
    }
    assert_eq!(h.emulator.store().len(), 9);
}

#[tokio::test]
async fn service_credentials_generate_cos_hmac_keys() {
    let h = Harness::unlimited().await;
    let instance = "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-guid::";
    let body = json!({"secret_type": "service_credentials", "name": "cos-reader",
        "source_service": {"instance": {"crn": instance},
                           "role": {"crn": "crn:v1:bluemix:public:iam::::serviceRole:Reader"},
                           "parameters": {"HMAC": true}}});
    let secret = h.post("/api/v2/secrets", &body).await.body;
    let credentials = &secret["credentials"];
    let hmac = &credentials["cos_hmac_keys"];
    let is_hex = |value: &Value, len: usize| {
        let text = value.as_str().unwrap();
        text.len() == len && text.bytes().all(|b| b.is_ascii_hexdigit())
    };
    assert!(is_hex(&hmac["access_key_id"], 32), "{hmac}");
    assert!(is_hex(&hmac["secret_access_key"], 48), "{hmac}");
    assert_eq!(credentials["resource_instance_id"], instance);
    assert_eq!(credentials["iam_role_crn"], "crn:v1:bluemix:public:iam::::serviceRole:Reader");
    assert_eq!(credentials["iam_apikey_name"], "cos-reader");
    assert_eq!(credentials["endpoints"], "https://control.cloud-object-storage.cloud.ibm.com/v2/endpoints");
    assert!(credentials["apikey"].is_string());
    assert!(credentials["iam_apikey_id"].as_str().unwrap().starts_with("ApiKey-"));
    assert!(credentials["iam_serviceid_crn"].as_str().unwrap().contains("::serviceid:ServiceId-"));
    assert_eq!(secret["source_service"]["instance"]["crn"], instance);
    assert_eq!(secret["source_service"]["resource_key"]["name"], "cos-reader");
    assert_eq!(secret["source_service"]["iam"]["apikey"]["id"], credentials["iam_apikey_id"]);

    // Without HMAC there are no HMAC keys.
    let plain = json!({"secret_type": "service_credentials", "name": "cos-plain",
        "source_service": {"instance": {"crn": instance}}});
    let secret = h.post("/api/v2/secrets", &plain).await.body;
    assert!(secret["credentials"].get("cos_hmac_keys").is_none());

    // Rotation issues a new credential.
    let id = secret["id"].as_str().unwrap();
    let version = h.post(&format!("/api/v2/secrets/{id}/versions"), &json!({})).await;
    assert_eq!(version.status, StatusCode::CREATED);
    assert_ne!(version.body["credentials"]["apikey"], secret["credentials"]["apikey"]);
    assert!(version.body["resource_key"]["crn"].as_str().unwrap().contains(":resource-key:"));
}

#[tokio::test]
async fn explicit_credentials_are_stored_as_sent() {
    let h = Harness::unlimited().await;
    let credentials =
        json!({"apikey": "k", "cos_hmac_keys": {"access_key_id": "AKID", "secret_access_key": "SECRET"}});
    let created = h
        .emulator
        .store()
        .create_secret(json!({"secret_type": "service_credentials", "name": "seeded",
            "id": "0b5f3c1e-1111-4222-8333-944455556666",
            "source_service": {"instance": {"crn": "crn:v1:bluemix:public:cloud-object-storage:global:a/x:y::"}},
            "credentials": credentials}))
        .unwrap();
    assert_eq!(created["id"], "0b5f3c1e-1111-4222-8333-944455556666");
    let read = h.get("/api/v2/secrets/0b5f3c1e-1111-4222-8333-944455556666").await;
    assert_eq!(read.body["credentials"], credentials);
}

#[tokio::test]
async fn generated_username_password_and_kv_rotation() {
    let h = Harness::unlimited().await;
    let secret = h
        .post(
            "/api/v2/secrets",
            &json!({"secret_type": "username_password", "name": "gen", "username": "u1"}),
        )
        .await
        .body;
    let password = secret["password"].as_str().unwrap();
    assert_eq!(password.len(), 32);
    let id = secret["id"].as_str().unwrap();
    let rotated = h.post(&format!("/api/v2/secrets/{id}/versions"), &json!({})).await.body;
    assert_eq!(rotated["username"], "u1");
    assert_ne!(rotated["password"], secret["password"]);

    let kv =
        h.post("/api/v2/secrets", &json!({"secret_type": "kv", "name": "kv1", "data": {"a": 1}})).await.body;
    let kv_id = kv["id"].as_str().unwrap();
    let missing = h.post(&format!("/api/v2/secrets/{kv_id}/versions"), &json!({})).await;
    assert!(common::assert_ibm_error(&missing, 400).contains("data"));
    h.post(&format!("/api/v2/secrets/{kv_id}/versions"), &json!({"data": {"b": 2}})).await;
    assert_eq!(h.get(&format!("/api/v2/secrets/{kv_id}")).await.body["data"], json!({"b": 2}));
}

#[tokio::test]
async fn iam_credentials_follow_reuse_api_key() {
    let h = Harness::unlimited().await;
    let create = |name: &str, reuse: bool| {
        json!({"secret_type": "iam_credentials", "name": name, "ttl": "3600", "reuse_api_key": reuse,
               "service_id": "ServiceId-static"})
    };
    let reused = h.post("/api/v2/secrets", &create("reused", true)).await.body;
    let id = reused["id"].as_str().unwrap();
    let first = h.get(&format!("/api/v2/secrets/{id}")).await.body;
    let second = h.get(&format!("/api/v2/secrets/{id}")).await.body;
    assert_eq!(first["api_key"], reused["api_key"]);
    assert_eq!(second["api_key"], first["api_key"]);
    assert_eq!(second["api_key_id"], first["api_key_id"]);
    assert_eq!(first["service_id"], "ServiceId-static");
    assert_eq!(first["service_id_is_static"], true);

    let fresh = h.post("/api/v2/secrets", &create("fresh", false)).await.body;
    let id = fresh["id"].as_str().unwrap();
    let first = h.get(&format!("/api/v2/secrets/{id}")).await.body;
    let second = h.get(&format!("/api/v2/secrets/{id}")).await.body;
    assert_ne!(first["api_key"], fresh["api_key"]);
    assert_ne!(second["api_key"], first["api_key"]);
    assert_ne!(second["api_key_id"], first["api_key_id"]);
    assert_eq!(second["versions_total"], 1, "a new key per read is not a new version");

    // Manual rotation is refused without reuse_api_key (reference 1.11).
    let rotation = h.post(&format!("/api/v2/secrets/{id}/versions"), &json!({})).await;
    assert!(common::assert_ibm_error(&rotation, 400).contains("reuse_api_key"));
}

#[tokio::test]
async fn seeded_values_of_iam_credentials_are_kept() {
    let h = Harness::unlimited().await;
    let secret = h
        .emulator
        .store()
        .create_secret(json!({"secret_type": "iam_credentials", "name": "seeded-key", "ttl": "1h",
                             "reuse_api_key": true, "api_key": "known-key"}))
        .unwrap();
    let read = h.get(&format!("/api/v2/secrets/{}", secret["id"].as_str().unwrap())).await;
    assert_eq!(read.body["api_key"], "known-key");
}
