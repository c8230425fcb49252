//! Watching the Kubernetes Secrets a contender writes, and turning the
//! moments their values changed into latencies.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};

/// How often a wait re-checks the watched state. The latencies come from
/// the watch events' arrival times, not from this period.
const CHECK_PERIOD: Duration = Duration::from_millis(100);

/// Secret name → its `password` and when the watch saw that value first.
type Seen = HashMap<String, (Vec<u8>, Instant)>;

/// The `password` of every Secret of one namespace and when the watch saw
/// it change last, kept current by a watch until dropped.
#[derive(Debug)]
pub struct SecretWatch {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl SecretWatch {
    /// Starts watching the Secrets of `namespace`.
    pub fn start(client: &Client, namespace: &str) -> Self {
        let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let state = seen.clone();
        let task = tokio::spawn(async move {
            let mut events =
                watcher(api, watcher::Config::default()).default_backoff().applied_objects().boxed();
            while let Some(event) = events.next().await {
                let secret = match event {
                    Ok(secret) => secret,
                    Err(error) => {
                        tracing::warn!(%error, "Secret watch error; the watch resumes");
                        continue;
                    }
                };
                let (Some(name), Some(password)) =
                    (secret.metadata.name, secret.data.and_then(|mut data| data.remove("password")))
                else {
                    continue;
                };
                let mut seen = state.lock().unwrap_or_else(PoisonError::into_inner);
                if seen.get(&name).is_none_or(|(old, _)| *old != password.0) {
                    seen.insert(name, (password.0, Instant::now()));
                }
            }
        });
        Self { seen, task }
    }

    /// How many of `expected` (Secret name, password) hold their password.
    pub fn matching(&self, expected: &[(String, String)]) -> usize {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        expected
            .iter()
            .filter(|(name, password)| seen.get(name).is_some_and(|(value, _)| value == password.as_bytes()))
            .count()
    }

    /// Waits until every Secret of `expected` holds its password, or
    /// `limit` has passed; returns when each got it (`None`: not within the
    /// wait), in the order of `expected`.
    pub async fn wait_for(&self, expected: &[(String, String)], limit: Duration) -> Vec<Option<Instant>> {
        let deadline = Instant::now() + limit;
        loop {
            let done = self.matching(expected) == expected.len();
            if done || Instant::now() >= deadline {
                let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
                return expected
                    .iter()
                    .map(|(name, password)| {
                        seen.get(name).filter(|(value, _)| value == password.as_bytes()).map(|(_, at)| *at)
                    })
                    .collect();
            }
            tokio::time::sleep(CHECK_PERIOD).await;
        }
    }
}

impl Drop for SecretWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Latencies of a set of expected updates, some of which may not have
/// happened within the wait.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    /// Sorted latencies of the updates that happened.
    pub done: Vec<Duration>,
    /// How many updates were expected.
    pub expected: usize,
    /// How long the wait was.
    pub limit: Duration,
}

impl Latencies {
    /// Latencies from each start to its end, for the ends that happened
    /// within a wait of `limit`.
    pub fn new(pairs: impl IntoIterator<Item = (Instant, Option<Instant>)>, limit: Duration) -> Self {
        let mut expected = 0;
        let mut done: Vec<Duration> = pairs
            .into_iter()
            .filter_map(|(start, end)| {
                expected += 1;
                end.map(|end| end.saturating_duration_since(start))
            })
            .collect();
        done.sort_unstable();
        Self { done, expected, limit }
    }

    /// The `q` quantile (nearest rank) over every expected update, counting
    /// the ones that did not happen as slower than the wait; `None` when the
    /// quantile falls among those.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.expected == 0 {
            return None;
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
        let rank = ((q * self.expected as f64).ceil() as usize).clamp(1, self.expected);
        self.done.get(rank - 1).copied()
    }

    /// Whether every expected update happened.
    pub fn complete(&self) -> bool {
        self.done.len() == self.expected
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_count_missing_updates_as_slowest() {
        let start = Instant::now();
        let seen = (1..=100).map(|ms| (start, (ms <= 98).then(|| start + Duration::from_millis(ms))));
        let latencies = Latencies::new(seen.clone(), Duration::from_secs(1));
        assert_eq!(latencies.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(latencies.quantile(0.98), Some(Duration::from_millis(98)));
        assert_eq!(latencies.quantile(0.99), None, "the 99th update never happened");
        assert!(!latencies.complete());
        let all = Latencies::new(seen.take(98), Duration::from_secs(1));
        assert_eq!(all.quantile(1.0), Some(Duration::from_millis(98)));
        assert!(all.complete());
        assert_eq!(Latencies::default().quantile(0.5), None);
    }
}
