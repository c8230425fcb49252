//! Wires the controller together: metrics, the HTTP endpoints, leader
//! election, one kube-runtime `Controller` per watched namespace scope and,
//! with change detection, the metadata scan that triggers the objects whose
//! remote secrets changed (see [`changes`](crate::changes)).
//!
//! [`run`] takes its outside world as parameters (a Kubernetes client, a
//! Secrets Manager client factory, a shutdown future), so tests run the
//! whole controller in-process against a real API server and the emulator.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::channel::mpsc;
use futures::{FutureExt as _, StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::runtime::controller::{self, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{PredicateConfig, WatchStreamExt as _, predicates, reflector, watcher};
use kube::{Api, Client, ResourceExt as _};
use prometheus_client::registry::Registry;

use crate::crd::ExternalSecret;
use crate::http::{self, HttpState};
use crate::leader::{Election, LeaderConfig};
use crate::materialize::{MANAGED_LABEL, MANAGED_VALUE};
use crate::metrics::Metrics;
use crate::provider::{self, CallObserver, Dedupe, SecretsManager};
use crate::reconcile::{Context, error_policy, reconcile};
use crate::telemetry::LogControl;
use crate::{Error, Result};

/// How long one read of a remote secret is shared with the ExternalSecrets
/// that read it after it (see [`Dedupe`]): short, so a rotation arrives at
/// most this much later than without sharing.
pub const SHARED_READ_TTL: Duration = Duration::from_secs(1);

/// The controller's configuration (the binary maps its flags to it).
#[derive(Clone, Debug)]
pub struct Config {
    /// How often each ExternalSecret is synced.
    pub poll_interval: Duration,
    /// The first retry delay after a failed sync.
    pub retry_min_delay: Duration,
    /// Change detection: `Some` scans secret metadata every poll interval
    /// and reads only secrets that changed, `None` reads every secret every
    /// poll interval.
    pub change_detection: Option<ChangeDetection>,
    /// How many ExternalSecrets are synced at once (per namespace scope).
    pub concurrency: u16,
    /// The namespaces to watch; empty means all.
    pub namespaces: Vec<String>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; `None` for
    /// nowhere.
    pub http_addr: Option<SocketAddr>,
    /// Leader election; `None` runs the controller unconditionally.
    pub leader: Option<LeaderConfig>,
    /// This replica's name in Events.
    pub instance: String,
    /// Serves `PUT /log-level` when set.
    pub log_control: Option<LogControl>,
}

/// Change detection settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChangeDetection {
    /// How often every ExternalSecret is refreshed anyway, as a safety net
    /// (at least the effective poll interval).
    pub full_refresh_interval: Duration,
}

/// Runs the controller until `shutdown` completes.
///
/// `make_provider` builds the Secrets Manager client with the metrics'
/// [`CallObserver`]; the controller reads through it wrapped in [`Dedupe`].
pub async fn run<P, F>(
    config: Config,
    client: Client,
    make_provider: F,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()>
where
    P: SecretsManager + 'static,
    F: FnOnce(Arc<dyn CallObserver>) -> provider::Result<P>,
{
    let shutdown = shutdown.shared();
    let mut registry = Registry::default();
    let metrics = Arc::new(Metrics::new(&mut registry));
    let provider = make_provider(metrics.clone()).map_err(Error::ProviderSetup)?;
    let provider = Arc::new(Dedupe::new(provider, SHARED_READ_TTL));
    let ready = Arc::new(AtomicBool::new(false));
    let http = match config.http_addr {
        Some(addr) => {
            let state = HttpState {
                registry: Arc::new(registry),
                ready: ready.clone(),
                log_control: config.log_control.clone(),
            };
            let (bound, server) = http::serve(addr, state, shutdown.clone()).await?;
            tracing::info!(%bound, "serving /metrics, /healthz and /readyz");
            Some(tokio::spawn(server))
        }
        None => None,
    };
    let recorder = Recorder::new(
        client.clone(),
        Reporter { controller: "cos-secrets-sync".into(), instance: Some(config.instance.clone()) },
    );
    let ctx = Arc::new(Context::new(
        client.clone(),
        provider,
        recorder,
        metrics.clone(),
        config.poll_interval,
        config.retry_min_delay,
        config.change_detection.map(|change| change.full_refresh_interval),
    ));

    match &config.leader {
        None => {
            ready.store(true, Ordering::Release);
            metrics.set_leader(true);
            run_controllers(&config, &ctx, shutdown.clone()).await;
        }
        Some(leader) => {
            let mut election = Election::start(client, leader).await?;
            ready.store(true, Ordering::Release);
            tracing::info!(identity = %leader.identity, lease = %leader.lease_name, "waiting for leadership");
            loop {
                tokio::select! {
                    () = shutdown.clone() => break,
                    changed = election.is_leader.wait_for(|leading| *leading) => if changed.is_err() { break },
                }
                tracing::info!(identity = %leader.identity, "became leader");
                metrics.set_leader(true);
                tokio::select! {
                    () = run_controllers(&config, &ctx, shutdown.clone()) => {}
                    _ = election.is_leader.wait_for(|leading| !*leading) => {
                        tracing::warn!(identity = %leader.identity, "lost leadership; stopping the controller");
                    }
                }
                metrics.set_leader(false);
                metrics.set_stores(Vec::new());
                ctx.clear_schedule();
                if shutdown.clone().now_or_never().is_some() {
                    break;
                }
            }
            election.stop().await;
        }
    }
    if let Some(http) = http {
        let _ = http.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// Runs one Controller per namespace scope until `shutdown`.
async fn run_controllers<P: SecretsManager + 'static>(
    config: &Config,
    ctx: &Arc<Context<P>>,
    shutdown: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let scopes: Vec<Option<&str>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().map(|ns| Some(ns.as_str())).collect()
    };
    let client = &ctx.client;
    let mut stores = Vec::new();
    let mut triggers = Vec::new();
    let controllers: Vec<_> = scopes
        .into_iter()
        .enumerate()
        .map(|(index, scope)| {
            let (externals, secrets): (Api<ExternalSecret>, Api<KubeSecret>) = match scope {
                None => (Api::all(client.clone()), Api::all(client.clone())),
                Some(ns) => (Api::namespaced(client.clone(), ns), Api::namespaced(client.clone(), ns)),
            };
            let (reader, writer) = reflector::store();
            stores.push(reader.clone());
            // Status writes do not bump the generation, so they do not
            // trigger a sync; polling is driven by requeues. Every event
            // also updates the schedule's costs.
            let (tracker, cache) = (ctx.clone(), reader.clone());
            // The cache keeps every ExternalSecret, without the
            // managedFields the controller never reads.
            let trigger = watcher(externals, watcher::Config::default())
                .default_backoff()
                .modify(|es| es.managed_fields_mut().clear())
                .reflect(writer)
                .inspect_ok(move |event| tracker.track(index, event, &cache))
                .applied_objects()
                .predicate_filter(predicates::generation, PredicateConfig::default());
            let managed = watcher::Config::default().labels(&format!("{MANAGED_LABEL}={MANAGED_VALUE}"));
            // Change-detection scans send every object to refresh to every
            // scope; a Controller skips objects not in its cache.
            let (changed, refresh) = mpsc::unbounded();
            triggers.push(changed);
            Controller::for_stream(trigger, reader)
                .owns(secrets, managed)
                .reconcile_on(refresh)
                .with_config(controller::Config::default().concurrency(config.concurrency))
                .graceful_shutdown_on(shutdown.clone())
                .run(reconcile, error_policy, ctx.clone())
                .for_each(|result| {
                    if let Err(error) = result {
                        tracing::debug!(%error, "reconcile failed");
                    }
                    std::future::ready(())
                })
        })
        .collect();
    ctx.metrics.set_stores(stores.clone());
    let controllers = futures::future::join_all(controllers);
    if ctx.full_refresh_interval.is_some() {
        tokio::select! {
            _ = controllers => {}
            () = scan_changes(ctx, &stores, &triggers) => {}
        }
    } else {
        drop(triggers);
        controllers.await;
    }
}

/// Scans for changed remote secrets every scan period (see
/// [`scheduler::scan_period`](crate::scheduler::scan_period)), forever, and
/// triggers a sync of every object a scan names that is not queued
/// already. The first scan runs one period after the start: it compares only
/// the objects synced since, and the start syncs the others anyway.
///
/// A failed scan triggers every object, as a poll without change detection
/// would, and the next scan waits at least the effective poll interval, so
/// a lasting failure costs what polling costs.
async fn scan_changes<P: SecretsManager + 'static>(
    ctx: &Context<P>,
    stores: &[Store<ExternalSecret>],
    triggers: &[mpsc::UnboundedSender<ObjectRef<ExternalSecret>>],
) {
    let mut wait = ctx.scan_period();
    loop {
        tokio::time::sleep(wait).await;
        let known: HashSet<ObjectRef<ExternalSecret>> =
            stores.iter().flat_map(Store::state).map(|es| ObjectRef::from_obj(&*es)).collect();
        let refresh = match ctx.scan_changes(&known).await {
            Ok(refresh) => {
                ctx.metrics.count_change_scan("success", refresh.len());
                if !refresh.is_empty() {
                    tracing::debug!(objects = refresh.len(), "remote secrets changed; refreshing");
                }
                wait = ctx.scan_period();
                refresh
            }
            Err(error) => {
                ctx.metrics.count_change_scan(error.metric_label(), known.len());
                tracing::warn!(%error, "cannot list secret metadata; refreshing every ExternalSecret");
                wait = ctx.scan_period().max(ctx.interval());
                known.iter().cloned().collect()
            }
        };
        for object in ctx.mark_scan_triggered(refresh, &known) {
            for trigger in triggers {
                // A closed channel means its Controller stopped.
                let _ = trigger.unbounded_send(object.clone());
            }
        }
    }
}
