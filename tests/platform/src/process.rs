//! Supervised child processes.
//!
//! Each service runs under a tiny `sh` supervisor whose standard input is a
//! pipe held by the test process. When the test process ends, for whatever
//! reason (normal exit, panic, SIGKILL), the pipe closes, the supervisor wakes
//! up, terminates the service (SIGTERM, then SIGKILL after a grace period) and
//! removes the service's data directory. A shared service kept in a `static`
//! is therefore cleaned up although `static`s are never dropped, and
//! [`Supervised`]'s `Drop` does the same thing eagerly.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Error, Result, io_context};

/// The supervisor: `$1` is the directory to remove afterwards (may be empty),
/// the rest is the command. It waits for EOF on stdin, then stops the child.
const SUPERVISOR: &str = r#"
dir=$1; shift
"$@" </dev/null &
child=$!
trap '' INT TERM
read -r _ || true
kill -TERM "$child" 2>/dev/null
i=0
while kill -0 "$child" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
kill -KILL "$child" 2>/dev/null
wait "$child" 2>/dev/null
[ -n "$dir" ] && rm -rf "$dir"
exit 0
"#;

/// A service process that is stopped, and its data directory removed, on drop
/// or when the test process exits.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    supervisor: Child,
    stdin: Option<ChildStdin>,
    log: PathBuf,
    /// Whether the service process has been seen alive: until then, no child
    /// means "not forked yet" rather than "exited".
    seen_alive: bool,
}

impl Supervised {
    /// Starts `command` under the supervisor. Its stdout and stderr go to
    /// `log`; `data_dir`, if given, is removed once the process has stopped.
    pub fn spawn(name: &str, command: &Command, log: &Path, data_dir: Option<&Path>) -> Result<Self> {
        let out = File::create(log).map_err(io_context(format!("create log {}", log.display())))?;
        let err = out.try_clone().map_err(io_context("clone log handle"))?;
        let mut sh = Command::new("sh");
        sh.arg("-c")
            .arg(SUPERVISOR)
            .arg("supervise")
            .arg(data_dir.map(Path::as_os_str).unwrap_or_default())
            .arg(command.get_program())
            .args(command.get_args())
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => sh.env(key, value),
                None => sh.env_remove(key),
            };
        }
        if let Some(dir) = command.get_current_dir() {
            sh.current_dir(dir);
        }
        let mut supervisor = sh.spawn().map_err(|source| Error::Spawn { name: name.to_owned(), source })?;
        let stdin = supervisor.stdin.take();
        Ok(Self { name: name.to_owned(), supervisor, stdin, log: log.to_owned(), seen_alive: false })
    }

    /// The service's name, as used in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path of the file receiving the service's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `lines` lines of the service's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Fails with [`Error::Exited`] if the service has stopped by itself.
    ///
    /// The supervisor outlives its child, so this looks at the supervisor's
    /// children in `/proc`: none left alive (only a zombie, or nothing) after
    /// one was seen means the service is gone.
    pub fn check_running(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.supervisor.try_wait() {
            return Err(self.exited(Some(status)));
        }
        let pid = self.supervisor.id();
        let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")) else {
            return Ok(()); // Cannot tell; the readiness timeout still applies.
        };
        let alive = children.split_whitespace().any(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| stat.rsplit_once(") ").map(|(_, rest)| !rest.starts_with('Z')))
                .unwrap_or(false)
        });
        if alive {
            self.seen_alive = true;
            Ok(())
        } else if self.seen_alive || std::fs::read_to_string(&self.log).is_ok_and(|log| !log.is_empty()) {
            Err(self.exited(None))
        } else {
            Ok(())
        }
    }

    fn exited(&self, status: Option<std::process::ExitStatus>) -> Error {
        let status = status.map_or_else(|| "the service process is gone".to_owned(), |s| s.to_string());
        Error::Exited { name: self.name.clone(), status, log_tail: self.log_tail(40) }
    }

    /// Stops the service and waits until it and its data directory are gone.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        drop(self.stdin.take());
        let _ = self.supervisor.wait();
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Returns the last `lines` lines of a file, or a note that it is unreadable.
pub fn tail(path: &Path, lines: usize) -> String {
    const MAX: u64 = 64 * 1024;
    let Ok(mut file) = File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map_or(0, |m| m.len());
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(MAX)));
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Picks a free TCP port on 127.0.0.1.
///
/// The port is free when this returns; a concurrent process could still take
/// it before the service binds, which the readiness wait then reports.
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .map_err(io_context("bind an ephemeral port"))?;
    let port = listener.local_addr().map_err(io_context("read the ephemeral port"))?.port();
    Ok(port)
}

/// Timeout of one readiness probe.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sends `probe` until it answers 2xx, the process exits, or `timeout` passes.
pub async fn wait_for_http(
    process: &mut Supervised,
    timeout: Duration,
    probe: reqwest::RequestBuilder,
) -> Result<()> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(20);
    loop {
        let attempt = probe.try_clone().expect("probes have no streaming body");
        if attempt.send().await.is_ok_and(|r| r.status().is_success()) {
            return Ok(());
        }
        process.check_running()?;
        if start.elapsed() > timeout {
            return Err(Error::NotReady {
                name: process.name().to_owned(),
                waited: timeout,
                log_tail: process.log_tail(40),
            });
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(250));
    }
}
