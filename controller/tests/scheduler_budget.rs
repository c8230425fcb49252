//! The request budget of the IBM client against the emulator's rate limit:
//! a budget below the quota is never throttled, and a budget above it backs
//! off after the first `429`s.

mod provider_support;

use std::sync::Arc;

use controller::provider::{
    AttemptOutcome, AuthConfig, BudgetConfig, IbmSecretsManager, Operation, SecretsManager,
};
use provider_support::{Recorder, concurrent_reads, config};
use serde_json::json;
use sm_emulator::{Emulator, EmulatorConfig};

const QUOTA: u32 = 10;

async fn emulator(rate_limit: u32) -> (Emulator, String) {
    let emu = Emulator::start(
        EmulatorConfig { rate_limit, retry_after: true, ..EmulatorConfig::default() },
        "127.0.0.1:0".parse().expect("addr"),
    )
    .await
    .expect("emulator");
    let secret = emu
        .store()
        .create_secret(json!({"secret_type": "arbitrary", "name": "hot", "payload": "p"}))
        .expect("seed");
    let id = secret["id"].as_str().expect("id").to_owned();
    (emu, id)
}

fn client(emu: &Emulator, budget: BudgetConfig) -> (IbmSecretsManager, Arc<Recorder>) {
    let mut config =
        config(&emu.url(), &emu.url(), AuthConfig::ApiKey { api_key: "emulator-api-key".into() });
    config.max_retries = 10;
    config.budget = Some(budget);
    let recorder = Arc::new(Recorder::default());
    (IbmSecretsManager::with_observer(&config, recorder.clone()).expect("client"), recorder)
}

#[tokio::test]
async fn a_budget_below_the_quota_is_never_throttled() {
    let (emu, id) = emulator(QUOTA).await;
    let (client, recorder) = client(&emu, BudgetConfig::new(f64::from(QUOTA), 0.8));
    assert_eq!(client.request_budget(), Some(8.0));

    concurrent_reads(&client, &id, 40).await;

    let stats = emu.stats();
    assert_eq!(stats.throttled, 0, "{stats:?}");
    assert_eq!(stats.count("get_secret", 200), 40);
    assert!(stats.max_admitted_in_any_1s_window <= u64::from(QUOTA), "{stats:?}");
    assert!(recorder.retry_delays().is_empty());
    assert_eq!(recorder.attempts(Operation::IamToken).len(), 1, "token exchanges take no permit");
}

#[tokio::test]
async fn a_budget_above_the_quota_slows_down_after_429s() {
    // The budget believes in 20 requests per second; the instance admits 4.
    let (emu, id) = emulator(4).await;
    let (client, recorder) = client(&emu, BudgetConfig::new(20.0, 1.0));

    concurrent_reads(&client, &id, 30).await;

    let stats = emu.stats();
    assert_eq!(stats.count("get_secret", 200), 30, "every read succeeded: {stats:?}");
    let throttled = recorder
        .attempts(Operation::GetSecret)
        .into_iter()
        .filter(|outcome| *outcome == AttemptOutcome::Status(429))
        .count();
    assert!(throttled > 0, "the quota was hit");
    // Each 429 pauses every pending permit for its Retry-After second and
    // halves the rate, so the client stops hammering the instance: far
    // fewer 429s than reads (without the budget, every read would see
    // several).
    assert!(throttled < 15, "{throttled} 429s for 30 reads: {stats:?}");
    assert_eq!(u64::try_from(throttled).unwrap(), stats.throttled);
}

#[test]
fn an_empty_budget_is_refused() {
    let mut config =
        config("https://sm.example", "https://iam.example", AuthConfig::ApiKey { api_key: "k".into() });
    config.budget = Some(BudgetConfig::new(20.0, 0.0));
    let error = IbmSecretsManager::new(&config).expect_err("a zero rate");
    assert!(matches!(error, controller::provider::Error::Config { .. }), "{error:?}");
}
