//! The baseline: a poller that reads Secrets Manager the way
//! kubernetes-external-secrets does (reference §4.3), without its Node.js
//! runtime.
//!
//! - Every ExternalSecret is polled at a fixed interval, all of them at the
//!   same moment (one timer per object, all started by the same burst of
//!   creations; no phase, no spreading, no scaling of the interval).
//! - Every data entry is one `GET /api/v2/secrets/{id}`; a `keyByName`
//!   entry first lists `GET /api/v2/secrets?search=<name>` and keeps the
//!   secret of that name and type. Entries of one object are fetched
//!   concurrently; nothing is shared between entries or objects.
//! - A new ExternalSecret is polled as soon as the watch reports it.
//! - A failed read (a `429`, say) leaves the Secret alone until the next
//!   poll; there is no retry and no backoff.
//!
//! Two things are kinder than KES, so the baseline's figures flatter it: it
//! exchanges an IAM token once instead of once per entry, and it writes a
//! Secret only when its data changed instead of on every poll. Its
//! requests in flight are capped at [`IN_FLIGHT`] (Node's HTTP agent has no
//! cap) so that it cannot starve the machine the benchmark runs on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Requests the baseline has in flight at most.
pub const IN_FLIGHT: usize = 64;

/// One `data` entry of an ExternalSecret, as KES reads it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    key: String,
    name: String,
    property: String,
    secret_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Spec {
    #[serde(default)]
    key_by_name: bool,
    data: Vec<Entry>,
}

/// The running baseline; it stops when dropped.
#[derive(Debug)]
pub struct Baseline {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

struct Poller {
    kube: Client,
    namespace: String,
    http: reqwest::Client,
    endpoint: String,
    token: String,
    in_flight: Semaphore,
    objects: Mutex<BTreeMap<String, Arc<Spec>>>,
    written: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl Baseline {
    /// Starts polling the ExternalSecrets of `namespace` every `interval`
    /// against Secrets Manager at `endpoint`, with the IAM `token`.
    pub fn start(kube: &Client, namespace: &str, endpoint: &str, token: String, interval: Duration) -> Self {
        let poller = Arc::new(Poller {
            kube: kube.clone(),
            namespace: namespace.to_owned(),
            http: reqwest::Client::new(),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            token,
            in_flight: Semaphore::new(IN_FLIGHT),
            objects: Mutex::default(),
            written: Mutex::default(),
        });
        let watch = tokio::spawn(poller.clone().watch());
        let rounds = tokio::spawn(poller.rounds(interval));
        Self { tasks: vec![watch, rounds] }
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Poller {
    /// Tracks the ExternalSecrets; a new one is polled at once.
    async fn watch(self: Arc<Self>) {
        let api = crate::external_secrets(&self.kube, &self.namespace);
        let mut objects =
            watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
        while let Some(object) = objects.next().await {
            let Ok(object) = object else { continue };
            let Some(name) = object.metadata.name.clone() else { continue };
            let Ok(spec) = serde_json::from_value::<Spec>(object.data["spec"].clone()) else { continue };
            let spec = Arc::new(spec);
            let new = self.lock_objects().insert(name.clone(), spec.clone()).is_none();
            if new {
                tokio::spawn(self.clone().poll(name, spec));
            }
        }
    }

    /// Polls every object every `interval`, all together.
    async fn rounds(self: Arc<Self>, interval: Duration) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let objects: Vec<(String, Arc<Spec>)> =
                self.lock_objects().iter().map(|(name, spec)| (name.clone(), spec.clone())).collect();
            futures::future::join_all(objects.into_iter().map(|(name, spec)| self.clone().poll(name, spec)))
                .await;
        }
    }

    /// One poll of one object: read every entry, write the Secret if its
    /// data changed; any failure skips the object until its next poll.
    async fn poll(self: Arc<Self>, name: String, spec: Arc<Spec>) {
        let values =
            futures::future::try_join_all(spec.data.iter().map(|entry| self.read(entry, spec.key_by_name)))
                .await;
        let Ok(values) = values else { return };
        let data: BTreeMap<String, String> =
            spec.data.iter().zip(values).map(|(entry, value)| (entry.name.clone(), value)).collect();
        if self.lock_written().get(&name) == Some(&data) {
            return;
        }
        if let Err(error) = self.write(&name, &data).await {
            tracing::debug!(%error, secret = %name, "baseline could not write a Secret");
            return;
        }
        self.lock_written().insert(name, data);
    }

    /// Reads one entry's property: list-then-get by name, or get by id.
    async fn read(&self, entry: &Entry, by_name: bool) -> anyhow::Result<String> {
        let id = if by_name {
            let list = self.get(&format!("/api/v2/secrets?search={}", entry.key)).await?;
            let matches: Vec<&serde_json::Value> = list["secrets"]
                .as_array()
                .context("no secrets in the list")?
                .iter()
                .filter(|secret| {
                    secret["name"] == entry.key.as_str()
                        && secret["secret_type"] == entry.secret_type.as_str()
                })
                .collect();
            let [secret] = matches.as_slice() else { bail!("{} secrets named {}", matches.len(), entry.key) };
            secret["id"].as_str().context("a listed secret without an id")?.to_owned()
        } else {
            entry.key.clone()
        };
        let secret = self.get(&format!("/api/v2/secrets/{id}")).await?;
        secret[entry.property.as_str()].as_str().map(str::to_owned).context("missing property")
    }

    async fn get(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let _permit = self.in_flight.acquire().await?;
        let response =
            self.http.get(format!("{}{path}", self.endpoint)).bearer_auth(&self.token).send().await?;
        Ok(response.error_for_status()?.json().await?)
    }

    async fn write(&self, name: &str, data: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let secrets: Api<Secret> = Api::namespaced(self.kube.clone(), &self.namespace);
        let secret = Secret {
            metadata: kube::api::ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
            data: Some(data.iter().map(|(k, v)| (k.clone(), ByteString(v.clone().into_bytes()))).collect()),
            ..Default::default()
        };
        let mut secret = serde_json::to_value(secret)?;
        secret["apiVersion"] = "v1".into();
        secret["kind"] = "Secret".into();
        secrets.patch(name, &PatchParams::apply("kes-baseline").force(), &Patch::Apply(&secret)).await?;
        Ok(())
    }

    fn lock_objects(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<Spec>>> {
        self.objects.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_written(&self) -> std::sync::MutexGuard<'_, HashMap<String, BTreeMap<String, String>>> {
        self.written.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
