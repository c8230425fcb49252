//! The README's demo, run as a test: an unchanged KES-style ExternalSecret
//! becomes an `ibm/ibmc-s3fs` Secret, the mounter mounts the bucket with it,
//! and a credential rotation goes through under the live mount.
//!
//! It runs the real binaries. `cargo test --workspace` (the README's test
//! command) builds them before any test runs; `cargo test -p e2e` alone
//! does not; `e2e::programs::workspace_binary` says so.

use std::path::PathBuf;

#[tokio::test]
async fn demo_syncs_mounts_and_rotates_end_to_end() {
    let options = e2e::demo::DemoOptions {
        controller: e2e::programs::workspace_binary("cos-secrets-controller"),
        mounter: e2e::programs::workspace_binary("mounter"),
        crd: PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/crds/externalsecret.yaml")),
        keep: false,
    };
    e2e::demo::run(options).await.expect("the demo scenario passes");
}
