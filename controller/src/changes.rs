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
//!
//! A scan lists only the secret groups the recorded secrets are in
//! ([`Changes::scan_groups`]; a secret cannot move between groups), so an
//! instance shared with unrelated secrets in other groups costs no more to
//! scan than the groups the controller reads. A secret in a group the last
//! listing did not cover is recorded all the same: the next scan covers
//! its group.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::provider::{Secret, SecretData, SecretMetadata};

/// What identifies the content of one remote secret: its version count and
/// last update. A rotation adds a version; an edit of the value or metadata
/// moves `updated_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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

/// One remote secret as a sync read it: its version, and the id of the
/// secret group it is in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Read {
    /// Its version.
    pub version: Version,
    /// Its secret group (`secret_group_id`).
    pub group: Option<String>,
}

impl Read {
    /// What a scan can compare for `secret`; `None` if its metadata does not
    /// describe its value (see [`fetched_version`]).
    pub fn of(secret: &Secret) -> Option<Self> {
        Some(Self { version: fetched_version(secret)?, group: secret.metadata.secret_group_id.clone() })
    }
}

/// `reads` as the Secret's versions annotation records them: JSON, by
/// secret id in order. Metadata only: ids, version counts, times, groups.
pub fn encode_reads<'a>(reads: impl IntoIterator<Item = (&'a String, &'a Read)>) -> String {
    let ordered: BTreeMap<&String, &Read> = reads.into_iter().collect();
    serde_json::to_string(&ordered).unwrap_or_default()
}

/// The reads a versions annotation records; `None` if it does not parse.
pub fn decode_reads(annotation: &str) -> Option<HashMap<String, Read>> {
    serde_json::from_str(annotation).ok()
}

/// What the last listing held.
#[derive(Clone, Debug)]
struct Listed {
    /// The ids it returned.
    ids: HashSet<String>,
    /// The groups it covered; `None` for all.
    groups: Option<BTreeSet<String>>,
}

impl Listed {
    /// Whether the listing should have returned secret `id` of `group`.
    fn covers(&self, group: Option<&String>) -> bool {
        match (&self.groups, group) {
            (None, _) => true,
            (Some(groups), Some(group)) => groups.contains(group),
            (Some(_), None) => false,
        }
    }
}

/// The versions each object last synced, and which objects read each
/// secret. `K` names an object (an `ObjectRef` in the controller).
#[derive(Clone, Debug)]
pub struct Changes<K> {
    /// By object: every secret id it read, with its version and group.
    synced: HashMap<K, HashMap<String, Read>>,
    /// By secret id: the objects that read it.
    readers: HashMap<String, HashSet<K>>,
    /// The last listing; `None` before the first.
    listed: Option<Listed>,
}

impl<K> Default for Changes<K> {
    fn default() -> Self {
        Self { synced: HashMap::new(), readers: HashMap::new(), listed: None }
    }
}

impl<K: Clone + Eq + Hash> Changes<K> {
    /// Records that `object` synced `reads` (secret id → what it read),
    /// replacing what it synced before, and returns `true`; or, if it read
    /// a secret the last listing should have held but did not, forgets it
    /// and returns `false`: scans cannot see that secret change (and would
    /// refresh its readers at every scan, as if it were deleted). A secret
    /// created after the last listing is recorded by the next sync after
    /// the next.
    pub fn record(&mut self, object: K, reads: HashMap<String, Read>) -> bool {
        self.forget(&object);
        let unseen = |listed: &Listed| {
            reads.iter().any(|(id, read)| listed.covers(read.group.as_ref()) && !listed.ids.contains(id))
        };
        if self.listed.as_ref().is_some_and(unseen) {
            return false;
        }
        for id in reads.keys() {
            self.readers.entry(id.clone()).or_default().insert(object.clone());
        }
        self.synced.insert(object, reads);
        true
    }

    /// What `object` last synced, if it has a record.
    pub fn reads_of(&self, object: &K) -> Option<&HashMap<String, Read>> {
        self.synced.get(object)
    }

    /// The groups a scan must list: those of every recorded secret; `None`
    /// for all groups, when a recorded secret's group is unknown. Empty
    /// when nothing is recorded: a scan has nothing to compare, and
    /// [`Changes::skip_listing`] says so.
    pub fn scan_groups(&self) -> Option<BTreeSet<String>> {
        self.synced.values().flat_map(HashMap::values).map(|read| read.group.clone()).collect()
    }

    /// A scan found nothing recorded and listed nothing: the next records
    /// are not checked against an older listing.
    pub fn skip_listing(&mut self) {
        self.listed = None;
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
    /// `current`, the version of every listed secret by id, from a listing
    /// of `groups` (`None`: all). Records of objects not in `known`
    /// (deleted while nobody watched) are dropped.
    pub fn to_refresh(
        &mut self,
        known: &HashSet<K>,
        current: &HashMap<String, Version>,
        groups: Option<BTreeSet<String>>,
    ) -> Vec<K> {
        let gone: Vec<K> = self.synced.keys().filter(|object| !known.contains(*object)).cloned().collect();
        for object in &gone {
            self.forget(object);
        }
        self.listed = Some(Listed { ids: current.keys().cloned().collect(), groups });
        let mut refresh = HashSet::new();
        for (id, readers) in &self.readers {
            for object in readers {
                let synced =
                    self.synced.get(object).and_then(|reads| reads.get(id)).map(|read| &read.version);
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

    /// Reads of secrets in the default group.
    fn reads(entries: &[(&str, Version)]) -> HashMap<String, Read> {
        in_group("default", entries)
    }

    fn in_group(group: &str, entries: &[(&str, Version)]) -> HashMap<String, Read> {
        let read = |version: Version| Read { version, group: Some(group.to_owned()) };
        entries.iter().map(|(id, version)| ((*id).to_owned(), read(*version))).collect()
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
        changes.record("a", reads(&[("s1", version(1, T1))]));
        changes.record("b", reads(&[("s1", version(1, T1)), ("s2", version(3, T1))]));
        changes.record("c", reads(&[("s3", version(1, T1))]));
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
        assert!(changes.to_refresh(&known(&["a", "b", "c"]), &current, None).is_empty());
    }

    #[test]
    fn a_new_version_refreshes_every_reader() {
        let mut changes = synced();
        let current = listing(&[("s1", version(2, T2)), ("s2", version(3, T1)), ("s3", version(1, T1))]);
        assert_eq!(sorted(changes.to_refresh(&known(&["a", "b", "c"]), &current, None)), ["a", "b"]);
    }

    #[test]
    fn an_update_without_a_new_version_refreshes() {
        let mut changes = synced();
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(1, T2))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &current, None), ["c"]);
    }

    #[test]
    fn a_deleted_secret_refreshes_its_readers() {
        let mut changes = synced();
        let current = listing(&[("s1", version(1, T1)), ("s3", version(1, T1))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &current, None), ["b"]);
    }

    #[test]
    fn unsynced_and_forgotten_objects_are_left_alone() {
        let mut changes = synced();
        changes.forget(&"c");
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(2, T2))]);
        assert!(
            changes.to_refresh(&known(&["a", "b", "c", "new"]), &current, None).is_empty(),
            "their own sync or retry is queued already"
        );
    }

    #[test]
    fn a_secret_the_listing_misses_is_not_recorded() {
        let mut changes = synced();
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &current, None), ["c"], "s3 is not listed");
        // The read of s3 succeeded nonetheless: c is left to its slots.
        assert!(!changes.record("c", reads(&[("s3", version(1, T1))])));
        assert!(changes.to_refresh(&known(&["a", "b", "c"]), &current, None).is_empty());
        assert!(changes.record("a", reads(&[("s1", version(1, T1))])), "listed secrets are recorded");
        // Once listed, it is recorded again.
        let current = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(1, T1))]);
        assert!(changes.to_refresh(&known(&["a", "b", "c"]), &current, None).is_empty());
        assert!(changes.record("c", reads(&[("s3", version(1, T1))])));
        let rotated = listing(&[("s1", version(1, T1)), ("s2", version(3, T1)), ("s3", version(2, T2))]);
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c"]), &rotated, None), ["c"]);
    }

    #[test]
    fn a_new_record_replaces_the_old_one() {
        let mut changes = synced();
        changes.record("b", reads(&[("s3", version(1, T1))]));
        let current = listing(&[("s1", version(2, T2)), ("s3", version(1, T1))]);
        assert_eq!(
            changes.to_refresh(&known(&["a", "b", "c"]), &current, None),
            ["a"],
            "b no longer reads s1 or s2"
        );
    }

    #[test]
    fn scans_list_the_groups_of_recorded_secrets() {
        let mut changes: Changes<&'static str> = Changes::default();
        assert_eq!(changes.scan_groups(), Some(BTreeSet::new()), "nothing recorded, nothing to list");
        changes.record("a", in_group("g1", &[("s1", version(1, T1))]));
        changes.record("b", in_group("g2", &[("s2", version(1, T1))]));
        changes.record("c", in_group("g1", &[("s3", version(1, T1))]));
        let groups: BTreeSet<String> = ["g1".to_owned(), "g2".to_owned()].into();
        assert_eq!(changes.scan_groups(), Some(groups.clone()));

        // A listing of g1 and g2; s4 of g3 was not covered, so its reader
        // is recorded and the next scan lists g3 too.
        let current = listing(&[("s1", version(1, T1)), ("s2", version(1, T1)), ("s3", version(1, T1))]);
        assert!(changes.to_refresh(&known(&["a", "b", "c", "d"]), &current, Some(groups.clone())).is_empty());
        assert!(changes.record("d", in_group("g3", &[("s4", version(1, T1))])));
        assert_eq!(changes.scan_groups().map(|groups| groups.len()), Some(3));
        // A secret of a covered group that the listing missed is not.
        assert!(!changes.record("e", in_group("g1", &[("s5", version(1, T1))])));

        // A secret deleted from a listed group still refreshes its reader.
        let current = listing(&[("s1", version(1, T1)), ("s2", version(1, T1)), ("s4", version(1, T1))]);
        let all: BTreeSet<String> = ["g1", "g2", "g3"].map(str::to_owned).into();
        assert_eq!(changes.to_refresh(&known(&["a", "b", "c", "d"]), &current, Some(all)), ["c"]);

        // An unknown group means listing all of them.
        let unknown = Read { version: version(1, T1), group: None };
        changes.record("f", [("s6".to_owned(), unknown)].into());
        assert_eq!(changes.scan_groups(), None);
        changes.skip_listing();
        assert!(changes.listed.is_none());
    }

    #[test]
    fn reads_round_trip_through_the_annotation() {
        let recorded = in_group("g1", &[("s2", version(3, T2)), ("s1", version(1, T1))]);
        let annotation = encode_reads(&recorded);
        assert!(annotation.find("\"s1\"") < annotation.find("\"s2\""), "by id, in order: {annotation}");
        assert!(annotation.contains("\"versions_total\":3") && annotation.contains("\"group\":\"g1\""));
        assert_eq!(decode_reads(&annotation).as_ref(), Some(&recorded));
        assert_eq!(decode_reads("not json"), None);
        let mut changes: Changes<&'static str> = Changes::default();
        assert_eq!(changes.reads_of(&"a"), None);
        changes.record("a", decode_reads(&annotation).unwrap());
        assert_eq!(changes.reads_of(&"a"), Some(&recorded));
    }

    #[test]
    fn per_read_credentials_have_no_version() {
        let user = secret(json!({
            "secret_type": "username_password", "username": "app", "password": "pw",
            "versions_total": 2, "updated_at": T1,
        }));
        assert_eq!(fetched_version(&user), Some(version(2, T1)));
        assert_eq!(Read::of(&user).and_then(|read| read.group), user.metadata.secret_group_id);
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
        assert_eq!(changes.to_refresh(&known(&["a"]), &current, None), ["a"]);
        assert_eq!(changes.synced.len(), 1);
        assert!(!changes.readers.contains_key("s3"));
        changes.clear();
        assert!(changes.synced.is_empty() && changes.readers.is_empty() && changes.listed.is_none());
    }
}
