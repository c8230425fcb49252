//! The mounter binary against a real MinIO server, through a real FUSE mount.
//!
//! Every test gets its own bucket and mount point. Credentials are written
//! the way the kubelet writes a Secret volume (files that are symlinks into a
//! `..data` directory swapped atomically), so rotation is tested in the shape
//! it has in production.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use test_platform::s3::AccessKey;
use test_platform::{FuseMount, TestBucket, TestS3};

const MIB: usize = 1024 * 1024;

/// One runtime for every test: the shared S3 server's HTTP client keeps
/// pooled connections tied to the runtime that opened them.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime"))
        .block_on(future)
}

/// A Secret volume directory in the kubelet's layout.
struct CredentialsDir {
    dir: tempfile::TempDir,
    version: u32,
}

impl CredentialsDir {
    fn new(files: &[(&str, &str)]) -> Self {
        let mut this = Self { dir: tempfile::tempdir().unwrap(), version: 0 };
        this.write(files);
        this
    }

    fn for_key(key: &AccessKey) -> Self {
        Self::new(&[("access-key", &key.access_key), ("secret-key", &key.secret_key)])
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a new version and swaps `..data` to it atomically.
    fn write(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = format!("..version_{}", self.version);
        std::fs::create_dir(self.path().join(&version)).unwrap();
        for (name, value) in files {
            std::fs::write(self.path().join(&version).join(name), value).unwrap();
            let link = self.path().join(name);
            if link.symlink_metadata().is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), link).unwrap();
            }
        }
        let tmp = self.path().join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(tmp, self.path().join("..data")).unwrap();
    }

    fn rotate_to(&mut self, key: &AccessKey) {
        self.write(&[("access-key", &key.access_key), ("secret-key", &key.secret_key)]);
    }
}

fn mounter(s3: &TestS3, bucket: &str, credentials: &Path, mountpoint: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mounter"));
    command
        .env("COS_MOUNTER_LOG", "mounter=info")
        .args(["mount", "--bucket", bucket, "--endpoint", s3.endpoint().as_str()])
        .arg("--credentials-dir")
        .arg(credentials)
        .args(["--credentials-poll-secs", "1"])
        .arg(mountpoint);
    command
}

struct Mounted {
    mount: FuseMount,
    _mountpoint: tempfile::TempDir,
}

impl Mounted {
    fn path(&self) -> &Path {
        self.mount.path()
    }

    fn join(&self, name: &str) -> PathBuf {
        self.path().join(name)
    }
}

fn mount(s3: &TestS3, bucket: &TestBucket, credentials: &CredentialsDir, extra: &[&str]) -> Mounted {
    let mountpoint = tempfile::tempdir().unwrap();
    let mut command = mounter(s3, bucket.name(), credentials.path(), mountpoint.path());
    command.args(extra);
    let mount = FuseMount::spawn(command, mountpoint.path()).expect("the mounter mounts");
    Mounted { mount, _mountpoint: mountpoint }
}

/// Deterministic pseudo-random bytes (xorshift), so content can be checked
/// without keeping a copy.
fn pattern(seed: u64, offset: usize, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut word = offset / 8;
    while out.len() < len {
        let mut x = seed ^ (word as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let bytes = x.to_le_bytes();
        let skip = if out.is_empty() { offset % 8 } else { 0 };
        out.extend_from_slice(&bytes[skip..]);
        word += 1;
    }
    out.truncate(len);
    out
}

fn root_mount(s3: &TestS3, bucket: &TestBucket) -> (CredentialsDir, Mounted) {
    let credentials = CredentialsDir::for_key(s3.root_key());
    let mounted = mount(s3, bucket, &credentials, &[]);
    (credentials, mounted)
}

#[test]
fn read_write_list_rename_and_delete() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("hello.txt", "hello from s3").await.unwrap();
        bucket.put("dir/inner.txt", "inner").await.unwrap();
        let (_credentials, mnt) = root_mount(s3, &bucket);

        assert_eq!(std::fs::read_to_string(mnt.join("hello.txt")).unwrap(), "hello from s3");
        assert_eq!(std::fs::read_to_string(mnt.join("dir/inner.txt")).unwrap(), "inner");
        let mut names: Vec<String> = std::fs::read_dir(mnt.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["dir", "hello.txt"]);
        assert!(mnt.join("dir").is_dir());

        std::fs::write(mnt.join("new.txt"), "written through FUSE").unwrap();
        assert_eq!(bucket.get("new.txt").await.unwrap(), b"written through FUSE");
        assert_eq!(std::fs::metadata(mnt.join("new.txt")).unwrap().len(), 20);

        std::fs::write(mnt.join("hello.txt"), "overwritten").unwrap();
        assert_eq!(bucket.get("hello.txt").await.unwrap(), b"overwritten");

        std::fs::create_dir(mnt.join("made")).unwrap();
        assert_eq!(bucket.get("made/").await.unwrap(), b"");
        std::fs::rename(mnt.join("new.txt"), mnt.join("made/moved.txt")).unwrap();
        assert_eq!(bucket.get("made/moved.txt").await.unwrap(), b"written through FUSE");
        assert!(bucket.get("new.txt").await.is_err(), "the source is gone after rename");
        assert!(!mnt.join("new.txt").exists());

        let error = std::fs::remove_dir(mnt.join("made")).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(39), "ENOTEMPTY: {error}");
        std::fs::remove_file(mnt.join("made/moved.txt")).unwrap();
        std::fs::remove_dir(mnt.join("made")).unwrap();
        assert!(bucket.get("made/").await.is_err());
        assert!(!mnt.join("made").exists());

        // Appends and in-place writes go through a local staging copy.
        let mut file = std::fs::OpenOptions::new().append(true).open(mnt.join("hello.txt")).unwrap();
        file.write_all(b", appended").unwrap();
        drop(file);
        assert_eq!(bucket.get("hello.txt").await.unwrap(), b"overwritten, appended");
        let file = std::fs::OpenOptions::new().read(true).write(true).open(mnt.join("hello.txt")).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, b"O", 0).unwrap();
        file.sync_all().unwrap();
        assert_eq!(bucket.get("hello.txt").await.unwrap(), b"Overwritten, appended");
        drop(file);
        assert_eq!(std::fs::read_to_string(mnt.join("hello.txt")).unwrap(), "Overwritten, appended");
    });
}

#[test]
fn an_empty_object_looked_up_by_name_is_an_empty_file() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        // Alone in its directory, so the lookup fetches its head: S3 answers
        // 416 to a range of an empty object.
        bucket.put("e/empty", "").await.unwrap();
        let (_credentials, mnt) = root_mount(s3, &bucket);
        assert_eq!(std::fs::metadata(mnt.join("e/empty")).unwrap().len(), 0);
        assert_eq!(std::fs::read(mnt.join("e/empty")).unwrap(), b"");
    });
}

#[test]
fn a_prefix_is_the_root_and_read_only_mounts_refuse_writes() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("team/a.txt", "A").await.unwrap();
        bucket.put("other.txt", "O").await.unwrap();
        let credentials = CredentialsDir::for_key(s3.root_key());
        let mnt = mount(s3, &bucket, &credentials, &["--prefix", "team", "--read-only"]);
        let names: Vec<_> = std::fs::read_dir(mnt.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["a.txt"]);
        assert_eq!(std::fs::read_to_string(mnt.join("a.txt")).unwrap(), "A");
        let error = std::fs::write(mnt.join("b.txt"), "x").unwrap_err();
        assert_eq!(error.raw_os_error(), Some(30), "EROFS: {error}");
    });
}

/// The issue's 1 GiB round trip: written through the mount (streamed as a
/// multipart upload), read back through the mount (prefetched ranged GETs)
/// and compared byte for byte with the generator's output.
#[test]
fn a_large_file_round_trips_intact() {
    block_on(async {
        const SIZE: usize = 1024 * MIB;
        const SEED: u64 = 0xC05;
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        let (_credentials, mnt) = root_mount(s3, &bucket);
        // The mounter (root here) raised the kernel readahead to 1 MiB.
        let device = Command::new("mountpoint").arg("-d").arg(mnt.path()).output().unwrap();
        let device = String::from_utf8(device.stdout).unwrap();
        let readahead = std::fs::read_to_string(format!("/sys/class/bdi/{}/read_ahead_kb", device.trim()));
        assert_eq!(readahead.unwrap().trim(), "1024");
        let path = mnt.join("large.bin");
        {
            let mut file = std::fs::File::create(&path).unwrap();
            for offset in (0..SIZE).step_by(MIB) {
                file.write_all(&pattern(SEED, offset, MIB)).unwrap();
            }
            file.sync_all().unwrap();
        }
        assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE as u64);
        read_in_pieces(&path, 3 * MIB + 17, SEED, SIZE);
    });
}

#[test]
fn concurrent_readers_see_the_same_bytes() {
    block_on(async {
        const SIZE: usize = 24 * MIB;
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("shared.bin", pattern(7, 0, SIZE)).await.unwrap();
        bucket.put("small.bin", pattern(8, 0, 1000)).await.unwrap();
        let (_credentials, mnt) = root_mount(s3, &bucket);
        let path = mnt.join("shared.bin");
        let small = mnt.join("small.bin");
        let readers: Vec<_> = (0..6)
            .map(|i| {
                let (path, small) = (path.clone(), small.clone());
                std::thread::spawn(move || {
                    if i % 2 == 0 {
                        std::fs::read(path).unwrap() == pattern(7, 0, SIZE)
                    } else {
                        // Random reads at scattered offsets.
                        let mut file = std::fs::File::open(&path).unwrap();
                        (0..20).all(|j| {
                            use std::io::Seek as _;
                            let offset = (j * 1_234_567 + i * 7919) % (SIZE - 4096);
                            let mut chunk = vec![0; 4096];
                            file.seek(std::io::SeekFrom::Start(offset as u64)).unwrap();
                            file.read_exact(&mut chunk).unwrap();
                            chunk == pattern(7, offset, 4096)
                                && std::fs::read(&small).unwrap() == pattern(8, 0, 1000)
                        })
                    }
                })
            })
            .collect();
        for reader in readers {
            assert!(reader.join().unwrap(), "a reader saw wrong bytes");
        }
    });
}

/// Reads all of `path` with `read(2)` calls of `size` bytes and checks every one.
fn read_in_pieces(path: &Path, size: usize, seed: u64, len: usize) {
    let mut file = std::fs::File::open(path).unwrap();
    let mut buffer = vec![0; size];
    let mut offset = 0;
    loop {
        let n = file.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        assert!(buffer[..n] == pattern(seed, offset, n)[..], "{size}-byte reads differ at {offset}");
        offset += n;
    }
    assert_eq!(offset, len, "{size}-byte reads stopped early");
}

/// The `cos_mounter_read_opens_total` count for `mode` in a metrics text.
fn read_opens(metrics: &str, mode: &str) -> u64 {
    let series = format!("cos_mounter_read_opens_total{{mode=\"{mode}\"}} ");
    metrics.lines().find_map(|line| line.strip_prefix(&series)).map_or(0, |v| v.trim().parse().unwrap())
}

fn check_mmap(path: &Path, seed: u64, len: usize) {
    let file = std::fs::File::open(path).unwrap();
    // SAFETY: nothing writes the file while it is mapped.
    let map = unsafe { memmap2::Mmap::map(&file) }.unwrap_or_else(|e| panic!("shared mmap: {e}"));
    assert_eq!(map.len(), len);
    for offset in [0, len / 2 + 1, len - 4096] {
        assert!(map[offset..offset + 4096] == pattern(seed, offset, 4096)[..], "mmap differs at {offset}");
    }
}

#[test]
fn reads_of_any_size_and_shared_mmap_work_directly_and_through_the_page_cache() {
    block_on(async {
        const SIZE: usize = 12 * MIB + 4321;
        const SEED: u64 = 0xD10;
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("f.bin", pattern(SEED, 0, SIZE)).await.unwrap();
        let credentials = CredentialsDir::for_key(s3.root_key());
        let metrics_addr = free_addr();
        let mnt = mount(s3, &bucket, &credentials, &["--metrics-addr", &metrics_addr]);
        let path = mnt.join("f.bin");
        let metrics = || async {
            reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap().text().await.unwrap()
        };
        // Large reads, and a shared mapping, of a file read directly.
        read_in_pieces(&path, 3 * MIB + 17, SEED, SIZE);
        read_in_pieces(&path, 65_536 + 3, SEED, SIZE);
        check_mmap(&path, SEED, SIZE);
        assert_eq!(read_opens(&metrics().await, "direct"), 3);
        // Small reads: this process then gets the page cache.
        read_in_pieces(&path, 4096, SEED, SIZE);
        read_in_pieces(&path, 4096, SEED, SIZE);
        check_mmap(&path, SEED, SIZE);
        let text = metrics().await;
        assert_eq!((read_opens(&text, "direct"), read_opens(&text, "page_cache")), (4, 2), "{text}");
        drop(mnt);

        let mnt = mount(s3, &bucket, &credentials, &["--page-cache"]);
        for size in [3 * MIB + 17, 4096] {
            read_in_pieces(&mnt.join("f.bin"), size, SEED, SIZE);
        }
        check_mmap(&mnt.join("f.bin"), SEED, SIZE);
    });
}

/// A thread that reads a file over and over and counts wrong or failed reads.
struct ReadLoop {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
    thread: std::thread::JoinHandle<()>,
}

impl ReadLoop {
    fn start(path: PathBuf, expected: Vec<u8>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (reads, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let thread = {
            let (stop, reads, failures) = (stop.clone(), reads.clone(), failures.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match std::fs::read(&path) {
                        Ok(bytes) if bytes == expected => {}
                        Ok(_) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("read returned wrong bytes");
                        }
                        Err(error) => {
                            failures.fetch_add(1, Ordering::Relaxed);
                            eprintln!("read failed: {error}");
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        Self { stop, reads, failures, thread }
    }

    /// Waits until `more` further reads completed.
    fn wait_for(&self, more: u64) {
        let target = self.reads.load(Ordering::Relaxed) + more;
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.reads.load(Ordering::Relaxed) < target {
            assert!(Instant::now() < deadline, "the reader stalled");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops and returns the number of failed reads.
    fn finish(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap();
        self.failures.load(Ordering::Relaxed)
    }
}

/// THE rotation test: a reader loops over a file while the access key is
/// rotated on the server (new key, credentials updated, old key revoked),
/// twice: once waiting for the watcher to pick the new key up, once revoking
/// the old key immediately (the 403 reload-and-retry path). No read fails.
#[test]
fn credentials_rotate_without_remount_or_failed_reads() {
    block_on(async {
        const SIZE: usize = 3 * MIB;
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("data.bin", pattern(42, 0, SIZE)).await.unwrap();
        let first = s3.create_access_key().unwrap();
        let mut credentials = CredentialsDir::for_key(&first);
        let metrics_addr = free_addr();
        let mnt =
            mount(s3, &bucket, &credentials, &["--metadata-ttl-ms", "0", "--metrics-addr", &metrics_addr]);

        let reader = ReadLoop::start(mnt.join("data.bin"), pattern(42, 0, SIZE));
        reader.wait_for(3);

        // Rotation 1: the watcher sees the new files before the old key goes.
        let second = s3.create_access_key().unwrap();
        credentials.rotate_to(&second);
        reader.wait_for(3);
        std::thread::sleep(Duration::from_millis(1500)); // one poll interval: the new key is in use
        s3.revoke_access_key(&first).unwrap();
        reader.wait_for(5);

        // Rotation 2: the old key is revoked at once; the first refused
        // request re-reads the credentials and retries.
        let third = s3.create_access_key().unwrap();
        credentials.rotate_to(&third);
        s3.revoke_access_key(&second).unwrap();
        reader.wait_for(5);

        assert_eq!(reader.finish(), 0, "reads failed during rotation");
        assert!(mnt.path().join("data.bin").exists(), "still mounted, no remount");

        let metrics =
            reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap().text().await.unwrap();
        let reloads = metrics
            .lines()
            .find_map(|line| line.strip_prefix("cos_mounter_credential_reloads_total "))
            .and_then(|value| value.trim().parse::<u64>().ok());
        assert!(reloads >= Some(2), "two credential swaps counted:\n{metrics}");
        assert!(
            metrics.contains(r#"cos_mounter_s3_requests_total{operation="GetObject",status="206"}"#),
            "{metrics}"
        );
        assert!(metrics.contains(r#"cos_mounter_fs_bytes_total{operation="read"}"#), "{metrics}");
    });
}

#[test]
fn ls_l_takes_attributes_from_the_listing() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        for i in 0..20 {
            bucket.put(&format!("dir/f{i:02}"), vec![b'x'; i]).await.unwrap();
        }
        let credentials = CredentialsDir::for_key(s3.root_key());
        let metrics_addr = free_addr();
        let mnt = mount(s3, &bucket, &credentials, &["--metrics-addr", &metrics_addr]);

        let output = Command::new("ls").arg("-ln").arg(mnt.join("dir")).output().unwrap();
        assert!(output.status.success(), "{output:?}");
        let sizes: Vec<(String, usize)> = String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|line| line.starts_with('-'))
            .map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                (fields[8].to_owned(), fields[4].parse().unwrap())
            })
            .collect();
        let expected: Vec<(String, usize)> = (0..20).map(|i| (format!("f{i:02}"), i)).collect();
        assert_eq!(sizes, expected);

        // readdirplus: the kernel got the attributes with the entries and
        // looked up only the directory itself.
        let metrics =
            reqwest::get(format!("http://{metrics_addr}/metrics")).await.unwrap().text().await.unwrap();
        let lookups: u64 = metrics
            .lines()
            .filter(|line| line.starts_with(r#"cos_mounter_fs_operations_total{operation="lookup""#))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
            .sum();
        assert!(lookups <= 1, "{lookups} lookups for one directory:\n{metrics}");
        assert!(metrics.contains(r#"operation="readdirplus""#), "{metrics}");
    });
}

/// Rotation through the Kubernetes API: the mounter watches the Secret
/// itself (`--secret NAMESPACE/NAME`) on a real kube-apiserver.
#[test]
fn credentials_from_a_watched_secret_rotate_without_failed_reads() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, Patch, PatchParams, PostParams};

    fn secret(name: &str, key: &AccessKey) -> Secret {
        Secret {
            metadata: kube::api::ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
            type_: Some("ibm/ibmc-s3fs".to_owned()),
            string_data: Some(
                [
                    ("access-key".to_owned(), key.access_key.clone()),
                    ("secret-key".to_owned(), key.secret_key.clone()),
                ]
                .into(),
            ),
            ..Default::default()
        }
    }

    block_on(async {
        const SIZE: usize = MIB;
        let s3 = TestS3::shared().await;
        let cluster = test_platform::TestCluster::shared().await;
        let namespace = cluster.namespace().await.unwrap();
        let secrets: Api<Secret> = Api::namespaced(cluster.client().await.unwrap(), namespace.name());
        let bucket = s3.bucket().await.unwrap();
        bucket.put("data.bin", pattern(9, 0, SIZE)).await.unwrap();
        let first = s3.create_access_key().unwrap();
        secrets.create(&PostParams::default(), &secret("cos-creds", &first)).await.unwrap();

        let mountpoint = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mounter"));
        command
            .env("COS_MOUNTER_LOG", "mounter=info")
            .args(["mount", "--bucket", bucket.name(), "--endpoint", s3.endpoint().as_str()])
            .args(["--secret", &format!("{}/cos-creds", namespace.name())])
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig_path())
            .args(["--metadata-ttl-ms", "0"])
            .arg(mountpoint.path());
        let mount = FuseMount::spawn(command, mountpoint.path()).expect("the mounter mounts");

        let reader = ReadLoop::start(mount.path().join("data.bin"), pattern(9, 0, SIZE));
        reader.wait_for(3);
        let second = s3.create_access_key().unwrap();
        let patch = Patch::Merge(secret("cos-creds", &second));
        secrets.patch("cos-creds", &PatchParams::default(), &patch).await.unwrap();
        s3.revoke_access_key(&first).unwrap();
        reader.wait_for(10);
        assert_eq!(reader.finish(), 0, "reads failed during rotation");
    });
}

fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

fn mount_error(command: &mut Command) -> String {
    let output = command.output().expect("the mounter runs");
    assert!(!output.status.success(), "the mounter should fail");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_credentials_and_options_fail_clearly_at_mount_time() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        let mountpoint = tempfile::tempdir().unwrap();

        let wrong = CredentialsDir::new(&[("access-key", "nobody"), ("secret-key", "wrong")]);
        let stderr = mount_error(&mut mounter(s3, bucket.name(), wrong.path(), mountpoint.path()));
        assert!(stderr.contains("access denied"), "{stderr}");
        assert!(stderr.contains(bucket.name()), "{stderr}");

        let root = CredentialsDir::for_key(s3.root_key());
        let stderr = mount_error(&mut mounter(s3, "no-such-bucket-here", root.path(), mountpoint.path()));
        assert!(stderr.contains("the bucket does not exist"), "{stderr}");

        let incomplete = CredentialsDir::new(&[("access-key", "only")]);
        let stderr = mount_error(&mut mounter(s3, bucket.name(), incomplete.path(), mountpoint.path()));
        assert!(stderr.contains("no `secret-key` key"), "{stderr}");

        let stderr =
            mount_error(&mut mounter(s3, bucket.name(), root.path(), &mountpoint.path().join("missing")));
        assert!(stderr.contains("is not an existing directory"), "{stderr}");

        let mut command = mounter(s3, bucket.name(), root.path(), mountpoint.path());
        command.args(["--file-mode", "9z9"]);
        let stderr = mount_error(&mut command);
        assert!(stderr.contains("octal permission mode"), "{stderr}");

        let mut command = Command::new(env!("CARGO_BIN_EXE_mounter"));
        command
            .args(["mount", "--bucket", "b", "--endpoint", "ftp://x", "--credentials-dir"])
            .arg(root.path())
            .arg(mountpoint.path());
        let stderr = mount_error(&mut command);
        assert!(stderr.contains("http:// or https://"), "{stderr}");
        assert!(!test_platform::fuse::is_fuse_mount(mountpoint.path()).unwrap());
    });
}

#[test]
fn sigterm_and_external_unmount_leave_nothing_behind() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        let credentials = CredentialsDir::for_key(s3.root_key());

        // SIGTERM: the mounter unmounts and exits successfully.
        let mut mnt = mount(s3, &bucket, &credentials, &[]);
        let path = mnt.path().to_owned();
        let child = mnt.mount.child().unwrap();
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "clean exit on SIGTERM: {exit}");
        assert!(!test_platform::fuse::is_fuse_mount(&path).unwrap(), "unmounted");

        // Unmounted from outside: the mounter notices and exits by itself.
        let mut mnt = mount(s3, &bucket, &credentials, &[]);
        let status = Command::new("fusermount3").arg("-u").arg(mnt.path()).status().unwrap();
        assert!(status.success());
        let child = mnt.mount.child().unwrap();
        let exit = child.wait().unwrap();
        assert!(exit.success(), "clean exit after external unmount: {exit}");
    });
}

#[test]
fn agent_mode_mounts_what_its_config_lists() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("team/file.txt", "via agent").await.unwrap();
        let credentials = CredentialsDir::for_key(s3.root_key());
        let mountpoint = tempfile::tempdir().unwrap();
        let config = tempfile::NamedTempFile::new().unwrap();
        let yaml = format!(
            "mounts:\n- mountpoint: {}\n  bucket: {}\n  endpoint: {}\n  prefix: team\n  credentialsDir: {}\n  readOnly: true\n",
            mountpoint.path().display(),
            bucket.name(),
            s3.endpoint(),
            credentials.path().display(),
        );
        std::fs::write(config.path(), yaml).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_mounter"));
        command.env("COS_MOUNTER_LOG", "mounter=info").args(["agent", "--config"]).arg(config.path());
        let mut mount = FuseMount::spawn(command, mountpoint.path()).expect("the agent mounts");
        assert_eq!(std::fs::read_to_string(mount.path().join("file.txt")).unwrap(), "via agent");

        let child = mount.child().unwrap();
        assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
        assert!(child.wait().unwrap().success(), "the agent exits cleanly");
        assert!(!test_platform::fuse::is_fuse_mount(mountpoint.path()).unwrap());
    });
}

/// `--uid`/`--gid` with `--allow-other`: a non-root user owns the files and
/// can read and write them; another user is refused by the kernel
/// (`default_permissions`) without reaching S3.
#[test]
fn a_non_root_user_reads_and_writes_when_uid_and_gid_are_set() {
    fn as_user(uid: u32, script: &str) -> std::process::Output {
        Command::new("setpriv")
            .args([format!("--reuid={uid}"), format!("--regid={uid}"), "--clear-groups".to_owned()])
            .args(["sh", "-c", script])
            .output()
            .expect("setpriv runs (the FUSE tests run as root)")
    }

    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        bucket.put("r.txt", "readable").await.unwrap();
        let credentials = CredentialsDir::for_key(s3.root_key());
        let mnt = mount(s3, &bucket, &credentials, &["--uid", "65534", "--gid", "65534", "--allow-other"]);
        let dir = mnt.path().display().to_string();

        let output = as_user(65534, &format!("cat {dir}/r.txt && printf written > {dir}/w.txt"));
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        assert_eq!(output.stdout, b"readable");
        assert_eq!(bucket.get("w.txt").await.unwrap(), b"written");

        let output = as_user(1234, &format!("printf x > {dir}/x.txt"));
        assert!(!output.status.success(), "another user cannot write");
        assert!(String::from_utf8_lossy(&output.stderr).contains("Permission denied"));
        let output = as_user(1234, &format!("cat {dir}/r.txt"));
        assert_eq!(output.stdout, b"readable", "but can read (mode 644)");
    });
}

/// A killed mounter leaves no dead mount: `auto_unmount` has fusermount3
/// unmount when the FUSE device closes.
#[test]
fn a_killed_mounter_leaves_no_dead_mount() {
    block_on(async {
        let s3 = TestS3::shared().await;
        let bucket = s3.bucket().await.unwrap();
        let (_credentials, mut mnt) = root_mount(s3, &bucket);
        let path = mnt.path().to_owned();
        let child = mnt.mount.child().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while test_platform::fuse::is_fuse_mount(&path).unwrap() {
            assert!(Instant::now() < deadline, "the mount outlived the killed mounter");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
}
