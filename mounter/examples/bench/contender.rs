//! The FUSE contenders: how each one is mounted, with the settings
//! docs/benchmarking.md lists, and the peak RSS of its process.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use test_platform::s3::AccessKey;

/// A FUSE filesystem that mounts an S3 bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Contender {
    /// This project's mounter, with its default settings.
    Mounter,
    /// s3fs-fuse from Debian.
    S3fs,
    /// `rclone mount` from Debian.
    Rclone,
}

/// What every contender needs to mount the benchmark bucket.
#[derive(Debug)]
pub struct Target {
    /// The S3 endpoint, without a trailing slash.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The key pair.
    pub key: AccessKey,
    /// A directory with `access-key` and `secret-key` files (the mounter's
    /// `--credentials-dir`).
    pub credentials_dir: PathBuf,
    /// The `mounter` binary.
    pub mounter: PathBuf,
    /// Extra flags for `mounter mount`.
    pub mounter_args: Vec<String>,
}

impl Contender {
    /// The name in the results table.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Mounter => "mounter",
            Self::S3fs => "s3fs",
            Self::Rclone => "rclone",
        }
    }

    /// Why this contender cannot run here, if it cannot.
    pub fn unavailable(self, target: &Target) -> Option<String> {
        match self {
            Self::Mounter if !target.mounter.exists() => Some(format!(
                "{} is missing; build it first: cargo build --release -p mounter --bin mounter",
                target.mounter.display()
            )),
            Self::Mounter => None,
            Self::S3fs | Self::Rclone => version(self.program(target)).is_none().then(|| {
                format!("`{}` is not installed; install it with: apt-get install -y s3fs rclone", self.name())
            }),
        }
    }

    /// The first line of `--version`, for the report.
    pub fn version(self, target: &Target) -> String {
        version(self.program(target)).unwrap_or_else(|| "not installed".to_owned())
    }

    fn program(self, target: &Target) -> &Path {
        match self {
            Self::Mounter => &target.mounter,
            Self::S3fs => Path::new("s3fs"),
            Self::Rclone => Path::new("rclone"),
        }
    }

    /// The foreground command mounting the bucket at `mountpoint`; `scratch`
    /// receives its log and any file it needs.
    pub fn command(self, target: &Target, mountpoint: &Path, scratch: &Path) -> std::io::Result<Command> {
        let mut command = Command::new(self.program(target));
        match self {
            Self::Mounter => {
                command
                    .args(["mount", "--bucket", &target.bucket, "--endpoint", &target.endpoint])
                    .arg("--credentials-dir")
                    .arg(&target.credentials_dir)
                    .args(&target.mounter_args)
                    .arg(mountpoint);
            }
            Self::S3fs => {
                let passwd = scratch.join("passwd-s3fs");
                std::fs::write(&passwd, format!("{}:{}", target.key.access_key, target.key.secret_key))?;
                std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600))?;
                command.arg(&target.bucket).arg(mountpoint).arg("-f").arg("-o").arg(format!(
                    "url={},use_path_request_style,passwd_file={},parallel_count=16,multipart_size=8,multireq_max=32",
                    target.endpoint,
                    passwd.display()
                ));
            }
            Self::Rclone => {
                command
                    .args(["mount", &format!("minio:{}", target.bucket)])
                    .arg(mountpoint)
                    .arg("--config")
                    .arg(scratch.join("rclone.conf"))
                    .args(["--vfs-cache-mode", "off", "--buffer-size", "64M", "--use-server-modtime"])
                    .args(["--s3-chunk-size", "8M", "--s3-upload-concurrency", "16", "--s3-disable-checksum"])
                    .env("RCLONE_CONFIG_MINIO_TYPE", "s3")
                    .env("RCLONE_CONFIG_MINIO_PROVIDER", "Minio")
                    .env("RCLONE_CONFIG_MINIO_ENDPOINT", &target.endpoint)
                    .env("RCLONE_CONFIG_MINIO_ACCESS_KEY_ID", &target.key.access_key)
                    .env("RCLONE_CONFIG_MINIO_SECRET_ACCESS_KEY", &target.key.secret_key)
                    // rclone refuses a custom CA bundle with its own transport.
                    .env_remove("AWS_CA_BUNDLE");
            }
        }
        let log = std::fs::File::create(scratch.join(format!("{}.log", self.name())))?;
        command.stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        Ok(command)
    }
}

fn version(program: &Path) -> Option<String> {
    let output = Command::new(program).arg("--version").stdin(Stdio::null()).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().next().unwrap_or_default().trim().to_owned();
    (output.status.success() || !line.is_empty()).then_some(line)
}

/// The peaks of one FUSE process over one mount.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peaks {
    /// `VmHWM`, the peak resident set, in KiB.
    pub rss_kib: u64,
    /// The most disk space, in KiB, held at once by files the process had
    /// open after unlinking them: s3fs stages each object it reads or
    /// writes in such a file, which its resident set does not show.
    pub unlinked_kib: u64,
}

/// Samples the [`Peaks`] of one process until stopped.
#[derive(Debug)]
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Peaks>,
}

impl PeakSampler {
    /// Starts sampling `pid` every 50 ms.
    pub fn start(pid: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut peaks = Peaks::default();
            loop {
                peaks.rss_kib = peaks.rss_kib.max(peak_rss_kib(pid).unwrap_or(0));
                peaks.unlinked_kib = peaks.unlinked_kib.max(unlinked_kib(pid));
                if flag.load(Ordering::Relaxed) {
                    return peaks;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Self { stop, thread }
    }

    /// Stops sampling (after one last sample) and returns the peaks.
    pub fn stop(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The disk space of the unlinked regular files `pid` has open, in KiB.
fn unlinked_kib(pid: u32) -> u64 {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.filter_map(Result::ok)
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|target| {
                target.to_str().is_some_and(|t| t.starts_with('/') && t.ends_with(" (deleted)"))
            })
        })
        .filter_map(|fd| std::fs::metadata(fd.path()).ok())
        .filter(std::fs::Metadata::is_file)
        .map(|meta| meta.blocks() / 2)
        .sum()
}
