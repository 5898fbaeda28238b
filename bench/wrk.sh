#!/usr/bin/env bash
# Serve the same hello app from microweb and its peers with real servers, load each with wrk.
#
# WSGI apps (microweb, Falcon, Bottle) run under Waitress, ASGI apps (microweb, Starlette,
# falcon.asgi) under Uvicorn, each on a free port of 127.0.0.1. The servers of one section run
# side by side (idle but for the one under load); each is checked with one request, then wrk
# loads them in turn for DURATION seconds, for ROUNDS rounds, and the best round of each app is
# kept, so a burst of background load does not decide a ratio. Servers are stopped by their pids.
# Loopback traffic only.
#
# Usage:
#   bench/wrk.sh [--quick] [PATH]        PATH: /, /json or /users/42 (default /), or a route
#                                        of the 1,000-route apps of cells.py: /r999/items/42
#   The raw WSGI and ASGI callables of cells.py (the floors) answer / and /json and the
#   routes; their ratio line, raw/microweb, is the share of the raw app's requests/s that
#   microweb keeps (issue 7: at least 0.80 behind Uvicorn).
# Environment:
#   DURATION (seconds per wrk run, default 3; --quick: 1), ROUNDS (default 3; --quick: 2),
#   CONNECTIONS (default 32), THREADS (wrk threads, default 2), WAITRESS_THREADS (default 4),
#   PYTHON (default: the repository's .venv, else python3), UVICORN_HTTP (auto, h11 or
#   httptools; auto takes httptools when it is installed).
#
# Client and servers share the machine's CPUs, so the numbers are lower than on separate hosts;
# compare the apps with each other, within one run.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
quick=0
if [[ "${1:-}" == "--quick" ]]; then
    quick=1
    shift
fi
path="${1:-/}"
duration="${DURATION:-$((quick ? 1 : 3))}"
rounds="${ROUNDS:-$((quick ? 2 : 3))}"
connections="${CONNECTIONS:-32}"
wrk_threads="${THREADS:-2}"
waitress_threads="${WAITRESS_THREADS:-4}"
if [[ -n "${PYTHON:-}" ]]; then
    python="$PYTHON"
elif [[ -x "$repo/.venv/bin/python" ]]; then
    python="$repo/.venv/bin/python"
else
    python="python3"
fi
export PYTHONPATH="$here:$repo${PYTHONPATH:+:$PYTHONPATH}"

if ! command -v wrk >/dev/null; then
    echo "wrk is not installed (Debian/Ubuntu: apt-get install -y wrk)" >&2
    exit 1
fi

logs="$(mktemp -d)"
labels=()
pids=()
ports=()

stop_servers() {
    local pid
    for pid in "${pids[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
        fi
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    labels=()
    pids=()
    ports=()
}

cleanup() {
    stop_servers
    rm -rf "$logs"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

log_of() {
    echo "$logs/${1//[^a-z0-9]/_}.log"
}

# start_server LABEL SERVER FACTORY: start it in the background and remember its pid and port.
start_server() {
    local label="$1" server="$2" factory="$3"
    local port log
    port="$(free_port)"
    log="$(log_of "$label")"
    if [[ "$server" == waitress ]]; then
        "$python" -m waitress --host=127.0.0.1 --port="$port" --threads="$waitress_threads" \
            --call "bench_apps:$factory" >"$log" 2>&1 &
    else
        "$python" -m uvicorn --factory "bench_apps:$factory" --host 127.0.0.1 --port "$port" \
            --http "${UVICORN_HTTP:-auto}" --log-level warning --no-access-log >"$log" 2>&1 &
    fi
    labels+=("$label")
    pids+=("$!")
    ports+=("$port")
}

# wait_ready INDEX: wait until that server answers 200 on $path (up to 15 s); fail if it died.
wait_ready() {
    local label="${labels[$1]}" pid="${pids[$1]}" port="${ports[$1]}"
    for _ in $(seq 1 150); do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "  ! $label: the server exited; its log:" >&2
            tail -n 20 "$(log_of "$label")" >&2
            return 1
        fi
        if "$python" - "$port" "$path" <<'PY' 2>/dev/null; then
import sys
import urllib.request

port, path = sys.argv[1], sys.argv[2]
with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
            return 0
        fi
        sleep 0.1
    done
    echo "  ! $label: no 200 answer on 127.0.0.1:$port$path after 15 s; its log:" >&2
    tail -n 20 "$(log_of "$label")" >&2
    return 1
}

# load PORT LABEL: one wrk run; prints requests/s (or ERR).
load() {
    local port="$1" label="$2" out rps errors
    out="$(timeout $((duration + 30)) wrk -t"$wrk_threads" -c"$connections" -d"${duration}s" \
        "http://127.0.0.1:$port$path" 2>&1 || true)"
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    errors="$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)"
    if [[ -n "$errors" ]]; then
        echo "  ! $label: $errors" >&2
    fi
    echo "${rps:-ERR}"
}

# section TITLE: check the started servers, load them in rounds, print the table, stop them.
section() {
    local title="$1" i round rps
    local -a ready best
    for i in "${!labels[@]}"; do
        ready[i]=0
        best[i]="ERR"
        if wait_ready "$i"; then
            ready[i]=1
        fi
    done
    for ((round = 1; round <= rounds; round++)); do
        for i in "${!labels[@]}"; do
            if [[ "${ready[i]}" == 1 ]]; then
                rps="$(load "${ports[i]}" "${labels[i]}")"
                if [[ "$rps" != ERR && ("${best[i]}" == ERR || "${rps%.*}" -gt "${best[i]%.*}") ]]; then
                    best[i]="$rps"
                fi
            fi
        done
    done
    for i in "${!labels[@]}"; do
        printf '%s\t%s\n' "${labels[i]}" "${best[i]}"
    done >"$logs/results"
    stop_servers
    "$python" - "$title" "$logs/results" <<'PY'
import sys

title, results = sys.argv[1], sys.argv[2]
with open(results) as file:
    rows = [line.rstrip("\n").split("\t") for line in file if line.strip()]
print(f"\n== {title} ==")
width = max(len(label) for label, _ in rows)
base = rows[0][1]
for label, rps in rows:
    line = f"{label.ljust(width)}  {rps:>10} req/s"
    if label != rows[0][0] and "ERR" not in (rps, base):
        line += f"   {label}/microweb = {float(base) / float(rps):.2f}x"
    print(line)
PY
}

versions="$("$python" -c '
from importlib.metadata import version
names = ["microweb", "falcon", "bottle", "starlette", "waitress", "uvicorn"]
print(", ".join(f"{n} {version(n)}" for n in names))
' 2>/dev/null || echo "versions unknown")"
echo "$versions; $(wrk --version 2>&1 | head -n 1 | cut -d' ' -f1-2)"
echo "GET $path; best of $rounds wrk runs of ${duration}s per app; $connections connections," \
    "$wrk_threads wrk threads; Waitress threads=$waitress_threads, Uvicorn 1 worker;" \
    "$(nproc) CPUs shared by client and servers"
echo "Ratios are microweb req/s / peer req/s (= peer time per request / microweb's):" \
    "above 1.00x means microweb is faster."

# NOTE: a path of the 1,000-route apps of cells.py serves those apps (Bottle has none).
suffix=""
if [[ "$path" =~ ^/r[0-9]+/items/[0-9]+$ ]]; then
    suffix="_routes"
fi

start_server "microweb" waitress "microweb_wsgi$suffix"
start_server "raw WSGI" waitress "raw_wsgi$suffix"
start_server "falcon" waitress "falcon_wsgi$suffix"
if [[ -z "$suffix" ]]; then
    start_server "bottle" waitress bottle_wsgi
fi
section "WSGI under Waitress"

start_server "microweb" uvicorn "microweb_asgi$suffix"
start_server "raw ASGI" uvicorn "raw_asgi$suffix"
start_server "starlette" uvicorn "starlette_asgi$suffix"
start_server "falcon.asgi" uvicorn "falcon_asgi$suffix"
section "ASGI under Uvicorn"
