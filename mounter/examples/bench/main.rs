//! The issue #6 benchmark: the mounter side by side with s3fs-fuse, rclone
//! mount and the raw ceiling of the S3 server, on one private MinIO on
//! loopback, in one run. A command, never a test: it asserts no timing.
//!
//! ```sh
//! apt-get install -y s3fs rclone
//! cargo build --release -p mounter --bin mounter
//! cargo run --release -p mounter --example bench -- --runs 3
//! ```
//!
//! What each case measures and how: docs/benchmarking.md. The Markdown
//! table goes to stdout, progress to stderr.

mod contender;
mod raw;
mod report;
mod workload;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser as _;
use test_platform::{FuseMount, TestS3};

use crate::contender::{Contender, PeakSampler, Peaks, Target};
use crate::raw::Raw;
use crate::report::{Case, Results, Sizes, Who};

const MIB: u64 = 1024 * 1024;
const READ_KEY: &str = "read/large.bin";
const LIST_PREFIX: &str = "list/";
const SMALL_PREFIX: &str = "small/";

/// Benchmarks the mounter against s3fs, rclone and raw S3 (docs/benchmarking.md).
#[derive(Debug, clap::Parser)]
struct Args {
    /// Runs of each case for each contender; the table shows the median.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    runs: u16,
    /// Size of the object read sequentially, in MiB.
    #[arg(long, default_value_t = 1024)]
    read_mib: u64,
    /// Size of the file written sequentially, in MiB.
    #[arg(long, default_value_t = 512)]
    write_mib: u64,
    /// Objects in the directory listed with `ls -l`.
    #[arg(long, default_value_t = 5000)]
    list_objects: usize,
    /// Number of 4 KiB files read one by one.
    #[arg(long, default_value_t = 1000)]
    small_files: usize,
    /// The FUSE contenders to run (raw S3 always runs).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "mounter,s3fs,rclone")]
    contenders: Vec<Contender>,
    /// The cases to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sequential-read,sequential-write,list-long,small-files,first-byte,small-reads,small-reads-again"
    )]
    cases: Vec<Case>,
    /// An extra flag for `mounter mount` (repeat for several), to try other
    /// settings than the defaults.
    #[arg(long, allow_hyphen_values = true)]
    mounter_arg: Vec<String>,
}

/// How each sequential-read run starts with a cold page cache. The other
/// cases get a fresh mount per run (so an empty FUSE page cache and no
/// cached metadata) but keep MinIO's own files cached, so that they compare
/// against a warm server rather than against its disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cold {
    /// `sync; echo 3 > /proc/sys/vm/drop_caches` before every
    /// sequential-read run, plus a fresh mount.
    DropCaches,
    /// Only a fresh mount per run (drop_caches is not permitted): the FUSE
    /// page cache is per mount, but MinIO's files may be cached.
    FreshMount,
}

impl Cold {
    fn detect() -> Self {
        if Self::drop_caches().is_ok() { Self::DropCaches } else { Self::FreshMount }
    }

    fn drop_caches() -> std::io::Result<()> {
        std::process::Command::new("sync").status()?;
        std::fs::write("/proc/sys/vm/drop_caches", "3")
    }

    fn prepare(self, case: Case) -> anyhow::Result<()> {
        if self == Self::DropCaches
            && matches!(case, Case::SequentialRead | Case::SmallReads | Case::SmallReadsAgain)
        {
            Self::drop_caches().context("drop the page cache")?;
        }
        Ok(())
    }
}

/// Everything a run needs.
#[derive(Debug)]
struct Bench {
    raw: Raw,
    target: Target,
    sizes: Sizes,
    cold: Cold,
    small_keys: Vec<String>,
    scratch: PathBuf,
}

fn mounter_binary() -> anyhow::Result<PathBuf> {
    // target/<profile>/examples/bench → target/<profile>/mounter
    let exe = std::env::current_exe()?;
    let dir = exe.parent().and_then(Path::parent).context("the example is not in a target directory")?;
    let mounter = dir.join("mounter");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    if let (Some(binary), Some(bench)) = (modified(&mounter), modified(&exe))
        && binary < bench
    {
        tracing::warn!(
            "{} is older than this benchmark; rebuild it (cargo build --release -p mounter --bin mounter)",
            mounter.display()
        );
    }
    Ok(mounter)
}

impl Bench {
    async fn raw(&self, case: Case, run: u16) -> anyhow::Result<Duration> {
        let sizes = &self.sizes;
        match case {
            Case::SequentialRead | Case::SmallReads | Case::SmallReadsAgain => {
                self.raw.parallel_get(READ_KEY, sizes.read).await
            }
            Case::SequentialWrite => {
                let key = format!("write-raw-{run}.bin");
                let elapsed = self.raw.multipart_put(&key, sizes.write).await?;
                self.raw.delete(&key).await?;
                Ok(elapsed)
            }
            Case::ListLong => {
                let (elapsed, count) = self.raw.list(LIST_PREFIX).await?;
                anyhow::ensure!(count == sizes.list, "listed {count} objects, not {}", sizes.list);
                Ok(elapsed)
            }
            Case::SmallFiles => self.raw.get_each(&self.small_keys, sizes.small_size).await,
            Case::FirstByte => self.raw.first_byte(READ_KEY).await,
        }
    }

    /// Mounts `contender` afresh, runs `case` through it and unmounts;
    /// returns the time and the process's peaks.
    async fn mounted(&self, contender: Contender, case: Case, run: u16) -> anyhow::Result<(Duration, Peaks)> {
        let scratch = tempfile::tempdir_in(&self.scratch)?;
        let mountpoint = scratch.path().join("mnt");
        std::fs::create_dir(&mountpoint)?;
        let command = contender.command(&self.target, &mountpoint, scratch.path())?;
        let mut mount = FuseMount::spawn(command, &mountpoint).with_context(|| {
            format!("mount with {} (log in {})", contender.name(), scratch.path().display())
        })?;
        let pid = mount.child().map(|child| child.id()).context("the mount has no process")?;
        let sampler = PeakSampler::start(pid);
        let root = mount.path().to_owned();
        let sizes = self.sizes;
        let elapsed = match case {
            Case::SequentialRead => {
                block(|| workload::sequential_read(&root.join(READ_KEY), sizes.read, workload::IO_SIZE))
            }
            Case::SmallReads => {
                block(|| workload::sequential_read(&root.join(READ_KEY), sizes.read, workload::SMALL_IO_SIZE))
            }
            Case::SmallReadsAgain => block(|| {
                // Untimed: the same process read a file in small pieces before.
                workload::read_start(&root.join(READ_KEY), 2 * 1024 * 1024, workload::SMALL_IO_SIZE)?;
                workload::sequential_read(&root.join(READ_KEY), sizes.read, workload::SMALL_IO_SIZE)
            }),
            Case::SequentialWrite => {
                let key = format!("write-{}-{run}.bin", contender.name());
                let started = Instant::now();
                block(|| workload::sequential_write(&root.join(&key), sizes.write))?;
                // Done when the object is in S3, whatever `close` returned.
                self.raw.wait_for(&key, sizes.write).await?;
                let elapsed = started.elapsed();
                self.raw.delete(&key).await?;
                Ok(elapsed)
            }
            Case::ListLong => block(|| workload::list_long(&root.join(LIST_PREFIX), sizes.list)),
            Case::SmallFiles => {
                let names: Vec<_> = self
                    .small_keys
                    .iter()
                    .map(|key| key.trim_start_matches(SMALL_PREFIX).to_owned())
                    .collect();
                block(|| workload::read_each(&root.join(SMALL_PREFIX), &names, sizes.small_size))
            }
            Case::FirstByte => block(|| workload::first_byte(&root.join(READ_KEY))),
        }
        .with_context(|| format!("{case:?} through {}", contender.name()))?;
        let peaks = sampler.stop();
        drop(mount);
        Ok((elapsed, peaks))
    }
}

fn block<T>(work: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(work)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    mounter::logging::init();
    let sizes = Sizes {
        read: args.read_mib * MIB,
        write: args.write_mib * MIB,
        list: args.list_objects,
        small: args.small_files,
        small_size: 4096,
    };
    let s3 = TestS3::start().await?;
    let bucket = s3.bucket().await?;
    let scratch = tempfile::Builder::new().prefix("mounter-bench-").tempdir()?;
    let credentials_dir = scratch.path().join("credentials");
    std::fs::create_dir(&credentials_dir)?;
    std::fs::write(credentials_dir.join("access-key"), &s3.root_key().access_key)?;
    std::fs::write(credentials_dir.join("secret-key"), &s3.root_key().secret_key)?;
    let raw = Raw::new(s3.endpoint(), bucket.name(), s3.root_key(), &credentials_dir).await?;
    let target = Target {
        endpoint: s3.endpoint().as_str().trim_end_matches('/').to_owned(),
        bucket: bucket.name().to_owned(),
        key: s3.root_key().clone(),
        credentials_dir,
        mounter: mounter_binary()?,
        mounter_args: args.mounter_arg,
    };
    let mut contenders = Vec::new();
    for contender in args.contenders {
        match contender.unavailable(&target) {
            Some(reason) => tracing::error!("skipping {}: {reason}", contender.name()),
            None => contenders.push(contender),
        }
    }

    tracing::info!("uploading the test data");
    raw.multipart_put(READ_KEY, sizes.read).await?;
    raw.put_many(LIST_PREFIX, sizes.list, 1).await?;
    let small_size = usize::try_from(sizes.small_size)?;
    let small_keys = raw.put_many(SMALL_PREFIX, sizes.small, small_size).await?;
    let bench =
        Bench { raw, target, sizes, cold: Cold::detect(), small_keys, scratch: scratch.path().to_owned() };

    let mut results = Results::new(sizes, contenders.clone());
    for case in args.cases {
        for run in 0..args.runs {
            tracing::info!(?case, run, "raw S3");
            bench.cold.prepare(case)?;
            results.record(case, Who::Raw, bench.raw(case, run).await?);
            for &contender in &contenders {
                tracing::info!(?case, run, contender = contender.name(), "mounted");
                bench.cold.prepare(case)?;
                match bench.mounted(contender, case, run).await {
                    Ok((elapsed, peaks)) => {
                        results.record(case, Who::Mounted(contender), elapsed);
                        results.record_peaks(case, contender, peaks);
                    }
                    Err(error) => tracing::error!("{}: {error:#}", contender.name()),
                }
            }
        }
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", header(&bench, &contenders, args.runs))?;
    write!(out, "{}", results.render())?;
    Ok(())
}

fn header(bench: &Bench, contenders: &[Contender], runs: u16) -> String {
    let cold = match bench.cold {
        Cold::DropCaches => {
            "`sync; echo 3 > /proc/sys/vm/drop_caches` before every sequential-read run (raw included); \
             a fresh mount for every run of every case"
        }
        Cold::FreshMount => {
            "a fresh mount for every run of every case (drop_caches is not permitted, so MinIO's files \
             stay cached)"
        }
    };
    let versions: Vec<_> =
        contenders.iter().map(|c| format!("{}: {}", c.name(), c.version(&bench.target))).collect();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("Median of {runs} runs; {cores} CPUs; cold cache: {cold}.\nVersions: {}.\n", versions.join("; "))
}
