//! The scale benchmark of issue #5: the controller side by side with a
//! KES-like poller, both against one real kube-apiserver and a Secrets
//! Manager emulator that admits 20 requests per second.
//!
//! For each size, each contender gets its own namespace, its own emulator
//! (fresh quota and counters) and the same fleet ([`fleet`]):
//!
//! 1. The fleet's ExternalSecrets are created, then the contender starts
//!    (the controller binary as a child process; the baseline in-process);
//!    the time until every Secret holds its value is the initial sync.
//! 2. A steady window measures Secrets Manager requests per minute.
//! 3. Rotation: new versions of random secrets, all at once; the time until
//!    each Secret reading one of them holds the new value.
//! 4. First sync under load: new versions of as many other random secrets
//!    (the refresh burst is the load) and, right after, new
//!    ExternalSecrets, all at once; the time from each creation to its
//!    Secret.
//! 5. The same with as many more ExternalSecrets created one every
//!    [`PACED_EVERY`] during a third burst: what one user applying one
//!    object waits, rather than the last of a batch.
//!
//! `429`s and the densest second are counted over the whole run of a
//! contender; the controller's peak RSS is its `VmHWM` at the end.

pub mod baseline;
pub mod fleet;
pub mod observe;
pub mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rand::SeedableRng as _;
use sm_emulator::{Emulator, EmulatorConfig, RequestStats};
use test_platform::TestCluster;

use crate::programs::{ControllerProcess, ControllerSettings};
use baseline::Baseline;
use fleet::Fleet;
use observe::{Latencies, SecretWatch};
pub use report::Figures;

/// How often phase 5 creates an ExternalSecret: a quarter of the
/// controller's default budget (16 requests per second).
pub const PACED_EVERY: Duration = Duration::from_millis(250);

/// The benchmark's parameters.
#[derive(Debug, Clone)]
pub struct ScaleOptions {
    /// The controller binary.
    pub controller: PathBuf,
    /// The CRD manifest.
    pub crd: PathBuf,
    /// Numbers of ExternalSecrets, one run of both contenders each.
    pub sizes: Vec<usize>,
    /// The configured poll interval of both contenders.
    pub interval: Duration,
    /// The emulator's quota, requests per second.
    pub rate_limit: u32,
    /// Secrets rotated at once.
    pub rotations: usize,
    /// ExternalSecrets applied under load.
    pub late: usize,
    /// Length of the steady window.
    pub steady: Duration,
    /// Longest wait for a rotation or a first sync.
    pub wait: Duration,
    /// Whether to run the baseline.
    pub baseline: bool,
    /// Where the controller's logs go.
    pub log_dir: PathBuf,
}

/// The figures of one size: the baseline's (unless skipped) and the
/// controller's.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The KES-like poller.
    pub baseline: Option<Figures>,
    /// The controller.
    pub controller: Figures,
}

/// Runs the benchmark; hands each size's table to `report` as soon as it
/// is measured, and returns every size's figures.
pub async fn run(options: &ScaleOptions, mut report: impl FnMut(&str)) -> anyhow::Result<Vec<Comparison>> {
    std::fs::create_dir_all(&options.log_dir)
        .with_context(|| format!("create {}", options.log_dir.display()))?;
    let cluster = TestCluster::start().await?;
    let client = cluster.client().await?;
    crate::demo::apply_crd(&client, &options.crd).await?;
    let mut comparisons = Vec::new();
    for &size in &options.sizes {
        let baseline = if options.baseline {
            Some(measure(&cluster, options, size, None).await.context("baseline")?)
        } else {
            None
        };
        let controller =
            measure(&cluster, options, size, Some(&options.controller)).await.context("controller")?;
        report(&report::table(baseline.as_ref(), &controller, options.rate_limit));
        comparisons.push(Comparison { baseline, controller });
    }
    Ok(comparisons)
}

/// Measures one contender (the controller binary, or the baseline if
/// `None`) at `size`.
async fn measure(
    cluster: &TestCluster,
    options: &ScaleOptions,
    size: usize,
    controller: Option<&PathBuf>,
) -> anyhow::Result<Figures> {
    let client = cluster.client().await?;
    let who = if controller.is_some() { "controller" } else { "baseline" };
    let emulator = Emulator::start(
        EmulatorConfig { rate_limit: options.rate_limit, ..EmulatorConfig::default() },
        "127.0.0.1:0".parse()?,
    )
    .await?;
    let namespace = format!("scale-{size}-{who}");
    let mut fleet = Fleet::seed(&emulator, &namespace, size, options.late)?;
    fleet.create_namespace(&client).await?;
    let watch = SecretWatch::start(&client, &namespace);
    let created = Instant::now();
    fleet.apply(&client, &fleet.objects, None).await?;
    tracing::info!(who, size, after = ?created.elapsed(), "ExternalSecrets created");

    let started = Instant::now();
    let (process, baseline) = if let Some(binary) = controller {
        let log = options.log_dir.join(format!("controller-{size}.log"));
        tracing::info!(log = %log.display(), "starting the controller");
        let process = ControllerProcess::start(&ControllerSettings {
            binary: binary.clone(),
            kubeconfig: cluster.kubeconfig_path().to_owned(),
            endpoint: emulator.url(),
            iam_url: emulator.url(),
            api_key: sm_emulator::config::DEFAULT_API_KEY.to_owned(),
            poll_interval_ms: u64::try_from(options.interval.as_millis())?,
            namespaces: namespace.clone(),
            extra_env: vec![("COS_SECRETS_SYNC_LEADER_ELECTION".into(), "false".into())],
            log: Some(log),
        })?;
        (Some(process), None)
    } else {
        let token = emulator.access_token();
        (None, Some(Baseline::start(&client, &namespace, &emulator.url(), token, options.interval)))
    };
    // The controller must converge (its budget sets the pace); the
    // baseline gets the steady window, as it may never.
    let initial_wait = if process.is_some() { initial_sync_wait(size, options) } else { options.steady };
    let everything = fleet.expected(&fleet.objects);
    let synced = watch.wait_for(&everything, initial_wait).await;
    let initial_sync = synced.iter().all(Option::is_some).then(|| started.elapsed());
    tracing::info!(who, size, ?initial_sync, synced = synced.iter().flatten().count(), "initial sync");

    let before = emulator.stats();
    tokio::time::sleep(options.steady).await;
    let after = emulator.stats();
    let requests_per_minute = per_minute(&before, &after, options.steady);
    tracing::info!(who, size, requests_per_minute, "steady window");

    let mut rng = rand::rngs::StdRng::seed_from_u64(size as u64);
    let picks = rand::seq::index::sample(&mut rng, fleet.secrets.len(), options.rotations * 3).into_vec();
    let (rotated, loads) = picks.split_at(options.rotations);
    let (load, paced_load) = loads.split_at(options.rotations);
    let synced_before_rotation = watch.matching(&everything);
    let rotation_start = Instant::now();
    fleet.rotate(&emulator, rotated)?;
    let expected = fleet.expected(fleet.readers(rotated));
    let seen = watch.wait_for(&expected, options.wait).await;
    let pairs: Vec<_> = seen.into_iter().map(|end| (rotation_start, end)).collect();
    log_slowest("rotation", &expected, &pairs);
    let rotation = Latencies::new(pairs, options.wait);
    tracing::info!(who, size, p99 = ?rotation.quantile(0.99), done = rotation.done.len(), "rotation");

    fleet.rotate(&emulator, load)?;
    let first_sync = measure_first_sync(&fleet, &client, &watch, &fleet.late, None, options.wait).await?;
    tracing::info!(who, size, p99 = ?first_sync.quantile(0.99), done = first_sync.done.len(), "first sync under load");
    fleet.rotate(&emulator, paced_load)?;
    let paced_first_sync =
        measure_first_sync(&fleet, &client, &watch, &fleet.paced, Some(PACED_EVERY), options.wait).await?;
    tracing::info!(who, size, p99 = ?paced_first_sync.quantile(0.99), "paced first sync under load");

    let total = emulator.stats();
    let peak_rss = process.as_ref().map(ControllerProcess::peak_rss).transpose()?;
    drop((process, baseline));
    Ok(Figures {
        size,
        requests_per_minute,
        throttled: total.throttled,
        max_arrived_in_1s: total.max_arrived_in_any_1s_window,
        max_admitted_in_1s: total.max_admitted_in_any_1s_window,
        initial_sync,
        synced_before_rotation,
        rotation,
        first_sync,
        paced_first_sync,
        peak_rss,
    })
}

/// Creates `objects` (all at once, or one `every` so often) and measures
/// the time from each creation to its Secret holding the current value.
async fn measure_first_sync(
    fleet: &Fleet,
    client: &kube::Client,
    watch: &SecretWatch,
    objects: &[fleet::Object],
    every: Option<Duration>,
    wait: Duration,
) -> anyhow::Result<Latencies> {
    let sent = fleet.apply(client, objects, every).await?;
    let expected = fleet.expected(objects);
    let seen = watch.wait_for(&expected, wait).await;
    let pairs: Vec<_> = sent.into_iter().zip(seen).collect();
    log_slowest("first sync", &expected, &pairs);
    Ok(Latencies::new(pairs, wait))
}

/// Logs the Secret that took longest in `phase` (or did not make it), to
/// tell an outlier from a trend.
fn log_slowest(phase: &str, expected: &[(String, String)], pairs: &[(Instant, Option<Instant>)]) {
    let slowest = expected.iter().zip(pairs).max_by_key(|(_, (start, end))| {
        end.map_or(Duration::MAX, |end| end.saturating_duration_since(*start))
    });
    if let Some(((secret, _), (start, end))) = slowest {
        let after = end.map(|end| end.saturating_duration_since(*start));
        tracing::info!(phase, secret, ?after, "slowest Secret");
    }
}

/// Twice the time the controller's budget needs to read every secret once
/// (at 90 % of 80 % of the quota), plus the usual wait.
#[allow(clippy::cast_precision_loss)]
fn initial_sync_wait(size: usize, options: &ScaleOptions) -> Duration {
    Duration::from_secs_f64(size as f64 / (f64::from(options.rate_limit) * 0.72) * 2.0) + options.wait
}

#[allow(clippy::cast_precision_loss)]
fn per_minute(before: &RequestStats, after: &RequestStats, window: Duration) -> f64 {
    (after.total - before.total) as f64 * 60.0 / window.as_secs_f64()
}
