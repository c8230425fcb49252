//! Real FUSE mounts through /dev/fuse: a tiny read-only filesystem served by
//! this process, read through the kernel, then unmounted.

use std::ffi::OsStr;
use std::time::{Duration, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, LockOwner, OpenFlags, ReplyAttr,
    ReplyData, ReplyDirectory, ReplyEntry, Request,
};
use test_platform::FuseMount;
use test_platform::fuse::is_fuse_mount;

const GREETING: &[u8] = b"hello through the kernel\n";
const FILE: INodeNo = INodeNo(2);

/// One directory holding one file, `greeting.txt`.
struct OneFile;

fn attr(ino: INodeNo) -> FileAttr {
    let (kind, size, perm) = if ino == FILE {
        (FileType::RegularFile, GREETING.len() as u64, 0o444)
    } else {
        (FileType::Directory, 0, 0o555)
    };
    FileAttr {
        ino,
        size,
        blocks: 1,
        atime: UNIX_EPOCH,
        mtime: UNIX_EPOCH,
        ctime: UNIX_EPOCH,
        crtime: UNIX_EPOCH,
        kind,
        perm,
        nlink: 1,
        uid: 0,
        gid: 0,
        rdev: 0,
        flags: 0,
        blksize: 4096,
    }
}

impl Filesystem for OneFile {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        if parent == INodeNo::ROOT && name == "greeting.txt" {
            reply.entry(&Duration::from_secs(1), &attr(FILE), Generation(0));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        if ino == INodeNo::ROOT || ino == FILE {
            reply.attr(&Duration::from_secs(1), &attr(ino));
        } else {
            reply.error(Errno::ENOENT);
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        if ino != FILE {
            reply.error(Errno::ENOENT);
            return;
        }
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(GREETING.len());
        let end = start.saturating_add(size as usize).min(GREETING.len());
        reply.data(&GREETING[start..end]);
    }

    fn readdir(&self, _req: &Request, ino: INodeNo, _fh: FileHandle, offset: u64, mut reply: ReplyDirectory) {
        if ino != INodeNo::ROOT {
            reply.error(Errno::ENOENT);
            return;
        }
        let entries = [
            (INodeNo::ROOT, FileType::Directory, "."),
            (INodeNo::ROOT, FileType::Directory, ".."),
            (FILE, FileType::RegularFile, "greeting.txt"),
        ];
        for (i, (ino, kind, name)) in
            entries.into_iter().enumerate().skip(usize::try_from(offset).unwrap_or(usize::MAX))
        {
            if reply.add(ino, i as u64 + 1, kind, name) {
                break;
            }
        }
        reply.ok();
    }
}

#[test]
fn file_is_read_through_a_real_fuse_mount_and_unmounted_after() {
    let dir = tempfile::tempdir().unwrap();
    let mount = FuseMount::in_process(OneFile, dir.path(), "platform-test").unwrap();
    assert!(is_fuse_mount(dir.path()).unwrap());

    assert_eq!(std::fs::read(mount.path().join("greeting.txt")).unwrap(), GREETING);
    let names: Vec<_> = std::fs::read_dir(mount.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, ["greeting.txt"]);
    assert_eq!(std::fs::read(mount.path().join("missing")).unwrap_err().kind(), std::io::ErrorKind::NotFound);

    mount.unmount().unwrap();
    assert!(!is_fuse_mount(dir.path()).unwrap());
}

#[test]
fn dropping_the_guard_unmounts() {
    let dir = tempfile::tempdir().unwrap();
    drop(FuseMount::in_process(OneFile, dir.path(), "platform-test").unwrap());
    assert!(!is_fuse_mount(dir.path()).unwrap());
}
