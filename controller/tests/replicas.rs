//! Two real controller processes against one API server: exactly one leads
//! (and talks to Secrets Manager), the other takes over when the leader is
//! killed. Also scrapes `/metrics` and checks the logs carry no values.

mod sync_support;

use std::path::Path;
use std::process::Stdio;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use sm_emulator::Emulator;
use sync_support::*;
use test_platform::TestCluster;
use tokio::process::{Child, Command};

const SECRET_ID: &str = "5b0e8f6a-3c1d-4e2f-9a7b-0c1d2e3f4a5b";
const PASSWORD: &str = "leader-Pa55word-xyz";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts the controller binary against `emulator`, logging at debug level
/// to `log`.
fn spawn_replica(
    identity: &str,
    kubeconfig: &Path,
    ns: &str,
    emulator: &Emulator,
    port: u16,
    log: &Path,
) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(env!("CARGO_BIN_EXE_cos-secrets-controller"))
        .args(["--sm-endpoint", &emulator.url(), "--iam-url", &emulator.url()])
        .args(["--watched-namespaces", ns, "--poll-interval-ms", "1000", "--retry-min-ms", "200"])
        // Polls read every value, which the test counts.
        .args(["--change-detection", "false"])
        .args(["--leader-election", "true", "--lease-name", "cos-secrets-sync", "--lease-namespace", ns])
        .args(["--lease-identity", identity, "--lease-duration-secs", "4", "--lease-grace-secs", "1"])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .env("IBM_CLOUD_SECRETS_MANAGER_API_APIKEY", EMULATOR_API_KEY)
        .env("COS_SECRETS_SYNC_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("start the controller binary")
}

fn gets(emulator: &Emulator) -> u64 {
    emulator.stats().operation_total("get_secret")
}

/// The value of the first sample line starting with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics.lines().find(|line| line.starts_with(prefix))?.rsplit(' ').next()?.parse().ok()
}

#[tokio::test]
async fn one_leader_talks_to_secrets_manager_and_a_standby_takes_over() -> anyhow::Result<()> {
    let cluster = TestCluster::shared().await;
    let client = cluster.client().await?;
    let ns = cluster.namespace().await?;
    let ns = ns.name();
    install_crd(&client).await;
    let emulators = [emulator().await, emulator().await];
    for emulator in &emulators {
        emulator.store().create_secret(json!({
            "id": SECRET_ID, "secret_type": "username_password", "name": "ha-user",
            "username": "app", "password": PASSWORD}))?;
    }
    let logs = tempfile::tempdir()?;
    let ports = [free_port(), free_port()];
    let mut replicas: Vec<Option<Child>> = ["replica-a", "replica-b"]
        .iter()
        .zip(&emulators)
        .zip(ports)
        .map(|((identity, emulator), port)| {
            Some(spawn_replica(
                identity,
                cluster.kubeconfig_path(),
                ns,
                emulator,
                port,
                &logs.path().join(identity),
            ))
        })
        .collect();

    apply_external_secret(&client, ns, &kes_manifest("ha", SECRET_ID)).await;
    wait_secret(&client, ns, "ha", "the Secret", |s| value(s, "password").as_deref() == Some(PASSWORD)).await;

    // Exactly one replica reads Secrets Manager, over several polls.
    let leader = wait_for("a leader reading Secrets Manager", || {
        let counts = [gets(&emulators[0]), gets(&emulators[1])];
        async move { counts.iter().position(|count| *count > 0) }
    })
    .await;
    let standby = 1 - leader;
    let start = gets(&emulators[leader]);
    wait_for("three more polls by the leader", || {
        let count = gets(&emulators[leader]);
        async move { (count >= start + 3).then_some(()) }
    })
    .await;
    assert_eq!(gets(&emulators[standby]), 0, "the standby never talks to Secrets Manager");

    // The leader's metrics move.
    let url = format!("http://127.0.0.1:{}/metrics", ports[leader]);
    let scrape = || async { reqwest::get(&url).await.ok()?.text().await.ok() };
    let success = format!(r#"cos_secrets_sync_syncs_total{{namespace="{ns}",result="success"}}"#);
    let calls = r#"cos_secrets_sync_secrets_manager_calls_total{operation="get_secret",status="200"}"#;
    let first = wait_for("a first scrape", || async {
        let text = scrape().await?;
        Some((sample(&text, &success)?, sample(&text, calls)?, text))
    })
    .await;
    assert!(first.2.contains("cos_secrets_sync_leader 1"), "{}", first.2);
    assert!(first.2.contains(r#"cos_secrets_sync_iam_token_exchanges_total{status="200"}"#), "{}", first.2);
    wait_for("the counters to move", || async {
        let text = scrape().await?;
        (sample(&text, &success)? > first.0 && sample(&text, calls)? > first.1).then_some(())
    })
    .await;
    let standby_metrics =
        reqwest::get(format!("http://127.0.0.1:{}/metrics", ports[standby])).await?.text().await?;
    assert!(standby_metrics.contains("cos_secrets_sync_leader 0"), "{standby_metrics}");
    assert_eq!(reqwest::get(format!("http://127.0.0.1:{}/readyz", ports[standby])).await?.status(), 200);
    let set_level = reqwest::Client::new()
        .put(format!("http://127.0.0.1:{}/log-level", ports[leader]))
        .body("debug,controller=trace")
        .send()
        .await?;
    assert_eq!(set_level.status(), 200, "the log filter can be changed at runtime");

    // Kill the leader without a chance to release the lease: the standby
    // takes over once the lease expires.
    let mut killed = replicas[leader].take().unwrap();
    killed.kill().await?;
    wait_for("the standby to take over", || {
        let count = gets(&emulators[standby]);
        async move { (count > 0).then_some(()) }
    })
    .await;

    // SIGTERM stops the survivor cleanly (it releases the lease on the way
    // out); then read both logs.
    let mut survivor = replicas[standby].take().unwrap();
    let pid = survivor.id().expect("still running").to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().await?.success());
    let exit = tokio::time::timeout(TIMEOUT, survivor.wait()).await??;
    assert!(exit.success(), "the survivor exits cleanly on SIGTERM: {exit}");
    for identity in ["replica-a", "replica-b"] {
        let log = std::fs::read_to_string(logs.path().join(identity))?;
        assert!(log.contains("waiting for leadership"), "{identity} logged nothing useful:\n{log}");
        assert!(!log.contains(PASSWORD), "{identity} logged a secret value");
        assert!(!log.contains(&STANDARD.encode(PASSWORD)), "{identity} logged a secret value in base64");
        assert!(!log.contains(EMULATOR_API_KEY), "{identity} logged the API key");
    }
    Ok(())
}
