//! Change detection: which ExternalSecrets must be refreshed, given what
//! each one last synced and a fresh listing of secret metadata. Pure: no
//! Kubernetes or HTTP types, no clock.
//!
//! After a successful sync the controller [records](Changes::record) the
//! [`Version`] (`versions_total` and `updated_at`) of every remote secret the
//! object read, by secret id; a `keyByName` reference is known by the id of
//! the secret its read returned. A metadata scan (`list_secrets`) then
//! yields the current version of every secret, and
//! [`Changes::to_refresh`] names the objects that need a new read:
//!
//! - one that read a secret whose version differs from the one it synced;
//! - one that read a secret the listing no longer holds (deleted, or moved
//!   out of reach), so its read fails and the error surfaces in status.
//!
//! An object with no record is left alone: it has not synced since the
//! controller started (the start syncs it), its last sync failed (its retry
//! is scheduled), or it reads a secret whose metadata does not describe its
//! value (see [`fetched_version`]) or that the last listing did not hold
//! although the read found it (no permission to list its group, say): such
//! an object is refreshed on its own slots, since scans cannot see its
//! changes. So a scan never repeats work the controller has already queued,
//! and the first scan need not wait for the first syncs.
//!
//! Every other object holds what Secrets Manager holds and costs nothing
//! until the next full refresh (see `docs/scheduling.md`).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;

use jiff::Timestamp;

use crate::provider::{Secret, SecretData, SecretMetadata};

/// What identifies the content of one remote secret: its version count and
/// last update. A rotation adds a version; an edit of the value or metadata
/// moves `updated_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// The number of versions (`versions_total`).
    pub versions_total: Option<u64>,
    /// The last update (`updated_at`).
    pub updated_at: Option<Timestamp>,
}

impl Version {
    /// The version `metadata` describes.
    pub fn of(metadata: &SecretMetadata) -> Self {
        Self { versions_total: metadata.versions_total, updated_at: metadata.updated_at }
    }
}

/// The version of a fetched secret, or `None` when a read of the same
/// version can return another value: an `iam_credentials` secret without
/// `reuse_api_key: true` makes a new API key (with its own `ttl`) on every
/// read, so an object reading it is refreshed at every scan, as without
/// change detection.
pub fn fetched_version(secret: &Secret) -> Option<Version> {
    match &secret.data {
        SecretData::IamCredentials(data) if data.reuse_api_key != Some(true) => None,
        _ => Some(Version::of(&secret.metadata)),
    }
}

/// The versions each object last synced, and which objects read each
/// secret. `K` names an object (an `ObjectRef` in the controller).
#[derive(Clone, Debug)]
pub struct Changes<K> {
    /// By object: the version of every secret id it read.
    synced: HashMap<K, HashMap<String, Version>>,
    /// By secret id: the objects that read it.
    readers: HashMap<String, HashSet<K>>,
    /// The secret ids of the last listing; `None` before the first.
    listed: Option<HashSet<String>>,
}

impl<K> Default for Changes<K> {
    fn default() -> Self {
        Self { synced: HashMap::new(), readers: HashMap::new(), listed: None }
    }
}

impl<K: Clone + Eq + Hash> Changes<K> {
    /// Records that `object` synced `versions` (secret id → version),
    /// replacing what it synced before, and returns `true`; or, if it read
    /// a secret the last listing did not hold, forgets it and returns
    /// `false`: scans cannot see that secret change (and would refresh its
    /// readers at every scan, as if it were deleted). A secret created
    /// after the last listing is recorded by the next sync after the next.
    pub fn record(&mut self, object: K, versions: HashMap<String, Version>) -> bool {
        self.forget(&object);
        if self.listed.as_ref().is_some_and(|listed| versions.keys().any(|id| !listed.contains(id))) {
            return false;
        }
        for id in versions.keys() {
            self.readers.entry(id.clone()).or_default().insert(object.clone());
        }
        self.synced.insert(object, versions);
        true
    }

    /// Forgets `object` (deleted, its sync failed, or it reads a secret
    /// without a version): scans no longer refresh it.
    pub fn forget(&mut self, object: &K) {
        let Some(versions) = self.synced.remove(object) else { return };
        for id in versions.keys() {
            if let Some(readers) = self.readers.get_mut(id) {
                readers.remove(object);
                if readers.is_empty() {
                    self.readers.remove(id);
                }
            }
        }
    }

    /// Forgets every object and the last listing.
    pub fn clear(&mut self) {
        self.synced.clear();
        self.readers.clear();
        self.listed = None;
    }

    /// The recorded objects among `known` that must be refreshed, given
    /// `current`, the version of every listed secret by id. Records of
    /// objects not in `known` (deleted while nobody watched) are dropped.
    pub fn to_refresh(&mut self, known: &HashSet<K>, current: &HashMap<String, Version>) -> Vec<K> {
        let gone: Vec<K> = self.synced.keys().filter(|object| !known.contains(*object)).cloned().collect();
        for object in &gone {
            self.forget(object);
        }
        self.listed = Some(current.keys().cloned().collect());
        let mut refresh = HashSet::new();
        for (id, readers) in &self.readers {
            for object in readers {
                let synced = self.synced.get(object).and_then(|versions| versions.get(id));
                if synced != current.get(id) {
                    refresh.insert(object.clone());
                }
            }
        }
        refresh.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fixtures::secret;

    fn version(versions_total: u64, updated_at: &str) -> Version {
        Version { versions_total: Some(versions_total), updated_at: Some(updated_at.parse().unwrap()) }
    }

    const T1: &str = "2025-01-10T09:00:00Z";
    const T2: &str = "2025-01-11T09:00:00Z";

    fn listing(entries: &[(&str, Version)]) -> HashMap<String, Version> {
        entries.iter().map(|(id, version)| ((*id).to_owned(), *version)).collect()
    }

    fn known(objects: &[&'static str]) -> HashSet<&'static str> {
        objects.iter().copied().collect()
    }

    fn sorted(mut objects: Vec<&'static str>) -> Vec<&'static str> {
        objects.sort_unstable();
        objects
    }

    /// `a` reads `s1`; `b` reads `s1` and `s2`; `c` reads `s3`.
    fn synced() -> Changes<&'static str> {
        let mut changes = Changes::default();
        changes.record("a", listing(&[("s1", version(1, T1))]));
        changes.record("b", listing(&[("s1", version(1, T1)), ("s2", version(3, T1))]));
        changes.record("c", listing(&[("s3", version(1, T1))]));
        changes
    }

    #[test]
    fn unchanged_secrets_refresh_nothing() {
        let mut changes = synced();
        let current = listing(&[
            ("s1", version(1, T1)),
            ("s2", version(3, T1)),
            ("s3", version(1, T1)),
            ("unread", version(7, T2)),
        ]);
        assert!(changes.to_refresh(&known(&["a", "b", "c"]), &current).is_empty());
    }

    #[test]
    fn a_new_version_refreshes_every_reader() {
        let mut changes = synced();
        let current = listing(&[("s1", version(2, T2)), ("s2", version(3, T1)), ("s3", version(1, T1))]);
        assert_eq!(sorted(changes.to_refresh(&known(&["a", "b", "c"]), &current)), ["a", "b"]);
    }

    #[test]
    fn an_update_without_a_new_version_refreshes() {
        let mut changes = synced();
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(1, T2))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &current), ["c"]);
    }

    #[test]
    fn a_deleted_secret_refreshes_its_readers() {
        let mut changes = synced();
        let current = listing(&[("s1", version(1, T1)), ("s3", version(1, T1))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &current), ["b"]);
    }

    #[test]
    fn unsynced_and_forgotten_objects_are_left_alone() {
        let mut changes = synced();
        changes.forget(&"c");
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(2, T2))]);
        assert!(
            changes.to_refresh(&known(&["a", "b", "c", "new"]), &current).is_empty(),
            "their own sync or retry is queued already"
        );
    }

    #[test]
    fn a_secret_the_listing_misses_is_not_recorded() {
        let mut changes = synced();
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &current), ["c"], "s3 is not listed");
        // The read of s3 succeeded nonetheless: c is left to its slots.
        assert!(!changes.record("c", listing(&[("s3", version(1, T1))])));
        assert!(changes.to_refresh(&known(&["a", "b", "c"]), &current).is_empty());
        assert!(changes.record("a", listing(&[("s1", version(1, T1))])), "listed secrets are recorded");
        // Once listed, it is recorded again.
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(1, T1))]);
        assert!(changes.to_refresh(&known(&["a", "b", "c"]), &current).is_empty());
        assert!(changes.record("c", listing(&[("s3", version(1, T1))])));
        let rotated = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(2, T2))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &rotated), ["c"]);
    }

    #[test]
    fn a_new_record_replaces_the_old_one() {
        let mut changes = synced();
        changes.record("b", listing(&[("s3", version(1, T1))]));
        let current = listing(&[("s1", version(2, T2)), ("s3", version(1, T1))]);
        assert_eq!(
            changes.to_refresh(&known(&["a", "b", "c"]), &current),
            ["a"],
            "b no longer reads s1 or s2"
        );
    }

    #[test]
    fn per_read_credentials_have_no_version() {
        let user = secret(json!({
            "secret_type": "username_password", "username": "app", "password": "pw",
            "versions_total": 2, "updated_at": T1,
        }));
        assert_eq!(fetched_version(&user), Some(version(2, T1)));
        let iam = |reuse: serde_json::Value| {
            secret(
                json!({"secret_type": "iam_credentials", "api_key": "k", "reuse_api_key": reuse, "ttl": "1d"}),
            )
        };
        assert!(fetched_version(&iam(json!(true))).is_some(), "a reused key changes only by rotation");
        assert_eq!(fetched_version(&iam(json!(false))), None, "a new key on every read");
        assert_eq!(fetched_version(&iam(json!(null))), None);
    }

    #[test]
    fn objects_no_longer_known_are_dropped() {
        let mut changes = synced();
        let current = listing(&[("s1", version(2, T2))]);
        assert_eq!(changes.to_refresh(&known(&["a"]), &current), ["a"]);
        assert_eq!(changes.synced.len(), 1);
        assert!(!changes.readers.contains_key("s3"));
        changes.clear();
        assert!(changes.synced.is_empty() && changes.readers.is_empty() && changes.listed.is_none());
    }
}
