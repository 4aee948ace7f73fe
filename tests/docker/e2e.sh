#!/usr/bin/env bash
# End-to-end test of the Compose deployment on a real Docker engine.
#
# Runs the user-facing docker-compose.yml, Dockerfile.app and Dockerfile.balancer
# unchanged, and talks to the stack only through the ports they publish on
# 127.0.0.1 (5000 balancer, 5002 NGINX, 9000 balancer admin). Checks:
#   1. `up -d --build --wait`; 300 /count requests split 100/100/100 over three
#      distinct X-Served-By replicas, and the counter rose by exactly 300;
#   2. `up -d --scale app=5 --no-recreate`: 5 distinct replicas answer within
#      10 s, and the balancer container was neither recreated nor restarted;
#   3. `--profile nginx`: NGINX on 5002 serves the same counter over all replicas;
#   4. `docker stop` of one app replica under sequential load: every request
#      (none of which the replica had started when it stopped) answers 200,
#      and the counter rose by exactly the number of answers;
#   5. `down` then `up` keeps the count (the redis-data volume works);
#   6. Redis publishes no port and 127.0.0.1:6379 does not reach it.
# Prints SKIP where no engine answers (FAIL with REQUIRE_DOCKER=1). Cleans up
# with `down -v` on any exit and is bounded in time (E2E_TIMEOUT,
# default 45 min, most of it for a cold release build).
#
# On a machine without registry access, tests/docker/prepare.sh first builds
# the base images from Debian packages (standins.sh). If a container cannot
# download crates, the images are built from a copy of the source tree with a
# `cargo vendor` directory (tests/docker/compose.vendored.yml points the builds
# at it); the Dockerfiles themselves are the user's, unchanged.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/docker

if [[ -z ${E2E_BOUNDED:-} ]]; then
    # Overall bound; SIGTERM lets the cleanup trap below run.
    E2E_BOUNDED=1 exec timeout --kill-after=60 "${E2E_TIMEOUT:-2700}" "$0" "$@"
fi

# shellcheck source=tests/docker/engine.sh
source "$here/engine.sh"
engine_or_skip e2e
if ! docker compose version >/dev/null 2>&1; then
    echo "FAIL: docker e2e: 'docker compose' (Compose v2 plugin) is not installed; see CONTRIBUTING.md" >&2
    exit 1
fi
command -v curl >/dev/null || { echo "FAIL: docker e2e: curl is not installed" >&2; exit 1; }

project=vc-e2e-$$-$RANDOM
export COMPOSE_PROJECT_NAME=$project
compose_files=(-f "$root/docker-compose.yml")
work=$(mktemp -d /tmp/visit-counter-e2e.XXXXXX)
passed=0
failed=0
start_epoch=$(date +%s)

log() { printf '[%4ss] %s\n' "$(($(date +%s) - start_epoch))" "$*"; }
ok() { passed=$((passed + 1)); log "ok - $*"; }
fail() {
    failed=$((failed + 1))
    log "FAIL - $*"
    exit 1
}
# Every compose call is bounded on its own too (seconds, default 180).
dc() {
    local limit=${DC_TIMEOUT:-180}
    timeout "$limit" docker compose --ansi never -p "$project" "${compose_files[@]}" --project-directory "$root" "$@" \
        2>>"$work/compose.log"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)); then
        log "failure: last compose output"
        tail -n 40 "$work/compose.log" 2>/dev/null || true
        log "failure: last logs of the stack"
        DC_TIMEOUT=60 dc --profile nginx ps -a || true
        DC_TIMEOUT=60 dc --profile nginx logs --no-color --tail=30 || true
    fi
    log "cleanup: down -v"
    DC_TIMEOUT=180 dc --profile nginx down -v --remove-orphans --rmi local >/dev/null 2>&1 || true
    rm -rf "$work"
    echo "docker e2e: $passed passed, $((failed + (rc != 0 && failed == 0 ? 1 : 0))) failed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# ---- helpers (all traffic to 127.0.0.1 only) --------------------------------

# N GET requests over one keep-alive connection; prints "STATUS SERVED-BY" lines.
requests() { # requests PORT PATH N
    local port=$1 path=$2 n=$3 cfg=$work/curl.cfg
    : >"$cfg"
    for ((i = 0; i < n; i++)); do
        printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "$port" "$path" >>"$cfg"
    done
    curl -sS --max-time 60 --config "$cfg" -w '%{http_code} %header{x-served-by}\n' || true
}

visits() { # visits PORT -> the counter, without incrementing it
    curl -sS --max-time 5 "http://127.0.0.1:$1/api/visits" | tr -dc '0-9'
}

wait_http_200() { # wait_http_200 URL SECONDS
    local deadline=$((SECONDS + $2))
    until [[ $(curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1") == 200 ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }

distinct() { awk '{print $2}' | sort -u | grep -c . || true; }

assert_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        fail "127.0.0.1:$1 is already in use; docker-compose.yml publishes it"
    fi
}

# ---- setup ------------------------------------------------------------------

for port in 5000 5002 9000; do assert_port_free "$port"; done

# Base images (stand-ins when missing) and, when containers cannot download crates, a
# vendored copy of the checkout to build from (tests/docker/prepare.sh, shared with the bench).
context=$(bash "$here/prepare.sh" "$root" "$work") || fail "preparing the images failed"
if [[ -n $context ]]; then
    export E2E_BUILD_CONTEXT=$context
    compose_files+=(-f "$here/compose.vendored.yml")
fi

# ---- 1. up, round-robin over 3 replicas -------------------------------------

log "docker compose up -d --build --wait (project $project)"
t0=$(date +%s.%N)
# The build log goes to a file (shown on failure): a cold release build is long.
DC_TIMEOUT=${E2E_BUILD_TIMEOUT:-2400} dc up -d --build --wait --quiet-pull >"$work/up.log" 2>&1 || {
    tail -n 60 "$work/up.log"
    fail "docker compose up -d --build --wait failed"
}
wait_http_200 "http://127.0.0.1:5000/count" 30 || fail "no 200 on :5000/count after up --wait"
log "up --build --wait -> first 200 in $(elapsed "$t0") s (includes the image build)"

# The balancer takes its 3 backends from Docker's DNS; wait until it has them.
wait_backends() { # wait_backends N SECONDS: the balancer's /status counts N healthy backends
    local deadline=$((SECONDS + $2)) got
    while :; do
        got=$(curl -s --max-time 2 http://127.0.0.1:9000/status | grep -oE '"healthy_backends": *[0-9]+' | tr -dc '0-9' || true)
        got=${got:-0}
        ((got == $1)) && return 0
        ((SECONDS < deadline)) || { log "balancer status lists $got healthy backends, expected $1"; return 1; }
        sleep 0.2
    done
}
wait_backends 3 30 || fail "balancer did not list 3 healthy backends"

before=$(visits 5000)
requests 5000 /count 300 >"$work/rr.txt"
after=$(visits 5000)
non200=$(awk '$1 != 200' "$work/rr.txt" | wc -l)
shares=$(awk '{print $2}' "$work/rr.txt" | sort | uniq -c | awk '{print $1}' | sort -n | tr '\n' ' ')
((non200 == 0)) || fail "round-robin: $non200 of 300 answers were not 200"
[[ $shares == "100 100 100 " ]] || fail "round-robin: shares over X-Served-By were '$shares', want 100 100 100"
((after - before == 300)) || fail "round-robin: counter rose by $((after - before)), want 300"
ok "300 /count through :5000 split 100/100/100 over 3 replicas; counter +300"

# ---- 2. scale to 5 without touching the balancer ----------------------------

balancer_id=$(dc ps -q balancer)
balancer_started=$(docker inspect -f '{{.State.StartedAt}} {{.RestartCount}}' "$balancer_id")
t_scaled=$SECONDS # the 10 s include compose starting the two new containers
dc up -d --scale app=5 --no-recreate
seen=0
while ((SECONDS - t_scaled <= 10)); do
    seen=$(requests 5000 /count 20 | awk '$1 == 200' | distinct)
    ((seen == 5)) && break
    sleep 0.2
done
((seen == 5)) || fail "scale: only $seen distinct replicas answered within 10 s of --scale app=5"
[[ $(dc ps -q balancer) == "$balancer_id" ]] || fail "scale: the balancer container was recreated"
[[ $(docker inspect -f '{{.State.StartedAt}} {{.RestartCount}}' "$balancer_id") == "$balancer_started" ]] ||
    fail "scale: the balancer restarted"
ok "--scale app=5 --no-recreate: 5 distinct replicas within $((SECONDS - t_scaled)) s, balancer untouched"

# ---- 3. the NGINX profile on 5002 -------------------------------------------

dc --profile nginx up -d --no-deps --wait nginx
wait_http_200 "http://127.0.0.1:5002/" 30 || fail "nginx: no 200 on :5002 within 30 s"
before=$(visits 5000)
requests 5002 /count 50 >"$work/nginx.txt"
after=$(visits 5002)
(($(awk '$1 != 200' "$work/nginx.txt" | wc -l) == 0)) || fail "nginx: not every /count on :5002 answered 200"
seen=$(distinct <"$work/nginx.txt")
((seen == 5)) || fail "nginx: $seen distinct replicas behind :5002, want 5"
((after - before == 50)) || fail "nginx: shared counter rose by $((after - before)) for 50 visits, want 50"
ok "--profile nginx: :5002 serves the same counter (+50) over all 5 replicas"

# ---- 4. docker stop of one replica under load -------------------------------

dc up -d --scale app=3 --wait app
wait_backends 3 30 || fail "stop: balancer did not settle on 3 backends"
mapfile -t replicas < <(dc ps -q app)
victim=${replicas[0]}
before=$(visits 5000)
# Sequential load in batches until the stop is over (bounded to 200 batches).
: >"$work/load.txt"
(
    for ((batch = 0; batch < 200; batch++)); do
        [[ -e $work/stop-load ]] && break
        requests 5000 /count 25 >>"$work/load.txt"
    done
) &
load_pid=$!
sleep 1 # the victim is serving its share of the load when it gets SIGTERM
timeout 60 docker stop "$victim" >/dev/null
sleep 1 # and the load goes on after it is gone
touch "$work/stop-load"
wait "$load_pid"
after=$(visits 5000)
sent=$(wc -l <"$work/load.txt")
answered=$(awk '$1 == 200' "$work/load.txt" | wc -l)
bad=$(awk '$1 != 200 {print $1}' "$work/load.txt" | sort | uniq -c | tr '\n' ' ')
[[ -z $bad ]] || fail "stop: answers other than 200 while a replica stopped: $bad"
((sent >= 100 && answered == sent)) || fail "stop: $answered of $sent requests answered"
((after - before == answered)) || fail "stop: counter rose by $((after - before)) for $answered answers"
after_stop=$(requests 5000 /count 30 | awk '$1 == 200' | distinct)
((after_stop == 2)) || fail "stop: after the stop $after_stop replicas answered, want 2"
ok "docker stop of one replica under load: $answered/$sent answered 200, counter exact, rotation down to 2"

# ---- 5. down then up keeps the count ----------------------------------------

count=$(visits 5000)
dc --profile nginx down
t0=$(date +%s.%N)
dc up -d
wait_http_200 "http://127.0.0.1:5000/api/visits" 60 || fail "restart: no 200 within 60 s of up"
first_200=$(elapsed "$t0")
after=$(visits 5000)
((after == count)) || fail "restart: count was $count before down, $after after up"
ok "down + up keeps the count ($count); up -> first 200 in $first_200 s"

# ---- 6. Redis is not published ----------------------------------------------

redis_id=$(dc ps -q redis)
bindings=$(docker inspect -f '{{range $p, $b := .NetworkSettings.Ports}}{{if $b}}{{$p}} {{end}}{{end}}' "$redis_id")
[[ -z $bindings ]] || fail "redis: ports published to the host: $bindings"
if ! ss -Hltn 'sport = :6379' 2>/dev/null | grep -q .; then
    if (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then fail "redis: 127.0.0.1:6379 accepts connections"; fi
fi
ok "redis publishes no host port"

# Poll the HEALTHCHECK state ourselves: `up -d --wait` on an unchanged stack right after a restart was seen to
# exit non-zero without a message while the balancer's check was still in its start period.
wait_healthy() { # wait_healthy SERVICE SECONDS
    local deadline=$((SECONDS + $2)) id health
    for id in $(dc ps -q "$1"); do
        while health=$(docker inspect -f '{{.State.Health.Status}}' "$id"); [[ $health != healthy ]]; do
            ((SECONDS < deadline)) || fail "$1: HEALTHCHECK still '$health' after $2 s"
            sleep 1
        done
    done
}
wait_healthy app 60
wait_healthy balancer 60
for service in app balancer; do
    # No `| head`: under pipefail, compose killed by SIGPIPE once head has its line fails the script (the docker
    # CLI reports a plugin killed by a signal as exit 255; a CI run stopped here with no message).
    id=$(dc ps -q "$service")
    id=${id%%$'\n'*}
    hardening=$(docker inspect -f '{{.Config.User}} ro={{.HostConfig.ReadonlyRootfs}} {{.HostConfig.SecurityOpt}}' "$id")
    [[ $hardening == "10001:10001 ro=true [no-new-privileges:true]" ]] ||
        fail "$service: runs with '$hardening', want non-root 10001, read-only root, no-new-privileges"
    health=$(docker inspect -f '{{.State.Health.Status}}' "$id")
    [[ $health == healthy ]] || fail "$service: HEALTHCHECK says '$health'"
done
ok "app and balancer run as uid 10001 on a read-only root with no-new-privileges, HEALTHCHECK healthy"

log "image sizes: $(docker image inspect -f '{{index .RepoTags 0}}={{.Size}}' "$project-app" "$project-balancer" |
    awk -F= '{printf "%s %.1f MB  ", $1, $2 / 1e6}')"
