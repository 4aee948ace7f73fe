# Helpers shared by the Docker deploy tests (tests/docker/rollout.sh, tests/docker/swarm.sh): logging
# with pass/fail counts, requests through a published port on 127.0.0.1, the balancer's /status,
# and a background load with every answer recorded. Sourced, never run; the caller sets `work`
# (a scratch directory it removes) before using the load helpers.

start_epoch=$(date +%s)
passed=0
failed=0

log() { printf '[%4ss] %s\n' "$(($(date +%s) - start_epoch))" "$*"; }
ok() { passed=$((passed + 1)); log "ok - $*"; }
fail() {
    failed=$((failed + 1))
    log "FAIL - $*"
    exit 1
}

# Seconds since a `date +%s.%N` stamp, one decimal.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}'; }

assert_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        fail "127.0.0.1:$1 is already in use; the stack under test publishes it"
    fi
}

# N GET requests over one keep-alive connection; prints "STATUS VERSION SERVED-BY" lines
# (STATUS 000: no HTTP answer at all).
requests() { # requests PORT PATH N
    local port=$1 path=$2 n=$3 cfg
    cfg=$(mktemp "$work/curl.XXXXXX")
    for ((i = 0; i < n; i++)); do
        printf 'url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\n' "$port" "$path" >>"$cfg"
    done
    curl -sS --max-time 30 --config "$cfg" -w '%{http_code} %header{x-app-version} %header{x-served-by}\n' 2>/dev/null || true
    rm -f "$cfg"
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

# The number of healthy backends the balancer's /status lists (0 when it does not answer).
healthy_backends() { # healthy_backends ADMIN_PORT
    local got
    got=$(curl -s --max-time 2 "http://127.0.0.1:$1/status" | grep -oE '"healthy_backends": *[0-9]+' | tr -dc '0-9' || true)
    echo "${got:-0}"
}

wait_backends() { # wait_backends ADMIN_PORT N SECONDS: /status lists exactly N healthy backends
    local deadline=$((SECONDS + $3)) got
    while :; do
        got=$(healthy_backends "$1")
        ((got == $2)) && return 0
        ((SECONDS < deadline)) || { log "balancer status lists $got healthy backends, expected $2"; return 1; }
        sleep 0.2
    done
}

# ---- background load: LOOPS clients, each sending batches of 20 /count over one keep-alive
# connection until load_stop (bounded to 3000 batches each); every answer is a line in $work/load.*:
# "STATUS VERSION SERVED-BY BATCH-START" (VERSION and SERVED-BY are empty on a 000 line).
load_pids=()
load_start() { # load_start PORT LOOPS
    local port=$1 loops=$2 l
    rm -f "$work"/load.* "$work/load-stop"
    load_pids=()
    for ((l = 0; l < loops; l++)); do
        (
            for ((batch = 0; batch < 3000; batch++)); do
                [[ -e $work/load-stop ]] && break
                # Each answer line ends with its batch's start time (for load_failure_window).
                requests "$port" /count 20 | awk -v t="$(date +%s.%N)" '{print $0, t}' >>"$work/load.$l"
            done
        ) &
        load_pids+=($!)
    done
}

load_lines() { cat "$work"/load.* 2>/dev/null | wc -l; }

# Waits until the load has produced N more answers than now (the load is flowing; bounded).
load_advance() { # load_advance N SECONDS
    local target=$(($(load_lines) + $1)) deadline=$((SECONDS + $2))
    until (($(load_lines) >= target)); do
        ((SECONDS < deadline)) || fail "load: fewer than $1 answers in $2 s"
        sleep 0.1
    done
}

load_stop() {
    touch "$work/load-stop"
    local pid
    for pid in "${load_pids[@]}"; do wait "$pid" || true; done
    load_pids=()
    cat "$work"/load.* >"$work/load.all"
}

# After load_stop: "SENT OK BAD" where BAD lists the non-200 statuses with counts ("" when none).
load_sent() { wc -l <"$work/load.all"; }
load_ok() { awk '$1 == 200' "$work/load.all" | wc -l; }
load_bad() { awk '$1 != 200 {print $1}' "$work/load.all" | sort | uniq -c | awk '{printf "%s x%s ", $2, $1}'; }
# The X-App-Version values that answered 200, with counts.
load_versions() { awk '$1 == 200 {print $2}' "$work/load.all" | sort | uniq -c | awk '{printf "v%s x%s ", $2, $1}'; }
# Seconds from the first to the last batch that saw a failure, and how far into the load it began.
load_failure_window() {
    awk 'NR == 1 || $NF < t0 {t0 = $NF} $1 != 200 {if (!n++) a = $NF; if ($NF < a) a = $NF; if ($NF > b) b = $NF}
        END {if (n) printf "%.1f s (from %.1f s into the load)", b - a, a - t0; else printf "none"}' "$work/load.all"
}
