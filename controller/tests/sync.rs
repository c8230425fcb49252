//! The controller on a real kube-apiserver (with the garbage collector)
//! against the Secrets Manager emulator, run in-process.

mod sync_support;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use sm_emulator::Faults;
use sync_support::*;
use test_platform::TestCluster;

const PASSWORD: &str = "s3cr3t-Pa55word-one";
const ROTATED: &str = "r0tated-Pa55word-two";

#[tokio::test]
async fn kes_manifest_syncs_rotates_and_repairs_drift() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start().await?;
    let ns = namespace.name();
    let id = seed_user(&emu, "db-user", PASSWORD);
    let controller = RunningController::start(client.clone(), ns, &emu);

    let name = "ibmcloud-secrets-manager-example";
    let es = apply_external_secret(&client, ns, &kes_manifest(name, &id)).await;
    let secret = wait_secret(&client, ns, name, "the Secret", |s| value(s, "password").is_some()).await;
    assert_eq!(value(&secret, "username").as_deref(), Some("app"));
    assert_eq!(value(&secret, "password").as_deref(), Some(PASSWORD));
    assert_eq!(secret.type_.as_deref(), Some("Opaque"));
    assert_eq!(secret.labels()["app.kubernetes.io/managed-by"], "cos-secrets-sync");
    assert_eq!(secret.annotations()["cos-secrets-sync/data-hash"].len(), 64);
    let owner = &secret.owner_references()[0];
    assert_eq!((owner.kind.as_str(), owner.uid.as_str()), ("ExternalSecret", es.uid().unwrap().as_str()));
    assert_eq!((owner.controller, owner.block_owner_deletion), (Some(true), Some(true)));
    let managers: Vec<_> = secret.managed_fields().iter().filter_map(|field| field.manager.clone()).collect();
    assert!(managers.contains(&"cos-secrets-sync".to_owned()), "{managers:?}");

    let synced = wait_external_secret(&client, ns, name, "SUCCESS status", |es| {
        es.status.as_ref().and_then(|s| s.status.as_deref()) == Some("SUCCESS")
    })
    .await;
    let status = synced.status.clone().unwrap();
    assert_eq!(ready(&synced), Some(("True".into(), "SecretSynced".into())));
    assert_eq!(status.observed_generation, synced.metadata.generation);
    assert!(status.last_sync.unwrap().parse::<jiff::Timestamp>().is_ok(), "lastSync is RFC 3339");
    wait_for("a Created event", || {
        let client = client.clone();
        async move { events(&client, ns, name).await.into_iter().find(|(_, reason, _)| reason == "Created") }
    })
    .await;

    // Rotation reaches the Secret within a poll interval (1 s; waited on
    // generously).
    emu.store().create_version(&id, json!({"password": ROTATED}))?;
    wait_secret(&client, ns, name, "the rotated password", |s| {
        value(s, "password").as_deref() == Some(ROTATED)
    })
    .await;
    wait_for("an Updated event", || {
        let client = client.clone();
        async move { events(&client, ns, name).await.into_iter().find(|(_, reason, _)| reason == "Updated") }
    })
    .await;

    // A hand edit is reverted.
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let edit = json!({"data": {"password": ByteString(b"hand-edited".to_vec())}});
    secrets.patch(name, &PatchParams::default(), &Patch::Merge(&edit)).await?;
    wait_secret(&client, ns, name, "the edit reverted", |s| value(s, "password").as_deref() == Some(ROTATED))
        .await;

    // A deleted Secret is restored.
    let before = secrets.get(name).await?.uid();
    secrets.delete(name, &DeleteParams::default()).await?;
    wait_secret(&client, ns, name, "the Secret recreated", |s| {
        s.uid() != before && value(s, "password").as_deref() == Some(ROTATED)
    })
    .await;

    // Nothing the controller wrote about the object carries a value.
    let es = wait_external_secret(&client, ns, name, "status", |_| true).await;
    let status_text = serde_json::to_string(&es.status)?;
    let event_text = format!("{:?}", events(&client, ns, name).await);
    for secret_value in [PASSWORD, ROTATED] {
        assert!(!status_text.contains(secret_value) && !event_text.contains(secret_value));
    }
    controller.stop().await;
    Ok(())
}

#[tokio::test]
async fn deleting_the_external_secret_collects_the_secret() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start().await?;
    let ns = namespace.name();
    let id = seed_user(&emu, "gc-user", PASSWORD);
    let _controller = RunningController::start(client.clone(), ns, &emu);

    let externals: Api<controller::crd::ExternalSecret> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    // Background (the default) and foreground deletion: in the second, the
    // ExternalSecret waits, marked as deleted, until the collector has
    // removed the Secret, and the controller must not recreate it.
    for (name, delete) in [("gc", DeleteParams::background()), ("gc-foreground", DeleteParams::foreground())]
    {
        apply_external_secret(&client, ns, &kes_manifest(name, &id)).await;
        wait_secret(&client, ns, name, "the Secret", |s| value(s, "password").is_some()).await;
        externals.delete(name, &delete).await?;
        wait_for("the garbage collector to delete the Secret and the ExternalSecret", || {
            let (secrets, externals) = (secrets.clone(), externals.clone());
            async move {
                let secret_gone = secrets.get_opt(name).await.ok()?.is_none();
                let external_gone = externals.get_opt(name).await.ok()?.is_none();
                (secret_gone && external_gone).then_some(())
            }
        })
        .await;
    }
    Ok(())
}

#[tokio::test]
async fn key_by_name_reads_default_and_named_groups() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start().await?;
    let ns = namespace.name();
    emu.store().create_secret(
        json!({"secret_type": "arbitrary", "name": "app-token", "payload": "token-default"}),
    )?;
    let group = emu.store().create_group("team-a", None)?;
    let group_id = group["id"].as_str().unwrap();
    emu.store().create_secret(json!({
        "secret_type": "kv", "name": "app-config", "secret_group_id": group_id, "data": {"url": "https://db"}}))?;
    let _controller = RunningController::start(client.clone(), ns, &emu);

    let manifest = "
apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata: {name: by-name}
spec:
  backendType: ibmcloudSecretsManager
  keyByName: true
  data:
    - {key: app-token, name: token, secretType: arbitrary}
    - {key: team-a/app-config, name: url, property: url, secretType: kv}
";
    apply_external_secret(&client, ns, manifest).await;
    let secret = wait_secret(&client, ns, "by-name", "the Secret", |s| value(s, "url").is_some()).await;
    assert_eq!(value(&secret, "token").as_deref(), Some("token-default"));
    assert_eq!(value(&secret, "url").as_deref(), Some("https://db"));
    assert!(emu.stats().operation_total("get_secret_by_name") >= 2);
    Ok(())
}

fn cos_credentials() -> serde_json::Value {
    json!({
        "apikey": "cos-iam-api-key-0123456789",
        "cos_hmac_keys": {
            "access_key_id": "0123456789abcdef0123456789abcdef",
            "secret_access_key": "fedcba9876543210fedcba9876543210fedcba9876543210",
        },
        "endpoints": "https://control.cloud-object-storage.cloud.ibm.com/v2/endpoints",
        "iam_apikey_id": "ApiKey-1",
        "resource_instance_id": "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-guid::",
    })
}

#[tokio::test]
async fn cos_service_credentials_make_ibmc_s3fs_secrets() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start().await?;
    let ns = namespace.name();
    let created = emu.store().create_secret(json!({
        "secret_type": "service_credentials",
        "name": "cos-writer",
        "source_service": {
            "instance": {"crn": "crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-guid::"},
            "role": {"crn": "crn:v1:bluemix:public:iam::::serviceRole:Writer"},
            "parameters": {"HMAC": true}},
        "credentials": cos_credentials(),
    }))?;
    let id = created["id"].as_str().unwrap();
    let _controller = RunningController::start(client.clone(), ns, &emu);

    let hmac = format!(
        "
apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata: {{name: cos-hmac}}
spec:
  backendType: ibmcloudSecretsManager
  template: {{type: ibm/ibmc-s3fs}}
  data:
    - {{key: {id}, name: access-key, property: credentials.cos_hmac_keys.access_key_id, secretType: service_credentials}}
    - {{key: {id}, name: secret-key, property: credentials.cos_hmac_keys.secret_access_key, secretType: service_credentials}}
"
    );
    let iam = format!(
        "
apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata: {{name: cos-iam}}
spec:
  backendType: ibmcloudSecretsManager
  template: {{type: ibm/ibmc-s3fs}}
  data:
    - {{key: {id}, name: api-key, property: credentials.apikey, secretType: service_credentials}}
    - {{key: {id}, name: service-instance-id, property: credentials.resource_instance_id, secretType: service_credentials}}
"
    );
    apply_external_secret(&client, ns, &hmac).await;
    apply_external_secret(&client, ns, &iam).await;

    let secret =
        wait_secret(&client, ns, "cos-hmac", "the HMAC Secret", |s| value(s, "secret-key").is_some()).await;
    assert_eq!(secret.type_.as_deref(), Some("ibm/ibmc-s3fs"));
    let keys: Vec<_> = secret.data.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["access-key", "secret-key"], "no api-key in an HMAC Secret");
    assert_eq!(value(&secret, "access-key").as_deref(), Some("0123456789abcdef0123456789abcdef"));
    assert_eq!(
        value(&secret, "secret-key").as_deref(),
        Some("fedcba9876543210fedcba9876543210fedcba9876543210")
    );

    let secret =
        wait_secret(&client, ns, "cos-iam", "the IAM Secret", |s| value(s, "api-key").is_some()).await;
    assert_eq!(secret.type_.as_deref(), Some("ibm/ibmc-s3fs"));
    assert_eq!(value(&secret, "api-key").as_deref(), Some("cos-iam-api-key-0123456789"));
    assert_eq!(
        value(&secret, "service-instance-id").as_deref(),
        Some("crn:v1:bluemix:public:cloud-object-storage:global:a/acct:cos-guid::")
    );
    Ok(())
}

#[tokio::test]
async fn outage_keeps_the_last_good_data() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start().await?;
    let ns = namespace.name();
    let id = seed_user(&emu, "outage-user", PASSWORD);
    let _controller = RunningController::start(client.clone(), ns, &emu);

    apply_external_secret(&client, ns, &kes_manifest("outage", &id)).await;
    let before = wait_secret(&client, ns, "outage", "the Secret", |s| value(s, "password").is_some()).await;

    emu.set_faults(Faults { outage: Some(true), ..Faults::default() });
    let failed = wait_external_secret(&client, ns, "outage", "Ready=False", |es| {
        ready(es).is_some_and(|(status, _)| status == "False")
    })
    .await;
    assert_eq!(ready(&failed).unwrap().1, "ProviderError");
    let status = failed.status.unwrap().status.unwrap();
    assert!(status.starts_with("ERROR, spec.data[0] (key "), "{status}");
    assert!(status.contains(&id), "{status}");
    wait_for("a Warning event", || {
        let client = client.clone();
        async move {
            events(&client, ns, "outage")
                .await
                .into_iter()
                .find(|(kind, reason, _)| kind == "Warning" && reason == "ProviderError")
        }
    })
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    let during = secrets.get("outage").await?;
    assert_eq!(during.data, before.data, "the Secret keeps its last good data");

    emu.set_faults(Faults::default());
    wait_external_secret(&client, ns, "outage", "Ready=True again", |es| {
        ready(es).is_some_and(|(status, _)| status == "True")
    })
    .await;
    assert_eq!(secrets.get("outage").await?.data, before.data);
    Ok(())
}

#[tokio::test]
async fn malformed_specs_are_reported_with_the_field() -> anyhow::Result<()> {
    let SyncTest { client, namespace, emu } = SyncTest::start().await?;
    let ns = namespace.name();
    let id = seed_user(&emu, "bad-spec-user", PASSWORD);
    let _controller = RunningController::start(client.clone(), ns, &emu);

    let cases = [
        (
            "missing-key",
            "- {name: a, secretType: username_password}".to_owned(),
            "spec.data[0].key",
            "InvalidSpec",
        ),
        (
            "unknown-type",
            format!(
                "- {{key: {id}, name: a, property: username}}\n    - {{key: {id}, name: b, secretType: secret_sauce}}"
            ),
            "spec.data[1].secretType",
            "InvalidSpec",
        ),
        (
            "missing-property",
            format!("- {{key: {id}, name: a, property: nope, secretType: username_password}}"),
            "spec.data[0].property",
            "InvalidSpec",
        ),
    ];
    for (name, data, _, _) in &cases {
        let manifest = format!(
            "apiVersion: kubernetes-client.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}}}\nspec:\n  backendType: ibmcloudSecretsManager\n  data:\n    {data}\n"
        );
        apply_external_secret(&client, ns, &manifest).await;
    }
    apply_external_secret(
        &client,
        ns,
        "apiVersion: kubernetes-client.io/v1\nkind: ExternalSecret\nmetadata: {name: vault}\nspec:\n  backendType: vault\n  data:\n    - {key: k, name: a}\n",
    )
    .await;

    let expected = cases.iter().map(|(name, _, field, reason)| (*name, *field, *reason)).chain([(
        "vault",
        "spec.backendType",
        "UnsupportedBackend",
    )]);
    for (name, field, reason) in expected {
        let es = wait_external_secret(&client, ns, name, "an error status", |es| {
            es.status.as_ref().and_then(|s| s.status.as_deref()).is_some_and(|s| s.starts_with("ERROR, "))
        })
        .await;
        let status = es.status.as_ref().unwrap().status.clone().unwrap();
        assert!(status.contains(field), "{name}: {status}");
        assert_eq!(ready(&es), Some(("False".into(), reason.into())), "{name}");
        let event = wait_for("a Warning event", || {
            let client = client.clone();
            async move { events(&client, ns, name).await.into_iter().find(|(kind, _, _)| kind == "Warning") }
        })
        .await;
        assert_eq!(event.1, reason);
        assert!(event.2.contains(field), "{name}: {}", event.2);
        assert!(!status.contains(PASSWORD) && !event.2.contains(PASSWORD));
    }
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);
    assert!(secrets.get_opt("missing-property").await?.is_none(), "no Secret from a bad spec");
    Ok(())
}

#[tokio::test]
async fn watched_namespaces_limit_the_scope() -> anyhow::Result<()> {
    let cluster = TestCluster::shared().await;
    let client = cluster.client().await?;
    let (first, second, other) =
        (cluster.namespace().await?, cluster.namespace().await?, cluster.namespace().await?);
    install_crd(&client).await;
    let emu = emulator().await;
    let id = seed_user(&emu, "scoped-user", PASSWORD);
    let _controller = RunningController::start_watching(client.clone(), &[first.name(), second.name()], &emu);

    for ns in [&first, &second, &other] {
        apply_external_secret(&client, ns.name(), &kes_manifest("scoped", &id)).await;
    }
    for ns in [&first, &second] {
        wait_secret(&client, ns.name(), "scoped", "the Secret", |s| value(s, "password").is_some()).await;
    }
    // Both watched namespaces are synced at least twice (so the controller
    // has seen every object it will see) before looking at the third.
    wait_for("two polls per watched object", || {
        let count = emu.stats().operation_total("get_secret");
        async move { (count >= 4).then_some(()) }
    })
    .await;
    let unwatched: Api<controller::crd::ExternalSecret> = Api::namespaced(client.clone(), other.name());
    assert!(unwatched.get("scoped").await?.status.is_none(), "an unwatched namespace is left alone");
    let secrets: Api<Secret> = Api::namespaced(client.clone(), other.name());
    assert!(secrets.get_opt("scoped").await?.is_none());
    Ok(())
}
