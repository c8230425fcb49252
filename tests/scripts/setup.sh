#!/usr/bin/env bash
# Installs what a fresh machine lacks for the tests and the demo:
#   - Debian's fuse3 (fusermount3, used to mount and unmount FUSE filesystems);
#   - the platform's Go binaries (kube-apiserver, kube-controller-manager,
#     etcd, MinIO, mc), built once and cached (tests/scripts/build-platform.sh).
# Idempotent: a second run takes seconds.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/scripts/env.sh

log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

missing=()
command -v fusermount3 >/dev/null || missing+=(fuse3)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[ -e /dev/fuse ] || { log "/dev/fuse is missing: FUSE tests cannot run on this machine"; exit 1; }

for tool in go cargo; do
  command -v "$tool" >/dev/null || { log "$tool is required but not installed"; exit 1; }
done

bash tests/scripts/build-platform.sh
