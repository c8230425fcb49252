//! [`Dedupe`]: a [`SecretsManager`] decorator that shares value reads of
//! the same remote secret between ExternalSecrets.
//!
//! Several ExternalSecrets often read one remote secret. `Dedupe` makes the
//! reads of one key (an id, or group, type and name) single-flight: while a
//! read is in flight, others of the same key wait for it instead of sending
//! their own. A successful answer is then kept for a short time (the TTL)
//! and handed to reads of the same key within it. Only the exact key a
//! caller asks for is ever answered from the cache, so an ExternalSecret
//! sees nothing its own spec does not reference; a by-name read and a by-id
//! read of the same secret are separate keys.
//!
//! Failures are not shared: the waiters wake and one of them reads again
//! (errors do not clone, and a transient error should not fail everyone).
//! A reader that is cancelled mid-read leaves its waiters to read again.
//!
//! Not done yet: keying by `(id, version)` with list-metadata scans to see
//! which versions changed (see `docs/scheduling.md`). The TTL bounds how
//! much later than without the cache a rotation can arrive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::budget::{Priority, current_priority};
use super::{
    ListSecretsParams, Result, Secret, SecretMetadata, SecretMetadataPage, SecretType, SecretVersion,
    SecretsManager, VersionRef,
};

/// Which secret a value read asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum ReadKey {
    Id(String),
    Name { group: String, secret_type: SecretType, name: String },
}

/// A read in flight, or its fresh answer.
enum Read {
    /// Closes (its sender drops) when the read ends, however it ends; the
    /// class the read waits for its permit in.
    InFlight(watch::Receiver<()>, Priority),
    Done {
        at: Instant,
        secret: Box<Secret>,
    },
}

/// Shares `get_secret` and `get_secret_by_name` answers between concurrent
/// and closely following callers; everything else passes through.
pub struct Dedupe<P> {
    inner: P,
    ttl: Duration,
    reads: Mutex<HashMap<ReadKey, Read>>,
}

impl<P> std::fmt::Debug for Dedupe<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl<P: SecretsManager> Dedupe<P> {
    /// Wraps `inner`, keeping answers for `ttl`.
    pub fn new(inner: P, ttl: Duration) -> Self {
        Self { inner, ttl, reads: Mutex::default() }
    }

    /// Reads `key` with `fetch`, unless a read of it is in flight (then
    /// waits for that) or answered within the TTL.
    async fn read<Fut>(&self, key: ReadKey, fetch: impl FnOnce() -> Fut) -> Result<Secret>
    where
        Fut: Future<Output = Result<Secret>>,
    {
        let priority = current_priority();
        let sender = loop {
            let mut waiter = {
                let mut reads = self.reads();
                match reads.get(&key) {
                    Some(Read::Done { at, secret }) if at.elapsed() < self.ttl => {
                        return Ok(Secret::clone(secret));
                    }
                    // A read in a lower class could keep this caller
                    // waiting behind a whole queue of that class: it sends
                    // its own, which later callers join.
                    Some(Read::InFlight(waiter, class))
                        if waiter.has_changed().is_ok() && *class >= priority =>
                    {
                        waiter.clone()
                    }
                    _ => {
                        // Nobody reads it: this caller does. Drop stale
                        // answers on the way.
                        let ttl = self.ttl;
                        reads.retain(|_, read| match read {
                            Read::Done { at, .. } => at.elapsed() < ttl,
                            Read::InFlight(waiter, _) => waiter.has_changed().is_ok(),
                        });
                        let (sender, receiver) = watch::channel(());
                        reads.insert(key.clone(), Read::InFlight(receiver, priority));
                        break sender;
                    }
                }
            };
            // Ends when the reader's sender drops.
            let _ = waiter.changed().await;
        };
        // The read runs in this caller's task, so it waits for its budget
        // permit in this caller's class (see `budget::Priority`); callers of
        // the same or a lower class share it, higher ones read themselves.
        let result = fetch().await;
        {
            let mut reads = self.reads();
            match &result {
                Ok(secret) => {
                    reads.insert(key, Read::Done { at: Instant::now(), secret: Box::new(secret.clone()) });
                }
                Err(_) => {
                    reads.remove(&key);
                }
            }
        }
        drop(sender);
        result
    }

    fn reads(&self) -> std::sync::MutexGuard<'_, HashMap<ReadKey, Read>> {
        self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<P: SecretsManager> SecretsManager for Dedupe<P> {
    async fn get_secret(&self, id: &str) -> Result<Secret> {
        self.read(ReadKey::Id(id.to_owned()), || self.inner.get_secret(id)).await
    }

    async fn get_secret_by_name(&self, group: &str, secret_type: SecretType, name: &str) -> Result<Secret> {
        let key = ReadKey::Name { group: group.to_owned(), secret_type, name: name.to_owned() };
        self.read(key, || self.inner.get_secret_by_name(group, secret_type, name)).await
    }

    async fn get_secret_metadata(&self, id: &str) -> Result<SecretMetadata> {
        self.inner.get_secret_metadata(id).await
    }

    async fn list_secrets(&self, params: &ListSecretsParams) -> Result<SecretMetadataPage> {
        self.inner.list_secrets(params).await
    }

    async fn get_secret_version(&self, secret_id: &str, version: &VersionRef) -> Result<SecretVersion> {
        self.inner.get_secret_version(secret_id, version).await
    }

    fn request_budget(&self) -> Option<f64> {
        self.inner.request_budget()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use serde_json::json;

    use super::*;
    use crate::fixtures::secret;
    use crate::provider::Error;
    use crate::provider::budget::with_priority;

    /// Answers reads after 100 ms, the first `failures` of them with an
    /// error, and counts them.
    #[derive(Default)]
    struct Slow {
        reads: AtomicUsize,
        failures: AtomicUsize,
    }

    impl Slow {
        async fn answer(&self, id: &str) -> Result<Secret> {
            let read = self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            if read < self.failures.load(Ordering::SeqCst) {
                return Err(Error::EmptyParameter { parameter: "id" });
            }
            Ok(secret(json!({"secret_type": "arbitrary", "id": id, "payload": id})))
        }
    }

    impl SecretsManager for Slow {
        async fn get_secret(&self, id: &str) -> Result<Secret> {
            self.answer(id).await
        }

        async fn get_secret_by_name(&self, _: &str, _: SecretType, name: &str) -> Result<Secret> {
            self.answer(name).await
        }

        async fn get_secret_metadata(&self, _: &str) -> Result<SecretMetadata> {
            unreachable!()
        }

        async fn list_secrets(&self, _: &ListSecretsParams) -> Result<SecretMetadataPage> {
            unreachable!()
        }

        async fn get_secret_version(&self, _: &str, _: &VersionRef) -> Result<SecretVersion> {
            unreachable!()
        }
    }

    fn payload(secret: &Secret) -> String {
        String::from_utf8(secret.value(None).unwrap().expose_secret().to_vec()).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_and_following_reads_share_one_request() {
        let dedupe = Arc::new(Dedupe::new(Slow::default(), Duration::from_secs(1)));
        let reads: Vec<_> = ["a", "a", "a", "b"]
            .into_iter()
            .map(|id| {
                let dedupe = Arc::clone(&dedupe);
                tokio::spawn(async move { dedupe.get_secret(id).await.map(|secret| payload(&secret)) })
            })
            .collect();
        let mut answers = Vec::new();
        for read in reads {
            answers.push(read.await.unwrap().unwrap());
        }
        assert_eq!(answers, ["a", "a", "a", "b"], "each caller gets the key it asked for");
        assert_eq!(dedupe.inner.reads.load(Ordering::SeqCst), 2);

        assert_eq!(payload(&dedupe.get_secret("a").await.unwrap()), "a");
        assert_eq!(dedupe.inner.reads.load(Ordering::SeqCst), 2, "answered within the TTL");
        let by_name = dedupe.get_secret_by_name("default", SecretType::Arbitrary, "a").await.unwrap();
        assert_eq!(payload(&by_name), "a");
        assert_eq!(dedupe.inner.reads.load(Ordering::SeqCst), 3, "a by-name read is another key");

        tokio::time::sleep(Duration::from_secs(2)).await;
        dedupe.get_secret("a").await.unwrap();
        assert_eq!(dedupe.inner.reads.load(Ordering::SeqCst), 4, "read again after the TTL");
    }

    #[tokio::test(start_paused = true)]
    async fn a_higher_class_does_not_wait_for_a_lower_one() {
        let dedupe = Arc::new(Dedupe::new(Slow::default(), Duration::from_secs(1)));
        let spawn = |priority| {
            let dedupe = Arc::clone(&dedupe);
            tokio::spawn(with_priority(priority, async move { dedupe.get_secret("a").await.is_ok() }))
        };
        let periodic = spawn(Priority::Periodic);
        tokio::task::yield_now().await;
        let urgent = spawn(Priority::Urgent);
        tokio::task::yield_now().await;
        let changed = spawn(Priority::Changed);
        let later_periodic = spawn(Priority::Periodic);
        for read in [periodic, urgent, changed, later_periodic] {
            assert!(read.await.unwrap());
        }
        assert_eq!(
            dedupe.inner.reads.load(Ordering::SeqCst),
            2,
            "the urgent read goes alone; the others share one of the two"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_not_shared_or_kept() {
        let dedupe = Arc::new(Dedupe::new(Slow::default(), Duration::from_secs(1)));
        dedupe.inner.failures.store(1, Ordering::SeqCst);
        let first = {
            let dedupe = Arc::clone(&dedupe);
            tokio::spawn(async move { dedupe.get_secret("a").await.is_err() })
        };
        tokio::task::yield_now().await;
        // Waits for the failing read, then reads itself.
        assert_eq!(payload(&dedupe.get_secret("a").await.unwrap()), "a");
        assert!(first.await.unwrap());
        assert_eq!(dedupe.inner.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_reader_does_not_block_others() {
        let dedupe = Dedupe::new(Slow::default(), Duration::from_secs(1));
        let cancelled = tokio::time::timeout(Duration::from_millis(10), dedupe.get_secret("a")).await;
        assert!(cancelled.is_err());
        assert_eq!(payload(&dedupe.get_secret("a").await.unwrap()), "a");
        assert_eq!(dedupe.inner.reads.load(Ordering::SeqCst), 2);
    }
}
