#!/usr/bin/env bash
# Local stand-ins for the base images that Dockerfile.app, Dockerfile.balancer
# and docker-compose.yml name, for machines that reach no container registry.
#
# Each stand-in is built only when its exact name is missing locally, from
# Debian bookworm packages (debootstrap + `docker import`), with the paths,
# working directory, environment and entrypoint of the official image it stands
# in for, so the user-facing files are tested unchanged:
#   debian:bookworm-slim     minbase bookworm, docs and apt lists dropped
#   rust:<v>-slim-bookworm   + gcc, libc6-dev, ca-certificates and this
#                            machine's rustup toolchain in /usr/local/{rustup,cargo}
#   redis:<v>-bookworm       + Debian's redis-server, /data, entrypoint that
#                            drops to the redis user (like the official image)
#   nginx:<v>                + Debian's nginx, logs to stdout/stderr, `daemon off`
#                            (import cannot set STOPSIGNAL; compose sets SIGQUIT)
#
# Usage: standins.sh REPO_ROOT
set -euo pipefail

root=${1:?usage: standins.sh REPO_ROOT}
work=$(mktemp -d /tmp/visit-counter-standins.XXXXXX)
trap 'rm -rf "$work"' EXIT

log() { printf 'standins: %s\n' "$*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# Names exactly as the user-facing files spell them.
rust_image=$(awk '/^FROM .* AS build/ {print $2; exit}' "$root/Dockerfile.app")
runtime_image=$(awk '/^FROM / {img=$2} END {print img}' "$root/Dockerfile.app")
redis_image=$(awk '/^ *image: *redis:/ {print $2; exit}' "$root/docker-compose.yml")
nginx_image=$(awk '/^ *image: *nginx:/ {print $2; exit}' "$root/docker-compose.yml")
for name in "$rust_image" "$runtime_image" "$redis_image" "$nginx_image"; do
    [[ -n $name ]] || { log "could not read a base image name from the Dockerfiles/compose file"; exit 1; }
done
if [[ $(awk '/^FROM .* AS build/ {print $2}' "$root/Dockerfile.balancer") != "$rust_image" ]]; then
    log "Dockerfile.app and Dockerfile.balancer name different build images"; exit 1
fi

# A chroot tree to install packages into; policy-rc.d keeps postinst scripts
# from starting services on the host.
base_rootfs=""
bootstrap() {
    [[ -n $base_rootfs ]] && return
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install -y debootstrap"; exit 1; }
    base_rootfs=$work/base
    # The Debian mirror this machine's apt already uses (deb822 sources, else the one-line format).
    local mirror
    mirror=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n 1)
    [[ -n $mirror ]] || mirror=$(awk '$1 == "deb" && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
    [[ -n $mirror ]] || { log "no Debian mirror found in /etc/apt/sources.list*"; exit 1; }
    log "debootstrap --variant=minbase bookworm from $mirror (about a minute)"
    debootstrap --variant=minbase bookworm "$base_rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
        || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
    printf '#!/bin/sh\nexit 101\n' >"$base_rootfs/usr/sbin/policy-rc.d"
    chmod +x "$base_rootfs/usr/sbin/policy-rc.d"
}

# Copy of the base tree with Debian packages installed in it.
derive() { # derive DIR PACKAGES...
    local dir=$1; shift
    cp -a "$base_rootfs" "$dir"
    if (($#)); then
        cp /etc/resolv.conf "$dir/etc/resolv.conf"
        { chroot "$dir" apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive chroot "$dir" apt-get install -y -qq --no-install-recommends "$@"; } \
            >"$work/apt.log" 2>&1 || { tail -20 "$work/apt.log" >&2; exit 1; }
    fi
}

slim_and_import() { # slim_and_import DIR NAME [--change ...]
    local dir=$1 name=$2; shift 2
    rm -f "$dir/usr/sbin/policy-rc.d"
    : >"$dir/etc/resolv.conf"
    rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
        "$dir"/usr/share/doc/* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/usr/share/locale/* \
        "$dir"/var/log/*.log "$dir"/var/log/apt/*
    tar --numeric-owner -C "$dir" -c . |
        docker import --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$@" - "$name" >/dev/null
    log "built stand-in $name ($(docker image inspect -f '{{.Size}}' "$name" | numfmt --to=iec))"
}

if ! have_image "$runtime_image"; then
    bootstrap
    derive "$work/runtime"
    slim_and_import "$work/runtime" "$runtime_image" --change 'CMD ["bash"]'
fi

if ! have_image "$rust_image"; then
    # rust:1.95-slim-bookworm needs toolchain 1.95.x.
    want=$(sed -E 's/^rust:([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/' <<<"$rust_image")
    rustup_home=${RUSTUP_HOME:-$HOME/.rustup}
    cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
    have=$(rustc --version | awk '{print $2}')
    [[ $have == "$want"* ]] || { log "$rust_image needs Rust $want but this machine has $have"; exit 1; }
    toolchain=$(rustc --print sysroot)
    bootstrap
    derive "$work/rust" gcc libc6-dev ca-certificates
    dest="$work/rust/usr/local/rustup/toolchains/$have-x86_64-unknown-linux-gnu"
    mkdir -p "$dest" "$work/rust/usr/local/cargo/bin"
    # Compiler, cargo and std only: docs and sources are not needed to build.
    tar -C "$toolchain" --exclude=./share/doc --exclude=./lib/rustlib/src -c . | tar -C "$dest" -x
    for tool in rustup cargo rustc rustdoc cargo-fmt rustfmt cargo-clippy clippy-driver; do
        [[ -e $cargo_bin/$tool ]] && cp -L "$cargo_bin/$tool" "$work/rust/usr/local/cargo/bin/"
    done
    printf 'version = "12"\ndefault_toolchain = "%s-x86_64-unknown-linux-gnu"\nprofile = "minimal"\n\n[overrides]\n' \
        "$have" >"$work/rust/usr/local/rustup/settings.toml"
    chmod -R a+w "$work/rust/usr/local/rustup" "$work/rust/usr/local/cargo"
    slim_and_import "$work/rust" "$rust_image" \
        --change 'ENV RUSTUP_HOME=/usr/local/rustup' \
        --change 'ENV CARGO_HOME=/usr/local/cargo' \
        --change "ENV RUST_VERSION=$have" \
        --change 'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]'
fi

if ! have_image "$redis_image"; then
    bootstrap
    derive "$work/redis" redis-server redis-tools
    # Official image layout: binaries in /usr/local/bin, data in /data, a
    # docker-entrypoint.sh that owns /data and drops to the redis user, and
    # protected mode off (the compose network, not Redis, is the boundary).
    ln -sf /usr/bin/redis-server "$work/redis/usr/local/bin/redis-server"
    ln -sf /usr/bin/redis-cli "$work/redis/usr/local/bin/redis-cli"
    mkdir -p "$work/redis/data"
    chroot "$work/redis" chown redis:redis /data
    cat >"$work/redis/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
    set -- redis-server "$@"
fi
if [ "$1" = 'redis-server' ]; then
    set -- "$@" --protected-mode no
    if [ "$(id -u)" = '0' ]; then
        find . \! -user redis -exec chown redis '{}' +
        exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    fi
fi
exec "$@"
SH
    chmod +x "$work/redis/usr/local/bin/docker-entrypoint.sh"
    slim_and_import "$work/redis" "$redis_image" \
        --change 'WORKDIR /data' \
        --change 'VOLUME /data' \
        --change 'EXPOSE 6379' \
        --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
        --change 'CMD ["redis-server"]'
fi

if ! have_image "$nginx_image"; then
    bootstrap
    derive "$work/nginx" nginx
    ln -sf /dev/stdout "$work/nginx/var/log/nginx/access.log"
    ln -sf /dev/stderr "$work/nginx/var/log/nginx/error.log"
    mkdir -p "$work/nginx/var/cache/nginx"
    slim_and_import "$work/nginx" "$nginx_image" \
        --change 'EXPOSE 80' \
        --change 'CMD ["nginx", "-g", "daemon off;"]'
fi
