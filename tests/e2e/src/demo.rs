//! The local demo: the main job end to end, on real components.
//!
//! 1. Start the platform (kube-apiserver + etcd + kube-controller-manager,
//!    MinIO) and the Secrets Manager emulator.
//! 2. Create a MinIO access key and a bucket, and store the key in the
//!    emulator as a COS `service_credentials` secret with HMAC keys, plus a
//!    `username_password` secret for the KES tutorial's manifest.
//! 3. Apply the CRD and two unchanged KES-style ExternalSecrets, and run the
//!    controller binary configured through KES's environment variables.
//! 4. Wait for the `ibm/ibmc-s3fs` Secret, mount the bucket with the mounter
//!    binary reading that Secret, and read and write through the mount.
//! 5. Rotate: new access key in MinIO, new version in Secrets Manager, wait
//!    for the Secret to change, revoke the old key, and read a new object
//!    through the same mount.
//!
//! Secret values are never printed: only key names and sizes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::{conditions, wait::await_condition};
use serde_json::json;
use sm_emulator::{Emulator, EmulatorConfig};
use test_platform::{AccessKey, TestCluster, TestS3};

use crate::programs::{ControllerProcess, ControllerSettings, mount_with_secret};

/// Namespace the demo's ExternalSecrets live in.
pub const NAMESPACE: &str = "demo";
const COS_SECRET: &str = "cos-credentials";
const TUTORIAL_SECRET: &str = "ibmcloud-secrets-manager-example";
const WAIT: Duration = Duration::from_secs(60);

/// What the demo needs from the command line.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The controller binary.
    pub controller: PathBuf,
    /// The mounter binary.
    pub mounter: PathBuf,
    /// The CRD manifest to apply.
    pub crd: PathBuf,
    /// Keep everything running until Ctrl-C after the scenario.
    pub keep: bool,
}

/// Runs the demo scenario; returns an error naming the step that failed.
pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    tracing::info!("starting the platform: kube-apiserver + etcd + kube-controller-manager, MinIO");
    let (cluster, s3) = tokio::try_join!(TestCluster::start(), TestS3::start())?;
    let emulator = Emulator::start(EmulatorConfig::default(), "127.0.0.1:0".parse()?).await?;
    let client = cluster.client().await?;
    tracing::info!(kubeconfig = %cluster.kubeconfig_path().display(), s3 = %s3.endpoint(), secrets_manager = %emulator.url(), "platform ready");

    let bucket = s3.bucket().await?;
    bucket.put("hello.txt", "hello from Cloud Object Storage\n").await?;
    let first_key = s3.create_access_key()?;
    let cos_id = seed_cos_credentials(&emulator, &first_key)?;
    let tutorial_id = emulator
        .store()
        .create_secret(json!({"secret_type": "username_password", "name": "tutorial-db", "username": "app", "password": "demo-password-1"}))?["id"]
        .as_str()
        .context("emulator returned no id")?
        .to_owned();

    apply_crd(&client, &options.crd).await?;
    apply_manifests(&client, &tutorial_id, &cos_id).await?;

    let _controller = ControllerProcess::start(&ControllerSettings {
        binary: options.controller.clone(),
        kubeconfig: cluster.kubeconfig_path().to_owned(),
        endpoint: emulator.url(),
        iam_url: emulator.url(),
        api_key: sm_emulator::config::DEFAULT_API_KEY.to_owned(),
        poll_interval_ms: 2_000,
        namespaces: NAMESPACE.to_owned(),
        extra_env: Vec::new(),
        log: None,
    })?;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), NAMESPACE);
    let started = Instant::now();
    let cos = wait_for_secret(&secrets, COS_SECRET, |s| data(s).contains_key("access-key")).await?;
    tracing::info!(secret = COS_SECRET, r#type = ?cos.type_, keys = ?data(&cos).keys().collect::<Vec<_>>(), after = ?started.elapsed(), "COS credential Secret synced");
    let tutorial = wait_for_secret(&secrets, TUTORIAL_SECRET, |s| data(s).contains_key("password")).await?;
    tracing::info!(secret = TUTORIAL_SECRET, keys = ?data(&tutorial).keys().collect::<Vec<_>>(), "tutorial Secret synced");

    let mountpoint = tempfile::tempdir()?;
    let mount = mount_with_secret(
        &options.mounter,
        cluster.kubeconfig_path(),
        s3.endpoint().as_str(),
        bucket.name(),
        (NAMESPACE, COS_SECRET),
        mountpoint.path(),
    )?;
    let read = std::fs::read_to_string(mount.path().join("hello.txt")).context("read through the mount")?;
    tracing::info!(path = %mount.path().join("hello.txt").display(), bytes = read.len(), "read through the FUSE mount");
    std::fs::write(mount.path().join("written-through-fuse.txt"), "written through the mount\n")
        .context("write through the mount")?;
    let round_trip = bucket.get("written-through-fuse.txt").await?;
    tracing::info!(bytes = round_trip.len(), "object written through the mount is in the bucket");

    tracing::info!("rotating: new access key, new Secrets Manager version, old key revoked");
    let second_key = s3.create_access_key()?;
    emulator.store().create_version(&cos_id, json!({"credentials": cos_credentials(&second_key)}))?;
    wait_for_secret(&secrets, COS_SECRET, |s| {
        data(s).get("access-key").map(Vec::as_slice) == Some(second_key.access_key.as_bytes())
    })
    .await?;
    s3.revoke_access_key(&first_key)?;
    // A new object forces fresh S3 requests, signed with the new key only.
    bucket.put("after-rotation.txt", "uploaded after the rotation\n").await?;
    let fresh = std::fs::read_to_string(mount.path().join("after-rotation.txt"))
        .context("read a new object through the same mount after the old key was revoked")?;
    let again = std::fs::read_to_string(mount.path().join("hello.txt")).context("read after rotation")?;
    if again != read || fresh.is_empty() {
        bail!("content changed across the rotation");
    }
    tracing::info!(
        secrets_manager_get_secret_calls = emulator.stats().operation_total("get_secret"),
        "reads after the rotation succeeded on the same mount, without a remount"
    );

    if options.keep {
        tracing::info!(kubeconfig = %cluster.kubeconfig_path().display(), mount = %mount.path().display(), "everything stays up; Ctrl-C to stop");
        tokio::signal::ctrl_c().await?;
    }
    tracing::info!("demo passed");
    Ok(())
}

fn cos_credentials(key: &AccessKey) -> serde_json::Value {
    json!({
        "apikey": "demo-api-key-not-used-in-hmac-mode",
        "cos_hmac_keys": {"access_key_id": key.access_key, "secret_access_key": key.secret_key},
        "endpoints": "https://control.cloud-object-storage.cloud.ibm.com/v2/endpoints",
        "iam_apikey_name": "cos-demo-writer",
        "resource_instance_id": "crn:v1:bluemix:public:cloud-object-storage:global:a/demo:demo-cos::",
    })
}

fn seed_cos_credentials(emulator: &Emulator, key: &AccessKey) -> anyhow::Result<String> {
    let secret = emulator.store().create_secret(json!({
        "secret_type": "service_credentials",
        "name": "cos-demo-writer",
        "source_service": {
            "instance": {"crn": "crn:v1:bluemix:public:cloud-object-storage:global:a/demo:demo-cos::"},
            "role": {"crn": "crn:v1:bluemix:public:iam::::serviceRole:Writer"},
            "parameters": {"HMAC": true}
        },
        "credentials": cos_credentials(key),
    }))?;
    Ok(secret["id"].as_str().context("emulator returned no id")?.to_owned())
}

pub(crate) async fn apply_crd(client: &kube::Client, path: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(&text).context("parse the CRD")?;
    let name = crd.metadata.name.clone().context("CRD has no name")?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.patch(&name, &PatchParams::apply("cos-secrets-sync-demo"), &Patch::Apply(&crd)).await?;
    tokio::time::timeout(WAIT, await_condition(crds, &name, conditions::is_crd_established()))
        .await
        .context("CRD not Established in time")??;
    Ok(())
}

/// The tutorial's manifest, unchanged but for the id, and the COS one.
async fn apply_manifests(client: &kube::Client, tutorial_id: &str, cos_id: &str) -> anyhow::Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}});
    namespaces
        .patch(NAMESPACE, &PatchParams::apply("cos-secrets-sync-demo"), &Patch::Apply(&namespace))
        .await?;

    let manifests = format!(
        r"
apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata:
  name: {TUTORIAL_SECRET}
spec:
  backendType: ibmcloudSecretsManager
  data:
    - key: {tutorial_id}
      name: username
      property: username
      secretType: username_password
    - key: {tutorial_id}
      name: password
      property: password
      secretType: username_password
---
apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata:
  name: {COS_SECRET}
spec:
  backendType: ibmcloudSecretsManager
  template:
    type: ibm/ibmc-s3fs
  data:
    - key: {cos_id}
      name: access-key
      property: credentials.cos_hmac_keys.access_key_id
      secretType: service_credentials
    - key: {cos_id}
      name: secret-key
      property: credentials.cos_hmac_keys.secret_access_key
      secretType: service_credentials
"
    );
    let api = crate::external_secrets(client, NAMESPACE);
    for document in serde_yaml::Deserializer::from_str(&manifests) {
        let object: DynamicObject = serde::Deserialize::deserialize(document)?;
        let name = object.metadata.name.clone().context("manifest without a name")?;
        api.patch(&name, &PatchParams::apply("cos-secrets-sync-demo"), &Patch::Apply(&object)).await?;
        tracing::info!(externalsecret = %name, "applied");
    }
    Ok(())
}

async fn wait_for_secret(
    api: &Api<Secret>,
    name: &str,
    ready: impl Fn(&Secret) -> bool,
) -> anyhow::Result<Secret> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(secret) = api.get_opt(name).await?
            && ready(&secret)
        {
            return Ok(secret);
        }
        if Instant::now() > deadline {
            bail!("Secret {name} did not reach the expected state within {WAIT:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn data(secret: &Secret) -> BTreeMap<String, Vec<u8>> {
    secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect()
}
