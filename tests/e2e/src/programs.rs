//! The controller and mounter binaries, run as child processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use test_platform::FuseMount;

/// The workspace binary `name` next to the running test executable
/// (`target/<profile>/deps/<test>-<hash>` → `target/<profile>/<name>`).
/// `cargo test --workspace` (the README's test command) builds it before
/// any test runs; `cargo test -p e2e` alone does not.
///
/// # Panics
/// If it is not built.
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe.parent().and_then(Path::parent).expect("target directory").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p controller -p mounter` first (the README's test command does)",
        path.display()
    );
    path
}

/// A controller process, killed on drop.
#[derive(Debug)]
pub struct ControllerProcess {
    child: Child,
}

/// How to reach Secrets Manager and the cluster.
#[derive(Debug, Clone)]
pub struct ControllerSettings {
    /// The controller binary.
    pub binary: PathBuf,
    /// Admin kubeconfig of the cluster.
    pub kubeconfig: PathBuf,
    /// Secrets Manager endpoint (the emulator's URL).
    pub endpoint: String,
    /// IAM base URL (the emulator's URL).
    pub iam_url: String,
    /// IAM API key.
    pub api_key: String,
    /// Poll interval in milliseconds.
    pub poll_interval_ms: u64,
    /// Namespaces to watch (comma list; empty = all).
    pub namespaces: String,
    /// More environment variables (flags the KES variables do not cover).
    pub extra_env: Vec<(String, String)>,
    /// Where the controller's output goes; `None` inherits ours.
    pub log: Option<PathBuf>,
}

impl ControllerProcess {
    /// Starts the controller configured through KES's environment variables,
    /// exactly as a KES deployment would configure it.
    pub fn start(settings: &ControllerSettings) -> anyhow::Result<Self> {
        let mut command = Command::new(&settings.binary);
        command
            .env("KUBECONFIG", &settings.kubeconfig)
            .env("IBM_CLOUD_SECRETS_MANAGER_API_ENDPOINT", &settings.endpoint)
            .env("IBM_CLOUD_SECRETS_MANAGER_API_AUTH_TYPE", "iam")
            .env("IBM_CLOUD_SECRETS_MANAGER_API_AUTH_URL", &settings.iam_url)
            .env("IBM_CLOUD_SECRETS_MANAGER_API_APIKEY", &settings.api_key)
            .env("POLLER_INTERVAL_MILLISECONDS", settings.poll_interval_ms.to_string())
            .env("WATCHED_NAMESPACES", &settings.namespaces)
            // Any free port: the demo does not scrape it.
            .env("COS_SECRETS_SYNC_METRICS_ADDR", "127.0.0.1:0")
            .envs(settings.extra_env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null());
        if let Some(log) = &settings.log {
            let file = std::fs::File::create(log).with_context(|| format!("create {}", log.display()))?;
            command.stdout(file.try_clone()?).stderr(file);
        }
        let child = command.spawn().with_context(|| format!("start {}", settings.binary.display()))?;
        Ok(Self { child })
    }

    /// The peak resident set size of the process so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .context("read the controller's /proc status")?;
        let kib = status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .context("no VmHWM in the controller's /proc status")?;
        Ok(kib * 1024)
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Mounts `bucket` at `mountpoint` with the mounter, reading credentials
/// from the Kubernetes Secret `namespace/secret`. Returns once the mount is
/// live; it is unmounted when the guard drops.
pub fn mount_with_secret(
    mounter: &Path,
    kubeconfig: &Path,
    endpoint: &str,
    bucket: &str,
    secret: (&str, &str),
    mountpoint: &Path,
) -> anyhow::Result<FuseMount> {
    let mut command = Command::new(mounter);
    command
        .arg("mount")
        .arg("--endpoint")
        .arg(endpoint)
        .arg("--region")
        .arg(test_platform::s3::REGION)
        .arg("--bucket")
        .arg(bucket)
        .arg("--secret")
        .arg(format!("{}/{}", secret.0, secret.1))
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg(mountpoint);
    FuseMount::spawn(command, mountpoint).context("mount the bucket")
}
