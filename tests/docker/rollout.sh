#!/usr/bin/env bash
# Rolling a new app version on Compose with deploy/compose-rollout.sh, on a real Docker engine,
# under load through the balancer's published port 5000 (every answer recorded):
#   1. version 1 up (`APP_VERSION=1 docker compose up -d --build --wait`, 3 replicas);
#   2. `APP_VERSION=2 docker compose build app` + `compose-rollout.sh app`: zero non-200 answers,
#      the counter rose by exactly the 200s, 3 replicas all answer X-App-Version 2 at the end;
#   3. a broken version 3 (built with APP_VERSION=3 and rolled with tests/docker/rollout-broken.yml,
#      which points REDIS_PORT at a port nothing listens on, so its /health never passes): the
#      script exits non-zero saying why, the 3 version-2 containers are the same ones and still
#      serve, zero non-200 answers, no answer from version 3, counter exact.
# ROLLOUT_BASELINE=1 first measures what a plain `APP_VERSION=1.1 docker compose up -d --build`
# does to the same load (figures only, nothing asserted: it is the "before" of the script).
# SKIP where no engine answers (FAIL with REQUIRE_DOCKER=1); `down -v` on every exit; bounded in time
# (ROLLOUT_TIMEOUT_ALL).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/docker

if [[ -z ${ROLLOUT_BOUNDED:-} ]]; then
    ROLLOUT_BOUNDED=1 exec timeout --kill-after=60 "${ROLLOUT_TIMEOUT_ALL:-1800}" "$0" "$@"
fi
# shellcheck source=tests/docker/engine.sh
source "$here/engine.sh"
engine_or_skip rollout
docker compose version >/dev/null 2>&1 || { echo "FAIL: docker rollout: 'docker compose' (v2) is not installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "FAIL: docker rollout: curl is not installed" >&2; exit 1; }

# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"
project=vc-rollout-$$-$RANDOM
work=$(mktemp -d /tmp/visit-counter-rollout.XXXXXX)
compose_files=(-f "$root/docker-compose.yml")

build_app() { # build_app VERSION: the app image built with APP_VERSION=VERSION
    APP_VERSION=$1 DC_TIMEOUT=600 dc build app >>"$work/up.log" 2>&1 || fail "building version $1 failed"
}

dc() {
    timeout "${DC_TIMEOUT:-180}" docker compose --ansi never -p "$project" "${compose_files[@]}" "$@" 2>>"$work/compose.log"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -e $work/load-stop ]] || touch "$work/load-stop"
    if ((rc != 0)); then
        log "failure: last compose output"
        tail -n 30 "$work/compose.log" 2>/dev/null || true
        DC_TIMEOUT=60 dc ps -a || true
        DC_TIMEOUT=60 dc logs --no-color --tail=20 app balancer || true
    fi
    log "cleanup: down -v"
    DC_TIMEOUT=180 dc down -v --remove-orphans --rmi local >/dev/null 2>&1 || true
    # The earlier versions' images, which later builds left untagged.
    docker image prune -f --filter "label=com.docker.compose.project=$project" >/dev/null 2>&1 || true
    rm -rf "$work"
    echo "docker rollout: $passed passed, $((failed + (rc != 0 && failed == 0 ? 1 : 0))) failed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

rollout() { # rollout [-f EXTRA_FILE]: deploy/compose-rollout.sh on the app service of this project
    local files=("${compose_files[@]}")
    local t0 rc=0
    (($#)) && files+=("$@")
    t0=$(date +%s.%N)
    timeout 300 sh "$root/deploy/compose-rollout.sh" -p "$project" "${files[@]}" app >"$work/rollout.log" 2>&1 || rc=$?
    script_took=$(elapsed "$t0") # the script alone, for the figures
    return "$rc"
}

# Three replicas at the end, every one answering version $1.
assert_all_version() { # assert_all_version VERSION WHAT
    local answers
    answers=$(requests 5000 /count 30)
    (($(awk '$1 == 200 && $2 == "'"$1"'"' <<<"$answers" | wc -l) == 30)) ||
        fail "$2: not every answer was a 200 from version $1: $(awk '{print $1, $2}' <<<"$answers" | sort | uniq -c | tr '\n' ' ')"
    (($(awk '{print $3}' <<<"$answers" | sort -u | wc -l) == 3)) || fail "$2: 30 answers did not come from 3 replicas"
    (($(dc ps -q app | wc -l) == 3)) || fail "$2: $(dc ps -q app | wc -l) app containers run, want 3"
}

# Load LOOPS clients through :5000 while running a command; checks nothing, leaves the figures in
# $work/load.all. The load flows before the command starts and for 100 more answers after it ends.
under_load() { # under_load COMMAND...: the command's status is returned
    local rc=0
    load_start 5000 3
    load_advance 100 30
    "$@" || rc=$?
    load_advance 100 30
    load_stop
    return "$rc"
}

# ---- setup ------------------------------------------------------------------

for port in 5000 9000; do assert_port_free "$port"; done
context=$(bash "$here/prepare.sh" "$root" "$work") || fail "preparing the images failed"
if [[ -n $context ]]; then
    export E2E_BUILD_CONTEXT=$context
    compose_files+=(-f "$here/compose.vendored.yml")
fi

# ---- 1. version 1 ---------------------------------------------------------------

log "APP_VERSION=1 docker compose up -d --build --wait (project $project)"
APP_VERSION=1 DC_TIMEOUT=${ROLLOUT_BUILD_TIMEOUT:-1500} dc up -d --build --wait --quiet-pull >"$work/up.log" 2>&1 || {
    tail -n 40 "$work/up.log"
    fail "docker compose up -d --build --wait failed"
}
wait_backends 9000 3 60 || fail "the balancer did not list 3 healthy backends"
assert_all_version 1 "version 1"
ok "version 1 up: 3 replicas through :5000"

# ---- before the script: what a plain `up -d --build` does (opt-in, figures only) -----------

if [[ ${ROLLOUT_BASELINE:-} == 1 ]]; then
    build_app 1.1
    before=$(visits 5000)
    balancer_was=$(docker inspect -f '{{.Id}} {{.State.StartedAt}}' "$(dc ps -q balancer)")
    t0=$(date +%s.%N)
    naive() { APP_VERSION=1.1 DC_TIMEOUT=600 dc up -d --build >>"$work/up.log" 2>&1; }
    under_load naive || fail "APP_VERSION=1.1 docker compose up -d --build failed"
    took=$(elapsed "$t0")
    after=$(visits 5000)
    balancer_now=$(docker inspect -f '{{.Id}} {{.State.StartedAt}}' "$(dc ps -q balancer)")
    [[ $balancer_now == "$balancer_was" ]] && balancer_fate="left running" || balancer_fate="RECREATED or restarted"
    log "BASELINE plain 'APP_VERSION=1.1 docker compose up -d --build' under load: $(load_sent) requests, $(load_ok) answered 200, non-200: [$(load_bad)] (000: no HTTP answer), failing for $(load_failure_window), counter +$((after - before)), $took s of load (image already built), versions seen: $(load_versions), balancer $balancer_fate"
    grep -E 'Recreate|Restart|Start|Stop' "$work/compose.log" | tail -n 12 || true
    wait_backends 9000 3 60 || fail "after the plain up the balancer did not list 3 healthy backends"
fi

# ---- 2. roll to version 2 --------------------------------------------------------

build_app 2
before=$(visits 5000)
t0=$(date +%s.%N)
under_load rollout || { cat "$work/rollout.log"; fail "compose-rollout.sh app (version 2) failed"; }
took=$(elapsed "$t0")
after=$(visits 5000)
sent=$(load_sent) answered=$(load_ok) bad=$(load_bad)
log "rollout 1 -> 2: $sent requests, $answered answered 200, non-200: [$bad], counter +$((after - before)), script $script_took s (load $took s), versions: $(load_versions)"
[[ -z $bad ]] || fail "rollout 1 -> 2: answers other than 200: $bad"
((after - before == answered)) || fail "rollout 1 -> 2: counter rose by $((after - before)) for $answered answers"
assert_all_version 2 "after the rollout to 2"
ok "rollout 1 -> 2 under load: $answered/$sent answered 200, counter +$answered, 3 replicas on version 2 (script $script_took s)"

# ---- 3. a broken version 3 ----------------------------------------------------------

build_app 3
v2_ids=$(dc ps -q app | sort)
before=$(visits 5000)
t0=$(date +%s.%N)
if under_load rollout -f "$here/rollout-broken.yml"; then
    cat "$work/rollout.log"
    fail "compose-rollout.sh app succeeded with a version whose /health never passes"
fi
took=$(elapsed "$t0")
after=$(visits 5000)
grep -q 'FAILED: .*unhealthy\|FAILED: .*not healthy' "$work/rollout.log" || {
    cat "$work/rollout.log"
    fail "broken version 3: the script failed without saying the new containers were not healthy"
}
sent=$(load_sent) answered=$(load_ok) bad=$(load_bad)
log "broken rollout to 3: $sent requests, $answered answered 200, non-200: [$bad], counter +$((after - before)), script gave up after $script_took s (load $took s): $(grep FAILED "$work/rollout.log")"
[[ -z $bad ]] || fail "broken version 3: answers other than 200 while it was tried: $bad"
((after - before == answered)) || fail "broken version 3: counter rose by $((after - before)) for $answered answers"
[[ $(load_versions) == "v2 x$answered " ]] || fail "broken version 3: answers came from $(load_versions), want version 2 only"
[[ $(dc ps -q app | sort) == "$v2_ids" ]] || fail "broken version 3: the version-2 containers were not left as they were"
(($(docker ps -aq --filter "label=com.docker.compose.project=$project" --filter label=com.docker.compose.service=app | wc -l) == 3)) ||
    fail "broken version 3: the new containers were not removed"
assert_all_version 2 "after the broken version 3"
ok "broken version 3: script exits 1 after $script_took s, the 3 version-2 containers serve on ($answered/$sent answered 200, counter exact)"
