#!/usr/bin/env bash
# Runs every test tier: formatting, lints, unit tests, and the integration
# tests on the real platform (kube-apiserver + etcd, MinIO, FUSE mounts, the
# Secrets Manager emulator). This is the test command of README.md, and
# .ci/run runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/scripts/env.sh

start=$(date +%s)
bash tests/scripts/setup.sh
echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test"
cargo test --workspace --locked --no-fail-fast
echo "== all tiers passed in $(($(date +%s) - start)) s"
