#!/usr/bin/env bash
# What a Compose run needs before `docker compose up --build` on a machine that
# may reach no registry; shared by tests/docker/e2e.sh and `cargo xtask bench --compose`.
#
#   1. the base images the user-facing files name: stand-ins from Debian
#      packages when missing (tests/docker/standins.sh);
#   2. whether a container can download crates. If it cannot, a copy of the
#      checkout (no target/, no .git) with a `cargo vendor` directory and a source
#      replacement in .cargo/config.toml is made at WORK_DIR/context, and its
#      path is printed on stdout: the caller exports it as E2E_BUILD_CONTEXT and
#      adds `-f tests/docker/compose.vendored.yml`. Nothing is printed when the
#      checkout can be built as is.
#
# Progress goes to stderr. The Dockerfiles and docker-compose.yml stay the user's, unchanged.
# Usage: prepare.sh REPO_ROOT WORK_DIR
set -euo pipefail

root=${1:?usage: prepare.sh REPO_ROOT WORK_DIR}
work=${2:?usage: prepare.sh REPO_ROOT WORK_DIR}
here=$root/tests/docker

log() { printf 'prepare: %s\n' "$*" >&2; }

log "base images (stand-ins built only when missing)"
bash "$here/standins.sh" "$root" >&2

rust_image=$(awk '/^FROM .* AS build/ {print $2; exit}' "$root/Dockerfile.app")
if timeout 90 docker run --rm "$rust_image" cargo search --limit 1 itoa >/dev/null 2>&1; then
    log "containers reach the crate registry: building the checkout as is"
    exit 0
fi
log "containers cannot download crates: building a copy of the checkout with a cargo vendor directory"
ctx=$work/context
rm -rf "$ctx"
mkdir -p "$ctx"
tar -C "$root" --exclude=./target --exclude=./.git -c . | tar -C "$ctx" -x
(cd "$root" && cargo vendor --locked --versioned-dirs -q "$ctx/vendor" >/dev/null)
mkdir -p "$ctx/.cargo"
printf '\n[source.crates-io]\nreplace-with = "vendored-sources"\n\n[source.vendored-sources]\ndirectory = "vendor"\n' \
    >>"$ctx/.cargo/config.toml"
echo "$ctx"
