//! The per-instance rate limit, request statistics and injected faults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Harness, assert_ibm_error};
use reqwest::StatusCode;
use serde_json::json;
use sm_emulator::{EmulatorConfig, Faults, RequestStats};

/// Fires `count` GETs of one secret at once; returns the answers.
async fn burst(h: &Arc<Harness>, path: &str, count: usize) -> Vec<common::Answer> {
    let tasks: Vec<_> = (0..count)
        .map(|_| {
            let h = Arc::clone(h);
            let path = path.to_owned();
            tokio::spawn(async move { h.get(&path).await })
        })
        .collect();
    let mut answers = Vec::with_capacity(count);
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_gets_at_most_the_quota_per_sliding_second() {
    let h = Arc::new(Harness::start(EmulatorConfig::default()).await);
    let secret = h
        .emulator
        .store()
        .create_secret(json!({"secret_type": "arbitrary", "name": "hot", "payload": "x"}))
        .unwrap();
    let path = format!("/api/v2/secrets/{}", secret["id"].as_str().unwrap());

    let answers = burst(&h, &path, 200).await;
    let ok = answers.iter().filter(|a| a.status == StatusCode::OK).count() as u64;
    let throttled: Vec<_> = answers.iter().filter(|a| a.status == StatusCode::TOO_MANY_REQUESTS).collect();
    let throttled_count = throttled.len() as u64;
    assert_eq!(ok + throttled_count, 200, "every answer is 200 or 429");
    assert!(ok >= 20, "the first 20 arrivals are admitted: {ok}");
    assert!(!throttled.is_empty());
    for answer in &throttled {
        assert_eq!(answer.headers["retry-after"], "1");
        assert_ibm_error(answer, 429);
        assert_eq!(answer.body["errors"][0]["code"], "too_many_requests");
    }

    let stats = h.emulator.stats();
    assert!(stats.max_admitted_in_any_1s_window <= 20, "{stats:?}");
    assert!(stats.max_admitted_in_any_1s_window >= 1);
    assert!(stats.max_arrived_in_any_1s_window > 20, "200 sent at once: {stats:?}");
    assert_eq!(stats.admitted, ok);
    assert_eq!(stats.throttled, throttled_count);
    assert_eq!(stats.count("get_secret", 200), ok);
    assert_eq!(stats.count("get_secret", 429), throttled_count);
    assert!(stats.per_second.iter().all(|bucket| bucket.admitted <= 20), "{:?}", stats.per_second);
    let histogram: u64 = stats.per_second.iter().map(|b| b.admitted + b.throttled).sum();
    assert_eq!(histogram, 200);

    // The admin endpoint reports the same data.
    let over_http: RequestStats =
        h.http.get(h.url("/__admin/requests")).send().await.unwrap().json().await.unwrap();
    assert_eq!(over_http.admitted, stats.admitted);
    assert_eq!(over_http.max_admitted_in_any_1s_window, stats.max_admitted_in_any_1s_window);

    // Quota comes back once the window slides on.
    common::wait_until(Duration::from_secs(10), || async { h.get(&path).await.status == StatusCode::OK })
        .await;
    assert!(h.emulator.stats().max_admitted_in_any_1s_window <= 20);

    let reset = h.http.post(h.url("/__admin/reset")).send().await.unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(h.emulator.stats(), RequestStats::default());
}

#[tokio::test]
async fn retry_after_can_be_turned_off_and_token_calls_are_free() {
    let h = Harness::start(EmulatorConfig { rate_limit: 2, retry_after: false, ..EmulatorConfig::default() })
        .await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let answer = h.get("/api/v2/secrets").await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(answer.headers.get("retry-after").is_none());
        }
        statuses.push(answer.status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    // IAM and admin calls are never throttled.
    for _ in 0..5 {
        assert_eq!(h.api_key_token("emulator-api-key").await.status, StatusCode::OK);
        assert!(h.http.get(h.url("/__admin/faults")).send().await.unwrap().status().is_success());
    }
    assert!(h.emulator.stats().max_admitted_in_any_1s_window <= 2);
}

#[tokio::test]
async fn injected_faults() {
    let h = Harness::unlimited().await;
    let set = |faults: serde_json::Value| {
        let h = &h;
        async move {
            let response = h.http.post(h.url("/__admin/faults")).json(&faults).send().await.unwrap();
            common::answer(response).await
        }
    };

    // Every request fails with the configured status; IAM is unaffected.
    let answer = set(json!({"error_rate": 1.0, "error_status": 500})).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["error_rate"], 1.0);
    assert_ibm_error(&h.get("/api/v2/secrets").await, 500);
    assert_eq!(h.api_key_token("emulator-api-key").await.status, StatusCode::OK);

    // An outage answers 503 until cleared; `outage: true` toggles one without an end.
    set(json!({"outage_seconds": 600})).await;
    let faults: Faults = h.http.get(h.url("/__admin/faults")).send().await.unwrap().json().await.unwrap();
    assert_eq!(faults.outage, Some(true));
    assert!(faults.outage_seconds.is_some_and(|left| left > 0.0 && left <= 600.0));
    assert_ibm_error(&h.get("/api/v2/secrets").await, 503);
    set(json!({})).await;
    assert_eq!(h.get("/api/v2/secrets").await.status, StatusCode::OK);
    set(json!({"outage": true})).await;
    assert_ibm_error(&h.get("/api/v2/secrets").await, 503);
    set(json!({"outage": false})).await;
    assert_eq!(h.get("/api/v2/secrets").await.status, StatusCode::OK);

    // A short 429 storm, even without a rate limit, then recovery.
    h.emulator.set_faults(Faults { storm_429_seconds: Some(0.5), ..Faults::default() });
    let storm = h.get("/api/v2/secrets").await;
    assert_ibm_error(&storm, 429);
    assert_eq!(storm.headers["retry-after"], "1");
    common::wait_until(Duration::from_secs(10), || async {
        h.get("/api/v2/secrets").await.status == StatusCode::OK
    })
    .await;
    assert_eq!(h.emulator.faults().storm_429_seconds, None);

    // Latency still answers; invalid sets are refused.
    h.emulator.set_faults(Faults { latency_ms: 20, ..Faults::default() });
    assert_eq!(h.emulator.faults().latency_ms, 20);
    assert_eq!(h.get("/api/v2/secrets").await.status, StatusCode::OK);
    assert_ibm_error(&set(json!({"error_rate": 1.0, "error_status": 404})).await, 400);
    assert_ibm_error(&set(json!({"unknown": 1})).await, 400);

    let stats = h.emulator.stats();
    assert_eq!(stats.count("list_secrets", 500), 1);
    assert_eq!(stats.count("list_secrets", 503), 2);
    assert!(stats.count("list_secrets", 429) >= 1);
}
