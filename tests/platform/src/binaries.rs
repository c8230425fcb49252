//! The pinned Go binaries of the platform.
//!
//! `tests/scripts/build-platform.sh` owns the versions and the cache layout;
//! this module asks it for a binary's path, which builds the binary on first
//! use (minutes; progress is printed on stderr) and answers from the cache
//! afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Error, Result};

/// Returns the path of `name` (`kube-apiserver`, `kube-controller-manager`,
/// `etcd`, `minio` or `mc`), building it first if it is not cached.
pub fn path(name: &str) -> Result<PathBuf> {
    let script = script();
    let output = Command::new("bash")
        .arg(&script)
        .arg("--path")
        .arg(name)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| Error::Spawn { name: script.display().to_string(), source })?;
    if !output.status.success() {
        return Err(Error::Binary {
            name: name.to_owned(),
            reason: format!("{} exited with {}", script.display(), output.status),
        });
    }
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Binary { name: name.to_owned(), reason: format!("{} is not a file", path.display()) })
    }
}

/// The build script, found relative to this crate's sources.
fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/build-platform.sh")
}
