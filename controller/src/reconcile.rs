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
//! [`changes`]), and [`Context::scan_changes`] triggers the
//! objects whose secrets changed in between. [`Context::track`] sees every
//! watch event, keeps each object's refresh cost in the [`Schedule`] and
//! reports the intervals when they change.
//!
//! Each sync reads in a [`Priority`] class (see `sync_priority`), so the
//! request budget serves a new object before the refreshes a scan asked
//! for, and those before the periodic ones.

use std::collections::{BTreeSet, HashMap, HashSet};
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
use crate::provider::budget::{Priority, with_priority};
use crate::provider::{ListSecretsParams, Secret, SecretsManager};
use crate::scheduler::{self, Cadence, Schedule, slots};
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
    /// The objects a scan triggered whose sync has not ended yet: their
    /// sync reads as [`Priority::Changed`], and later scans do not trigger
    /// them again.
    scan_triggered: Mutex<HashSet<ObjectRef<ExternalSecret>>>,
    /// With change detection: when each recorded object's next full read is
    /// due (time since the Unix epoch).
    due: Mutex<HashMap<ObjectRef<ExternalSecret>, Duration>>,
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
        let mut schedule = Schedule::new(poll_interval, provider.request_budget());
        if let Some(full_refresh) = full_refresh_interval {
            schedule = schedule.with_change_detection(full_refresh);
        }
        metrics.set_schedule(0, schedule.cadence());
        Self {
            client,
            recorder,
            metrics,
            poll_interval,
            retry_min_delay,
            full_refresh_interval,
            failures: Mutex::default(),
            schedule: Mutex::new(schedule),
            changes: Mutex::default(),
            scan_triggered: Mutex::default(),
            due: Mutex::default(),
            provider,
        }
    }

    /// One change-detection scan: lists the metadata of every secret and
    /// returns the objects among `known` whose secrets changed since their
    /// last sync (see [`Changes::to_refresh`]).
    ///
    /// The listing covers the groups of the recorded secrets only (see
    /// [`Changes::scan_groups`]); with nothing recorded there is nothing to
    /// compare, and nothing is listed. Its list calls
    /// count in the scan period (see [`scheduler::scan_period`]) and wait
    /// for their permits as [`Priority::Changed`].
    pub async fn scan_changes(
        &self,
        known: &HashSet<ObjectRef<ExternalSecret>>,
    ) -> crate::provider::Result<Vec<ObjectRef<ExternalSecret>>> {
        let groups = self.changes().scan_groups();
        if groups.as_ref().is_some_and(BTreeSet::is_empty) {
            self.changes().skip_listing();
            return Ok(Vec::new());
        }
        let params =
            ListSecretsParams { groups: groups.iter().flatten().cloned().collect(), ..Default::default() };
        let listing = with_priority(Priority::Changed, self.provider.list_all_secrets(&params)).await?;
        self.update_schedule(|schedule| schedule.set_scan_calls(scheduler::scan_calls(listing.len())));
        let current: HashMap<String, Version> =
            listing.iter().map(|metadata| (metadata.id.clone(), Version::of(metadata))).collect();
        Ok(self.changes().to_refresh(known, &current, groups))
    }
}

impl<P> Context<P> {
    /// The effective poll interval: the configured one, stretched so that
    /// refreshing every known object fits the request budget.
    pub fn interval(&self) -> Duration {
        self.schedule().interval()
    }

    /// How long to wait between two change-detection scans (see
    /// [`scheduler::scan_period`]); the poll interval without change
    /// detection.
    pub fn scan_period(&self) -> Duration {
        let cadence = self.schedule().cadence();
        cadence.scan.unwrap_or(cadence.poll)
    }

    /// Marks `objects` as triggered by a scan and returns those not marked
    /// already (a sync is queued for the others). Marks of objects no longer
    /// in `known` are dropped.
    pub fn mark_scan_triggered(
        &self,
        objects: Vec<ObjectRef<ExternalSecret>>,
        known: &HashSet<ObjectRef<ExternalSecret>>,
    ) -> Vec<ObjectRef<ExternalSecret>> {
        let mut triggered = self.scan_triggered();
        triggered.retain(|object| known.contains(object));
        objects.into_iter().filter(|object| triggered.insert(object.clone())).collect()
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
                let object = ObjectRef::from_obj(es);
                self.failures().remove(&object);
                self.changes().forget(&object);
                self.scan_triggered().remove(&object);
                self.due().remove(&object);
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
        drop(schedule);
        self.update_schedule(|_| {});
    }

    /// Changes the schedule with `change`, then logs and exports the
    /// intervals if they changed.
    fn update_schedule(&self, change: impl FnOnce(&mut Schedule)) {
        let mut schedule = self.schedule();
        change(&mut schedule);
        if let Some(cadence) = schedule.take_change() {
            let Cadence { poll, refresh, scan } = cadence;
            tracing::info!(
                interval_secs = poll.as_secs_f64(),
                refresh_secs = refresh.as_secs_f64(),
                scan_secs = scan.map(|scan| scan.as_secs_f64()),
                total_cost = schedule.total_cost(),
                configured_secs = self.poll_interval.as_secs_f64(),
                "the effective poll interval changed"
            );
        }
        self.metrics.set_schedule(schedule.total_cost(), schedule.cadence());
    }

    /// Forgets every object, e.g. when leadership is lost.
    pub fn clear_schedule(&self) {
        let mut schedule = self.schedule();
        schedule.clear();
        schedule.take_change();
        self.metrics.set_schedule(0, schedule.cadence());
        self.changes().clear();
        self.scan_triggered().clear();
        self.due().clear();
    }

    /// With change detection, whether `es` needs no read now because its
    /// Secret, `existing`, records (in its [`VERSIONS_ANNOTATION`]) the
    /// versions it was built from:
    ///
    /// - after a start, when `es` has no record yet: those versions become
    ///   its record, so scans watch its secrets from now on and its next
    ///   read waits for its slot, as before the restart;
    /// - when its record equals them and its slot is not due: the sync was
    ///   triggered by the Secret's own change (the controller's last write,
    ///   say), which left it as recorded.
    ///
    /// `false`, and the caller reads, when the Secret records no versions
    /// or other ones, is not controlled by `es`, was edited since it was
    /// written (see [`materialize::intact`]), or, after a start, the last
    /// listing should have held one of its secrets.
    ///
    /// [`VERSIONS_ANNOTATION`]: materialize::VERSIONS_ANNOTATION
    fn resume(&self, es: &ExternalSecret, existing: Option<&KubeSecret>) -> bool {
        if self.full_refresh_interval.is_none() {
            return false;
        }
        let object = ObjectRef::from_obj(es);
        let Some(annotated) = existing
            .filter(|secret| materialize::intact(secret) && is_controlled(secret, &owner_reference(es)))
            .and_then(|secret| secret.metadata.annotations.as_ref()?.get(materialize::VERSIONS_ANNOTATION))
            .and_then(|annotation| changes::decode_reads(annotation))
        else {
            return false;
        };
        let due = self.due().get(&object).is_none_or(|due| unix_now() + SLOT_TOLERANCE >= *due);
        let mut changes = self.changes();
        match changes.reads_of(&object) {
            Some(recorded) => *recorded == annotated && !due,
            None => changes.record(object, annotated),
        }
    }

    /// Requeues `es`, whose sync started at `started`, to its next refresh
    /// (see [`Context::until_next_refresh`]) and remembers when that is due.
    fn requeue_to_slot(&self, es: &ExternalSecret, started: Duration, unversioned: bool) -> Action {
        let delay = self.until_next_refresh(es, started, unversioned);
        self.due().insert(ObjectRef::from_obj(es), unix_now() + delay);
        Action::requeue(delay)
    }

    /// How long from now until the next refresh of `es`, whose sync started
    /// at `started` (since the Unix epoch): its next slot in the full
    /// refresh interval, or, when scans cannot see its secrets change
    /// (`unversioned`, see [`Changes::record`]), in the effective poll
    /// interval.
    fn until_next_refresh(&self, es: &ExternalSecret, started: Duration, unversioned: bool) -> Duration {
        let schedule = self.schedule();
        let next = match es.uid() {
            None => started + schedule.cadence().refresh,
            Some(uid) if unversioned => {
                started + slots::until_next_slot(slots::phase(&uid), schedule.interval(), started)
            }
            Some(uid) => schedule.next_refresh(&uid, started),
        };
        next.saturating_sub(unix_now())
    }

    /// Whether the last sync of `object` failed.
    fn has_failed(&self, object: &ObjectRef<ExternalSecret>) -> bool {
        self.failures().contains_key(object)
    }

    fn due(&self) -> std::sync::MutexGuard<'_, HashMap<ObjectRef<ExternalSecret>, Duration>> {
        self.due.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn scan_triggered(&self) -> std::sync::MutexGuard<'_, HashSet<ObjectRef<ExternalSecret>>> {
        self.scan_triggered.lock().unwrap_or_else(PoisonError::into_inner)
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
    let trigger = ScanTrigger::take(&ctx, ObjectRef::from_obj(&*es));
    let timer = ctx.metrics.sync_timer(&namespace);
    let result = sync(&es, &ctx, trigger.object.is_some()).await;
    drop(timer);
    drop(trigger);
    let result = match result {
        Ok(Synced::Resumed) => {
            tracing::debug!("its Secret records the versions it synced; next read at its slot");
            return Ok(ctx.requeue_to_slot(&es, started, false));
        }
        Ok(Synced::Fresh(outcome, versions)) => Ok((outcome, versions)),
        Err(error) => Err(error),
    };
    let api: Api<ExternalSecret> = Api::namespaced(ctx.client.clone(), &namespace);
    let status = status::next_status(&es, result.as_ref().map(drop), Timestamp::now());
    status::publish_event(&ctx.recorder, &es, result.as_ref().map(|(outcome, _)| *outcome)).await;
    match result {
        Ok((outcome, versions)) => {
            ctx.failures().remove(&ObjectRef::from_obj(&*es));
            // With change detection, an object whose changes a scan cannot
            // see is refreshed on its slots in the effective poll interval.
            let unversioned = match versions {
                Some(versions) if ctx.full_refresh_interval.is_some() => {
                    !ctx.changes().record(ObjectRef::from_obj(&*es), versions)
                }
                None if ctx.full_refresh_interval.is_some() => {
                    ctx.changes().forget(&ObjectRef::from_obj(&*es));
                    true
                }
                _ => {
                    ctx.changes().forget(&ObjectRef::from_obj(&*es));
                    false
                }
            };
            ctx.metrics.count_sync(&namespace, "success");
            if outcome == Outcome::Unchanged {
                tracing::debug!("in sync");
            } else {
                tracing::info!(?outcome, "synced the Secret");
            }
            status::patch_status(&api, &es, &status).await?;
            Ok(ctx.requeue_to_slot(&es, started, unversioned))
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

/// The mark of a scan-triggered sync, taken when the sync starts and
/// removed when it ends, however it ends. A sync that started before a scan
/// marked its object leaves the mark to the sync the scan queued.
struct ScanTrigger<'a, P> {
    ctx: &'a Context<P>,
    /// The object, if a scan triggered this sync.
    object: Option<ObjectRef<ExternalSecret>>,
}

impl<'a, P> ScanTrigger<'a, P> {
    fn take(ctx: &'a Context<P>, object: ObjectRef<ExternalSecret>) -> Self {
        let object = ctx.scan_triggered().contains(&object).then_some(object);
        Self { ctx, object }
    }
}

impl<P> Drop for ScanTrigger<'_, P> {
    fn drop(&mut self) {
        if let Some(object) = self.object.take() {
            self.ctx.scan_triggered().remove(&object);
        }
    }
}

/// The class in which a sync of `es` waits for its Secrets Manager permits:
///
/// - [`Priority::Urgent`] for a new or edited object (its generation is not
///   the one its status observed), or a synced one whose Secret is missing:
///   someone is waiting for it;
/// - [`Priority::Changed`] when something asked for this sync: its last
///   sync failed (`failed`, or its status is not `Ready=True`, which also
///   covers a start), so a broken object retries below new ones even while
///   it has no Secret, or a scan saw its secrets change (`scan_triggered`);
/// - [`Priority::Periodic`] otherwise: its slot, or the sync of every object
///   after a start.
fn sync_priority(es: &ExternalSecret, secret_missing: bool, scan_triggered: bool, failed: bool) -> Priority {
    let observed = es.status.as_ref().and_then(|status| status.observed_generation);
    let ready = es.ready_condition().is_some_and(|condition| condition.status == "True");
    let failed = failed || !ready;
    if es.metadata.generation != observed || (secret_missing && !failed) {
        Priority::Urgent
    } else if failed || scan_triggered {
        Priority::Changed
    } else {
        Priority::Periodic
    }
}

/// How early a sync may run and still count as its object's slot: the
/// requeue timer and the clocks are not exact.
const SLOT_TOLERANCE: Duration = Duration::from_secs(1);

/// What [`sync`] did.
enum Synced {
    /// It read the remote secrets and wrote the Secret (or found it in
    /// sync): the outcome, and what it read of every remote secret, by
    /// secret id (`None` if one of them has no version; see
    /// [`changes::fetched_version`]).
    Fresh(Outcome, Option<HashMap<String, changes::Read>>),
    /// It read nothing: the object's Secret records the versions it was
    /// built from, and nothing asked for a read (see [`Context::resume`]).
    Resumed,
}

/// The sync itself, without reporting. `scan_triggered` says a
/// change-detection scan asked for it.
async fn sync<P: SecretsManager>(
    es: &ExternalSecret,
    ctx: &Context<P>,
    scan_triggered: bool,
) -> Result<Synced> {
    let plan = materialize::plan(&es.spec)?;
    // Read before the values, for the priority. If the Secret changes while
    // the reads wait, its watch queues another sync, which repairs it.
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), &es.namespace().unwrap_or_default());
    let existing = secrets
        .get_opt(&es.name_any())
        .await
        .map_err(|source| Error::Kube { action: "read the Secret", source })?;
    let failed = ctx.has_failed(&ObjectRef::from_obj(es));
    let priority = sync_priority(es, existing.is_none(), scan_triggered, failed);
    if priority == Priority::Periodic && ctx.resume(es, existing.as_ref()) {
        return Ok(Synced::Resumed);
    }
    tracing::debug!(?priority, "reading");
    let fetched = with_priority(priority, fetch(ctx.provider.as_ref(), &plan)).await?;
    let mut desired = materialize::materialize(&es.spec, &plan, &fetched)?;
    let versions: Option<HashMap<String, changes::Read>> =
        fetched.iter().map(|secret| Some((secret.metadata.id.clone(), changes::Read::of(secret)?))).collect();
    if let Some(reads) = versions.as_ref().filter(|_| ctx.full_refresh_interval.is_some()) {
        desired.annotations.insert(materialize::VERSIONS_ANNOTATION.to_owned(), changes::encode_reads(reads));
    }
    Ok(Synced::Fresh(write(es, &secrets, existing.as_ref(), &desired).await?, versions))
}

/// Writes `desired` as the Secret of `es` through `secrets`, unless
/// `existing`, the Secret as read before, already holds it.
async fn write(
    es: &ExternalSecret,
    secrets: &Api<KubeSecret>,
    existing: Option<&KubeSecret>,
    desired: &DesiredSecret,
) -> Result<Outcome> {
    let namespace = es.namespace().unwrap_or_default();
    let name = es.name_any();
    let owner = owner_reference(es);
    let outcome = match existing {
        None => Outcome::Created,
        Some(existing) if up_to_date(existing, desired, &owner) => return Ok(Outcome::Unchanged),
        Some(_) => Outcome::Updated,
    };
    if existing.is_some_and(|existing| existing.type_.as_deref().unwrap_or("Opaque") != desired.type_) {
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
    let controlled = is_controlled(existing, owner);
    same_data
        && existing.type_.as_deref().unwrap_or("Opaque") == desired.type_
        && contains(existing.metadata.labels.as_ref(), &desired.labels)
        && contains(existing.metadata.annotations.as_ref(), &desired.annotations)
        && controlled
}

/// Whether `secret` has `owner` (see [`owner_reference`]) as its controller.
fn is_controlled(secret: &KubeSecret, owner: &serde_json::Value) -> bool {
    secret.metadata.owner_references.iter().flatten().any(|reference| {
        Some(reference.uid.as_str()) == owner["uid"].as_str()
            && reference.controller == Some(true)
            && reference.block_owner_deletion == Some(true)
    })
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
    fn the_sync_class_follows_what_asked_for_it() {
        let mut es = ExternalSecret::new("x", spec(json!([{"key": "id", "name": "u"}])));
        es.metadata.generation = Some(2);
        assert_eq!(sync_priority(&es, true, false, false), Priority::Urgent, "never synced");
        let fresh = status::next_status(&es, Ok(()), Timestamp::UNIX_EPOCH);
        let synced = |generation, ready: bool| {
            let mut status = fresh.clone();
            status.observed_generation = Some(generation);
            if !ready {
                status.conditions[0].status = "False".into();
            }
            status
        };
        es.status = Some(synced(1, true));
        assert_eq!(sync_priority(&es, false, false, false), Priority::Urgent, "edited");
        es.status = Some(synced(1, false));
        assert_eq!(sync_priority(&es, true, false, true), Priority::Urgent, "a failing object, edited");
        es.status = Some(synced(2, true));
        assert_eq!(sync_priority(&es, true, false, false), Priority::Urgent, "the Secret is missing");
        assert_eq!(sync_priority(&es, false, true, false), Priority::Changed, "a scan asked");
        assert_eq!(sync_priority(&es, false, false, true), Priority::Changed, "a retry");
        assert_eq!(sync_priority(&es, true, false, true), Priority::Changed, "a retry without a Secret");
        assert_eq!(sync_priority(&es, false, false, false), Priority::Periodic, "a slot, or a start");
        es.status = Some(synced(2, false));
        assert_eq!(sync_priority(&es, true, false, false), Priority::Changed, "a retry after a start");
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
