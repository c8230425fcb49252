//! Change detection on a real kube-apiserver against the emulator: with a
//! 1 s poll interval and a 1 h full refresh, synced ExternalSecrets cost
//! one `list_secrets` call per scan and no value reads; a rotation is read
//! again by exactly the objects that read the secret, and a deleted secret
//! surfaces as a failed sync. Scans list only the secret group the
//! objects read from, not the unrelated secrets of another group. A
//! restarted controller resumes from the versions the Secrets record: it
//! reads only what changed while it was down.

mod sync_support;

use std::collections::BTreeMap;
use std::time::Duration;

use controller::ChangeDetection;
use controller::crd::ExternalSecret;
use controller::provider::BudgetConfig;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt as _};
use serde_json::json;
use sm_emulator::Emulator;
use sync_support::{
    RunningController, SyncTest, all_ready, apply_kes_objects, client_config, ready, seed_users, test_config,
    value, wait_external_secret, wait_for, wait_secret,
};

/// The emulator's quota, requests per second.
const QUOTA: u32 = 10;
/// How many ExternalSecrets, and how many remote secrets they share: object
/// `i` reads secret `i % REMOTE_SECRETS`.
const OBJECTS: usize = 20;
const REMOTE_SECRETS: usize = 10;
/// Secrets of another group that no ExternalSecret reads.
const UNRELATED: usize = 1_200;

fn name(index: usize) -> String {
    format!("app-{index:02}")
}

/// `status.lastSync` of every ExternalSecret, by name: it moves on every
/// sync, successful or not.
async fn last_syncs(api: &Api<ExternalSecret>) -> Option<BTreeMap<String, String>> {
    let list = api.list(&ListParams::default()).await.ok()?;
    list.items.iter().map(|es| Some((es.name_any(), es.status.as_ref()?.last_sync.clone()?))).collect()
}

/// Waits until `scans` more `list_secrets` calls have been answered.
async fn wait_scans(emu: &Emulator, scans: u64) {
    let target = emu.stats().operation_total("list_secrets") + scans;
    wait_for(&format!("{scans} more scans"), || async move {
        (emu.stats().operation_total("list_secrets") >= target).then_some(())
    })
    .await;
}

/// Waits until a whole scan period passes without a value read, and returns
/// the number of value reads so far.
async fn wait_quiet(emu: &Emulator) -> u64 {
    wait_for("a scan period without value reads", || async move {
        let before = emu.stats().operation_total("get_secret");
        wait_scans(emu, 2).await;
        let after = emu.stats().operation_total("get_secret");
        (after == before).then_some(after)
    })
    .await
}

fn start_controller(client: Client, namespace: &str, emu: &Emulator) -> RunningController {
    let mut config = test_config(&[namespace]);
    config.change_detection = Some(ChangeDetection { full_refresh_interval: Duration::from_secs(3600) });
    let mut sm = client_config(emu);
    sm.budget = Some(BudgetConfig::new(f64::from(QUOTA), 0.8));
    RunningController::start_with(client, config, sm)
}

#[tokio::test]
async fn only_changed_secrets_are_read_again() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start_throttled(QUOTA).await?;
    let ns = namespace.name();
    let ids = seed_users(&emu, REMOTE_SECRETS, "first-password");
    let group = emu.store().create_group("unrelated", None)?["id"].as_str().expect("a group id").to_owned();
    for index in 0..UNRELATED {
        emu.store().create_secret(json!({
            "secret_type": "arbitrary", "name": format!("unrelated-{index}"),
            "secret_group_id": group, "payload": "not read by anyone",
        }))?;
    }
    let controller = start_controller(client.clone(), ns, &emu);

    apply_kes_objects(&client, ns, &ids, OBJECTS, name, 8).await;
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    wait_for("every ExternalSecret Ready", || all_ready(&externals, OBJECTS)).await;

    // Once the first syncs have settled, scans read no values and sync
    // nothing.
    let reads = wait_quiet(&emu).await;
    let synced = last_syncs(&externals).await.expect("every object synced");
    let before = emu.stats();
    wait_scans(&emu, 3).await;
    let after = emu.stats();
    assert_eq!(after.operation_total("get_secret"), reads, "no value reads between changes");
    let calls = after.operation_total("list_secrets") - before.operation_total("list_secrets");
    // One page may straddle a snapshot, hence the `+ 1`.
    let listed = after.listed_secrets - before.listed_secrets;
    assert!(
        calls >= 3 && listed <= (calls + 1) * REMOTE_SECRETS as u64,
        "each scan lists the default group's {REMOTE_SECRETS} secrets in one call, not the {UNRELATED} \
         others: {listed} listed in {calls} calls"
    );
    assert_eq!(
        last_syncs(&externals).await.expect("every object synced"),
        synced,
        "no syncs between changes"
    );

    // A rotation is read again by its two readers only.
    emu.store().create_version(&ids[0], json!({"password": "rotated-password"}))?;
    for index in [0, REMOTE_SECRETS] {
        wait_secret(&client, ns, &name(index), "the rotated password", |secret| {
            value(secret, "password").as_deref() == Some("rotated-password")
        })
        .await;
    }
    let after_rotation = wait_quiet(&emu).await;
    let resynced = last_syncs(&externals).await.expect("every object synced");
    let moved: Vec<&String> =
        resynced.keys().filter(|name| resynced.get(*name) != synced.get(*name)).collect();
    assert_eq!(moved, [&name(0), &name(REMOTE_SECRETS)], "only the readers of the rotated secret synced");
    let rereads = after_rotation - reads;
    assert!((1..=2).contains(&rereads), "the two readers read it again, once each at most: {rereads}");

    // A deleted secret fails the sync of its readers.
    emu.store().delete(&ids[REMOTE_SECRETS - 1])?;
    for index in [REMOTE_SECRETS - 1, OBJECTS - 1] {
        wait_external_secret(&client, ns, &name(index), "Ready=False after the deletion", |es| {
            ready(es).is_some_and(|(status, _)| status == "False")
        })
        .await;
    }

    controller.stop().await;
    let stats = emu.stats();
    assert_eq!(stats.throttled, 0, "no 429s: {:?}", stats.by_operation);
    Ok(())
}

#[tokio::test]
async fn a_restart_reads_only_what_changed_meanwhile() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start_throttled(QUOTA).await?;
    let ns = namespace.name();
    let ids = seed_users(&emu, REMOTE_SECRETS, "first-password");
    let first = start_controller(client.clone(), ns, &emu);
    apply_kes_objects(&client, ns, &ids, OBJECTS, name, 8).await;
    let externals: Api<ExternalSecret> = Api::namespaced(client.clone(), ns);
    wait_for("every ExternalSecret Ready", || all_ready(&externals, OBJECTS)).await;
    wait_quiet(&emu).await;
    first.stop().await;

    // While no controller runs, one secret rotates.
    emu.store().create_version(&ids[1], json!({"password": "rotated-while-down"}))?;
    let synced = last_syncs(&externals).await.expect("every object synced");
    let reads = emu.stats().operation_total("get_secret");

    let second = start_controller(client.clone(), ns, &emu);
    for index in [1, REMOTE_SECRETS + 1] {
        wait_secret(&client, ns, &name(index), "the password rotated while down", |secret| {
            value(secret, "password").as_deref() == Some("rotated-while-down")
        })
        .await;
    }
    let after = wait_quiet(&emu).await;
    second.stop().await;
    assert!(
        (1..=2).contains(&(after - reads)),
        "the restart read the rotated secret for its two readers, nothing else: {} reads",
        after - reads
    );
    let resynced = last_syncs(&externals).await.expect("every object synced");
    let moved: Vec<&String> =
        resynced.keys().filter(|name| resynced.get(*name) != synced.get(*name)).collect();
    assert_eq!(moved, [&name(1), &name(REMOTE_SECRETS + 1)], "only the readers of the rotated secret synced");
    assert_eq!(emu.stats().throttled, 0);
    Ok(())
}
