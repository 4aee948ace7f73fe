#!/usr/bin/env bash
# deploy/swarm/stack.yml on a real one-node Docker Swarm (`docker swarm init --advertise-addr
# 127.0.0.1`), from images built here (no registry), under load through the balancer's host-mode
# port 5000 with every answer recorded; the balancer's /status comes from port 9000, which
# tests/docker/swarm.test.yml publishes for the test only.
#   1. `docker stack deploy`: 3 app tasks in the balancer's rotation, all on version 1;
#   2. `docker service scale app=5`: the balancer lists 5 healthy backends within the resolve
#      interval (plus one health check) of Swarm reporting the 2 new tasks healthy; no non-200;
#   3. `docker service update --image` to version 2 (start-first, one task at a time): zero
#      non-200, counter exact, 5 replicas all on version 2;
#   4. `docker kill` of one app task's container: Swarm replaces it, the rotation is back to 5,
#      failed requests no more than the clients that could have had one in flight on it.
# Prints SKIP where no engine answers (FAIL with REQUIRE_DOCKER=1). The swarm is left (`docker swarm
# leave --force`) and the images removed on every exit path; the whole run is bounded (SWARM_TIMEOUT).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/docker

if [[ -z ${SWARM_BOUNDED:-} ]]; then
    SWARM_BOUNDED=1 exec timeout --kill-after=60 "${SWARM_TIMEOUT:-1800}" "$0" "$@"
fi
# shellcheck source=tests/docker/engine.sh
source "$here/engine.sh"
engine_or_skip swarm
docker compose version >/dev/null 2>&1 || { echo "FAIL: docker swarm: 'docker compose' (v2) is not installed" >&2; exit 1; }
command -v curl >/dev/null || { echo "FAIL: docker swarm: curl is not installed" >&2; exit 1; }
state=$(docker info -f '{{.Swarm.LocalNodeState}}')
if [[ $state != inactive ]]; then
    echo "FAIL: docker swarm: this engine is already in a swarm ($state); the test makes and leaves its own" >&2
    exit 1
fi

# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"
project=vc-swarm-$$-$RANDOM
stack=visit-counter
work=$(mktemp -d /tmp/visit-counter-swarm.XXXXXX)
compose_files=(-f "$root/docker-compose.yml")
images=()
had_gwbridge=no
loops=3 # load clients: each has at most one request in flight

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    [[ -e $work/load-stop ]] || touch "$work/load-stop"
    if ((rc != 0)); then
        log "failure: services and tasks"
        timeout 30 docker service ls 2>/dev/null || true
        timeout 30 docker service ps --no-trunc "${stack}_app" 2>/dev/null | head -n 20 || true
        timeout 30 docker service logs --tail 20 "${stack}_balancer" 2>/dev/null || true
    fi
    log "cleanup: stack rm, swarm leave --force, images"
    timeout 60 docker stack rm "$stack" >/dev/null 2>&1 || true
    # Tasks stop with their grace periods; wait for their containers (bounded) before leaving.
    for _ in $(seq 1 60); do
        [[ -z $(docker ps -aq --filter "label=com.docker.stack.namespace=$stack") ]] && break
        sleep 1
    done
    timeout 60 docker swarm leave --force >/dev/null 2>&1 || true
    # `swarm init` made the bridge its tasks reach the host through; it stays after leaving.
    [[ $had_gwbridge == yes ]] || docker network rm docker_gwbridge >/dev/null 2>&1 || true
    ((${#images[@]})) && { docker rmi -f "${images[@]}" >/dev/null 2>&1 || true; }
    docker image prune -f --filter "label=com.docker.compose.project=$project" >/dev/null 2>&1 || true
    docker volume rm "${stack}_redis-data" >/dev/null 2>&1 || true
    rm -rf "$work"
    echo "docker swarm: $passed passed, $((failed + (rc != 0 && failed == 0 ? 1 : 0))) failed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# ---- helpers ----------------------------------------------------------------------

app_tasks() { # running app containers, one id per line (HEALTH: healthy to count only those)
    docker ps -q --filter "label=com.docker.swarm.service.name=${stack}_app" ${1:+--filter "health=$1"}
}

tasks_ready() { # tasks_ready N: exactly N app containers run, all healthy
    (($(app_tasks healthy | wc -l) == $1 && $(app_tasks | wc -l) == $1))
}

wait_tasks() { # wait_tasks N SECONDS
    local deadline=$((SECONDS + $2))
    until tasks_ready "$1"; do
        ((SECONDS < deadline)) || { log "$(app_tasks healthy | wc -l) healthy of $(app_tasks | wc -l) app tasks, want $1"; return 1; }
        sleep 0.2
    done
}

assert_all_version() { # assert_all_version VERSION REPLICAS WHAT
    local answers
    answers=$(requests 5000 /count 50)
    (($(awk '$1 == 200 && $2 == "'"$1"'"' <<<"$answers" | wc -l) == 50)) ||
        fail "$3: not every answer was a 200 from version $1: $(awk '{print $1, $2}' <<<"$answers" | sort | uniq -c | tr '\n' ' ')"
    (($(awk '{print $3}' <<<"$answers" | sort -u | wc -l) == $2)) || fail "$3: 50 answers did not come from $2 replicas"
}

# Runs a command under load (flowing before it and for 100 answers after it); figures in $work/load.all.
under_load() {
    local rc=0
    load_start 5000 "$loops"
    load_advance 100 30
    "$@" || rc=$?
    load_advance 100 60
    load_stop
    return "$rc"
}

# ---- setup: images from the user's Dockerfiles (through docker compose build), then the swarm ----

for port in 5000 9000; do assert_port_free "$port"; done
context=$(bash "$here/prepare.sh" "$root" "$work") || fail "preparing the images failed"
if [[ -n $context ]]; then
    export E2E_BUILD_CONTEXT=$context
    compose_files+=(-f "$here/compose.vendored.yml")
fi
build() { # build VERSION: tags PROJECT-app:VERSION (and the balancer once)
    APP_VERSION=$1 timeout "${SWARM_BUILD_TIMEOUT:-1500}" docker compose --ansi never -p "$project" "${compose_files[@]}" \
        build "${@:2}" >>"$work/build.log" 2>&1 || { tail -n 40 "$work/build.log"; fail "docker compose build (version $1) failed"; }
    docker tag "$project-app" "$project-app:$1"
    images+=("$project-app:$1")
}
log "building images (project $project)"
build 1 app balancer
images+=("$project-app" "$project-balancer")
build 2 app

docker network inspect docker_gwbridge >/dev/null 2>&1 && had_gwbridge=yes
docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "docker swarm init --advertise-addr 127.0.0.1 failed"
docker node update --label-add visit-counter.redis=true "$(docker info -f '{{.Swarm.NodeID}}')" >/dev/null
t0=$(date +%s.%N)
APP_IMAGE=$project-app:1 BALANCER_IMAGE=$project-balancer docker stack deploy --resolve-image never \
    -c "$root/deploy/swarm/stack.yml" -c "$here/swarm.test.yml" "$stack" >"$work/deploy.log" 2>&1 ||
    { cat "$work/deploy.log"; fail "docker stack deploy failed"; }

# ---- 1. deployed ----------------------------------------------------------------------

wait_http_200 "http://127.0.0.1:5000/count" 180 || fail "stack deploy: no 200 on :5000/count within 180 s"
wait_backends 9000 3 60 || fail "stack deploy: the balancer did not list 3 healthy backends"
log "stack deploy -> 3 backends in the rotation after $(elapsed "$t0") s"
assert_all_version 1 3 "stack deploy"
redis_node=$(docker service ps -f desired-state=running --format '{{.Node}}' "${stack}_redis")
ok "stack deployed: 3 app tasks behind the balancer on :5000 (host mode), Redis placed on node '$redis_node'"

# ---- 2. scale to 5 -----------------------------------------------------------------------

before=$(visits 5000)
scale() {
    t0=$(date +%s.%N)
    docker service scale --detach "${stack}_app=5" >/dev/null
    wait_tasks 5 120 || return 1
    t_tasks=$(elapsed "$t0")
    # The deadline is generous for a loaded machine; the figure is what is reported.
    wait_backends 9000 5 30 || return 1
    t_rotation=$(elapsed "$t0")
}
under_load scale || fail "scale: Swarm or the balancer did not reach 5 healthy app tasks"
after=$(visits 5000)
pickup=$(awk -v a="$t_tasks" -v b="$t_rotation" 'BEGIN {printf "%.1f", b - a}')
log "scale app=5: tasks healthy after $t_tasks s, balancer rotation 5 after $t_rotation s (+$pickup s); $(load_sent) requests, non-200: [$(load_bad)], counter +$((after - before))"
[[ -z $(load_bad) ]] || fail "scale: answers other than 200: $(load_bad)"
((after - before == $(load_ok))) || fail "scale: counter rose by $((after - before)) for $(load_ok) answers"
# Picked up within the resolve interval (2 s) plus one active check (2 s) of Swarm saying healthy.
awk -v p="$pickup" 'BEGIN {exit !(p <= 4.0)}' || fail "scale: the balancer took $pickup s after the tasks were healthy, more than 2 s resolve + 2 s check"
assert_all_version 1 5 "scale"
ok "scale app=5 under load: rotation 5 within $pickup s of the tasks being healthy, $(load_ok)/$(load_sent) answered 200, counter exact"

# ---- 3. update to version 2 -------------------------------------------------------------

before=$(visits 5000)
t0=$(date +%s.%N)
update() { timeout 600 docker service update --quiet --no-resolve-image --image "$project-app:2" "${stack}_app" >"$work/update.log" 2>&1; }
under_load update || { cat "$work/update.log"; fail "docker service update --image (version 2) failed"; }
took=$(elapsed "$t0")
after=$(visits 5000)
sent=$(load_sent) answered=$(load_ok) bad=$(load_bad)
log "update to version 2: $sent requests, $answered answered 200, non-200: [$bad], counter +$((after - before)), $took s, versions: $(load_versions)"
[[ -z $bad ]] || fail "update: answers other than 200: $bad"
((after - before == answered)) || fail "update: counter rose by $((after - before)) for $answered answers"
wait_backends 9000 5 30 || fail "update: the rotation did not settle on 5 backends"
assert_all_version 2 5 "update"
ok "service update --image to version 2 under load: $answered/$sent answered 200, counter +$answered, 5 replicas on version 2 ($took s)"

# ---- 4. one task killed ---------------------------------------------------------------------

victim=$(app_tasks)
victim=${victim%%$'\n'*} # not `| head -n 1`: a SIGPIPE'd docker fails the pipeline under pipefail
before=$(visits 5000)
kill_one() {
    docker kill "$victim" >/dev/null
    t0=$(date +%s.%N)
    # Swarm notices, starts a replacement; the balancer drops the dead address and adds the new one.
    local deadline=$((SECONDS + 120))
    until [[ -z $(docker ps -q --filter "id=$victim") ]] && tasks_ready 5 && (($(healthy_backends 9000) == 5)); do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    t_back=$(elapsed "$t0")
}
under_load kill_one || fail "kill: Swarm did not replace the killed task with a healthy one in the rotation within 120 s"
after=$(visits 5000)
sent=$(load_sent) answered=$(load_ok) bad=$(load_bad) failures=$(($(load_sent) - $(load_ok)))
log "kill one task: $sent requests, $answered answered 200, failed: $failures [$bad], counter +$((after - before)), replaced and in the rotation after $t_back s"
((failures <= loops)) || fail "kill: $failures requests failed, more than the $loops that could be in flight on the killed task"
((after - before >= answered && after - before <= answered + failures)) ||
    fail "kill: counter rose by $((after - before)) for $answered answers and $failures failures"
assert_all_version 2 5 "kill"
ok "docker kill of one task under load: $failures failed (at most $loops in flight), replaced in $t_back s, counter within the failures"
