#!/usr/bin/env bash
# The local demo: builds both programs, starts the real local platform and the
# Secrets Manager emulator, syncs a COS credential Secret from an unchanged
# KES-style ExternalSecret, mounts the bucket with it, and rotates the
# credentials under the live mount. Pass --keep to leave it all running.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/scripts/env.sh

bash tests/scripts/setup.sh
cargo build --locked -p controller -p mounter -p e2e --bins
exec "$CARGO_TARGET_DIR/debug/demo" \
  --controller "$CARGO_TARGET_DIR/debug/cos-secrets-controller" \
  --mounter "$CARGO_TARGET_DIR/debug/mounter" "$@"
