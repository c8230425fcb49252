//! The thin `fuser` adapter: each callback forwards to [`Fs`] on the tokio
//! runtime, replies, and maps errors to errno through [`ToErrno`] in one
//! place ([`FuseFs::finish`]).
//!
//! Most operations are spawned, so a slow S3 request never blocks the FUSE
//! worker threads. Writes, flushes and releases run to completion on the
//! calling worker (`block_on`): the kernel sends one file's writes one after
//! another, and running them in order keeps them sequential. A read whose
//! bytes the prefetcher already holds is answered on the worker too
//! ([`Fs::try_read`]): a hop to the runtime costs more than the copy.
//!
//! Files opened for reading bypass the kernel's page cache
//! (`FOPEN_DIRECT_IO`) when [`Fs::direct_io`] says so (see
//! [`crate::fs::read_mode`]), as Mountpoint for S3 does by default;
//! prefetching is then the mounter's own. Shared `mmap` of such files still
//! works (`FUSE_DIRECT_IO_ALLOW_MMAP`, Linux 6.6 and later).

use std::ffi::OsStr;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation, INodeNo, LockOwner, OpenAccMode,
    OpenFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use tracing::Instrument as _;

use crate::fs::{Attr, Fs, FsError, OpenMode, ToErrno};
use crate::inode::Kind;
use crate::metrics::Metrics;
use crate::store::ObjectStore;

/// `O_TRUNC` on Linux (every architecture the mounter targets).
const O_TRUNC: i32 = 0o1000;
/// The largest write and readahead asked of the kernel.
pub(crate) const MAX_REQUEST: u32 = 1024 * 1024;
/// The block size reported to `stat`, which `cp` uses as its buffer size.
const BLOCK_SIZE: u32 = 1024 * 1024;

/// Replies that can carry an errno.
trait ErrorReply: Send + 'static {
    fn fail(self, errno: Errno);
}

macro_rules! error_reply {
    ($($reply:ty),*) => {$(
        impl ErrorReply for $reply {
            fn fail(self, errno: Errno) {
                self.error(errno);
            }
        }
    )*};
}
error_reply!(
    ReplyAttr,
    ReplyCreate,
    ReplyData,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyEmpty,
    ReplyEntry,
    ReplyOpen,
    ReplyWrite
);

/// What identifies one FUSE request in logs.
#[derive(Debug, Clone, Copy)]
struct Call {
    operation: &'static str,
    req: u64,
    pid: u32,
    ino: u64,
}

fn call(req: &Request, operation: &'static str, ino: INodeNo) -> Call {
    Call { operation, req: req.unique().0, pid: req.pid(), ino: ino.0 }
}

impl Call {
    fn span(self) -> tracing::Span {
        tracing::debug_span!(
            "fuse",
            operation = self.operation,
            req = self.req,
            pid = self.pid,
            ino = self.ino
        )
    }
}

/// [`Fs`] as a `fuser::Filesystem`.
pub struct FuseFs<S> {
    fs: Arc<Fs<S>>,
    runtime: tokio::runtime::Handle,
    ttl: Duration,
    metrics: Metrics,
}

impl<S> std::fmt::Debug for FuseFs<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FuseFs").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

fn file_attr(attr: &Attr) -> FileAttr {
    let (kind, nlink) = match attr.kind {
        Kind::File => (FileType::RegularFile, 1),
        Kind::Dir => (FileType::Directory, 2),
    };
    FileAttr {
        ino: INodeNo(attr.ino),
        size: attr.size,
        blocks: attr.size.div_ceil(512),
        atime: attr.mtime,
        mtime: attr.mtime,
        ctime: attr.mtime,
        crtime: attr.mtime,
        kind,
        perm: attr.perm,
        nlink,
        uid: attr.uid,
        gid: attr.gid,
        rdev: 0,
        blksize: BLOCK_SIZE,
        flags: 0,
    }
}

/// The process (thread group) of thread `pid`: FUSE reports the calling
/// thread, and a file opened by one thread may be closed by another of the
/// same process. Falls back to `pid` if `/proc` does not say.
fn process_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Tgid:").and_then(|tgid| tgid.trim().parse().ok()))
        })
        .unwrap_or(pid)
}

fn name(name: &OsStr) -> Result<String, FsError> {
    name.to_str().map(str::to_owned).ok_or(FsError::InvalidName)
}

impl<S: ObjectStore> FuseFs<S> {
    /// The adapter for `fs`, running on `runtime`; the kernel caches
    /// attributes and entries for `ttl`.
    pub fn new(fs: Arc<Fs<S>>, runtime: tokio::runtime::Handle, metrics: Metrics) -> Self {
        let ttl = fs.config().metadata_ttl;
        Self { fs, runtime, ttl, metrics }
    }

    /// Records, logs and replies: the single error path of every operation.
    fn finish<T, R: ErrorReply>(
        metrics: &Metrics,
        operation: &'static str,
        started: Instant,
        result: Result<T, FsError>,
        reply: R,
        ok: impl FnOnce(R, T),
    ) {
        metrics.fs_op(operation, result.is_ok(), started.elapsed());
        match result {
            Ok(value) => ok(reply, value),
            Err(error) => {
                let errno = error.to_errno();
                // Answers to the caller's request (ENOENT, ENOTEMPTY, …) are
                // routine; failures to serve it are worth a warning.
                if matches!(error, FsError::Store(_) | FsError::Upload(_) | FsError::Staging(_)) {
                    tracing::warn!(operation, errno, error = %crate::error_chain(&error), "operation failed");
                } else {
                    tracing::debug!(operation, errno, %error, "operation refused");
                }
                reply.fail(Errno::from_i32(errno));
            }
        }
    }

    /// Runs `work` on the runtime without blocking the FUSE thread.
    fn spawn<T, R, F>(&self, call: Call, reply: R, work: F, ok: impl FnOnce(R, T) + Send + 'static)
    where
        T: Send + 'static,
        R: ErrorReply,
        F: Future<Output = Result<T, FsError>> + Send + 'static,
    {
        let metrics = self.metrics.clone();
        let span = call.span();
        let started = Instant::now();
        self.runtime.spawn(
            async move {
                let result = work.await;
                Self::finish(&metrics, call.operation, started, result, reply, ok);
            }
            .instrument(span),
        );
    }

    /// Runs `work` to completion on the calling FUSE thread.
    fn block<T, R: ErrorReply>(
        &self,
        call: Call,
        reply: R,
        work: impl Future<Output = Result<T, FsError>>,
        ok: impl FnOnce(R, T),
    ) {
        let _span = call.span().entered();
        let started = Instant::now();
        let result = self.runtime.block_on(work);
        Self::finish(&self.metrics, call.operation, started, result, reply, ok);
    }
}

impl<S: ObjectStore> fuser::Filesystem for FuseFs<S> {
    fn init(&mut self, _req: &Request, config: &mut fuser::KernelConfig) -> std::io::Result<()> {
        // O_TRUNC must reach `open` (otherwise the kernel opens first and
        // truncates after, and a rewrite looks like an unsupported in-place write).
        if let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_ATOMIC_O_TRUNC) {
            tracing::warn!(
                ?missing,
                "the kernel does not offer atomic O_TRUNC; rewrites need truncate(0) first"
            );
        }
        // Shared mmap of a direct-I/O file goes through the page cache; without
        // this the kernel refuses it (ENODEV), so then no file is read directly.
        if !self.fs.config().page_cache
            && let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP)
        {
            tracing::warn!(
                ?missing,
                "the kernel cannot mmap direct-I/O files shared (Linux < 6.6); reading every file through the page cache"
            );
            self.fs.page_cache_only();
        }
        // Entries come with their attributes (from the listing), so `ls -l`
        // does not send one `lookup` per entry.
        if let Err(missing) = config.add_capabilities(fuser::InitFlags::FUSE_DO_READDIRPLUS) {
            tracing::warn!(?missing, "the kernel does not offer readdirplus; each entry is looked up");
        }
        // Larger requests mean fewer round trips. FUSE lets a filesystem
        // only lower the readahead the kernel offers: take the largest
        // allowed when 1 MiB is more.
        if let Err(nearest) = config.set_max_write(MAX_REQUEST) {
            tracing::info!(max_write = nearest, "the kernel allows smaller writes than asked");
            let _ = config.set_max_write(nearest);
        }
        if let Err(nearest) = config.set_max_readahead(MAX_REQUEST) {
            tracing::info!(max_readahead = nearest, "the kernel offers a smaller readahead than asked");
            let _ = config.set_max_readahead(nearest);
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, child: &OsStr, reply: ReplyEntry) {
        let (fs, ttl, child) = (self.fs.clone(), self.ttl, name(child));
        self.spawn(
            call(req, "lookup", parent),
            reply,
            async move { fs.lookup(parent.0, &child?).await },
            move |reply, attr| {
                reply.entry(&ttl, &file_attr(&attr), Generation(0));
            },
        );
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.spawn(
            call(req, "getattr", ino),
            reply,
            async move { fs.getattr(ino.0).await },
            move |reply, attr| {
                reply.attr(&ttl, &file_attr(&attr));
            },
        );
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<std::time::SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<std::time::SystemTime>,
        _chgtime: Option<std::time::SystemTime>,
        _bkuptime: Option<std::time::SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        self.spawn(
            call(req, "setattr", ino),
            reply,
            async move { fs.setattr(ino.0, size, fh.map(|fh| fh.0)).await },
            move |reply, attr| {
                reply.attr(&ttl, &file_attr(&attr));
            },
        );
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        child: &OsStr,
        _mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let (fs, ttl, child) = (self.fs.clone(), self.ttl, name(child));
        self.spawn(
            call(req, "mkdir", parent),
            reply,
            async move { fs.mkdir(parent.0, &child?).await },
            move |reply, attr| {
                reply.entry(&ttl, &file_attr(&attr), Generation(0));
            },
        );
    }

    fn unlink(&self, req: &Request, parent: INodeNo, child: &OsStr, reply: ReplyEmpty) {
        let (fs, child) = (self.fs.clone(), name(child));
        self.spawn(
            call(req, "unlink", parent),
            reply,
            async move { fs.unlink(parent.0, &child?).await },
            |reply, ()| {
                reply.ok();
            },
        );
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, child: &OsStr, reply: ReplyEmpty) {
        let (fs, child) = (self.fs.clone(), name(child));
        self.spawn(
            call(req, "rmdir", parent),
            reply,
            async move { fs.rmdir(parent.0, &child?).await },
            |reply, ()| reply.ok(),
        );
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        child: &OsStr,
        new_parent: INodeNo,
        new_name: &OsStr,
        flags: fuser::RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (fs, child, new_name) = (self.fs.clone(), name(child), name(new_name));
        let unsupported_flags = !flags.is_empty();
        let work = async move {
            if unsupported_flags {
                return Err(FsError::Unsupported("rename flags (RENAME_NOREPLACE, RENAME_EXCHANGE)"));
            }
            fs.rename(parent.0, &child?, new_parent.0, &new_name?).await
        };
        self.spawn(call(req, "rename", parent), reply, work, |reply, ()| reply.ok());
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let (fs, pid) = (self.fs.clone(), process_of(req.pid()));
        let access = flags.acc_mode();
        let mode = OpenMode {
            write: access != OpenAccMode::O_RDONLY,
            read: access != OpenAccMode::O_WRONLY,
            truncate: flags.0 & O_TRUNC != 0,
        };
        self.spawn(
            call(req, "open", ino),
            reply,
            async move {
                let fh = fs.open(ino.0, mode, pid).await?;
                Ok((fh, fs.direct_io(fh)))
            },
            |reply, (fh, direct)| {
                let flags = if direct { FopenFlags::FOPEN_DIRECT_IO } else { FopenFlags::empty() };
                reply.opened(FileHandle(fh), flags);
            },
        );
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        child: &OsStr,
        _mode: u32,
        _umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (fs, ttl, child, pid) = (self.fs.clone(), self.ttl, name(child), process_of(req.pid()));
        self.spawn(
            call(req, "create", parent),
            reply,
            async move { fs.create(parent.0, &child?, pid) },
            move |reply, (attr, fh)| {
                reply.created(&ttl, &file_attr(&attr), Generation(0), FileHandle(fh), FopenFlags::empty());
            },
        );
    }

    fn read(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let started = Instant::now();
        // Prefetched bytes are answered here, without a hop to the runtime
        // (`enter`: serving may start the next prefetch requests).
        let read = call(req, "read", ino);
        let span = read.span();
        let ready = span.in_scope(|| {
            let _runtime = self.runtime.enter();
            self.fs.try_read(fh.0, offset, size)
        });
        if let Some(result) = ready {
            let _span = span.entered();
            Self::finish(&self.metrics, "read", started, result, reply, |reply, bytes| reply.data(&bytes));
            return;
        }
        let fs = self.fs.clone();
        self.spawn(read, reply, async move { fs.read(fh.0, offset, size).await }, |reply, bytes| {
            reply.data(&bytes);
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        self.block(call(req, "write", ino), reply, self.fs.write(fh.0, offset, data), |reply, written| {
            reply.written(written);
        });
    }

    fn flush(&self, req: &Request, ino: INodeNo, fh: FileHandle, _lock_owner: LockOwner, reply: ReplyEmpty) {
        self.block(
            call(req, "flush", ino),
            reply,
            self.fs.flush(fh.0, process_of(req.pid())),
            |reply, ()| reply.ok(),
        );
    }

    fn fsync(&self, req: &Request, ino: INodeNo, fh: FileHandle, _datasync: bool, reply: ReplyEmpty) {
        self.block(call(req, "fsync", ino), reply, self.fs.commit(fh.0), |reply, ()| reply.ok());
    }

    fn release(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.block(call(req, "release", ino), reply, self.fs.release(fh.0), |reply, ()| reply.ok());
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        self.block(
            call(req, "opendir", ino),
            reply,
            std::future::ready(self.fs.opendir(ino.0)),
            |reply, fh| {
                reply.opened(FileHandle(fh), FopenFlags::empty());
            },
        );
    }

    fn readdir(&self, req: &Request, ino: INodeNo, fh: FileHandle, offset: u64, reply: ReplyDirectory) {
        let fs = self.fs.clone();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        self.spawn(
            call(req, "readdir", ino),
            reply,
            async move { fs.readdir(ino.0, fh.0, start).await },
            move |mut reply, entries| {
                for (next, entry) in (offset.saturating_add(1)..).zip(&entries) {
                    let kind = match entry.kind {
                        Kind::File => FileType::RegularFile,
                        Kind::Dir => FileType::Directory,
                    };
                    if reply.add(INodeNo(entry.ino), next, kind, &entry.name) {
                        break;
                    }
                }
                reply.ok();
            },
        );
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let (fs, ttl) = (self.fs.clone(), self.ttl);
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        self.spawn(
            call(req, "readdirplus", ino),
            reply,
            async move {
                let entries = fs.readdir(ino.0, fh.0, start).await?;
                entries.into_iter().map(|entry| Ok((fs.known_attr(entry.ino)?, entry.name))).collect::<Result<
                    Vec<_>,
                    FsError,
                >>(
                )
            },
            move |mut reply, entries| {
                for (next, (attr, name)) in (offset.saturating_add(1)..).zip(&entries) {
                    if reply.add(INodeNo(attr.ino), next, name, &ttl, &file_attr(attr), Generation(0)) {
                        break;
                    }
                }
                reply.ok();
            },
        );
    }

    fn releasedir(&self, req: &Request, ino: INodeNo, fh: FileHandle, _flags: OpenFlags, reply: ReplyEmpty) {
        self.block(call(req, "releasedir", ino), reply, self.fs.release(fh.0), |reply, ()| reply.ok());
    }

    fn getxattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, _size: u32, reply: fuser::ReplyXattr) {
        // ENOSYS makes the kernel stop asking (it checks `security.capability`
        // before every write otherwise).
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object storage has no fixed capacity: report plenty of free space.
        const BLOCKS: u64 = 1 << 40;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, 1 << 30, 1 << 30, BLOCK_SIZE, 1024, BLOCK_SIZE);
    }
}

#[cfg(test)]
mod tests {
    use super::process_of;

    #[test]
    fn a_thread_maps_to_its_process() {
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let link = std::fs::read_link("/proc/thread-self").unwrap();
            tid_tx.send(link.file_name().unwrap().to_str().unwrap().parse::<u32>().unwrap()).unwrap();
            let _ = done_rx.recv();
        });
        let tid = tid_rx.recv().unwrap();
        assert_ne!(tid, std::process::id());
        assert_eq!(process_of(tid), std::process::id());
        assert_eq!(process_of(u32::MAX), u32::MAX, "unknown pids map to themselves");
        drop(done_tx);
        thread.join().unwrap();
    }
}
