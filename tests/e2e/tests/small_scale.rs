//! The scale benchmark at a small size, as a test: both contenders run the
//! whole scenario on the real API server, and the outcomes (not the
//! timings) are checked: the controller syncs everything, propagates every
//! rotation and first sync, and is never throttled; the KES-like baseline
//! is.

use std::path::PathBuf;
use std::time::Duration;

#[tokio::test]
async fn small_scale_run_syncs_everything_without_throttling() {
    let log_dir = tempfile::tempdir().unwrap();
    let options = e2e::scale::ScaleOptions {
        controller: e2e::programs::workspace_binary("cos-secrets-controller"),
        crd: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crds/externalsecret.yaml")),
        sizes: vec![60],
        interval: Duration::from_secs(10),
        rate_limit: 20,
        rotations: 10,
        late: 5,
        steady: Duration::from_secs(3),
        wait: Duration::from_secs(20),
        baseline: true,
        log_dir: log_dir.path().to_owned(),
    };
    let mut tables = Vec::new();
    let results = e2e::scale::run(&options, |table| tables.push(table.to_owned())).await.unwrap();
    let [result] = results.as_slice() else { panic!("one size, one result: {results:?}") };
    let controller = &result.controller;
    assert_eq!(controller.throttled, 0, "{controller:?}");
    assert!(controller.max_admitted_in_1s <= 20, "{controller:?}");
    assert!(controller.initial_sync.is_some(), "{controller:?}");
    assert_eq!(controller.synced_before_rotation, 60, "{controller:?}");
    assert!(controller.rotation.complete() && controller.rotation.expected >= 10, "{controller:?}");
    assert!(controller.first_sync.complete() && controller.first_sync.expected == 5, "{controller:?}");
    assert!(
        controller.paced_first_sync.complete() && controller.paced_first_sync.expected == 5,
        "{controller:?}"
    );
    assert!(controller.peak_rss.is_some_and(|rss| rss > 0));
    let baseline = result.baseline.as_ref().unwrap();
    assert!(baseline.throttled > 0, "60 objects polled at once exceed 20 requests per second: {baseline:?}");
    assert!(baseline.max_arrived_in_1s > 20, "{baseline:?}");
    assert!(tables[0].contains("### 60 ExternalSecrets"), "{tables:?}");
}
