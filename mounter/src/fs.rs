//! The filesystem core: POSIX-ish operations over an [`ObjectStore`],
//! independent of the FUSE bindings.
//!
//! Every operation is an async method returning a plain reply struct or an
//! [`FsError`]; [`crate::fuse`] only forwards. That keeps the logic testable
//! against [`crate::store::mem::MemStore`] without a mount.
//!
//! Mapping (see `docs/semantics.md`):
//! - a file is an object; a directory is a key prefix ending in `/`, with or
//!   without a zero-byte marker object of that name;
//! - `lookup` asks the parent's cached listing when fresh, then a negative
//!   cache, then the server: GetObject of the file's first bytes and, in
//!   parallel, a listing of the parent, one page, cached as its listing when
//!   that is the whole directory (in larger ones, a one-key listing of
//!   `name/`); a directory shadows a file of the same name. The bytes go to
//!   [`head_cache`] for the first reads;
//! - `readdir` lists with delimiter `/`, all pages, and caches the result for
//!   the metadata TTL;
//! - reads go through [`crate::prefetch`]; new files and `O_TRUNC` rewrites
//!   through [`crate::upload`];
//! - `rename` of a file is CopyObject then DeleteObject (not atomic); a
//!   directory rename answers `EXDEV`, which makes `mv` copy and delete.

pub mod error;
pub mod head_cache;
pub mod read_mode;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::FutureExt as _;
use tokio::sync::Semaphore;

pub use self::error::{FsError, Result, ToErrno};
use self::head_cache::{HEAD_BYTES, HeadCache};
use self::read_mode::{ReadModes, ReadStats};
use crate::inode::{Children, Inode, InodeTable, Kind, Listing, ROOT};
use crate::metrics::Metrics;
use crate::prefetch::{PrefetchConfig, Reader};
use crate::staging::Staged;
use crate::store::{ListPage, ObjectStore, StoreError};
use crate::upload::{Upload, UploadConfig};

const LIST_PAGE: usize = 1000;
/// How long a directory found larger than one page is not listed again at
/// lookup (a directory rarely shrinks below a page, and listing a page for
/// one name is the costly mistake).
const LARGE_DIR_MEMORY: Duration = Duration::from_secs(60);

/// How the filesystem presents the bucket.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix the mount shows (empty, or ending in `/`).
    pub prefix: String,
    /// Owner of every file.
    pub uid: u32,
    /// Group of every file.
    pub gid: u32,
    /// Permission bits of files.
    pub file_mode: u16,
    /// Permission bits of directories.
    pub dir_mode: u16,
    /// Refuse every change.
    pub read_only: bool,
    /// How long attributes and listings are trusted.
    pub metadata_ttl: Duration,
    /// How long a name known to be absent stays absent.
    pub negative_ttl: Duration,
    /// Read tuning.
    pub prefetch: PrefetchConfig,
    /// Write tuning.
    pub upload: UploadConfig,
    /// The largest file changed in place through a local copy (0: never).
    pub staging_limit: u64,
    /// Read every file through the kernel's page cache ([`read_mode`]).
    pub page_cache: bool,
}

impl Default for FsConfig {
    fn default() -> Self {
        Self {
            prefix: String::new(),
            uid: 0,
            gid: 0,
            file_mode: 0o644,
            dir_mode: 0o755,
            read_only: false,
            metadata_ttl: Duration::from_secs(1),
            negative_ttl: Duration::from_secs(1),
            prefetch: PrefetchConfig::default(),
            upload: UploadConfig::default(),
            staging_limit: 1024 * 1024 * 1024,
            page_cache: false,
        }
    }
}

/// Attributes of a file or directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number.
    pub ino: u64,
    /// File or directory.
    pub kind: Kind,
    /// Size in bytes.
    pub size: u64,
    /// Modification time.
    pub mtime: SystemTime,
    /// Permission bits.
    pub perm: u16,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// Name.
    pub name: String,
    /// File or directory.
    pub kind: Kind,
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenMode {
    /// Opened for writing (`O_WRONLY` or `O_RDWR`).
    pub write: bool,
    /// Opened for reading too (`O_RDONLY` or `O_RDWR`).
    pub read: bool,
    /// `O_TRUNC`.
    pub truncate: bool,
}

/// A file open for writing, and the process that opened it.
struct Writer<W> {
    inode: Arc<Inode>,
    body: tokio::sync::Mutex<W>,
    opener: u32,
}

/// A file open for reading.
struct ReadHandle<S> {
    reader: tokio::sync::Mutex<Reader<S>>,
    /// Read directly, not through the page cache ([`read_mode`]).
    direct: bool,
    opener: u32,
    stats: ReadStats,
}

enum Handle<S> {
    Read(ReadHandle<S>),
    /// A new or truncated file, streamed as it is written.
    Write(Writer<Upload<S>>),
    /// A file changed in place through a local copy.
    Staged(Writer<Staged<S>>),
    Dir(Mutex<Option<Vec<DirEntry>>>),
}

/// The filesystem over one bucket (and prefix).
pub struct Fs<S> {
    store: Arc<S>,
    config: FsConfig,
    inodes: InodeTable,
    negative: Mutex<HashMap<(u64, String), Instant>>,
    /// Directories found larger than one listing page, and when.
    large_dirs: Mutex<HashMap<u64, Instant>>,
    handles: Mutex<HashMap<u64, Arc<Handle<S>>>>,
    next_handle: AtomicU64,
    budget: Arc<Semaphore>,
    heads: HeadCache,
    read_modes: ReadModes,
    metrics: Metrics,
}

impl<S> std::fmt::Debug for Fs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fs").field("config", &self.config).finish_non_exhaustive()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn valid_name(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') {
        return Err(FsError::InvalidName);
    }
    Ok(name)
}

/// Adds the entries of one listing page of `prefix` to `children`. A
/// directory shadows a file of the same name, whichever page each is on.
fn add_page(children: &mut Children, prefix: &str, page: ListPage) {
    for common in page.prefixes {
        let name = common[prefix.len()..].trim_end_matches('/');
        if valid_name(name).is_ok() {
            children.insert(name.to_owned(), (Kind::Dir, None));
        }
    }
    for (key, meta) in page.objects {
        let name = &key[prefix.len()..];
        if valid_name(name).is_ok() && !children.contains_key(name) {
            children.insert(name.to_owned(), (Kind::File, Some(meta)));
        }
    }
}

impl<S: ObjectStore> Fs<S> {
    /// The filesystem over `store`.
    pub fn new(store: Arc<S>, config: FsConfig, metrics: Metrics) -> Self {
        let budget = config.prefetch.budget();
        let heads = HeadCache::new(config.metadata_ttl, head_cache::CAPACITY);
        let read_modes = ReadModes::new(config.page_cache);
        Self {
            inodes: InodeTable::new(config.prefix.clone()),
            store,
            config,
            negative: Mutex::new(HashMap::new()),
            large_dirs: Mutex::new(HashMap::new()),
            handles: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            budget,
            heads,
            read_modes,
            metrics,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FsConfig {
        &self.config
    }

    fn inode(&self, ino: u64) -> Result<Arc<Inode>> {
        self.inodes.get(ino).ok_or(FsError::NotFound)
    }

    fn dir(&self, ino: u64) -> Result<Arc<Inode>> {
        let inode = self.inode(ino)?;
        if inode.kind == Kind::Dir { Ok(inode) } else { Err(FsError::NotADirectory) }
    }

    fn writable(&self) -> Result<()> {
        if self.config.read_only { Err(FsError::ReadOnly) } else { Ok(()) }
    }

    fn attr(&self, inode: &Inode) -> Attr {
        let stat = inode.stat();
        let (size, perm) = match inode.kind {
            Kind::File => (stat.size, self.config.file_mode),
            Kind::Dir => (0, self.config.dir_mode),
        };
        Attr {
            ino: inode.ino,
            kind: inode.kind,
            size,
            mtime: stat.mtime,
            perm,
            uid: self.config.uid,
            gid: self.config.gid,
        }
    }

    fn fresh(&self, at: Option<Instant>) -> bool {
        at.is_some_and(|at| at.elapsed() < self.config.metadata_ttl)
    }

    /// Drops what is cached about `name` in `parent` after a change.
    fn changed(&self, parent: &Inode, name: &str) {
        parent.forget_listing();
        lock(&self.negative).remove(&(parent.ino, name.to_owned()));
    }

    fn add_handle(&self, handle: Handle<S>) -> u64 {
        let fh = self.next_handle.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(fh, Arc::new(handle));
        fh
    }

    fn handle(&self, fh: u64) -> Result<Arc<Handle<S>>> {
        lock(&self.handles).get(&fh).cloned().ok_or(FsError::BadHandle)
    }

    /// Resolves `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &str) -> Result<Attr> {
        let parent = self.dir(parent)?;
        let name = valid_name(name)?;
        if let Some(inode) = self.inodes.find(parent.ino, name)
            && inode.stat().pending
        {
            return Ok(self.attr(&inode));
        }
        let cached = parent
            .listing()
            .as_ref()
            .filter(|l| self.fresh(Some(l.fetched)))
            .map(|l| l.children.get(name).cloned());
        self.metrics.cache("listing", cached.is_some());
        match cached {
            Some(Some((kind, meta))) => {
                let inode = self.inodes.child(&parent, name, kind, meta.as_ref());
                return Ok(self.attr(&inode));
            }
            Some(None) => return Err(FsError::NotFound),
            None => {}
        }
        let negative = lock(&self.negative)
            .get(&(parent.ino, name.to_owned()))
            .is_some_and(|at| at.elapsed() < self.config.negative_ttl);
        self.metrics.cache("negative", negative);
        if negative {
            return Err(FsError::NotFound);
        }
        let file_key = parent.child_key(name, Kind::File);
        let (file, is_dir) =
            tokio::join!(self.store.get_head(&file_key, HEAD_BYTES), self.probe_dir(&parent, name));
        if is_dir? {
            return Ok(self.attr(&self.inodes.child(&parent, name, Kind::Dir, None)));
        }
        if let Some(head) = file? {
            let inode = self.inodes.child(&parent, name, Kind::File, Some(&head.meta));
            self.heads.insert(inode.ino, head);
            return Ok(self.attr(&inode));
        }
        lock(&self.negative).insert((parent.ino, name.to_owned()), Instant::now());
        Err(FsError::NotFound)
    }

    /// Whether `name/` is a directory in `parent`. A directory not known to
    /// be large is listed, one page ([`Fs::list_page`]): when that page is
    /// the whole directory, it answers this lookup and, cached as the
    /// parent's listing, the lookups of its siblings (reading many files of a
    /// directory then costs one GET each). A larger directory is asked about
    /// `name/` alone.
    async fn probe_dir(&self, parent: &Inode, name: &str) -> Result<bool> {
        let is_dir = |children: &Children| matches!(children.get(name), Some((Kind::Dir, _)));
        if let Some(is_dir) = self.list_page(parent, is_dir).await? {
            return Ok(is_dir);
        }
        let page = self.store.list(&parent.child_key(name, Kind::Dir), 1, None).await?;
        Ok(!page.objects.is_empty() || !page.prefixes.is_empty())
    }

    /// Lists one page of `dir`, unless it is known to be larger than that.
    /// A page that is the whole directory is cached as its listing, and
    /// `answer` is asked about it; otherwise the directory is remembered as
    /// large and `None` is returned.
    async fn list_page<T>(
        &self,
        dir: &Inode,
        answer: impl FnOnce(&Children) -> T,
    ) -> std::result::Result<Option<T>, StoreError> {
        let remembered = LARGE_DIR_MEMORY.max(self.config.metadata_ttl);
        if lock(&self.large_dirs).get(&dir.ino).is_some_and(|at| at.elapsed() < remembered) {
            return Ok(None);
        }
        let changes = dir.changes();
        let page = self.store.list(&dir.key, LIST_PAGE, None).await?;
        if page.next.is_some() {
            lock(&self.large_dirs).insert(dir.ino, Instant::now());
            return Ok(None);
        }
        let mut children = BTreeMap::new();
        add_page(&mut children, &dir.key, page);
        let answer = answer(&children);
        dir.cache_listing(changes, Listing { fetched: Instant::now(), children });
        Ok(Some(answer))
    }

    /// Checks that the bucket (and prefix) can be listed, before mounting,
    /// with the request that also lists the root: one page, cached like any
    /// listing, so the first lookups after mounting (within the metadata
    /// TTL) need no request of their own.
    pub async fn check_root(&self) -> std::result::Result<(), StoreError> {
        let root = self.inodes.get(ROOT).expect("the inode table always holds the root");
        self.list_page(&root, |_| ()).await.map(drop)
    }

    /// The attributes of `ino`, revalidated with HeadObject after the TTL.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let inode = self.inode(ino)?;
        let (pending, validated) = {
            let stat = inode.stat();
            (stat.pending, stat.validated)
        };
        if inode.kind == Kind::Dir || pending || self.fresh(validated) {
            return Ok(self.attr(&inode));
        }
        match self.store.head(&inode.key).await? {
            Some(meta) => {
                inode.validate(Some(&meta));
                Ok(self.attr(&inode))
            }
            None => Err(FsError::NotFound),
        }
    }

    /// Changes attributes. Only the size changes anything; mode, owner and
    /// times are accepted and ignored (they are mount-wide). Through a
    /// staged handle (`ftruncate`) any size works; otherwise only 0 (an
    /// empty object is written) or the current size.
    pub async fn setattr(&self, ino: u64, size: Option<u64>, fh: Option<u64>) -> Result<Attr> {
        let inode = self.inode(ino)?;
        let staged = fh.and_then(|fh| self.handle(fh).ok()).filter(|h| matches!(**h, Handle::Staged(_)));
        match size {
            None => {}
            Some(size) if staged.is_some() => {
                if let Some(Handle::Staged(writer)) = staged.as_deref() {
                    writer.body.lock().await.set_len(size)?;
                    inode.stat().size = size;
                }
            }
            Some(_) if inode.kind == Kind::Dir => return Err(FsError::IsADirectory),
            Some(0) => {
                self.writable()?;
                self.heads.remove(inode.ino);
                if !inode.stat().pending {
                    self.store.put(&inode.key, Bytes::new()).await?;
                    let mut stat = inode.stat();
                    stat.size = 0;
                    stat.mtime = SystemTime::now();
                    stat.validated = Some(Instant::now());
                }
            }
            Some(size) if size == self.getattr(ino).await?.size => {}
            Some(_) => return Err(FsError::Unsupported("truncating to a size other than 0")),
        }
        Ok(self.attr(&inode))
    }

    /// Lists directory `ino`, from the cache when fresh.
    async fn list_dir(&self, dir: &Inode) -> Result<Children> {
        if let Some(listing) = dir.listing().as_ref()
            && self.fresh(Some(listing.fetched))
        {
            return Ok(listing.children.clone());
        }
        let changes = dir.changes();
        let mut children = BTreeMap::new();
        let mut token = None;
        loop {
            let mut page = self.store.list(&dir.key, LIST_PAGE, token).await?;
            token = page.next.take();
            add_page(&mut children, &dir.key, page);
            if token.is_none() {
                break;
            }
        }
        dir.cache_listing(changes, Listing { fetched: Instant::now(), children: children.clone() });
        Ok(children)
    }

    /// The attributes of `ino` as last known, without asking the server:
    /// for entries [`Fs::readdir`] has just listed, whose attributes came
    /// with the listing (`readdirplus`).
    pub fn known_attr(&self, ino: u64) -> Result<Attr> {
        self.inode(ino).map(|inode| self.attr(&inode))
    }

    /// Opens directory `ino` for reading.
    pub fn opendir(&self, ino: u64) -> Result<u64> {
        self.dir(ino)?;
        Ok(self.add_handle(Handle::Dir(Mutex::new(None))))
    }

    /// Directory entries from `offset` on (`.` and `..` included). The
    /// listing is taken at offset 0 and kept in the handle, so pages agree.
    pub async fn readdir(&self, ino: u64, fh: u64, offset: usize) -> Result<Vec<DirEntry>> {
        let Handle::Dir(snapshot) = &*self.handle(fh)? else { return Err(FsError::BadHandle) };
        if offset == 0 || lock(snapshot).is_none() {
            let dir = self.dir(ino)?;
            let children = self.list_dir(&dir).await?;
            let mut entries = vec![
                DirEntry { ino: dir.ino, name: ".".into(), kind: Kind::Dir },
                DirEntry {
                    ino: if dir.ino == ROOT { ROOT } else { dir.parent },
                    name: "..".into(),
                    kind: Kind::Dir,
                },
            ];
            for (name, (kind, meta)) in &children {
                let inode = self.inodes.child(&dir, name, *kind, meta.as_ref());
                entries.push(DirEntry { ino: inode.ino, name: name.clone(), kind: *kind });
            }
            for inode in self.inodes.pending_children(dir.ino) {
                if !children.contains_key(&inode.name) {
                    entries.push(DirEntry { ino: inode.ino, name: inode.name.clone(), kind: Kind::File });
                }
            }
            *lock(snapshot) = Some(entries);
        }
        Ok(lock(snapshot)
            .as_ref()
            .map(|entries| entries.iter().skip(offset).cloned().collect())
            .unwrap_or_default())
    }

    /// Opens file `ino` for process `pid`; returns the handle.
    pub async fn open(&self, ino: u64, mode: OpenMode, pid: u32) -> Result<u64> {
        let inode = self.inode(ino)?;
        if inode.kind == Kind::Dir {
            return Err(FsError::IsADirectory);
        }
        if mode.write {
            self.writable()?;
        }
        let size = self.getattr(ino).await?.size;
        if mode.write && !mode.read && (mode.truncate || size == 0) {
            return Ok(self.start_upload(inode, pid));
        }
        if mode.write {
            return self.start_staged(inode, size, mode.truncate, pid).await;
        }
        let etag = inode.stat().etag.clone();
        let head = self.heads.get(inode.ino, &etag);
        self.metrics.cache("head", head.is_some());
        let mut reader = Reader::new(
            self.store.clone(),
            inode.key.clone(),
            size,
            self.config.prefetch,
            self.budget.clone(),
            self.metrics.clone(),
        );
        if let Some(head) = head {
            reader.seed(head);
        }
        reader.start();
        let direct = self.read_modes.direct(pid, size, self.config.prefetch.initial_window);
        self.metrics.read_open(direct);
        let reader = tokio::sync::Mutex::new(reader);
        Ok(self.add_handle(Handle::Read(ReadHandle {
            reader,
            direct,
            opener: pid,
            stats: ReadStats::default(),
        })))
    }

    /// Reads every file through the kernel's page cache from now on: the
    /// kernel cannot map direct files shared.
    pub fn page_cache_only(&self) {
        self.read_modes.page_cache_only();
    }

    /// Whether handle `fh` is read directly, bypassing the kernel's page
    /// cache (`FOPEN_DIRECT_IO`): see [`read_mode`].
    pub fn direct_io(&self, fh: u64) -> bool {
        self.handle(fh).is_ok_and(|handle| matches!(&*handle, Handle::Read(read) if read.direct))
    }

    fn start_upload(&self, inode: Arc<Inode>, opener: u32) -> u64 {
        self.heads.remove(inode.ino);
        self.inodes.set_pending(&inode, true);
        {
            let mut stat = inode.stat();
            stat.size = 0;
            stat.mtime = SystemTime::now();
        }
        let upload = Upload::new(self.store.clone(), inode.key.clone(), self.config.upload);
        self.add_handle(Handle::Write(Writer { inode, body: tokio::sync::Mutex::new(upload), opener }))
    }

    async fn start_staged(&self, inode: Arc<Inode>, size: u64, truncate: bool, opener: u32) -> Result<u64> {
        if self.config.staging_limit == 0 {
            return Err(FsError::Unsupported("changing an existing file in place (staging is disabled)"));
        }
        let staged = Staged::open(
            self.store.clone(),
            inode.key.clone(),
            size,
            truncate,
            self.config.staging_limit,
            self.config.upload,
        )
        .await?;
        self.heads.remove(inode.ino);
        self.inodes.set_pending(&inode, true);
        inode.stat().size = staged.len();
        Ok(self.add_handle(Handle::Staged(Writer { inode, body: tokio::sync::Mutex::new(staged), opener })))
    }

    /// Creates file `name` in `parent` and opens it for writing by process `pid`.
    pub fn create(&self, parent: u64, name: &str, pid: u32) -> Result<(Attr, u64)> {
        self.writable()?;
        let parent = self.dir(parent)?;
        let name = valid_name(name)?;
        if let Some(existing) = self.inodes.find(parent.ino, name)
            && existing.kind == Kind::Dir
        {
            return Err(FsError::IsADirectory);
        }
        let inode = self.inodes.child(&parent, name, Kind::File, None);
        self.changed(&parent, name);
        let fh = self.start_upload(inode.clone(), pid);
        Ok((self.attr(&inode), fh))
    }

    /// [`Fs::read`] when it can finish at once: the handle is idle and the
    /// bytes are already fetched (the prefetcher is ahead of the reader),
    /// so the caller can answer without handing the request to another
    /// thread. `None` when the read must wait; then call [`Fs::read`], which
    /// carries on from where this left off. Call it within the tokio
    /// runtime's context: serving may start the next prefetch requests.
    pub fn try_read(&self, fh: u64, offset: u64, size: u32) -> Option<Result<Bytes>> {
        let handle = self.handle(fh).ok()?;
        let Handle::Read(read) = &*handle else { return None };
        let bytes = read.reader.try_lock().ok()?.read(offset, u64::from(size)).now_or_never()?;
        self.observe(read, size);
        if let Ok(bytes) = &bytes {
            self.metrics.fs_bytes("read", bytes.len());
        }
        Some(bytes.map_err(FsError::from))
    }

    fn observe(&self, read: &ReadHandle<S>, size: u32) {
        if read.direct {
            self.read_modes.observe(&read.stats, read.opener, u64::from(size));
        }
    }

    /// Reads up to `size` bytes at `offset`.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        match &*self.handle(fh)? {
            Handle::Read(read) => {
                self.observe(read, size);
                let bytes = read.reader.lock().await.read(offset, u64::from(size)).await?;
                self.metrics.fs_bytes("read", bytes.len());
                Ok(bytes)
            }
            Handle::Staged(writer) => {
                let bytes = writer.body.lock().await.read(offset, size)?;
                self.metrics.fs_bytes("read", bytes.len());
                Ok(bytes)
            }
            Handle::Write(..) => Err(FsError::Unsupported("reading a file while it is being written")),
            Handle::Dir(_) => Err(FsError::IsADirectory),
        }
    }

    /// Writes `data` at `offset`: sequential writes for new or truncated
    /// files, any offset for staged ones.
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let handle = self.handle(fh)?;
        let (inode, size) = match &*handle {
            Handle::Write(writer) => {
                let mut upload = writer.body.lock().await;
                upload.write(offset, data).await?;
                (&writer.inode, upload.written())
            }
            Handle::Staged(writer) => {
                let mut staged = writer.body.lock().await;
                staged.write(offset, data)?;
                (&writer.inode, staged.len())
            }
            Handle::Read(_) => return Err(FsError::Unsupported("writing through a handle opened read-only")),
            Handle::Dir(_) => return Err(FsError::IsADirectory),
        };
        inode.stat().size = size;
        self.metrics.fs_bytes("write", data.len());
        Ok(u32::try_from(data.len()).unwrap_or(u32::MAX))
    }

    /// `close` of a descriptor by process `pid`: uploads what was written,
    /// unless `pid` is not the process that opened the file or nothing was
    /// written yet. A forked child
    /// closing its inherited copy (as every `fork` + `exec` does) must not
    /// end the parent's upload; Mountpoint makes the same distinction.
    pub async fn flush(&self, fh: u64, pid: u32) -> Result<()> {
        let handle = self.handle(fh)?;
        if let Handle::Write(Writer { opener, .. }) | Handle::Staged(Writer { opener, .. }) = &*handle
            && *opener != pid
        {
            tracing::debug!(fh, pid, opener, "flush by another process; not uploading yet");
            return Ok(());
        }
        // Shell redirection opens, `dup2`s and closes the original descriptor
        // before writing: a flush of a new file with nothing written yet is
        // that close, not the end of the file (release still uploads it).
        if let Handle::Write(Writer { body, .. }) = &*handle
            && body.lock().await.written() == 0
        {
            tracing::debug!(fh, "flush before any write; not uploading yet");
            return Ok(());
        }
        self.commit(fh).await
    }

    /// Uploads what was written through `fh` (fsync, release). Idempotent.
    pub async fn commit(&self, fh: u64) -> Result<()> {
        let handle = self.handle(fh)?;
        let (inode, result) = match &*handle {
            Handle::Write(Writer { inode, body, .. }) => {
                let mut upload = body.lock().await;
                if upload.is_committed() {
                    return Ok(());
                }
                let result = upload.commit().await.map_err(FsError::from);
                // A streamed file is complete once committed, uploaded or not.
                self.inodes.set_pending(inode, false);
                inode.stat().size = upload.written();
                (inode, result)
            }
            Handle::Staged(Writer { inode, body, .. }) => {
                let mut staged = body.lock().await;
                let result = staged.commit().await.map_err(FsError::from);
                inode.stat().size = staged.len();
                (inode, result)
            }
            Handle::Read(_) | Handle::Dir(_) => return Ok(()),
        };
        self.heads.remove(inode.ino);
        {
            let mut stat = inode.stat();
            stat.mtime = SystemTime::now();
            stat.validated = result.is_ok().then(Instant::now);
        }
        if let Some(parent) = self.inodes.get(inode.parent) {
            self.changed(&parent, &inode.name);
        }
        result
    }

    /// Closes `fh`, uploading first if needed.
    pub async fn release(&self, fh: u64) -> Result<()> {
        let result = self.commit(fh).await;
        if let Some(handle) = lock(&self.handles).remove(&fh)
            && let Handle::Staged(writer) = &*handle
        {
            self.inodes.set_pending(&writer.inode, false);
        }
        result
    }

    /// Deletes file `name`.
    pub async fn unlink(&self, parent: u64, name: &str) -> Result<()> {
        self.writable()?;
        let attr = self.lookup(parent, name).await?;
        if attr.kind == Kind::Dir {
            return Err(FsError::IsADirectory);
        }
        let parent = self.dir(parent)?;
        self.heads.remove(attr.ino);
        self.store.delete(&parent.child_key(name, Kind::File)).await?;
        self.inodes.remove(parent.ino, name);
        self.changed(&parent, name);
        Ok(())
    }

    /// Creates directory `name` as a `name/` marker object.
    pub async fn mkdir(&self, parent: u64, name: &str) -> Result<Attr> {
        self.writable()?;
        match self.lookup(parent, name).await {
            Ok(_) => return Err(FsError::Exists),
            Err(FsError::NotFound) => {}
            Err(error) => return Err(error),
        }
        let parent = self.dir(parent)?;
        self.store.put(&parent.child_key(name, Kind::Dir), Bytes::new()).await?;
        self.changed(&parent, name);
        Ok(self.attr(&self.inodes.child(&parent, name, Kind::Dir, None)))
    }

    /// Removes empty directory `name` (its marker, if any).
    pub async fn rmdir(&self, parent: u64, name: &str) -> Result<()> {
        self.writable()?;
        if self.lookup(parent, name).await?.kind != Kind::Dir {
            return Err(FsError::NotADirectory);
        }
        let parent = self.dir(parent)?;
        let prefix = parent.child_key(name, Kind::Dir);
        let page = self.store.list(&prefix, 2, None).await?;
        let has_children = !page.prefixes.is_empty() || page.objects.iter().any(|(key, _)| *key != prefix);
        let pending = self
            .inodes
            .find(parent.ino, name)
            .is_some_and(|dir| !self.inodes.pending_children(dir.ino).is_empty());
        if has_children || pending {
            return Err(FsError::NotEmpty);
        }
        self.store.delete(&prefix).await?;
        self.inodes.remove(parent.ino, name);
        self.changed(&parent, name);
        Ok(())
    }

    /// Renames file `name` to `new_name` (copy, then delete).
    pub async fn rename(&self, parent: u64, name: &str, new_parent: u64, new_name: &str) -> Result<()> {
        self.writable()?;
        let source = self.lookup(parent, name).await?;
        if source.kind == Kind::Dir {
            return Err(FsError::CrossDevice);
        }
        let new_name = valid_name(new_name)?;
        if parent == new_parent && name == new_name {
            // POSIX: renaming a file onto itself does nothing (copy + delete would lose it).
            return Ok(());
        }
        match self.lookup(new_parent, new_name).await {
            Ok(target) if target.kind == Kind::Dir => return Err(FsError::IsADirectory),
            Ok(target) => self.heads.remove(target.ino),
            Err(FsError::NotFound) => {}
            Err(error) => return Err(error),
        }
        self.heads.remove(source.ino);
        let (parent, new_parent) = (self.dir(parent)?, self.dir(new_parent)?);
        let from = parent.child_key(name, Kind::File);
        let to = new_parent.child_key(new_name, Kind::File);
        self.store.copy(&from, &to).await?;
        match self.store.delete(&from).await {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(error) => return Err(error.into()),
        }
        self.inodes.remove(parent.ino, name);
        self.inodes.remove(new_parent.ino, new_name);
        self.changed(&parent, name);
        self.changed(&new_parent, new_name);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
