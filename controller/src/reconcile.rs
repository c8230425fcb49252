//! Reconcile: one ExternalSecret in, one Secret out.
//!
//! `reconcile` validates the spec, reads each remote secret once through the
//! [`SecretsManager`] trait, builds the Secret (see [`materialize`]) and
//! writes it by server-side apply with the field manager [`FIELD_MANAGER`],
//! a controller ownerReference (so deleting the ExternalSecret garbage-
//! collects the Secret and `.owns()` repairs drift) and the managed label.
//! The write is skipped when the Secret already holds the desired content.
//!
//! On failure nothing is written to the Secret: it keeps its last good data.
//! The status and a Warning Event say what failed, and [`error_policy`]
//! schedules the retry (see [`scheduler`]).
//!
//! A successful sync is requeued to the object's next slot in the effective
//! poll interval, or in the full-refresh interval when change detection is
//! on: then it also records the version of every remote secret it read (see
//! [`changes`](crate::changes)), and [`Context::scan_changes`] triggers the
//! objects whose secrets changed in between. [`Context::track`] sees every
//! watch event, keeps each object's refresh cost in the [`Schedule`] and
//! reports the effective interval when it changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures::future::try_join_all;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::Recorder;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tracing::instrument;

use crate::changes::{self, Changes, Version};
use crate::crd::ExternalSecret;
use crate::materialize::{self, DesiredSecret, Plan, RemoteRef};
use crate::metrics::Metrics;
use crate::provider::{ListSecretsParams, Secret, SecretsManager};
use crate::scheduler::{self, Schedule, slots};
use crate::status::{self, Outcome};
use crate::{Error, Result};

/// The server-side apply field manager of the Secrets this controller
/// writes.
pub const FIELD_MANAGER: &str = "cos-secrets-sync";

/// Everything `reconcile` needs, shared by all reconciles.
pub struct Context<P> {
    /// The Kubernetes client.
    pub client: Client,
    /// The Secrets Manager client.
    pub provider: Arc<P>,
    /// Publishes Events.
    pub recorder: Recorder,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The configured poll interval; the effective one may be longer (see
    /// [`Context::interval`]).
    pub poll_interval: Duration,
    /// The first retry delay after a failure.
    pub retry_min_delay: Duration,
    /// With change detection, how often every object is refreshed anyway;
    /// `None` without change detection.
    pub full_refresh_interval: Option<Duration>,
    /// Consecutive failures per ExternalSecret, for the backoff. Cleared on
    /// success and on deletion.
    failures: Mutex<HashMap<ObjectRef<ExternalSecret>, u32>>,
    /// Refresh costs and the effective poll interval.
    schedule: Mutex<Schedule>,
    /// With change detection: the versions each object last synced.
    changes: Mutex<Changes<ObjectRef<ExternalSecret>>>,
}

impl<P> std::fmt::Debug for Context<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("poll_interval", &self.poll_interval)
            .field("retry_min_delay", &self.retry_min_delay)
            .field("full_refresh_interval", &self.full_refresh_interval)
            .finish_non_exhaustive()
    }
}

impl<P: SecretsManager> Context<P> {
    /// A context with no recorded failures or versions and an empty
    /// schedule, paced by the provider's request budget. Change detection
    /// is on when `full_refresh_interval` is set.
    pub fn new(
        client: Client,
        provider: Arc<P>,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        poll_interval: Duration,
        retry_min_delay: Duration,
        full_refresh_interval: Option<Duration>,
    ) -> Self {
        Self {
            client,
            recorder,
            metrics,
            poll_interval,
            retry_min_delay,
            full_refresh_interval,
            failures: Mutex::default(),
            schedule: Mutex::new(Schedule::new(poll_interval, provider.request_budget())),
            changes: Mutex::default(),
            provider,
        }
    }

    /// One change-detection scan: lists the metadata of every secret and
    /// returns the objects among `known` whose secrets changed since their
    /// last sync, or that have no successful sync on record.
    ///
    /// The listing is not narrowed by group: a `keyByName` group is a name
    /// or an id, and the listing filter takes ids only.
    pub async fn scan_changes(
        &self,
        known: &HashSet<ObjectRef<ExternalSecret>>,
    ) -> crate::provider::Result<Vec<ObjectRef<ExternalSecret>>> {
        let listing = self.provider.list_all_secrets(&ListSecretsParams::default()).await?;
        let current: HashMap<String, Version> =
            listing.iter().map(|metadata| (metadata.id.clone(), Version::of(metadata))).collect();
        Ok(self.changes().to_refresh(known, &current))
    }
}

impl<P> Context<P> {
    /// The effective poll interval: the configured one, stretched so that
    /// refreshing every known object fits the request budget.
    pub fn interval(&self) -> Duration {
        self.schedule().interval()
    }

    /// Keeps the schedule current with one event of watch scope `scope`
    /// (`store` is that scope's cache, already updated by the event).
    pub fn track(&self, scope: usize, event: &watcher::Event<ExternalSecret>, store: &Store<ExternalSecret>) {
        let mut schedule = self.schedule();
        match event {
            watcher::Event::Apply(es) | watcher::Event::InitApply(es) => {
                if let Some(uid) = es.uid() {
                    let cost =
                        materialize::plan(&es.spec).map_or(0, |plan| scheduler::refresh_cost(&plan.fetches));
                    schedule.set_cost(scope, &uid, cost);
                }
            }
            watcher::Event::Delete(es) => {
                if let Some(uid) = es.uid() {
                    schedule.remove(&uid);
                }
                self.failures().remove(&ObjectRef::from_obj(es));
                self.changes().forget(&ObjectRef::from_obj(es));
            }
            watcher::Event::InitDone => {
                let live: HashSet<String> = store.state().iter().filter_map(|es| es.uid()).collect();
                schedule.retain(scope, |uid| live.contains(uid));
            }
            watcher::Event::Init => {}
        }
        if matches!(event, watcher::Event::Init | watcher::Event::InitApply(_)) {
            // A relist reports once, at its end.
            return;
        }
        if let Some(interval) = schedule.take_change() {
            tracing::info!(
                interval_secs = interval.as_secs_f64(),
                total_cost = schedule.total_cost(),
                configured_secs = self.poll_interval.as_secs_f64(),
                "the effective poll interval changed"
            );
        }
        self.metrics.set_schedule(schedule.total_cost(), schedule.interval());
    }

    /// Forgets every object, e.g. when leadership is lost.
    pub fn clear_schedule(&self) {
        let mut schedule = self.schedule();
        schedule.clear();
        schedule.take_change();
        self.metrics.set_schedule(0, schedule.interval());
        self.changes().clear();
    }

    /// How often every object is refreshed in full: the effective poll
    /// interval, or with change detection the full-refresh interval if that
    /// is longer.
    pub fn refresh_interval(&self) -> Duration {
        let interval = self.interval();
        self.full_refresh_interval.map_or(interval, |full| full.max(interval))
    }

    /// How long from now until the next full-refresh slot of `es`, whose
    /// sync started at `started` (since the Unix epoch).
    fn until_next_refresh(&self, es: &ExternalSecret, started: Duration) -> Duration {
        let next = match (es.uid(), self.full_refresh_interval) {
            (None, _) => started + self.refresh_interval(),
            (Some(uid), None) => self.schedule().next_refresh(&uid, started),
            (Some(uid), Some(_)) => {
                let interval = self.refresh_interval();
                started + slots::until_next_slot(slots::phase(&uid), interval, started)
            }
        };
        next.saturating_sub(unix_now())
    }

    fn changes(&self) -> std::sync::MutexGuard<'_, Changes<ObjectRef<ExternalSecret>>> {
        self.changes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn schedule(&self) -> std::sync::MutexGuard<'_, Schedule> {
        self.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ExternalSecret>, u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Syncs one ExternalSecret and reports the result in status, events and
/// metrics. Success requeues at the object's next slot; an error goes to
/// [`error_policy`].
#[instrument(skip(es, ctx), fields(namespace = %es.namespace().unwrap_or_default(), name = %es.name_any()))]
pub async fn reconcile<P: SecretsManager + 'static>(
    es: Arc<ExternalSecret>,
    ctx: Arc<Context<P>>,
) -> Result<Action> {
    if es.metadata.deletion_timestamp.is_some() {
        // Being deleted (e.g. foreground deletion waiting for the garbage
        // collector to remove the Secret): recreating the Secret would fight
        // the collector.
        tracing::debug!("being deleted; not syncing");
        return Ok(Action::await_change());
    }
    let started = unix_now();
    let namespace = es.namespace().unwrap_or_default();
    let timer = ctx.metrics.sync_timer(&namespace);
    let result = sync(&es, &ctx).await;
    drop(timer);
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = status::next_status(&es, result.as_ref().map(drop), Timestamp::now());
    status::publish_event(&ctx.recorder, &es, result.as_ref().map(|(outcome, _)| *outcome)).await;
    match result {
        Ok((outcome, versions)) => {
            ctx.failures().remove(&ObjectRef::from_obj(&*es));
            match versions {
                Some(versions) if ctx.full_refresh_interval.is_some() => {
                    ctx.changes().record(ObjectRef::from_obj(&*es), versions);
                }
                _ => ctx.changes().forget(&ObjectRef::from_obj(&*es)),
            }
            ctx.metrics.count_sync(&namespace, "success");
            if outcome == Outcome::Unchanged {
                tracing::debug!("in sync");
            } else {
                tracing::info!(?outcome, "synced the Secret");
            }
            status::patch_status(&api, &es, &status).await?;
            Ok(Action::requeue(ctx.until_next_refresh(&es, started)))
        }
        Err(error) => {
            ctx.changes().forget(&ObjectRef::from_obj(&*es));
            ctx.metrics.count_sync(&namespace, error.metric_label());
            if let Err(status_error) = status::patch_status(&api, &es, &status).await {
                tracing::warn!(error = %status_error.chain(), "cannot report the failure in status");
            }
            Err(error)
        }
    }
}

/// Decides when a failed ExternalSecret is tried again: transient errors
/// back off exponentially with jitter, capped at the effective poll
/// interval; spec errors wait for the next poll (or a spec change).
#[allow(clippy::needless_pass_by_value, reason = "the signature `Controller::run` expects")]
pub fn error_policy<P>(es: Arc<ExternalSecret>, error: &Error, ctx: Arc<Context<P>>) -> Action {
    let failures = {
        let mut failures = ctx.failures();
        let count = failures.entry(ObjectRef::from_obj(&*es)).or_default();
        *count = count.saturating_add(1);
        *count
    };
    tracing::warn!(error = %error.chain(), failures, "sync failed");
    let interval = ctx.interval();
    if error.is_transient() {
        Action::requeue(scheduler::jittered_retry_delay(failures, ctx.retry_min_delay, interval))
    } else {
        Action::requeue(interval)
    }
}

/// The sync itself, without reporting: its outcome, and the version of
/// every remote secret it read, by secret id (`None` if one of them has no
/// version; see [`changes::fetched_version`]).
async fn sync<P: SecretsManager>(
    es: &ExternalSecret,
    ctx: &Context<P>,
) -> Result<(Outcome, Option<HashMap<String, Version>>)> {
    let plan = materialize::plan(&es.spec)?;
    let fetched = fetch(ctx.provider.as_ref(), &plan).await?;
    let desired = materialize::materialize(&es.spec, &plan, &fetched)?;
    let versions = fetched
        .iter()
        .map(|secret| Some((secret.metadata.id.clone(), changes::fetched_version(secret)?)))
        .collect();
    Ok((write(es, ctx, &desired).await?, versions))
}

/// Writes `desired` as the Secret of `es`, unless it already holds it.
async fn write<P>(es: &ExternalSecret, ctx: &Context<P>, desired: &DesiredSecret) -> Result<Outcome> {
    let namespace = es.namespace().unwrap_or_default();
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let name = es.name_any();
    let existing =
        secrets.get_opt(&name).await.map_err(|source| Error::Kube { action: "read the Secret", source })?;
    let owner = owner_reference(es);
    let outcome = match &existing {
        None => Outcome::Created,
        Some(existing) if up_to_date(existing, desired, &owner) => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
    };
    if existing
        .as_ref()
        .is_some_and(|existing| existing.type_.as_deref().unwrap_or("Opaque") != desired.type_)
    {
        // A Secret's type is immutable: replace the Secret.
        secrets
            .delete(&name, &DeleteParams::default())
            .await
            .map_err(|source| Error::Kube { action: "replace the Secret of another type", source })?;
    }
    let manifest = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": desired.labels,
            "annotations": desired.annotations,
            "ownerReferences": [owner],
        },
        "type": desired.type_,
        "data": desired.data.iter()
            .map(|(key, value)| (key.clone(), STANDARD.encode(value.expose_secret()).into()))
            .collect::<serde_json::Map<_, _>>(),
    });
    secrets
        .patch(&name, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(manifest))
        .await
        .map_err(|source| Error::Kube { action: "apply the Secret", source })?;
    Ok(outcome)
}

/// Reads every planned remote secret once, concurrently.
async fn fetch<P: SecretsManager>(provider: &P, plan: &Plan) -> Result<Vec<Secret>> {
    try_join_all(plan.fetches.iter().enumerate().map(|(index, remote)| async move {
        let result = match remote {
            RemoteRef::Id(id) => provider.get_secret(id).await,
            RemoteRef::Name { group, secret_type, name } => {
                provider.get_secret_by_name(group, *secret_type, name).await
            }
        };
        result.map_err(|source| Error::Provider {
            field: plan.field_of(index).to_owned(),
            key: remote.key(),
            source,
        })
    }))
    .await
}

/// The time since the Unix epoch: slots are counted from it, so they
/// survive restarts.
fn unix_now() -> Duration {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default()
}

/// The controller ownerReference to `es`.
fn owner_reference(es: &ExternalSecret) -> serde_json::Value {
    json!({
        "apiVersion": ExternalSecret::api_version(&()),
        "kind": ExternalSecret::kind(&()),
        "name": es.name_any(),
        "uid": es.uid().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether `existing` already has the desired type, data, labels,
/// annotations and owner. Keys other managers added are left alone (they
/// are theirs under server-side apply); keys this controller wrote earlier
/// and no longer wants change the data hash, so they are removed.
fn up_to_date(existing: &KubeSecret, desired: &DesiredSecret, owner: &serde_json::Value) -> bool {
    let data = existing.data.as_ref();
    let same_data = desired.data.iter().all(|(key, value)| {
        data.and_then(|data| data.get(key)).is_some_and(|current| current.0 == value.expose_secret())
    });
    let contains = |have: Option<&std::collections::BTreeMap<String, String>>,
                    want: &std::collections::BTreeMap<String, String>| {
        want.iter().all(|(key, value)| have.and_then(|have| have.get(key)) == Some(value))
    };
    let controlled = existing.metadata.owner_references.iter().flatten().any(|reference| {
        Some(reference.uid.as_str()) == owner["uid"].as_str()
            && reference.controller == Some(true)
            && reference.block_owner_deletion == Some(true)
    });
    same_data
        && existing.type_.as_deref().unwrap_or("Opaque") == desired.type_
        && contains(existing.metadata.labels.as_ref(), &desired.labels)
        && contains(existing.metadata.annotations.as_ref(), &desired.annotations)
        && controlled
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use serde_json::json;

    use super::*;
    use crate::fixtures::{secret, spec};

    fn desired() -> (DesiredSecret, serde_json::Value) {
        let spec = spec(json!([{"key": "id", "name": "u", "property": "username"}]));
        let plan = materialize::plan(&spec).unwrap();
        let fetched =
            [secret(json!({"secret_type": "username_password", "username": "app", "password": "pw"}))];
        let mut es = ExternalSecret::new("x", spec.clone());
        es.metadata.uid = Some("uid-1".into());
        (materialize::materialize(&spec, &plan, &fetched).unwrap(), owner_reference(&es))
    }

    fn existing(desired: &DesiredSecret, owner: &serde_json::Value) -> KubeSecret {
        serde_json::from_value(json!({
            "metadata": {
                "name": "x",
                "labels": desired.labels,
                "annotations": desired.annotations,
                "ownerReferences": [owner],
            },
            "type": "Opaque",
            "data": {"u": "YXBw"},
        }))
        .unwrap()
    }

    #[test]
    fn up_to_date_detects_drift() {
        let (desired, owner) = desired();
        let secret = existing(&desired, &owner);
        assert!(up_to_date(&secret, &desired, &owner));

        let mut edited = secret.clone();
        edited.data.as_mut().unwrap().insert("u".into(), ByteString(b"hacked".to_vec()));
        assert!(!up_to_date(&edited, &desired, &owner));

        let mut foreign_key = secret.clone();
        foreign_key.data.as_mut().unwrap().insert("extra".into(), ByteString(b"x".to_vec()));
        assert!(up_to_date(&foreign_key, &desired, &owner), "keys of other managers are theirs");

        let mut unowned = secret.clone();
        unowned.metadata.owner_references = None;
        assert!(!up_to_date(&unowned, &desired, &owner));

        let mut retyped = secret;
        retyped.type_ = Some("ibm/ibmc-s3fs".into());
        assert!(!up_to_date(&retyped, &desired, &owner));
    }

    /// Answers every read with one `username_password` secret and counts
    /// the reads.
    #[derive(Default)]
    struct CountingProvider(std::sync::atomic::AtomicUsize);

    impl CountingProvider {
        fn answer(&self) -> Secret {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            secret(json!({"secret_type": "username_password", "username": "app", "password": "pw"}))
        }
    }

    impl SecretsManager for CountingProvider {
        async fn get_secret(&self, _: &str) -> crate::provider::Result<Secret> {
            Ok(self.answer())
        }

        async fn get_secret_by_name(
            &self,
            _: &str,
            _: crate::provider::SecretType,
            _: &str,
        ) -> crate::provider::Result<Secret> {
            Ok(self.answer())
        }

        async fn get_secret_metadata(
            &self,
            _: &str,
        ) -> crate::provider::Result<crate::provider::SecretMetadata> {
            unreachable!("the controller reads values only")
        }

        async fn list_secrets(
            &self,
            _: &crate::provider::ListSecretsParams,
        ) -> crate::provider::Result<crate::provider::SecretMetadataPage> {
            unreachable!("the controller reads values only")
        }

        async fn get_secret_version(
            &self,
            _: &str,
            _: &crate::provider::VersionRef,
        ) -> crate::provider::Result<crate::provider::SecretVersion> {
            unreachable!("the controller reads values only")
        }
    }

    #[tokio::test]
    async fn entries_sharing_a_remote_secret_fetch_it_once() {
        let spec = spec(json!([
            {"key": "id-1", "name": "u", "property": "username"},
            {"key": "id-1", "name": "p", "property": "password"},
            {"key": "id-2", "name": "q", "property": "password"},
        ]));
        let provider = CountingProvider::default();
        let fetched = fetch(&provider, &materialize::plan(&spec).unwrap()).await.unwrap();
        assert_eq!(fetched.len(), 2);
        assert_eq!(provider.0.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn owner_reference_blocks_deletion() {
        let (_, owner) = desired();
        assert_eq!(owner["apiVersion"], "kubernetes-client.io/v1");
        assert_eq!(owner["kind"], "ExternalSecret");
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
    }
}
