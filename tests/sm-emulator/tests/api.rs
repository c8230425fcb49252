//! Listing, paging, versions, metadata patches, deletes, groups and error answers.

mod common;

use common::{Harness, assert_ibm_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn arbitrary(name: &str, payload: &str) -> Value {
    json!({"secret_type": "arbitrary", "name": name, "payload": payload})
}

/// The `offset` query parameter of an href, as the Go pager reads it.
fn offset_of(href: &str) -> usize {
    let url = url::Url::parse(href).expect("absolute href");
    url.query_pairs()
        .find(|(key, _)| key == "offset")
        .map(|(_, value)| value.parse().unwrap())
        .expect("href has offset")
}

#[tokio::test]
async fn paging_follows_next_href_until_absent() {
    let h = Harness::unlimited().await;
    for i in 0..7 {
        h.emulator.store().create_secret(arbitrary(&format!("s{i}"), "v")).unwrap();
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let page = h.get(&format!("/api/v2/secrets?limit=3&offset={offset}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let body = &page.body;
        pages += 1;
        assert_eq!(body["total_count"], 7);
        assert_eq!(body["limit"], 3);
        assert_eq!(body["offset"], offset);
        assert_eq!(offset_of(body["first"]["href"].as_str().unwrap()), 0);
        assert_eq!(offset_of(body["last"]["href"].as_str().unwrap()), 6);
        if offset > 0 {
            assert_eq!(offset_of(body["previous"]["href"].as_str().unwrap()), offset - 3);
        } else {
            assert!(body.get("previous").is_none());
        }
        for secret in body["secrets"].as_array().unwrap() {
            assert!(secret.get("payload").is_none());
            seen.push(secret["name"].as_str().unwrap().to_owned());
        }
        match body.get("next") {
            Some(next) => offset = offset_of(next["href"].as_str().unwrap()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["s0", "s1", "s2", "s3", "s4", "s5", "s6"]);

    let default_limit = h.get("/api/v2/secrets").await.body;
    assert_eq!(default_limit["limit"], 200);
    assert!(default_limit.get("next").is_none());
    assert_ibm_error(&h.get("/api/v2/secrets?limit=1001").await, 400);
    assert_eq!(h.get("/api/v2/secrets?limit=1000").await.status, StatusCode::OK);
}

/// Three secrets: `bravo` and `charlie` in the default group, `alpha` in `team-a`.
/// Returns the id of `team-a`.
fn seed_three(h: &Harness) -> String {
    let store = h.emulator.store();
    let group = store.create_group("team-a", Some("the A team")).unwrap();
    let group_id = group["id"].as_str().unwrap().to_owned();
    for body in [
        json!({"secret_type": "arbitrary", "name": "bravo", "payload": "x", "labels": ["env-dev", "tier-1"]}),
        json!({"secret_type": "arbitrary", "name": "alpha", "payload": "x", "labels": ["env-dev"],
               "secret_group_id": group_id, "description": "the first one"}),
        json!({"secret_type": "kv", "name": "charlie", "data": {}, "labels": ["tier-1"]}),
    ] {
        store.create_secret(body).unwrap();
    }
    group_id
}

#[tokio::test]
async fn list_filters_and_sorts() {
    let h = Harness::unlimited().await;
    let group_id = seed_three(&h);
    let team_a = format!("?groups={group_id}");
    let cases: [(&str, &[&str]); 13] = [
        ("", &["bravo", "alpha", "charlie"]),
        ("?sort=name", &["alpha", "bravo", "charlie"]),
        ("?sort=-name", &["charlie", "bravo", "alpha"]),
        ("?sort=-created_at", &["charlie", "alpha", "bravo"]),
        ("?sort=secret_type", &["bravo", "alpha", "charlie"]),
        ("?secret_types=kv", &["charlie"]),
        ("?secret_types=kv,arbitrary&sort=name", &["alpha", "bravo", "charlie"]),
        ("?groups=default", &["bravo", "charlie"]),
        (&team_a, &["alpha"]),
        ("?match_all_labels=env-dev,tier-1", &["bravo"]),
        ("?match_all_labels=tier-1", &["bravo", "charlie"]),
        ("?search=first", &["alpha"]),
        ("?search=kv", &["charlie"]),
    ];
    for (query, expected) in cases {
        let body = h.get(&format!("/api/v2/secrets{query}")).await.body;
        let names: Vec<&str> =
            body["secrets"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
        assert_eq!(names, expected, "{query}");
        assert_eq!(body["total_count"], expected.len(), "{query}");
    }
    for (query, field) in [("sort=size", "sort"), ("secret_types=nope", "secret_types")] {
        let answer = h.get(&format!("/api/v2/secrets?{query}")).await;
        assert!(assert_ibm_error(&answer, 400).contains(field));
    }
}

#[tokio::test]
async fn groups_and_lookup_by_name() {
    let h = Harness::unlimited().await;
    let group_id = seed_three(&h);
    // By name: the group is addressed by its id or by its name; `default` is the default group.
    for group in [group_id.as_str(), "team-a"] {
        let path = format!("/api/v2/secret_groups/{group}/secret_types/arbitrary/secrets/alpha");
        assert_eq!(h.get(&path).await.status, StatusCode::OK, "{group}");
    }
    let path = "/api/v2/secret_groups/default/secret_types/arbitrary/secrets/alpha";
    assert_ibm_error(&h.get(path).await, 404);
    let path = "/api/v2/secret_groups/default/secret_types/kv/secrets/charlie";
    assert_eq!(h.get(path).await.status, StatusCode::OK);

    let groups = h.get("/api/v2/secret_groups").await.body;
    assert_eq!(groups["total_count"], 2);
    assert_eq!(groups["secret_groups"][0]["id"], "default");
    let fetched = h.get(&format!("/api/v2/secret_groups/{group_id}")).await.body;
    for key in ["id", "name", "description", "created_at", "created_by", "updated_at"] {
        assert!(fetched.get(key).is_some(), "{key}");
    }
    assert_ibm_error(&h.get("/api/v2/secret_groups/nope").await, 404);
    let team_b = json!({"name": "team-b"});
    assert_eq!(h.post("/api/v2/secret_groups", &team_b).await.status, StatusCode::CREATED);
    assert_ibm_error(&h.post("/api/v2/secret_groups", &team_b).await, 409);
}

#[tokio::test]
async fn version_aliases_move_on_rotation() {
    let h = Harness::unlimited().await;
    let secret = h.post("/api/v2/secrets", &arbitrary("rotating", "v1")).await.body;
    let id = secret["id"].as_str().unwrap();
    assert_ibm_error(&h.get(&format!("/api/v2/secrets/{id}/versions/previous")).await, 404);

    common::wait_past(&secret["updated_at"]).await;
    let v2 = h
        .post(
            &format!("/api/v2/secrets/{id}/versions"),
            &json!({"payload": "v2", "version_custom_metadata": {"n": 2}}),
        )
        .await;
    assert_eq!(v2.status, StatusCode::CREATED);
    assert_eq!(v2.body["alias"], "current");
    assert_eq!(v2.body["payload"], "v2");
    assert_eq!(v2.body["secret_id"], id);
    assert_eq!(v2.body["version_custom_metadata"], json!({"n": 2}));
    for key in [
        "id",
        "secret_name",
        "secret_type",
        "secret_group_id",
        "created_by",
        "created_at",
        "auto_rotated",
        "downloaded",
        "payload_available",
    ] {
        assert!(v2.body.get(key).is_some(), "{key}");
    }
    let v3 = h.post(&format!("/api/v2/secrets/{id}/versions"), &json!({"payload": "v3"})).await.body;

    let after = h.get(&format!("/api/v2/secrets/{id}")).await.body;
    assert_eq!(after["payload"], "v3");
    assert_eq!(after["versions_total"], 3);
    assert_ne!(after["updated_at"], secret["updated_at"], "rotation moves updated_at");

    let current = h.get(&format!("/api/v2/secrets/{id}/versions/current")).await.body;
    assert_eq!((current["id"].clone(), current["payload"].clone()), (v3["id"].clone(), json!("v3")));
    let previous = h.get(&format!("/api/v2/secrets/{id}/versions/previous")).await.body;
    assert_eq!(previous["id"], v2.body["id"]);
    assert_eq!(previous["payload"], "v2");
    assert_eq!(previous["alias"], "previous");
    let by_id =
        h.get(&format!("/api/v2/secrets/{id}/versions/{}", v2.body["id"].as_str().unwrap())).await.body;
    assert_eq!(by_id["payload"], "v2");
    let meta = h.get(&format!("/api/v2/secrets/{id}/versions/current/metadata")).await.body;
    assert!(meta.get("payload").is_none());
    assert_eq!(meta["id"], v3["id"]);
}

#[tokio::test]
async fn version_history_keeps_data_of_current_and_previous() {
    let h = Harness::unlimited().await;
    let store = h.emulator.store();
    let first = store.create_secret(arbitrary("history", "v1")).unwrap();
    let id = first["id"].as_str().unwrap();
    store.create_version(id, json!({"payload": "v2", "version_custom_metadata": {"n": 2}})).unwrap();
    store.create_version(id, json!({"payload": "v3"})).unwrap();

    let versions = h.get(&format!("/api/v2/secrets/{id}/versions")).await.body;
    assert_eq!(versions["total_count"], 3);
    let list = versions["versions"].as_array().unwrap();
    assert!(list.iter().all(|v| v.get("payload").is_none()));
    assert!(list.iter().all(|v| v["secret_id"] == id));
    assert_eq!(list[0]["payload_available"], false, "only current and previous keep data");
    assert!(list[0].get("alias").is_none());
    assert_eq!((list[1]["alias"].as_str(), list[2]["alias"].as_str()), (Some("previous"), Some("current")));
    assert!(list[1..].iter().all(|v| v["payload_available"] == true));

    let oldest = h.get(&format!("/api/v2/secrets/{id}/versions/{}", list[0]["id"].as_str().unwrap())).await;
    assert_eq!(oldest.status, StatusCode::OK);
    assert!(oldest.body.get("payload").is_none());
    let unknown = format!("/api/v2/secrets/{id}/versions/{}", uuid::Uuid::new_v4());
    assert_ibm_error(&h.get(&unknown).await, 404);

    // Version metadata patch: only version_custom_metadata, merged.
    let path = format!("/api/v2/secrets/{id}/versions/previous/metadata");
    let patched = h.patch(&path, &json!({"version_custom_metadata": {"m": 1}})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert_eq!(patched.body["version_custom_metadata"], json!({"n": 2, "m": 1}));
    assert!(patched.body.get("payload").is_none());
    assert_ibm_error(&h.patch(&path, &json!({"payload": "x"})).await, 400);
}

#[tokio::test]
async fn metadata_patch_and_delete() {
    let h = Harness::unlimited().await;
    let secret = h
        .post(
            "/api/v2/secrets",
            &json!({"secret_type": "arbitrary", "name": "patchme", "payload": "p",
                                         "labels": ["aa"], "custom_metadata": {"keep": 1, "drop": 2}}),
        )
        .await
        .body;
    let id = secret["id"].as_str().unwrap();
    let path = format!("/api/v2/secrets/{id}/metadata");

    // Wrong content type.
    let wrong = h.call(Method::PATCH, &path, Some(&json!({"description": "nope"}))).await;
    assert_ibm_error(&wrong, 415);

    common::wait_past(&secret["updated_at"]).await;
    let patched = h
        .patch(&path, &json!({"name": "patched", "description": "now described", "labels": ["bb", "cc"],
                              "custom_metadata": {"drop": null, "new": true}, "expiration_date": "2032-02-02T00:00:00Z"}))
        .await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let body = &patched.body;
    assert_eq!(body["name"], "patched");
    assert_eq!(body["description"], "now described");
    assert_eq!(body["labels"], json!(["bb", "cc"]));
    assert_eq!(body["custom_metadata"], json!({"keep": 1, "new": true}));
    assert_eq!(body["expiration_date"], "2032-02-02T00:00:00.000Z");
    assert!(body.get("payload").is_none());
    assert_ne!(body["updated_at"], secret["updated_at"]);
    assert_eq!(body["versions_total"], 1);

    let removed = h.patch(&path, &json!({"expiration_date": null})).await.body;
    assert!(removed.get("expiration_date").is_none());
    assert!(assert_ibm_error(&h.patch(&path, &json!({"payload": "x"})).await, 400).contains("payload"));
    assert!(
        assert_ibm_error(&h.patch(&path, &json!({"secret_group_id": "x"})).await, 400)
            .contains("secret_group_id")
    );
    assert!(assert_ibm_error(&h.patch(&path, &json!({"name": "-bad"})).await, 400).contains("name"));

    h.post("/api/v2/secrets", &arbitrary("taken", "t")).await;
    assert_ibm_error(&h.patch(&path, &json!({"name": "taken"})).await, 409);

    let deleted = h.call(Method::DELETE, &format!("/api/v2/secrets/{id}?force_delete=false"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert!(deleted.body.is_null());
    assert_ibm_error(&h.get(&format!("/api/v2/secrets/{id}")).await, 404);
    assert_ibm_error(&h.call(Method::DELETE, &format!("/api/v2/secrets/{id}"), None).await, 404);
}

#[tokio::test]
async fn auth_and_not_found_errors_use_the_ibm_container() {
    let h = Harness::unlimited().await;
    // 401: no token, unknown token.
    let anonymous = common::answer(h.http.get(h.url("/api/v2/secrets")).send().await.unwrap()).await;
    assert_ibm_error(&anonymous, 401);
    let bogus =
        common::answer(h.http.get(h.url("/api/v2/secrets")).bearer_auth("not-a-token").send().await.unwrap())
            .await;
    assert_ibm_error(&bogus, 401);

    // 404: unknown id, name, route.
    let id = uuid::Uuid::new_v4();
    assert_ibm_error(&h.get(&format!("/api/v2/secrets/{id}")).await, 404);
    assert_ibm_error(&h.get(&format!("/api/v2/secrets/{id}/metadata")).await, 404);
    assert_ibm_error(&h.get("/api/v2/secret_groups/default/secret_types/arbitrary/secrets/nope").await, 404);
    assert_ibm_error(&h.get("/api/v2/no_such_thing").await, 404);
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let h = Harness::unlimited().await;
    for (body, field) in [
        (json!({"name": "x1", "payload": "p"}), "secret_type"),
        (json!({"secret_type": "nope", "name": "x1"}), "secret_type"),
        (json!({"secret_type": "arbitrary", "payload": "p"}), "name"),
        (json!({"secret_type": "arbitrary", "name": "a", "payload": "p"}), "name"),
        (json!({"secret_type": "arbitrary", "name": "has_underscore", "payload": "p"}), "name"),
        (json!({"secret_type": "arbitrary", "name": "ok-name"}), "payload"),
        (json!({"secret_type": "arbitrary", "name": "ok-name", "payload": "p", "labels": ["x"]}), "labels"),
        (json!({"secret_type": "kv", "name": "ok-name", "data": "str"}), "data"),
        (json!({"secret_type": "username_password", "name": "ok-name"}), "username"),
        (json!({"secret_type": "iam_credentials", "name": "ok-name", "reuse_api_key": true}), "ttl"),
        (
            json!({"secret_type": "iam_credentials", "name": "ok-name", "ttl": "10s", "reuse_api_key": true}),
            "ttl",
        ),
        (
            json!({"secret_type": "service_credentials", "name": "ok-name", "source_service": {"instance": {}}}),
            "source_service.instance.crn",
        ),
        (
            json!({"secret_type": "private_cert", "name": "ok-name", "common_name": "x"}),
            "certificate_template",
        ),
        (json!({"secret_type": "custom_credentials", "name": "ok-name"}), "configuration"),
        (
            json!({"secret_type": "arbitrary", "name": "ok-name", "payload": "p", "secret_group_id": "nope"}),
            "secret_group_id",
        ),
    ] {
        let answer = h.post("/api/v2/secrets", &body).await;
        let message = assert_ibm_error(&answer, 400);
        assert!(message.contains(&format!("'{field}'")), "{body} → {message}");
    }
    let malformed = common::answer(
        h.http
            .post(h.url("/api/v2/secrets"))
            .bearer_auth(&h.token)
            .header("Content-Type", "application/json")
            .body("{not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_ibm_error(&malformed, 400);
}

#[tokio::test]
async fn duplicate_names_conflict_within_a_type() {
    let h = Harness::unlimited().await;
    // Same name and type anywhere in the instance; another type may reuse the name.
    assert_eq!(h.post("/api/v2/secrets", &arbitrary("dup", "1")).await.status, StatusCode::CREATED);
    assert_ibm_error(&h.post("/api/v2/secrets", &arbitrary("dup", "2")).await, 409);
    let group = h.emulator.store().create_group("other", None).unwrap();
    let elsewhere =
        json!({"secret_type": "arbitrary", "name": "dup", "payload": "3", "secret_group_id": group["id"]});
    assert_ibm_error(&h.post("/api/v2/secrets", &elsewhere).await, 409);
    let kv = json!({"secret_type": "kv", "name": "dup", "data": {}});
    assert_eq!(h.post("/api/v2/secrets", &kv).await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn store_api_matches_http() {
    let h = Harness::unlimited().await;
    let store = h.emulator.store();
    let created = store.create_secret(arbitrary("direct", "one")).unwrap();
    let id = created["id"].as_str().unwrap();
    store.create_version(id, json!({"payload": "two"})).unwrap();
    assert_eq!(store.secret(id).unwrap()["payload"], "two");
    assert_eq!(store.secret(id).unwrap()["downloaded"], false, "store reads only peek");
    assert_eq!(store.secret_by_name("default", "arbitrary", "direct").unwrap()["id"], id);
    assert!(store.secret_metadata(id).unwrap().get("payload").is_none());
    assert_eq!(h.get(&format!("/api/v2/secrets/{id}")).await.body["payload"], "two");
    assert_eq!(store.secret_ids(), [id]);
    store.delete(id).unwrap();
    assert!(matches!(store.secret(id), Err(sm_emulator::StoreError::NotFound { .. })));
    assert!(store.is_empty());
    assert_eq!(h.emulator.stats().count("get_secret", 200), 1, "store calls are not counted");
}
