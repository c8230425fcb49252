//! The command line: `mounter mount …` and `mounter agent --config FILE`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::agent::{self, AgentConfig, MountSpec};
use crate::metrics::Metrics;
use crate::mount;

/// cos-secrets-sync mounter: mounts a Cloud Object Storage bucket with FUSE.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Args {
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "COS_MOUNTER_METRICS_ADDR", global = true, help_heading = "Telemetry")]
    pub metrics_addr: Option<SocketAddr>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount one bucket in the foreground until SIGINT/SIGTERM or unmount.
    Mount(Box<MountArgs>),
    /// Mount every bucket a YAML config lists.
    Agent {
        /// The agent config file.
        #[arg(long, env = "COS_MOUNTER_CONFIG")]
        config: PathBuf,
    },
}

fn parse_mode(text: &str) -> Result<u16, String> {
    u16::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| format!("`{text}` is not an octal permission mode like 644"))
}

/// Flags of `mounter mount`.
#[derive(Debug, clap::Args)]
pub struct MountArgs {
    /// The bucket to mount.
    #[arg(long, env = "COS_MOUNTER_BUCKET", help_heading = "Bucket")]
    pub bucket: String,
    /// The S3 endpoint URL.
    #[arg(long, env = "COS_MOUNTER_ENDPOINT", help_heading = "Bucket")]
    pub endpoint: String,
    /// Show only keys under this prefix.
    #[arg(long, help_heading = "Bucket")]
    pub prefix: Option<String>,
    /// The SigV4 region.
    #[arg(long, default_value = "us-east-1", help_heading = "Bucket")]
    pub region: String,
    /// The IAM endpoint, for `api-key` credentials.
    #[arg(long, default_value = "https://iam.cloud.ibm.com", help_heading = "Credentials")]
    pub iam_endpoint: String,
    /// A directory holding the Secret's files (access-key, secret-key or api-key, service-instance-id).
    #[arg(
        long,
        env = "COS_MOUNTER_CREDENTIALS_DIR",
        help_heading = "Credentials",
        required_unless_present = "secret",
        conflicts_with = "secret"
    )]
    pub credentials_dir: Option<PathBuf>,
    /// Watch this Secret (NAMESPACE/NAME) through the Kubernetes API.
    #[arg(long, help_heading = "Credentials")]
    pub secret: Option<String>,
    /// The kubeconfig for --secret (default: in-cluster configuration).
    #[arg(long, env = "KUBECONFIG", help_heading = "Credentials", requires = "secret")]
    pub kubeconfig: Option<PathBuf>,
    /// Seconds between reads of --credentials-dir.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=3600), help_heading = "Credentials")]
    pub credentials_poll_secs: u64,
    /// Owner of every file (default: the mounting user).
    #[arg(long, help_heading = "Permissions")]
    pub uid: Option<u32>,
    /// Group of every file (default: the mounting user's group).
    #[arg(long, help_heading = "Permissions")]
    pub gid: Option<u32>,
    /// Permission bits of files, in octal.
    #[arg(long, default_value = "644", value_parser = parse_mode, help_heading = "Permissions")]
    pub file_mode: u16,
    /// Permission bits of directories, in octal.
    #[arg(long, default_value = "755", value_parser = parse_mode, help_heading = "Permissions")]
    pub dir_mode: u16,
    /// Let users other than the mounting one access the mount.
    #[arg(long, help_heading = "Permissions")]
    pub allow_other: bool,
    /// Mount read-only.
    #[arg(long, help_heading = "Permissions")]
    pub read_only: bool,
    /// How long attributes and listings are cached, in milliseconds.
    #[arg(long, default_value_t = 1000, help_heading = "Caching")]
    pub metadata_ttl_ms: u64,
    /// How long a missing name is remembered, in milliseconds.
    #[arg(long, default_value_t = 1000, help_heading = "Caching")]
    pub negative_ttl_ms: u64,
    /// Memory for read prefetching, per mount, in MiB.
    #[arg(long, default_value_t = crate::prefetch::DEFAULT_MEMORY_MIB, value_parser = clap::value_parser!(u64).range(1..=65536), help_heading = "Performance")]
    pub prefetch_memory_mib: u64,
    /// Upload part size in MiB.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120), help_heading = "Performance")]
    pub part_size_mib: u64,
    /// Parts uploaded in parallel per file.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64), help_heading = "Performance")]
    pub upload_parallelism: u64,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64), help_heading = "Performance")]
    pub fuse_threads: u64,
    /// The largest file that can be changed in place (appends, random
    /// writes, O_RDWR) through a local copy in $TMPDIR, in MiB; 0 refuses
    /// such changes with ENOTSUP.
    #[arg(long, default_value_t = 1024, help_heading = "Performance")]
    pub staging_limit_mib: u64,
    /// Read every file through the kernel's page cache and readahead:
    /// faster for programs that read in small pieces (under 32 KiB),
    /// slower for large reads. By default files larger than 256 KiB are
    /// read directly, except by processes seen reading in small pieces.
    #[arg(long, help_heading = "Performance")]
    pub page_cache: bool,
    /// Where to mount.
    pub mountpoint: PathBuf,
}

impl From<MountArgs> for MountSpec {
    fn from(args: MountArgs) -> Self {
        let MountArgs {
            bucket,
            endpoint,
            prefix,
            region,
            iam_endpoint,
            credentials_dir,
            secret,
            kubeconfig,
            credentials_poll_secs,
            uid,
            gid,
            file_mode,
            dir_mode,
            allow_other,
            read_only,
            metadata_ttl_ms,
            negative_ttl_ms,
            prefetch_memory_mib,
            part_size_mib,
            upload_parallelism,
            fuse_threads,
            staging_limit_mib,
            page_cache,
            mountpoint,
        } = args;
        Self {
            mountpoint,
            bucket,
            endpoint,
            prefix,
            region,
            iam_endpoint,
            credentials_dir,
            secret,
            kubeconfig,
            credentials_poll_secs,
            uid,
            gid,
            file_mode,
            dir_mode,
            allow_other,
            read_only,
            metadata_ttl_ms,
            negative_ttl_ms,
            prefetch_memory_mib,
            part_size_mib,
            upload_parallelism: usize::try_from(upload_parallelism).unwrap_or(1),
            fuse_threads: usize::try_from(fuse_threads).unwrap_or(1),
            staging_limit_mib,
            page_cache,
        }
    }
}

impl Args {
    /// Runs the command until it ends or `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let Self { metrics_addr, command } = self;
        let metrics = Metrics::default();
        let result = match command {
            Command::Mount(args) => {
                let config = MountSpec::from(*args).into_config()?;
                serve_metrics(metrics_addr, &metrics);
                mount::run(config, metrics, shutdown).await.map_err(anyhow::Error::from)
            }
            Command::Agent { config } => {
                let config = AgentConfig::load(&config)?;
                serve_metrics(metrics_addr.or(config.metrics_addr), &metrics);
                agent::run(config, metrics, shutdown).await.map_err(anyhow::Error::from)
            }
        };
        result.context("the mounter stopped with an error")
    }
}

fn serve_metrics(addr: Option<SocketAddr>, metrics: &Metrics) {
    let Some(addr) = addr else { return };
    let mut registry = prometheus_client::registry::Registry::default();
    metrics.register(&mut registry);
    tokio::spawn(async move {
        if let Err(error) = crate::metrics::serve(addr, registry).await {
            tracing::error!(%error, %addr, "the metrics server failed");
        }
    });
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn the_cli_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn mount_flags_parse() {
        let args = Args::try_parse_from([
            "mounter",
            "mount",
            "--bucket",
            "b",
            "--endpoint",
            "http://localhost:9000",
            "--credentials-dir",
            "/c",
            "--file-mode",
            "600",
            "/mnt",
        ])
        .unwrap();
        let Command::Mount(mount) = args.command else { panic!("not mount") };
        assert_eq!(mount.file_mode, 0o600);
        assert!(
            Args::try_parse_from(["mounter", "mount", "--bucket", "b", "--endpoint", "x", "/mnt"]).is_err()
        );
        assert!(
            Args::try_parse_from([
                "mounter",
                "mount",
                "--bucket",
                "b",
                "--endpoint",
                "x",
                "--credentials-dir",
                "/c",
                "--file-mode",
                "999",
                "/mnt"
            ])
            .is_err()
        );
    }
}
