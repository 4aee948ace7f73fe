#!/usr/bin/env bash
# The routes overlay (docker-compose.yml + docker-compose.routes.yml, the balancer reading
# deploy/routes/balancer.toml) on a real Docker engine, through the ports it publishes on
# 127.0.0.1 (5000 balancer, 9000 admin):
#   1. `up -d --build --wait`; `balancer check-config` inside the container accepts the file;
#      /status lists the file's 4 routes and its 3 groups with 3, 1 and 2 healthy backends, and
#      the sha256 of the mounted file;
#   2. the split of `/`: 200 /count answer 200, exactly 20 from the `next` version (90/10 is exact
#      per cycle of 100), the rest from `app`'s replicas; the counter rose by exactly 200;
#   3. /api/visits answers JSON from the `api` replicas only; /next/health reaches next's /health
#      (strip_prefix), and Host: next.localhost reaches `next` for every request;
#   4. live reload by file: the mounted copy rewritten in place with a 50/50 split is seen
#      (/status: new sha256, last_reload ok by "file") and 100 /count then hold exactly 50 from
#      `next`; a file with a weight of 0 renamed into place is refused (last_reload error, the
#      hash and the 50/50 split stay).
# The file is a copy in a temporary directory mounted where the overlay mounts deploy/routes, so
# the checkout is never written. SKIP where no engine answers (FAIL with REQUIRE_DOCKER=1);
# `down -v` on every exit; the run holds /tmp/docker.lock; bounded (ROUTES_TIMEOUT, default
# 30 min, most of it a cold build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/docker

if [[ -z ${ROUTES_BOUNDED:-} ]]; then
    # The lock makes every docker command and the published ports this run's alone; waiting for
    # it is not counted in the bound.
    ROUTES_BOUNDED=1 exec flock -w "${ROUTES_LOCK_WAIT:-3600}" /tmp/docker.lock \
        timeout --kill-after=60 "${ROUTES_TIMEOUT:-1800}" "$0" "$@"
fi
# shellcheck source=tests/docker/engine.sh
source "$here/engine.sh"
engine_or_skip routes
docker compose version >/dev/null 2>&1 || { echo "FAIL: docker routes: 'docker compose' (v2) is not installed" >&2; exit 1; }
for cmd in curl python3 sha256sum; do
    command -v "$cmd" >/dev/null || { echo "FAIL: docker routes: $cmd is not installed" >&2; exit 1; }
done

# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"
project=vc-routes-$$-$RANDOM
work=$(mktemp -d /tmp/visit-counter-routes.XXXXXX)
# The versions the answers are told apart by: `app` is built without APP_VERSION (the crate's
# version), `next` with NEXT_APP_VERSION's default, "next".
unset APP_VERSION NEXT_APP_VERSION
app_version=$(awk -F'"' '/^version *=/ {print $2; exit}' "$root/app/Cargo.toml")
# The mounted copy of the file, readable by the balancer's non-root user.
routes=$work/routes
mkdir -p "$routes"
chmod 0755 "$work" "$routes"
cp "$root/deploy/routes/balancer.toml" "$routes/balancer.toml"
chmod 0644 "$routes/balancer.toml"
cat >"$work/routes.yml" <<EOF
# Mounts the test's copy of the routes file where docker-compose.routes.yml mounts deploy/routes.
services:
  balancer:
    volumes:
      - $routes:/etc/balancer:ro
EOF
compose_files=(-f "$root/docker-compose.yml" -f "$root/docker-compose.routes.yml" -f "$work/routes.yml")

dc() {
    timeout "${DC_TIMEOUT:-180}" docker compose --ansi never -p "$project" --project-directory "$root" "${compose_files[@]}" "$@" \
        2>>"$work/compose.log"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)); then
        log "failure: last compose output"
        tail -n 30 "$work/compose.log" 2>/dev/null || true
        DC_TIMEOUT=60 dc ps -a || true
        DC_TIMEOUT=60 dc logs --no-color --tail=30 balancer || true
        log "failure: last /status"
        curl -s --max-time 2 http://127.0.0.1:9000/status | head -c 4000 || true
    fi
    log "cleanup: down -v"
    DC_TIMEOUT=180 dc down -v --remove-orphans --rmi local >/dev/null 2>&1 || true
    rm -rf "$work"
    echo "docker routes: $passed passed, $((failed + (rc != 0 && failed == 0 ? 1 : 0))) failed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

# ---- helpers ----------------------------------------------------------------------

# /status as JSON, one Python expression over it (`s`); prints its value ("" when /status does
# not answer or the expression fails, e.g. on a field the balancer does not have).
status_get() { # status_get EXPR
    curl -s --max-time 2 http://127.0.0.1:9000/status |
        python3 -c 'import json, sys
try:
    s = json.load(sys.stdin)
    v = eval(sys.argv[1])
except Exception:
    sys.exit(0)
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" 2>/dev/null || true
}

# Healthy backends per group, e.g. "api=2 app=3 next=1" (groups sorted by name).
GROUPS_HEALTHY='" ".join(sorted(g["name"] + "=" + str(sum(1 for b in g["backends"] if b["healthy"])) for g in s["groups"]))'

wait_status() { # wait_status EXPR WANT SECONDS: until status_get EXPR prints WANT
    local deadline=$((SECONDS + $3)) got
    while :; do
        got=$(status_get "$1")
        [[ $got == "$2" ]] && return 0
        ((SECONDS < deadline)) || { log "/status: $1 is '$got', expected '$2'"; return 1; }
        sleep 0.2
    done
}

# N GETs of PATH over one connection with extra curl flags; "STATUS VERSION SERVED-BY" lines.
requests_with() { # requests_with PATH N CURL-FLAG...
    local path=$1 n=$2 cfg i
    shift 2
    cfg=$(mktemp "$work/curl.XXXXXX")
    for ((i = 0; i < n; i++)); do
        printf 'url = "http://127.0.0.1:5000%s"\noutput = "/dev/null"\n' "$path" >>"$cfg"
    done
    curl -sS --max-time 60 "$@" --config "$cfg" -w '%{http_code} %header{x-app-version} %header{x-served-by}\n' 2>/dev/null || true
    rm -f "$cfg"
}

# Asserts N /count through the split: all 200, exactly NEXT from version "next", the others from
# the app's version, and the counter rose by exactly N.
assert_split() { # assert_split N NEXT WHAT
    local n=$1 want_next=$2 what=$3 before after answers got_next got_app
    before=$(visits 5000)
    answers=$(requests_with /count "$n")
    after=$(visits 5000)
    (($(awk '$1 == 200' <<<"$answers" | wc -l) == n)) ||
        fail "$what: not all $n answered 200: $(awk '{print $1}' <<<"$answers" | sort | uniq -c | tr '\n' ' ')"
    got_next=$(awk '$2 == "next"' <<<"$answers" | wc -l)
    got_app=$(awk -v v="$app_version" '$2 == v' <<<"$answers" | wc -l)
    ((got_next == want_next && got_app == n - want_next)) ||
        fail "$what: $got_next from next and $got_app from app $app_version of $n, want $want_next and $((n - want_next))"
    ((after - before == n)) || fail "$what: the counter rose by $((after - before)) for $n requests"
    ok "$what: $n x /count, exactly $want_next from next and $((n - want_next)) from app; counter +$n"
}

reload_field() { status_get "(s['config']['last_reload'] or {}).get('$1')"; }

# ---- setup ------------------------------------------------------------------------

for port in 5000 9000; do assert_port_free "$port"; done
context=$(bash "$here/prepare.sh" "$root" "$work") || fail "preparing the images failed"
if [[ -n $context ]]; then
    export E2E_BUILD_CONTEXT=$context
    # compose.vendored.yml points app's and balancer's builds at the vendored copy; the overlay's
    # two services build the same Dockerfile.app and need it too.
    cat >"$work/vendored-routes.yml" <<'EOF'
services:
  next:
    build:
      context: ${E2E_BUILD_CONTEXT}
  api:
    build:
      context: ${E2E_BUILD_CONTEXT}
EOF
    compose_files+=(-f "$here/compose.vendored.yml" -f "$work/vendored-routes.yml")
fi

# ---- 1. up; the file as check-config and /status see it ------------------------------

log "docker compose -f docker-compose.yml -f docker-compose.routes.yml up -d --build --wait (project $project)"
DC_TIMEOUT=${ROUTES_BUILD_TIMEOUT:-1500} dc up -d --build --wait --quiet-pull >"$work/up.log" 2>&1 || {
    tail -n 40 "$work/up.log"
    fail "docker compose up -d --build --wait failed"
}
summary=$(dc exec -T balancer balancer check-config /etc/balancer/balancer.toml 2>&1) ||
    fail "check-config refused the example file: $summary"
[[ $summary == "/etc/balancer/balancer.toml: ok: 4 routes, 3 upstream groups, sha256 "* ]] ||
    fail "check-config printed '$summary'"
ok "balancer check-config: $summary"

wait_status "$GROUPS_HEALTHY" "api=2 app=3 next=1" 60 || fail "the groups did not all get healthy backends"
ok "/status: groups api, app, next with 2, 3 and 1 healthy backends"
routes_seen=$(status_get '" ".join(r["name"] + ":" + (r["host"] or "") + r["path"] + ":" + ",".join(u["name"] + "=" + str(u["weight"]) for u in r["upstreams"]) + (":strip" if r["strip_prefix"] else "") for r in s["routes"])')
for want in "site:/:app=90,next=10" "api:/api:api=1" "next-preview:next.localhost/:next=1" "next-path:/next:next=1:strip"; do
    [[ " $routes_seen " == *" $want "* ]] || fail "/status routes '$routes_seen' lack '$want'"
done
ok "/status: the file's 4 routes with their hosts, paths, weights and strip_prefix"
file_sha=$(sha256sum "$routes/balancer.toml" | cut -c1-64)
status_sha=$(status_get "s['config']['sha256']")
[[ -n $status_sha && $file_sha == "$status_sha"* ]] ||
    fail "/status config.sha256 '$status_sha' is not the mounted file's ($file_sha)"
[[ $summary == *" sha256 ${file_sha:0:12}" ]] || fail "check-config's hash is not the file's (${file_sha:0:12})"
ok "/status and check-config show the mounted file's sha256"

# ---- 2. the 90/10 split of / ---------------------------------------------------------

assert_split 200 20 "split 90/10"

# ---- 3. /api, strip_prefix, the host route ------------------------------------------

api_ids=$(dc ps -q api | cut -c1-12 | sort)
answers=$(requests_with /api/visits 20)
(($(awk '$1 == 200' <<<"$answers" | wc -l) == 20)) || fail "/api/visits: not all 20 answered 200"
stray=$(awk '{print $3}' <<<"$answers" | sort -u | grep -vxF -f <(echo "$api_ids") || true)
[[ -z $stray ]] || fail "/api/visits: answered by '$stray', not an api replica ($api_ids)"
curl -s --max-time 5 http://127.0.0.1:5000/api/visits | python3 -c 'import json, sys; assert isinstance(json.load(sys.stdin)["visits"], int)' ||
    fail "/api/visits: no JSON {\"visits\": N}"
ok "/api/visits: 20 x 200 JSON from the api replicas only"

next_health=$(curl -s --max-time 5 http://127.0.0.1:5000/next/health)
python3 -c 'import json, sys; h = json.loads(sys.argv[1]); assert h["version"] == "next" and h["status"] == "ok"' "$next_health" ||
    fail "/next/health did not reach next's /health: $next_health"
ok "strip_prefix: /next/health reached next's /health ($next_health)"

answers=$(requests_with /count 10 -H 'Host: next.localhost')
(($(awk '$1 == 200 && $2 == "next"' <<<"$answers" | wc -l) == 10)) ||
    fail "Host: next.localhost: not 10 x 200 from next: $(awk '{print $1, $2}' <<<"$answers" | sort | uniq -c | tr '\n' ' ')"
ok "host route: 10 x /count with Host: next.localhost all answered by next"

requests=$(curl -s --max-time 2 http://127.0.0.1:9000/metrics |
    awk '/^balancer_route_requests_total\{.*route="site"/ {s += $NF} END {print s + 0}')
((requests >= 200)) || fail "/metrics: balancer_route_requests_total{route=\"site\"} is $requests, want at least 200"
ok "/metrics: balancer_route_requests_total{route=\"site\"} = $requests"

# ---- 4. live reload by file: a valid edit in place, an invalid file renamed in -----------

old_sha=$status_sha
sed 's/weight = 90 }, { name = "next", weight = 10 }/weight = 50 }, { name = "next", weight = 50 }/' \
    "$routes/balancer.toml" >"$work/5050.toml"
grep -q 'weight = 50 }, { name = "next", weight = 50 }' "$work/5050.toml" || fail "could not write the 50/50 file"
new_sha=$(sha256sum "$work/5050.toml" | cut -c1-64)
t0=$(date +%s.%N)
cat "$work/5050.toml" >"$routes/balancer.toml" # in place: same inode, as an edit of a bind mount
wait_status "s['config']['sha256'][:12]" "${new_sha:0:12}" 10 || fail "reload: the edited file was not seen within 10 s"
seen=$(elapsed "$t0")
[[ $(reload_field result) == ok && $(reload_field trigger) == file ]] ||
    fail "reload: last_reload is $(status_get "s['config']['last_reload']")"
ok "reload by file: the in-place edit applied $seen s after the write (result ok, trigger file)"
assert_split 100 50 "split 50/50 after the reload"

cat >"$work/bad.toml" <<'EOF'
[[upstream]]
name = "app"
servers = ["app:5000"]

[[route]]
path = "/"
upstreams = [{ name = "app", weight = 0 }]
EOF
chmod 0644 "$work/bad.toml"
cp "$work/bad.toml" "$routes/.balancer.toml.new"
mv "$routes/.balancer.toml.new" "$routes/balancer.toml" # a new inode, as editors save
wait_status "(s['config']['last_reload'] or {}).get('result')" error 10 || fail "reload: the invalid file was not refused within 10 s"
error=$(reload_field error)
[[ $error =~ balancer\.toml:[0-9]+:[0-9]+:\  ]] || fail "reload: the error does not give the file's line and column: $error"
[[ $(status_get "s['config']['sha256'][:12]") == "${new_sha:0:12}" ]] || fail "reload: the refused file replaced the running one"
ok "invalid file (weight 0) refused: '$error'; the running config kept"
assert_split 100 50 "split 50/50 still after the refused file"
[[ $old_sha != "$new_sha" ]] || fail "the two files had the same hash"
