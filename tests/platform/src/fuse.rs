//! FUSE mounting helpers: mount, wait until the kernel serves the mount point,
//! and always unmount.
//!
//! Two shapes are supported: a filesystem served by this process through
//! `fuser` ([`FuseMount::in_process`]), and a mounting program run as a child
//! process, such as our mounter or s3fs ([`FuseMount::spawn`]). Either way the
//! mount is gone once the guard drops; in-process mounts also ask `fusermount3`
//! for `auto_unmount`, so even a killed test process leaves none behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fuser::{BackgroundSession, Config, Filesystem, MountOption, SessionACL};

use crate::{Error, Result, io_context};

const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// A live FUSE mount, unmounted on drop.
#[derive(Debug)]
pub struct FuseMount {
    mountpoint: PathBuf,
    owner: Owner,
}

#[derive(Debug)]
enum Owner {
    InProcess(Option<BackgroundSession>),
    Child(Child),
}

impl FuseMount {
    /// Mounts `filesystem` at `mountpoint` from this process and waits until
    /// the mount is live.
    pub fn in_process<FS: Filesystem + Send + 'static>(
        filesystem: FS,
        mountpoint: &Path,
        name: &str,
    ) -> Result<Self> {
        let mut config = Config::default();
        config.mount_options = vec![MountOption::FSName(name.to_owned()), MountOption::AutoUnmount];
        config.acl = SessionACL::All;
        let session = fuser::spawn_mount(filesystem, mountpoint, &config)
            .map_err(|source| Error::Spawn { name: format!("FUSE session {name}"), source })?;
        let mut mount = Self { mountpoint: mountpoint.to_owned(), owner: Owner::InProcess(Some(session)) };
        mount.wait_mounted()?;
        Ok(mount)
    }

    /// Runs `command`, which must mount a FUSE filesystem at `mountpoint` and
    /// stay in the foreground, and waits until the mount is live. Fails with
    /// the program's output if it exits first.
    pub fn spawn(mut command: Command, mountpoint: &Path) -> Result<Self> {
        let name = command.get_program().to_string_lossy().into_owned();
        let child = command.stdin(Stdio::null()).spawn().map_err(|source| Error::Spawn { name, source })?;
        let mut mount = Self { mountpoint: mountpoint.to_owned(), owner: Owner::Child(child) };
        mount.wait_mounted()?;
        Ok(mount)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The mounting child process, for mounts made by [`FuseMount::spawn`].
    pub fn child(&mut self) -> Option<&mut Child> {
        match &mut self.owner {
            Owner::Child(child) => Some(child),
            Owner::InProcess(_) => None,
        }
    }

    fn wait_mounted(&mut self) -> Result<()> {
        let start = Instant::now();
        loop {
            if is_fuse_mount(&self.mountpoint)? {
                return Ok(());
            }
            if let Owner::Child(child) = &mut self.owner
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Exited {
                    name: format!("mount at {}", self.mountpoint.display()),
                    status: status.to_string(),
                    log_tail: "(see the program's output above)".to_owned(),
                });
            }
            if start.elapsed() > MOUNT_TIMEOUT {
                return Err(Error::NotReady {
                    name: format!("mount at {}", self.mountpoint.display()),
                    waited: MOUNT_TIMEOUT,
                    log_tail: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Unmounts and waits for the serving side to finish.
    pub fn unmount(mut self) -> Result<()> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<()> {
        match &mut self.owner {
            Owner::InProcess(session) => {
                if let Some(session) = session.take() {
                    // With auto_unmount, fusermount3 only unmounts once the
                    // session's fd closes, and the session thread holds it
                    // while it waits for requests: unmount first, which ends
                    // that wait, then join.
                    lazy_unmount(&self.mountpoint)?;
                    session.join().map_err(io_context(format!(
                        "join the FUSE session of {}",
                        self.mountpoint.display()
                    )))?;
                }
            }
            Owner::Child(child) => {
                if child.try_wait().ok().flatten().is_none() {
                    // Asking the kernel to unmount makes a well-behaved
                    // mounter exit by itself; a stuck one is killed.
                    let _ = lazy_unmount(&self.mountpoint);
                    let deadline = Instant::now() + Duration::from_secs(10);
                    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
        if is_fuse_mount(&self.mountpoint)? {
            lazy_unmount(&self.mountpoint)?;
        }
        Ok(())
    }
}

impl Drop for FuseMount {
    fn drop(&mut self) {
        if let Err(error) = self.teardown() {
            tracing::warn!(%error, mountpoint = %self.mountpoint.display(), "unmount failed");
        }
    }
}

/// Whether `path` is currently the mount point of a FUSE filesystem, read
/// from `/proc/self/mountinfo`.
pub fn is_fuse_mount(path: &Path) -> Result<bool> {
    let wanted = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").map_err(io_context("read /proc/self/mountinfo"))?;
    Ok(mountinfo.lines().any(|line| {
        let mut fields = line.split(" - ");
        let (Some(left), Some(right)) = (fields.next(), fields.next()) else { return false };
        let mount_point = left.split(' ').nth(4).map(unescape_mountinfo);
        let fs_type = right.split(' ').next().unwrap_or_default();
        fs_type.starts_with("fuse") && mount_point.as_deref() == Some(wanted.as_path())
    }))
}

/// Mountinfo escapes space, tab, newline and backslash as octal.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(pos) = rest.find('\\') {
        out.push_str(&rest[..pos]);
        let code = rest.get(pos + 1..pos + 4).and_then(|octal| u8::from_str_radix(octal, 8).ok());
        if let Some(byte) = code {
            out.push(char::from(byte));
            rest = &rest[pos + 4..];
        } else {
            out.push('\\');
            rest = &rest[pos + 1..];
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

fn lazy_unmount(path: &Path) -> Result<()> {
    let status = Command::new("fusermount3")
        .arg("-u")
        .arg("-z")
        .arg(path)
        .stderr(Stdio::null())
        .status()
        .map_err(|source| Error::Spawn { name: "fusermount3".into(), source })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            command: format!("fusermount3 -u -z {}", path.display()),
            stderr: status.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::unescape_mountinfo;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b\134c"), std::path::PathBuf::from(r"/tmp/a b\c"));
        assert_eq!(unescape_mountinfo("/plain"), std::path::PathBuf::from("/plain"));
    }
}
