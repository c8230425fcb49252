//! Throughput benchmark: the mounter against s3fs-fuse, rclone and the raw
//! S3 ceiling, on a local MinIO. Not a test: run it by hand, in release.
//!
//! ```sh
//! apt-get install -y s3fs rclone
//! cargo build --release -p mounter --bin mounter
//! cargo run --release -p mounter --example bench            # 1024 MiB
//! BENCH_SIZE_MIB=256 cargo run --release -p mounter --example bench
//! ```
//!
//! For each contender it mounts the bucket afresh, writes a file of
//! `BENCH_SIZE_MIB` through the mount (cp-like, 1 MiB writes, then close) and
//! reads another, uploaded beforehand, sequentially with 1 MiB reads. The raw
//! ceiling is 16 parallel 8 MiB ranged GETs straight from MinIO. Results go to
//! stdout as a Markdown table. A contender whose binary is missing is skipped.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use rusty_s3::{Bucket, S3Action as _, UrlStyle};
use test_platform::{FuseMount, TestS3};

const MIB: usize = 1024 * 1024;

fn mib_per_s(bytes: usize, elapsed: Duration) -> f64 {
    let mib = u32::try_from(bytes / MIB).unwrap_or(u32::MAX);
    f64::from(mib) / elapsed.as_secs_f64()
}

fn mounter_binary() -> PathBuf {
    // target/<profile>/examples/bench → target/<profile>/mounter
    let exe = std::env::current_exe().expect("the example's path");
    exe.parent().and_then(Path::parent).map(|dir| dir.join("mounter")).expect("a target directory")
}

fn on_path(program: &str) -> bool {
    Command::new("which").arg(program).output().is_ok_and(|out| out.status.success())
}

/// The command that mounts `bucket` at `mountpoint` in the foreground.
fn command(name: &str, s3: &TestS3, bucket: &str, mountpoint: &Path, scratch: &Path) -> Option<Command> {
    let key = s3.root_key();
    let endpoint = s3.endpoint().as_str().trim_end_matches('/').to_owned();
    match name {
        "mounter" => {
            let binary = mounter_binary();
            if !binary.exists() {
                return None;
            }
            let dir = scratch.join("credentials");
            std::fs::create_dir_all(&dir).ok()?;
            std::fs::write(dir.join("access-key"), &key.access_key).ok()?;
            std::fs::write(dir.join("secret-key"), &key.secret_key).ok()?;
            let mut command = Command::new(binary);
            command.args(["mount", "--bucket", bucket, "--endpoint", &endpoint, "--credentials-dir"]);
            command.arg(dir).arg(mountpoint);
            Some(command)
        }
        "s3fs" if on_path("s3fs") => {
            let passwd = scratch.join("passwd-s3fs");
            std::fs::write(&passwd, format!("{}:{}", key.access_key, key.secret_key)).ok()?;
            let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
            std::fs::set_permissions(&passwd, private).ok()?;
            let mut command = Command::new("s3fs");
            command
                .arg(bucket)
                .arg(mountpoint)
                .arg("-f")
                .arg("-o")
                .arg(format!("url={endpoint},use_path_request_style,passwd_file={}", passwd.display()));
            Some(command)
        }
        "rclone" if on_path("rclone") => {
            let mut command = Command::new("rclone");
            command
                .args(["mount", &format!(":s3:{bucket}")])
                .arg(mountpoint)
                .args(["--vfs-cache-mode", "off", "--s3-provider", "Minio", "--s3-endpoint", &endpoint])
                // rclone refuses a custom CA bundle with its own transport.
                .env_remove("AWS_CA_BUNDLE")
                .env("RCLONE_S3_ACCESS_KEY_ID", &key.access_key)
                .env("RCLONE_S3_SECRET_ACCESS_KEY", &key.secret_key);
            Some(command)
        }
        _ => None,
    }
}

fn write_file(path: &Path, size: usize) -> std::io::Result<Duration> {
    let chunk = vec![0x5a; MIB];
    let started = Instant::now();
    let mut file = std::fs::File::create(path)?;
    for _ in 0..size / MIB {
        file.write_all(&chunk)?;
    }
    drop(file);
    Ok(started.elapsed())
}

fn read_file(path: &Path) -> std::io::Result<(usize, Duration)> {
    let mut buffer = vec![0; MIB];
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut total = 0;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((total, started.elapsed()));
        }
        total += n;
    }
}

async fn raw_ceiling(s3: &TestS3, bucket: &str, key: &str, size: usize) -> anyhow::Result<Duration> {
    const PART: usize = 8 * MIB;
    let bucket = Bucket::new(s3.endpoint().clone(), UrlStyle::Path, bucket.to_owned(), "us-east-1")?;
    let credentials = s3.root_key().credentials();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let parts = (0..size.div_ceil(PART)).map(|i| {
        let url = bucket.get_object(Some(&credentials), key).sign(Duration::from_secs(600));
        let range = format!("bytes={}-{}", i * PART, ((i + 1) * PART).min(size) - 1);
        let request = http.get(url).header("range", range);
        async move { request.send().await?.error_for_status()?.bytes().await.map(|b| b.len()) }
    });
    let total: usize = futures::stream::iter(parts)
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .sum();
    anyhow::ensure!(total == size, "short raw read: {total} of {size}");
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let size = std::env::var("BENCH_SIZE_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024) * MIB;
    let s3 = TestS3::shared().await;
    let bucket = s3.bucket().await?;
    bucket.put("bench/read.bin", vec![0xa5; size]).await?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "| contender | sequential read MiB/s | write MiB/s |")?;
    writeln!(out, "|---|---|---|")?;
    let raw = raw_ceiling(s3, bucket.name(), "bench/read.bin", size).await?;
    writeln!(out, "| raw S3 (16 × 8 MiB ranged GETs) | {:.0} | – |", mib_per_s(size, raw))?;
    for name in ["mounter", "s3fs", "rclone"] {
        let scratch = tempfile::tempdir()?;
        let mountpoint = scratch.path().join("mnt");
        std::fs::create_dir(&mountpoint)?;
        let Some(command) = command(name, s3, bucket.name(), &mountpoint, scratch.path()) else {
            writeln!(out, "| {name} | skipped (not installed or not built) | |")?;
            continue;
        };
        let mount = FuseMount::spawn(command, &mountpoint)?;
        let (read, read_time) =
            tokio::task::block_in_place(|| read_file(&mount.path().join("bench/read.bin")))?;
        anyhow::ensure!(read == size, "{name} read {read} of {size} bytes");
        let write_time = tokio::task::block_in_place(|| {
            write_file(&mount.path().join(format!("bench/{name}.bin")), size)
        })?;
        writeln!(out, "| {name} | {:.0} | {:.0} |", mib_per_s(size, read_time), mib_per_s(size, write_time))?;
        drop(mount);
    }
    Ok(())
}
