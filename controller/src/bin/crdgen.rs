//! Prints the ExternalSecret CRD as YAML:
//! `cargo run -p controller --bin crdgen > deploy/crds/externalsecret.yaml`.
#![forbid(unsafe_code)]

use std::io::Write;

fn main() -> std::io::Result<()> {
    std::io::stdout().write_all(controller::crd::crd_yaml().as_bytes())
}
