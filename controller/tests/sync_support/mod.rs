//! Helpers for the controller tests: the CRD, the emulator, an in-process
//! controller, ExternalSecret manifests and condition waits.
#![allow(dead_code, reason = "each test file uses a subset of these helpers")]

use std::future::Future;
use std::time::Duration;

use controller::crd::ExternalSecret;
use controller::provider::{AuthConfig, ClientConfig, IbmSecretsManager};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, CustomResourceExt};
use serde_json::{Value, json};
use sm_emulator::{Emulator, EmulatorConfig};
use test_platform::{TestCluster, TestNamespace};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use url::Url;

/// How long any condition may take; generous because the machine is noisy.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// The API key the emulator accepts by default.
pub const EMULATOR_API_KEY: &str = "emulator-api-key";

/// Installs the ExternalSecret CRD from the Rust type and waits until it is
/// established.
pub async fn install_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = ExternalSecret::crd();
    let name = crd.metadata.name.clone().unwrap();
    crds.patch(&name, &PatchParams::apply("controller-tests").force(), &Patch::Apply(&crd))
        .await
        .expect("apply CRD");
    tokio::time::timeout(TIMEOUT, await_condition(crds, &name, conditions::is_crd_established()))
        .await
        .expect("CRD established in time")
        .expect("watch the CRD");
}

/// What most sync tests start from: an admin client, a fresh namespace and
/// an emulator without rate limit, with the CRD installed.
pub struct SyncTest {
    /// An admin client.
    pub client: Client,
    /// The test's namespace, deleted on drop.
    pub namespace: TestNamespace,
    /// The Secrets Manager emulator.
    pub emu: Emulator,
}

impl SyncTest {
    /// Prepares the cluster and the emulator for one test.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(emulator().await).await
    }

    /// The same with an emulator admitting `quota` requests per second and
    /// answering `429` with `Retry-After` beyond.
    pub async fn start_throttled(quota: u32) -> anyhow::Result<Self> {
        let config = EmulatorConfig { rate_limit: quota, retry_after: true, ..EmulatorConfig::default() };
        Self::start_with(Emulator::start(config, "127.0.0.1:0".parse()?).await?).await
    }

    async fn start_with(emu: Emulator) -> anyhow::Result<Self> {
        let cluster = TestCluster::shared().await;
        let client = cluster.client().await?;
        let namespace = cluster.namespace().await?;
        install_crd(&client).await;
        Ok(Self { client, namespace, emu })
    }
}

/// An emulator without rate limit.
pub async fn emulator() -> Emulator {
    Emulator::start(EmulatorConfig { rate_limit: 0, ..Default::default() }, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the emulator")
}

/// A client configuration for `emulator` with quick retries.
pub fn client_config(emulator: &Emulator) -> ClientConfig {
    let url = Url::parse(&emulator.url()).unwrap();
    let mut config = ClientConfig::new(url.clone(), AuthConfig::ApiKey { api_key: EMULATOR_API_KEY.into() });
    config.iam_url = url;
    config.timeout = Duration::from_secs(5);
    config.max_retries = 1;
    config.retry_min_delay = Duration::from_millis(50);
    config.retry_max_delay = Duration::from_millis(200);
    config
}

/// The in-process controller's configuration for tests: `namespaces`, a 1 s
/// poll, quick retries, no HTTP endpoint and no leader election.
pub fn test_config(namespaces: &[&str]) -> controller::Config {
    controller::Config {
        poll_interval: Duration::from_secs(1),
        retry_min_delay: Duration::from_millis(200),
        change_detection: None,
        concurrency: 4,
        namespaces: namespaces.iter().map(|&ns| ns.to_owned()).collect(),
        http_addr: None,
        leader: None,
        instance: "in-process".to_owned(),
        log_control: None,
    }
}

/// A controller running in-process, watching one namespace, polling every
/// second. Stops when dropped.
pub struct RunningController {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<controller::Result<()>>>,
}

impl RunningController {
    /// Starts the controller for `namespace` against `emulator`.
    pub fn start(client: Client, namespace: &str, emulator: &Emulator) -> Self {
        Self::start_watching(client, &[namespace], emulator)
    }

    /// Starts the controller for `namespaces` against `emulator`.
    pub fn start_watching(client: Client, namespaces: &[&str], emulator: &Emulator) -> Self {
        let mut config = test_config(namespaces);
        // Polls read every value: several tests count the reads.
        config.change_detection = None;
        Self::start_with(client, config, client_config(emulator))
    }

    /// Starts the controller with `config`, reading Secrets Manager as `sm`
    /// says.
    pub fn start_with(client: Client, config: controller::Config, sm: ClientConfig) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(controller::run(
            config,
            client,
            move |observer| IbmSecretsManager::with_observer(&sm, observer),
            async move {
                let _ = stopped.await;
            },
        ));
        Self { stop: Some(stop), task: Some(task) }
    }

    /// Stops the controller and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.take().map(|stop| stop.send(()));
        if let Some(task) = self.task.take() {
            task.await.expect("the controller task").expect("the controller ends cleanly");
        }
    }
}

impl Drop for RunningController {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Creates (or updates) an ExternalSecret from a manifest (YAML or JSON
/// text), in `namespace`.
pub async fn apply_external_secret(client: &Client, namespace: &str, manifest: &str) -> ExternalSecret {
    let value: Value = serde_yaml::from_str(manifest).expect("manifest");
    let name = value["metadata"]["name"].as_str().expect("a name").to_owned();
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), namespace);
    api.patch(&name, &PatchParams::apply("controller-tests").force(), &Patch::Apply(&value))
        .await
        .expect("apply the ExternalSecret")
}

/// The KES example manifest for `secret_id`, named `name`.
pub fn kes_manifest(name: &str, secret_id: &str) -> String {
    format!(
        "apiVersion: kubernetes-client.io/v1
kind: ExternalSecret
metadata: {{name: {name}}}
spec:
  backendType: ibmcloudSecretsManager
  data:
    - {{key: {secret_id}, name: username, property: username, secretType: username_password}}
    - {{key: {secret_id}, name: password, property: password, secretType: username_password}}
"
    )
}

/// Applies `count` KES manifests, object `i` named `name(i)` and reading
/// `ids[i % ids.len()]`, `concurrency` at a time.
pub async fn apply_kes_objects(
    client: &Client,
    namespace: &str,
    ids: &[String],
    count: usize,
    name: impl Fn(usize) -> String,
    concurrency: usize,
) {
    futures::stream::iter(0..count)
        .map(|index| {
            let (client, manifest) = (client.clone(), kes_manifest(&name(index), &ids[index % ids.len()]));
            async move { apply_external_secret(&client, namespace, &manifest).await }
        })
        .buffer_unordered(concurrency)
        .collect::<Vec<_>>()
        .await;
}

/// `Some` once `count` ExternalSecrets are `Ready=True`; for polling.
pub async fn all_ready(externals: &Api<ExternalSecret>, count: usize) -> Option<()> {
    let list = externals.list(&ListParams::default()).await.ok()?;
    let synced = list.items.iter().filter(|es| ready(es).is_some_and(|(status, _)| status == "True"));
    (synced.count() == count).then_some(())
}

/// Seeds a `username_password` secret; returns its id.
pub fn seed_user(emulator: &Emulator, name: &str, password: &str) -> String {
    let created = emulator
        .store()
        .create_secret(json!({"secret_type": "username_password", "name": name, "username": "app", "password": password}))
        .expect("seed");
    created["id"].as_str().unwrap().to_owned()
}

/// Seeds `count` `username_password` secrets `user-<index>` with
/// `password`; returns their ids in index order.
pub fn seed_users(emulator: &Emulator, count: usize, password: &str) -> Vec<String> {
    (0..count).map(|index| seed_user(emulator, &format!("user-{index}"), password)).collect()
}

/// Polls `check` every 100 ms until it returns `Some`, failing after
/// [`TIMEOUT`] with `what`.
pub async fn wait_for<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(what, TIMEOUT, Duration::from_millis(100), check).await
}

/// Polls `check` every `period` until it returns `Some`, failing after
/// `timeout` with `what`.
pub async fn poll_until<T, F, Fut>(what: &str, timeout: Duration, period: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(period).await;
    }
}

/// Waits until the Secret `name` exists and `check` accepts it.
pub async fn wait_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&Secret) -> bool,
) -> Secret {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    wait_for(what, || {
        let api = api.clone();
        let check = &check;
        async move { api.get_opt(name).await.ok().flatten().filter(|secret| check(secret)) }
    })
    .await
}

/// Waits until the ExternalSecret `name` has a status `check` accepts.
pub async fn wait_external_secret(
    client: &Client,
    namespace: &str,
    name: &str,
    what: &str,
    check: impl Fn(&ExternalSecret) -> bool,
) -> ExternalSecret {
    let api: Api<ExternalSecret> = Api::namespaced(client.clone(), namespace);
    wait_for(what, || {
        let api = api.clone();
        let check = &check;
        async move { api.get_opt(name).await.ok().flatten().filter(|es| check(es)) }
    })
    .await
}

/// A Secret value as text.
pub fn value(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
}

/// `(reason, status)` of the Ready condition.
pub fn ready(es: &ExternalSecret) -> Option<(String, String)> {
    es.ready_condition().map(|condition| (condition.status.clone(), condition.reason.clone()))
}

/// Every Event (events.k8s.io/v1) in `namespace` about object `name`, as
/// `(type, reason, note)`.
pub async fn events(client: &Client, namespace: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    api.list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|event| event.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|event| {
            (
                event.type_.unwrap_or_default(),
                event.reason.unwrap_or_default(),
                event.note.unwrap_or_default(),
            )
        })
        .collect()
}
