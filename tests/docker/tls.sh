#!/usr/bin/env bash
# The HTTPS Compose stack (docker-compose.yml + docker-compose.tls.yml) on a real Docker engine,
# through the ports it publishes on 127.0.0.1 (5443 balancer HTTPS, 5445 NGINX HTTPS, 5000 plain,
# 9000 admin), with a development pair from `cargo xtask dev-cert`:
#   1. `up -d --build --wait`; /count over HTTPS answers over HTTP/2 (ALPN) and over HTTP/1.1, with
#      the dev CA as the only trust (`curl --cacert`), and the counter rose by exactly the requests;
#      the certificate served is the one in the mounted directory;
#   2. `--profile nginx`: NGINX on 5445 serves the same certificate, HTTP/2 and the same counter;
#   3. live reload inside the container: a new pair (new CA, new serial) renamed into the mounted
#      directory the way certbot and lego replace files; new handshakes see it within 3 s (+ slack;
#      the time is printed), `balancer_tls_reloads_total{outcome="ok"}` rose, and an HTTPS request
#      trusting only the new CA answers.
# X-Forwarded-Proto is not observable from outside the containers (the app does not echo headers);
# tests/tests/tls/front_door.rs checks it on loopback. The plain stack without the TLS file and
# without certificates is tests/docker/e2e.sh's.
#
# The checkout's ./certs is never read or written: the pair lives in a temporary directory that
# an extra Compose file mounts in place of ./certs (volumes merge by their container path).
# SKIP where no engine answers (FAIL with REQUIRE_DOCKER=1); `down -v` on every exit; the whole run
# holds /tmp/docker.lock; bounded in time (TLS_TIMEOUT_ALL, default 30 min, most of it a cold build).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
here=$root/tests/docker

if [[ -z ${TLS_BOUNDED:-} ]]; then
    # The whole run holds /tmp/docker.lock (every docker command in it, and the published ports,
    # are then the run's alone); waiting for the lock is not counted in the bound.
    TLS_BOUNDED=1 exec flock -w "${TLS_LOCK_WAIT:-3600}" /tmp/docker.lock \
        timeout --kill-after=60 "${TLS_TIMEOUT_ALL:-1800}" "$0" "$@"
fi
# shellcheck source=tests/docker/engine.sh
source "$here/engine.sh"
engine_or_skip tls
docker compose version >/dev/null 2>&1 || { echo "FAIL: docker tls: 'docker compose' (v2) is not installed" >&2; exit 1; }
for cmd in curl openssl; do
    command -v "$cmd" >/dev/null || { echo "FAIL: docker tls: $cmd is not installed" >&2; exit 1; }
done

# shellcheck source=tests/docker/lib.sh
source "$here/lib.sh"
project=vc-tls-$$-$RANDOM
work=$(mktemp -d /tmp/visit-counter-tls.XXXXXX)
# The mounted directory: readable by the containers' non-root users.
certs=$work/certs
mkdir -p "$certs"
chmod 0755 "$work" "$certs"
cat >"$work/certs.yml" <<EOF
# Mounts the test's certificate directory where docker-compose.tls.yml mounts ./certs.
services:
  balancer:
    volumes:
      - $certs:/certs:ro
  nginx:
    volumes:
      - $certs:/etc/nginx/certs:ro
EOF
compose_files=(-f "$root/docker-compose.yml" -f "$root/docker-compose.tls.yml" -f "$work/certs.yml")

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
        DC_TIMEOUT=60 dc --profile nginx ps -a || true
        DC_TIMEOUT=60 dc --profile nginx logs --no-color --tail=20 balancer nginx || true
    fi
    log "cleanup: down -v"
    DC_TIMEOUT=180 dc --profile nginx down -v --remove-orphans --rmi local >/dev/null 2>&1 || true
    rm -rf "$work"
    echo "docker tls: $passed passed, $((failed + (rc != 0 && failed == 0 ? 1 : 0))) failed"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 143' INT TERM

dev_cert() { # dev_cert DIR: a new development CA and localhost pair in DIR
    (cd "$root" && timeout 600 cargo xtask dev-cert --dir "$1" --force >"$work/dev-cert.log" 2>&1) ||
        { cat "$work/dev-cert.log"; fail "cargo xtask dev-cert --dir $1 failed"; }
}

# The SHA-256 fingerprint of the leaf a new handshake on PORT sees ("" when none).
served_fingerprint() { # served_fingerprint PORT
    timeout 5 openssl s_client -connect "127.0.0.1:$1" -servername localhost </dev/null 2>/dev/null |
        openssl x509 -noout -fingerprint -sha256 2>/dev/null || true
}
file_fingerprint() { openssl x509 -noout -fingerprint -sha256 -in "$1"; }

# N /count over one HTTPS connection trusting only CA; prints "HTTP-VERSION STATUS" lines.
https_requests() { # https_requests PORT CA N CURL-FLAG...
    local port=$1 ca=$2 n=$3 cfg i
    shift 3
    cfg=$(mktemp "$work/curl.XXXXXX")
    for ((i = 0; i < n; i++)); do
        printf 'url = "https://127.0.0.1:%s/count"\noutput = "/dev/null"\n' "$port" >>"$cfg"
    done
    curl -sS --max-time 30 --cacert "$ca" "$@" --config "$cfg" -w '%{http_version} %{http_code}\n' 2>>"$work/curl.err" || true
    rm -f "$cfg"
}

# Asserts N answers "VERSION 200" over PORT with FLAG, and that the counter rose by exactly N.
assert_https_counts() { # assert_https_counts PORT CA N VERSION WHAT CURL-FLAG...
    local port=$1 ca=$2 n=$3 version=$4 what=$5 before after answers
    shift 5
    before=$(visits 5000)
    answers=$(https_requests "$port" "$ca" "$n" "$@")
    after=$(visits 5000)
    (($(grep -cx "$version 200" <<<"$answers") == n)) ||
        fail "$what: not $n answers '$version 200': $(sort <<<"$answers" | uniq -c | tr '\n' ' ') $(tail -n 2 "$work/curl.err" 2>/dev/null)"
    ((after - before == n)) || fail "$what: the counter rose by $((after - before)) for $n requests"
    ok "$what: $n x /count answered 200 over HTTP/$version, counter +$n"
}

# ---- setup ------------------------------------------------------------------

for port in 5000 5443 5445 9000; do assert_port_free "$port"; done
context=$(bash "$here/prepare.sh" "$root" "$work") || fail "preparing the images failed"
if [[ -n $context ]]; then
    export E2E_BUILD_CONTEXT=$context
    compose_files+=(-f "$here/compose.vendored.yml")
fi
dev_cert "$certs"
chmod 0644 "$certs"/*.pem

# ---- 1. the balancer over HTTPS -----------------------------------------------

log "docker compose -f docker-compose.yml -f docker-compose.tls.yml up -d --build --wait (project $project)"
DC_TIMEOUT=${TLS_BUILD_TIMEOUT:-1500} dc up -d --build --wait --quiet-pull >"$work/up.log" 2>&1 || {
    tail -n 40 "$work/up.log"
    fail "docker compose up -d --build --wait failed"
}
wait_backends 9000 3 60 || fail "the balancer did not list 3 healthy backends"
[[ $(served_fingerprint 5443) == "$(file_fingerprint "$certs/cert.pem")" ]] ||
    fail "the balancer on 5443 does not serve the mounted certificate"
ok "balancer on 5443 serves the mounted certificate"
assert_https_counts 5443 "$certs/ca.pem" 30 2 "balancer HTTPS, ALPN h2" --http2
assert_https_counts 5443 "$certs/ca.pem" 30 1.1 "balancer HTTPS, HTTP/1.1" --http1.1

# ---- 2. NGINX with the same certificate ------------------------------------------

log "--profile nginx up -d --wait nginx"
dc --profile nginx up -d --wait nginx >>"$work/up.log" 2>&1 || { tail -n 20 "$work/up.log"; fail "NGINX did not come up"; }
deadline=$((SECONDS + 30))
until [[ -n $(served_fingerprint 5445) ]]; do
    ((SECONDS < deadline)) || fail "NGINX on 5445 completed no TLS handshake in 30 s"
    sleep 0.2
done
[[ $(served_fingerprint 5445) == "$(file_fingerprint "$certs/cert.pem")" ]] ||
    fail "NGINX on 5445 does not serve the mounted certificate"
ok "NGINX on 5445 serves the same certificate"
assert_https_counts 5445 "$certs/ca.pem" 30 2 "NGINX HTTPS, ALPN h2" --http2

# ---- 3. live reload inside the container ---------------------------------------------

reloads_ok() {
    curl -s --max-time 2 http://127.0.0.1:9000/metrics |
        awk '/^balancer_tls_reloads_total\{.*outcome="ok"/ {s += $NF} END {print s + 0}'
}
old=$(file_fingerprint "$certs/cert.pem")
reloads_before=$(reloads_ok)
dev_cert "$work/new"
new=$(file_fingerprint "$work/new/cert.pem")
[[ $new != "$old" ]] || fail "dev-cert wrote the same certificate twice"
# Copied next to the live files, then renamed over them (key first, as certbot's and lego's
# hooks do): the mounted directory sees each file change at once.
cp "$work/new/key.pem" "$certs/.key.pem.new" && cp "$work/new/cert.pem" "$certs/.cert.pem.new"
chmod 0644 "$certs/.key.pem.new" "$certs/.cert.pem.new"
t0=$(date +%s.%N)
mv "$certs/.key.pem.new" "$certs/key.pem" && mv "$certs/.cert.pem.new" "$certs/cert.pem"
seen=
while awk -v e="$(elapsed "$t0")" 'BEGIN {exit !(e < 10)}'; do
    [[ $(served_fingerprint 5443) == "$new" ]] && { seen=$(elapsed "$t0"); break; }
    sleep 0.1
done
[[ -n $seen ]] || fail "live reload: new handshakes still saw the old certificate 10 s after the rename"
awk -v s="$seen" 'BEGIN {exit !(s <= 4.0)}' || fail "live reload: the new certificate took $seen s (limit 3 s + 1 s slack)"
ok "live reload: new handshakes see the new certificate $seen s after the rename"
(($(reloads_ok) > reloads_before)) || fail "live reload: balancer_tls_reloads_total{outcome=\"ok\"} did not rise"
assert_https_counts 5443 "$work/new/ca.pem" 10 2 "after the reload, trusting only the new CA" --http2
