//! The workloads run through a mount, as an application would: plain
//! blocking file system calls, timed from the first call to the last.

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The size of each `read(2)` and `write(2)`, but for the small-reads case.
pub const IO_SIZE: usize = 1024 * 1024;

/// The size of each `read(2)` of the small-reads case.
pub const SMALL_IO_SIZE: usize = 4096;

/// Reads the first `len` bytes of the file at `path` with `io_size` reads.
pub fn read_start(path: &Path, len: usize, io_size: usize) -> anyhow::Result<()> {
    let mut buffer = vec![0; io_size];
    let mut file = std::fs::File::open(path)?;
    let mut total = 0;
    while total < len {
        match file.read(&mut buffer)? {
            0 => anyhow::bail!("{} has fewer than {len} bytes", path.display()),
            n => total += n,
        }
    }
    Ok(())
}

/// Reads the file at `path` to its end with `io_size` reads; checks its size.
pub fn sequential_read(path: &Path, size: u64, io_size: usize) -> anyhow::Result<Duration> {
    let mut buffer = vec![0; io_size];
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let mut total = 0;
    loop {
        match file.read(&mut buffer)? {
            0 => break,
            n => total += n as u64,
        }
    }
    drop(file);
    let elapsed = started.elapsed();
    anyhow::ensure!(total == size, "read {total} of {size} bytes from {}", path.display());
    Ok(elapsed)
}

/// Creates `path` and writes `size` bytes with 1 MiB writes, then closes it.
pub fn sequential_write(path: &Path, size: u64) -> anyhow::Result<Duration> {
    let chunk = vec![0x5a; IO_SIZE];
    let started = Instant::now();
    let mut file = std::fs::File::create(path)?;
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left)?.min(IO_SIZE);
        file.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    drop(file);
    Ok(started.elapsed())
}

/// Runs `ls -l` on `dir`; checks it shows `count` regular files.
pub fn list_long(dir: &Path, count: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let output = Command::new("ls").arg("-l").arg(dir).stdin(Stdio::null()).output()?;
    let elapsed = started.elapsed();
    anyhow::ensure!(output.status.success(), "ls -l {} failed: {}", dir.display(), output.status);
    let files = output.stdout.split(|b| *b == b'\n').filter(|line| line.first() == Some(&b'-')).count();
    anyhow::ensure!(files == count, "ls -l {} showed {files} files, not {count}", dir.display());
    Ok(elapsed)
}

/// Reads each of `names` in `dir` whole, one after the other; checks each
/// is `size` bytes.
pub fn read_each(dir: &Path, names: &[String], size: u64) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for name in names {
        let data = std::fs::read(dir.join(name))?;
        anyhow::ensure!(data.len() as u64 == size, "{name} has {} bytes, not {size}", data.len());
    }
    Ok(started.elapsed())
}

/// Opens `path` and reads one byte at offset 0: the time from `open(2)` to
/// the first byte.
pub fn first_byte(path: &Path) -> anyhow::Result<Duration> {
    let mut byte = [0; 1];
    let started = Instant::now();
    let mut file = std::fs::File::open(path)?;
    let n = file.read(&mut byte)?;
    let elapsed = started.elapsed();
    anyhow::ensure!(n == 1, "no first byte from {}", path.display());
    Ok(elapsed)
}
