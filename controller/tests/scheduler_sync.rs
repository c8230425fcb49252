//! Hundreds of ExternalSecrets on a real kube-apiserver against an emulator
//! that admits 10 requests per second: with the budget at 80 % of that, the
//! controller stretches its poll interval, is never throttled, syncs every
//! object and still propagates a rotation.

mod sync_support;

use std::future::Future;
use std::time::Duration;

use controller::crd::ExternalSecret;
use controller::provider::BudgetConfig;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use serde_json::json;
use sync_support::{
    RunningController, SyncTest, all_ready, apply_kes_objects, client_config, poll_until, seed_users,
    test_config, value,
};

/// The emulator's quota, requests per second.
const QUOTA: u32 = 10;
/// How many ExternalSecrets, and how many remote secrets they share.
const OBJECTS: usize = 300;
const REMOTE_SECRETS: usize = 100;
/// Long enough for a few effective intervals (about 42 s here) on a noisy
/// machine.
const TIMEOUT: Duration = Duration::from_secs(300);

/// Polls `check` every second until it returns `Some`, failing after
/// [`TIMEOUT`] with `what`.
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(what, TIMEOUT, Duration::from_secs(1), check).await
}

fn name(index: usize) -> String {
    format!("app-{index:03}")
}

#[tokio::test]
async fn hundreds_of_external_secrets_stay_within_the_quota() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start_throttled(QUOTA).await?;
    let ns = namespace.name();
    let ids = seed_users(&emu, REMOTE_SECRETS, "first-password");

    let mut config = test_config(&[ns]);
    config.poll_interval = Duration::from_secs(2);
    config.concurrency = 16;
    let mut sm = client_config(&emu);
    sm.budget = Some(BudgetConfig::new(f64::from(QUOTA), 0.8));
    let controller = RunningController::start_with(client.clone(), config, sm);

    // Each object reads both properties of one remote secret; every remote
    // secret is shared by three objects.
    apply_kes_objects(&client, ns, &ids, OBJECTS, name, 16).await;

    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    eventually("every ExternalSecret Ready", || all_ready(&externals, OBJECTS)).await;

    // Rotating a shared remote secret reaches all three of its Secrets.
    emu.store().create_version(&ids[0], json!({"password": "rotated-password"}))?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    for index in [0, REMOTE_SECRETS, 2 * REMOTE_SECRETS] {
        let secrets = secrets.clone();
        eventually(&format!("the rotated password in {}", name(index)), || {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get_opt(&name(index)).await.ok()??;
                (value(&secret, "password").as_deref() == Some("rotated-password")).then_some(())
            }
        })
        .await;
    }

    controller.stop().await;
    let stats = emu.stats();
    assert_eq!(stats.throttled, 0, "no 429s: {:?}", stats.by_operation);
    assert!(
        stats.max_admitted_in_any_1s_window <= u64::from(QUOTA),
        "{}",
        stats.max_admitted_in_any_1s_window
    );
    // Reads of a shared secret close together may be shared (`Dedupe`).
    assert!(stats.count("get_secret", 200) >= REMOTE_SECRETS as u64, "every remote secret was read");
    Ok(())
}
