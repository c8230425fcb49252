#!/usr/bin/env bash
# Builds the real services that the tests and the local demo run on, from the
# Go module proxy with the machine's Go, at pinned versions:
#   kubernetes: kube-apiserver and kube-controller-manager (k8s.io/kubernetes)
#   etcd:       etcd (go.etcd.io/etcd/server/v3)
#   minio:      the MinIO S3 server (github.com/minio/minio)
#   mc:         MinIO's admin client, used to create and revoke access keys
# Binaries are cached under $COS_SYNC_CACHE/bin/<component>-<version>/, so a
# second run takes a second. Progress goes to stderr.
#
# Usage:
#   build-platform.sh [component...]    build (default: all); prints nothing on stdout
#   build-platform.sh --path BINARY     build if needed, then print BINARY's path
set -euo pipefail

KUBERNETES_VERSION="${KUBERNETES_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
# MinIO publishes RELEASE.* tags that are not semver; the proxy serves them as
# pseudo-versions. These are the newest commits served on 2026-11-23.
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
MC_VERSION="${MC_VERSION:-v0.0.0-20250313080218-cf909e1063a9}"
CACHE="${COS_SYNC_CACHE:-$HOME/.cache/cos-secrets-sync}"

export CGO_ENABLED=0 GOFLAGS="${GOFLAGS:--buildvcs=false}" GOTOOLCHAIN=local

log() { printf '[build-platform %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

component_dir() {
  case $1 in
    kubernetes) echo "$CACHE/bin/kubernetes-$KUBERNETES_VERSION" ;;
    etcd) echo "$CACHE/bin/etcd-$ETCD_VERSION" ;;
    minio) echo "$CACHE/bin/minio-$MINIO_VERSION" ;;
    mc) echo "$CACHE/bin/mc-$MC_VERSION" ;;
    *) echo "unknown component: $1" >&2; return 2 ;;
  esac
}

component_of() {
  case $1 in
    kube-apiserver | kube-controller-manager) echo kubernetes ;;
    etcd | minio | mc) echo "$1" ;;
    *) echo "unknown binary: $1" >&2; return 2 ;;
  esac
}

# new_module NAME: creates a throwaway Go module and prints its directory.
new_module() {
  local work
  work=$(mktemp -d)
  (cd "$work" && go mod init "$1" >/dev/null 2>&1)
  echo "$work"
}

# Moves a finished build into place so an interrupted build never looks cached.
publish() {
  rm -rf "$2" && mkdir -p "$(dirname "$2")" && mv "$1" "$2"
}

# kube-apiserver lives in k8s.io/kubernetes, whose go.mod points the k8s.io/*
# staging modules at ./staging/... with v0.0.0 requirements. A throwaway module
# requires kubernetes and replaces each staging module, as listed in
# kubernetes' own go.mod, with its published release: k8s.io/<name> v0.X.Y for
# kubernetes v1.X.Y.
build_kubernetes() {
  local v=$KUBERNETES_VERSION dir work gomod staging="v0.${KUBERNETES_VERSION#v1.}"
  dir=$(component_dir kubernetes)
  work=$(new_module kubernetes-build)
  log "kubernetes $v: resolving the staging modules of k8s.io/kubernetes"
  gomod=$(cd "$work" && go mod download -json "k8s.io/kubernetes@$v" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  (
    cd "$work"
    go mod edit -require="k8s.io/kubernetes@$v"
    local n=0
    for m in $(grep -E '^\s*k8s\.io/[^ ]+ => \./staging/' "$gomod" | awk '{print $1}'); do
      go mod edit -replace="$m=$m@$staging"
      n=$((n + 1))
    done
    log "kubernetes $v: $n staging modules replaced with $staging; downloading modules"
    go get "k8s.io/kubernetes/cmd/kube-apiserver@$v" "k8s.io/kubernetes/cmd/kube-controller-manager@$v" 2>&1 | grep -vE '^go: (downloading|added|upgraded) ' >&2 || true
    log "kubernetes $v: compiling kube-apiserver and kube-controller-manager (first time: 3-8 minutes)"
    mkdir -p out
    # Stamp the version as the Kubernetes release build does (hack/lib/version.sh).
    local minor=${v#v1.} ldflags="-s -w" pkg
    minor=${minor%%.*}
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
    done
    go build -trimpath -ldflags="$ldflags" -o out/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
  )
  publish "$work/out" "$dir"
  rm -rf "$work"
}

# etcd's server module has replace directives (its siblings at ../api, ...), so
# `go install` refuses it. A throwaway main module calls etcdmain.Main, and the
# siblings resolve to their published releases at the same version.
build_etcd() {
  local v=$ETCD_VERSION dir work
  dir=$(component_dir etcd)
  work=$(new_module etcd-build)
  log "etcd $v: downloading modules"
  (
    cd "$work"
    cat >main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    go get "go.etcd.io/etcd/server/v3@$v" 2>&1 | grep -vE '^go: (downloading|added|upgraded) ' >&2 || true
    go mod tidy 2>&1 | grep -vE '^go: (downloading|added|upgraded) ' >&2 || true
    log "etcd $v: compiling (first time: about a minute)"
    mkdir -p out
    go build -trimpath -ldflags='-s -w' -o out/etcd .
  )
  publish "$work/out" "$dir"
  rm -rf "$work"
}

# MinIO and mc have no replace directives: plain `go install` works.
build_go_install() {
  local name=$1 version=$2 pkg=$3 dir work
  dir=$(component_dir "$name")
  work=$(mktemp -d)
  log "$name $version: downloading and compiling $pkg (first time: 2-5 minutes)"
  GOBIN="$work/out" go install -trimpath -ldflags='-s -w' "$pkg@$version" 2>&1 | grep -vE '^go: (downloading|added|upgraded) ' >&2 || true
  [ -x "$work/out/$name" ] || { log "$name $version: build failed"; return 1; }
  publish "$work/out" "$dir"
  rm -rf "$work"
}

ensure() {
  local c=$1 dir
  dir=$(component_dir "$c")
  if [ -d "$dir" ]; then return; fi
  case $c in
    kubernetes) build_kubernetes ;;
    etcd) build_etcd ;;
    minio) build_go_install minio "$MINIO_VERSION" github.com/minio/minio ;;
    mc) build_go_install mc "$MC_VERSION" github.com/minio/mc ;;
  esac
  log "$c: ready in $dir"
}

if [ "${1:-}" = "--path" ]; then
  [ $# -eq 2 ] || { echo "usage: $0 --path BINARY" >&2; exit 2; }
  c=$(component_of "$2")
  ensure "$c"
  echo "$(component_dir "$c")/$2"
  exit 0
fi

components=("$@")
[ ${#components[@]} -eq 0 ] && components=(etcd kubernetes minio mc)
for c in "${components[@]}"; do
  component_dir "$c" >/dev/null
  ensure "$c"
done
log "all components ready under $CACHE/bin"
