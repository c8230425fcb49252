//! The README's demo, run as a test: an unchanged KES-style ExternalSecret
//! becomes an `ibm/ibmc-s3fs` Secret, the mounter mounts the bucket with it,
//! and a credential rotation goes through under the live mount.
//!
//! It runs the real binaries. `cargo test --workspace` (the README's test
//! command) builds them before any test runs; `cargo test -p e2e` alone
//! does not, hence the check below.

use std::path::PathBuf;

fn sibling_binary(name: &str) -> PathBuf {
    // target/debug/deps/demo-<hash> → target/debug/<name>
    let exe = std::env::current_exe().expect("test executable path");
    let path = exe.parent().and_then(std::path::Path::parent).expect("target directory").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build -p controller -p mounter` first (the README's test command does)",
        path.display()
    );
    path
}

#[tokio::test]
async fn demo_syncs_mounts_and_rotates_end_to_end() {
    let options = e2e::demo::DemoOptions {
        controller: sibling_binary("cos-secrets-controller"),
        mounter: sibling_binary("mounter"),
        crd: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crds/externalsecret.yaml")),
        keep: false,
    };
    e2e::demo::run(options).await.expect("the demo scenario passes");
}
