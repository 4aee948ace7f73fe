# Sourced by the Docker tests (e2e.sh, rollout.sh, swarm.sh, tls.sh), never run: what to do when no Docker
# engine answers. By default the test prints one SKIP line and exits 0 (a laptop without Docker); with
# REQUIRE_DOCKER=1 (what CI sets) it prints one FAIL line and exits 1, so a CI run whose engine is missing
# or down is red instead of silently green.

# engine_or_skip NAME: returns when `docker info` answers within 20 s; otherwise exits as above.
engine_or_skip() {
    local name=$1
    timeout 20 docker info >/dev/null 2>&1 && return 0
    if [[ ${REQUIRE_DOCKER:-} == 1 ]]; then
        echo "FAIL: docker $name: no Docker engine answers (docker info failed) and REQUIRE_DOCKER=1; start dockerd or unset REQUIRE_DOCKER" >&2
        exit 1
    fi
    echo "SKIP: docker $name: no Docker engine answers (docker info failed); set REQUIRE_DOCKER=1 to make this a failure"
    exit 0
}
