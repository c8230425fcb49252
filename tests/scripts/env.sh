# Sourced by the project's scripts: where builds and caches live.
# Cargo builds go under ~/.cache so that a fresh clone (CI) reuses them.
export COS_SYNC_CACHE="${COS_SYNC_CACHE:-$HOME/.cache/cos-secrets-sync}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$COS_SYNC_CACHE/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
