//! The controller and mounter binaries, run as child processes.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::Context as _;
use test_platform::FuseMount;

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
}

impl ControllerProcess {
    /// Starts the controller configured through KES's environment variables,
    /// exactly as a KES deployment would configure it.
    pub fn start(settings: &ControllerSettings) -> anyhow::Result<Self> {
        let child = Command::new(&settings.binary)
            .env("KUBECONFIG", &settings.kubeconfig)
            .env("IBM_CLOUD_SECRETS_MANAGER_API_ENDPOINT", &settings.endpoint)
            .env("IBM_CLOUD_SECRETS_MANAGER_API_AUTH_TYPE", "iam")
            .env("IBM_CLOUD_SECRETS_MANAGER_API_AUTH_URL", &settings.iam_url)
            .env("IBM_CLOUD_SECRETS_MANAGER_API_APIKEY", &settings.api_key)
            .env("POLLER_INTERVAL_MILLISECONDS", settings.poll_interval_ms.to_string())
            .env("WATCHED_NAMESPACES", &settings.namespaces)
            // Any free port: the demo does not scrape it.
            .env("COS_SECRETS_SYNC_METRICS_ADDR", "127.0.0.1:0")
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("start {}", settings.binary.display()))?;
        Ok(Self { child })
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
