#!/bin/sh
# compose-rollout.sh: roll a Compose service to its current image and configuration with no failed
# request, on a server that has only sh and the docker CLI (no Rust, no extra tool).
#
#   docker compose build app                       # or: APP_VERSION=2.0.0 docker compose build app
#   deploy/compose-rollout.sh app
#
# What it does, for a service running N containers (N >= 1):
#   1. `docker compose up -d --no-deps --no-recreate --scale SERVICE=2N SERVICE`: N new containers
#      start beside the N old ones (--no-recreate leaves the old ones alone);
#   2. waits until every new container's HEALTHCHECK says `healthy` (bounded by --timeout);
#   3. stops the old containers one at a time with `docker stop` (SIGTERM and the service's
#      stop_grace_period): the app plays lame duck for SHUTDOWN_DELAY (still serving, /health 503)
#      so the balancer takes it out before it stops listening, then drains; then removes it.
# If a new container turns `unhealthy`, exits, or is not healthy within --timeout, the new
# containers are stopped and removed, the old ones are left serving untouched, and the script
# exits 1 with a message saying why (and the last health check output). Exit 2: bad usage.
#
# Usage: compose-rollout.sh [-f FILE]... [-p PROJECT] [--timeout SECONDS] SERVICE
#   -f, -p           passed to `docker compose` (COMPOSE_FILE and COMPOSE_PROJECT_NAME work too)
#   --timeout S      how long the new containers may take to become healthy (default 60,
#                    or ROLLOUT_TIMEOUT)
# The service needs a healthcheck (the app's image has one): without one, "ready" cannot be told.
set -eu

prog=compose-rollout
say() { printf '%s: %s\n' "$prog" "$*" >&2; }
usage() {
    say "usage: compose-rollout.sh [-f FILE]... [-p PROJECT] [--timeout SECONDS] SERVICE"
    exit 2
}

compose_args=""
timeout=${ROLLOUT_TIMEOUT:-60}
service=""
while [ $# -gt 0 ]; do
    case $1 in
    -f | --file | -p | --project-name)
        [ $# -ge 2 ] || usage
        # Quoted for the `eval` below, so paths with spaces survive.
        compose_args="$compose_args $1 '$(printf '%s' "$2" | sed "s/'/'\\\\''/g")'"
        shift 2
        ;;
    -t | --timeout)
        [ $# -ge 2 ] || usage
        timeout=$2
        shift 2
        ;;
    -h | --help) usage ;;
    -*) say "unknown option $1"; usage ;;
    *)
        [ -z "$service" ] || usage
        service=$1
        shift
        ;;
    esac
done
[ -n "$service" ] || usage
case $timeout in
'' | *[!0-9]*) say "invalid --timeout value \"$timeout\": a whole number of seconds"; exit 2 ;;
esac

dc() { eval "docker compose $compose_args \"\$@\""; }

# The running containers of the service, one id per line.
running() { dc ps -q "$service"; }

health_of() { # the HEALTHCHECK status of a container, `none` without one, `exited` when it stopped
    docker inspect -f '{{if ne .State.Status "running"}}exited{{else if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$1" 2>/dev/null || echo gone
}

last_health_output() { # the output of the container's latest health check, on one line
    docker inspect -f '{{if .State.Health}}{{range .State.Health.Log}}{{json .Output}}{{println}}{{end}}{{end}}' "$1" 2>/dev/null |
        grep . | tail -n 1 | sed -e 's/^"//' -e 's/"$//' -e 's/\\n/ /g' -e 's/\\"/"/g' | cut -c1-300
}

old=$(running)
if [ -z "$old" ]; then
    say "no running container of service '$service': start it with 'docker compose up -d' first"
    exit 1
fi
count=$(printf '%s\n' "$old" | grep -c .)
target=$((count * 2))

say "$service: $count running; starting $count new beside them (--scale $service=$target --no-recreate)"
dc up -d --no-deps --no-recreate --no-build --scale "$service=$target" "$service"

new=""
for id in $(running); do
    case " $(echo $old) " in
    *" $id "*) ;;
    *) new="$new $id" ;;
    esac
done
if [ -z "$new" ]; then
    say "compose started no new container of '$service' (is the scale fixed by container_name?)"
    exit 1
fi

# Removes the new containers and exits 1: the old ones were never touched.
abandon() {
    say "FAILED: $1"
    say "removing the new containers; the $count old ones keep serving, unchanged"
    for id in $new; do
        docker stop "$id" >/dev/null 2>&1 || true
        docker rm -f "$id" >/dev/null 2>&1 || true
    done
    exit 1
}
trap 'abandon "interrupted while waiting for the new containers"' INT TERM

say "waiting up to ${timeout}s for the new containers to be healthy:$new"
start=$(date +%s)
while :; do
    pending=""
    for id in $new; do
        status=$(health_of "$id")
        case $status in
        healthy) ;;
        starting) pending="$pending $id" ;;
        none) abandon "$service has no healthcheck, so the new containers' readiness cannot be told" ;;
        *) abandon "new container $(echo "$id" | cut -c1-12) is $status: $(last_health_output "$id")" ;;
        esac
    done
    [ -z "$pending" ] && break
    if [ $(($(date +%s) - start)) -ge "$timeout" ]; then
        one=$(echo $pending | cut -d' ' -f1)
        abandon "new containers still not healthy after ${timeout}s:$pending (last check: $(last_health_output "$one"))"
    fi
    sleep 1
done
trap - INT TERM
say "new containers healthy after $(($(date +%s) - start))s"

# From here on the new containers serve: an interruption leaves both generations running,
# which is safe (run the script again, or stop the rest by hand).
for id in $old; do
    short=$(echo "$id" | cut -c1-12)
    say "stopping old container $short (lame duck, then drain)"
    docker stop "$id" >/dev/null
    docker rm "$id" >/dev/null
done
say "done: $service runs $count new containers"
