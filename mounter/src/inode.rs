//! The inode table: stable inode numbers for the keys the kernel has seen.
//!
//! An inode is a (parent, name) pair with a kind. A file's key is its
//! parent's prefix plus its name; a directory's prefix adds a `/`. Inodes
//! live for the whole mount (the kernel's `forget` is not tracked), which
//! keeps numbers stable; memory grows with the number of names looked up.
//! If a name changes kind on the server (a file replaced by a directory), a
//! new inode replaces the old one.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Instant, SystemTime};

use crate::store::ObjectMeta;

/// The root directory's inode number.
pub const ROOT: u64 = 1;

/// File or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A regular file: one object.
    File,
    /// A directory: a key prefix.
    Dir,
}

/// What is known of an inode's attributes.
#[derive(Debug, Clone)]
pub struct Stat {
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// When the attributes were last confirmed by the server.
    pub validated: Option<Instant>,
    /// Whether the file is being written and not yet uploaded.
    pub pending: bool,
    /// The object's ETag as last seen (empty if unknown).
    pub etag: String,
}

/// A directory's children by name, with what the listing said of each file.
pub type Children = BTreeMap<String, (Kind, Option<ObjectMeta>)>;

/// A cached directory listing.
#[derive(Debug, Clone)]
pub struct Listing {
    /// When it was fetched.
    pub fetched: Instant,
    /// Children by name.
    pub children: Children,
}

/// One file or directory.
#[derive(Debug)]
pub struct Inode {
    /// Its number.
    pub ino: u64,
    /// Its parent's number.
    pub parent: u64,
    /// Its name in the parent.
    pub name: String,
    /// Object key (file) or key prefix ending in `/` (directory; empty for the root of a bucket).
    pub key: String,
    /// File or directory.
    pub kind: Kind,
    stat: Mutex<Stat>,
    listing: Mutex<Option<Listing>>,
    /// Changes made through the mount (see [`Inode::forget_listing`]).
    changes: AtomicU64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Inode {
    /// Its attributes.
    pub fn stat(&self) -> MutexGuard<'_, Stat> {
        lock(&self.stat)
    }

    /// Its cached listing (directories).
    pub fn listing(&self) -> MutexGuard<'_, Option<Listing>> {
        lock(&self.listing)
    }

    /// Drops the cached listing after a change through the mount.
    pub fn forget_listing(&self) {
        let mut listing = self.listing();
        *listing = None;
        self.changes.fetch_add(1, Ordering::Relaxed);
    }

    /// A count of [`Inode::forget_listing`] calls: read it before listing,
    /// and pass it to [`Inode::cache_listing`].
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Caches `listing`, unless the directory changed through the mount
    /// since `changes` was read: the listing may then predate the change.
    pub fn cache_listing(&self, changes: u64, listing: Listing) {
        let mut slot = self.listing();
        if self.changes.load(Ordering::Relaxed) == changes {
            *slot = Some(listing);
        }
    }

    /// The key of a child named `name`, as a file or as a directory prefix.
    pub fn child_key(&self, name: &str, kind: Kind) -> String {
        match kind {
            Kind::File => format!("{}{name}", self.key),
            Kind::Dir => format!("{}{name}/", self.key),
        }
    }

    /// Updates the attributes from server metadata.
    pub fn validate(&self, meta: Option<&ObjectMeta>) {
        let mut stat = self.stat();
        if let Some(meta) = meta {
            stat.size = meta.size;
            stat.mtime = meta.modified;
            stat.etag.clone_from(&meta.etag);
        }
        stat.validated = Some(Instant::now());
    }
}

#[derive(Debug)]
struct Table {
    by_ino: HashMap<u64, Arc<Inode>>,
    by_name: HashMap<(u64, String), u64>,
    pending: HashSet<u64>,
    next: u64,
}

/// All inodes of a mount.
#[derive(Debug)]
pub struct InodeTable {
    table: Mutex<Table>,
}

impl InodeTable {
    /// A table holding only the root, whose prefix is `root_prefix`.
    pub fn new(root_prefix: String) -> Self {
        let root = Arc::new(Inode {
            ino: ROOT,
            parent: ROOT,
            name: String::new(),
            key: root_prefix,
            kind: Kind::Dir,
            stat: Mutex::new(Stat {
                size: 0,
                mtime: SystemTime::now(),
                validated: None,
                pending: false,
                etag: String::new(),
            }),
            listing: Mutex::new(None),
            changes: AtomicU64::new(0),
        });
        let table = Table {
            by_ino: HashMap::from([(ROOT, root)]),
            by_name: HashMap::new(),
            pending: HashSet::new(),
            next: ROOT + 1,
        };
        Self { table: Mutex::new(table) }
    }

    /// The inode numbered `ino`.
    pub fn get(&self, ino: u64) -> Option<Arc<Inode>> {
        lock(&self.table).by_ino.get(&ino).cloned()
    }

    /// The inode currently known under (parent, name), if any.
    pub fn find(&self, parent: u64, name: &str) -> Option<Arc<Inode>> {
        let table = lock(&self.table);
        table.by_name.get(&(parent, name.to_owned())).and_then(|ino| table.by_ino.get(ino)).cloned()
    }

    /// The inode for (parent, name) of `kind`: the known one if the kind
    /// matches, else a new one. `meta` refreshes a file's attributes.
    pub fn child(&self, parent: &Inode, name: &str, kind: Kind, meta: Option<&ObjectMeta>) -> Arc<Inode> {
        let mut table = lock(&self.table);
        let existing =
            table.by_name.get(&(parent.ino, name.to_owned())).and_then(|ino| table.by_ino.get(ino));
        if let Some(inode) = existing
            && inode.kind == kind
        {
            let inode = inode.clone();
            drop(table);
            inode.validate(meta);
            return inode;
        }
        let ino = table.next;
        table.next += 1;
        let inode = Arc::new(Inode {
            ino,
            parent: parent.ino,
            name: name.to_owned(),
            key: parent.child_key(name, kind),
            kind,
            stat: Mutex::new(Stat {
                size: meta.map_or(0, |m| m.size),
                mtime: meta.map_or_else(SystemTime::now, |m| m.modified),
                validated: Some(Instant::now()),
                pending: false,
                etag: meta.map(|m| m.etag.clone()).unwrap_or_default(),
            }),
            listing: Mutex::new(None),
            changes: AtomicU64::new(0),
        });
        table.by_ino.insert(ino, inode.clone());
        table.by_name.insert((parent.ino, name.to_owned()), ino);
        inode
    }

    /// Forgets the name (parent, name); the inode number stays valid for
    /// open handles.
    pub fn remove(&self, parent: u64, name: &str) {
        let mut table = lock(&self.table);
        if let Some(ino) = table.by_name.remove(&(parent, name.to_owned())) {
            table.pending.remove(&ino);
        }
    }

    /// Marks a file as being written (or no longer).
    pub fn set_pending(&self, inode: &Inode, pending: bool) {
        inode.stat().pending = pending;
        let mut table = lock(&self.table);
        if pending {
            table.pending.insert(inode.ino);
        } else {
            table.pending.remove(&inode.ino);
        }
    }

    /// Files being written in directory `parent`.
    pub fn pending_children(&self, parent: u64) -> Vec<Arc<Inode>> {
        let table = lock(&self.table);
        table
            .pending
            .iter()
            .filter_map(|ino| table.by_ino.get(ino))
            .filter(|i| i.parent == parent)
            .cloned()
            .collect()
    }
}
