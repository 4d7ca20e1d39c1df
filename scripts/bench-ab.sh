#!/usr/bin/env bash
# A/B benchmark: runs one `overtone-bench` scenario against Overtone (A) and a peer server (B)
# in turn, A B A B ..., each run on a freshly started server process, then prints the median of
# every figure for each side and the ratio A/B. Alternating fresh processes keeps a noisy
# machine's drift from favouring either side.
#
#   scripts/bench-ab.sh [-r RUNS] SCENARIO [bench flags...]
#   scripts/bench-ab.sh -r 3 fanout -n 1000 --rate 20 --duration 10
#
# Server commands are templates where {port} is replaced by a free port; override with
#   BENCH_A="cmd ..." / BENCH_B="cmd ..." (B defaults to Sockudo from .tools/bin, see
#   BENCHMARKS.md). Both must serve app id bench-app, key bench-key, secret bench-secret.
# BENCH_C="cmd ..." adds a third server to every round (A B C A B C ...; e.g. a build of the
#   base branch: before and after against the peer in one run), shown with its ratio C/B.
# Raw JSON lines of every run are kept in target/bench-ab/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OVERTONE="$ROOT/target/release/overtone"
BENCH="$ROOT/target/release/overtone-bench"
RUNS=3
if [ "${1:-}" = "-r" ]; then RUNS="$2"; shift 2; fi
if [ $# -lt 1 ]; then
  sed -n '2,15p' "$0" >&2
  exit 2
fi
SCENARIO="$1"; shift

# (Not ${VAR:-default}: the } of {port} would end it early.)
[ -n "${BENCH_A:-}" ] || BENCH_A="env OVERTONE_LOG=warn $OVERTONE serve --port {port} --config $ROOT/scripts/bench/overtone.toml"
# Sockudo from environment variables only; run in an empty directory so no config file applies.
[ -n "${BENCH_B:-}" ] || BENCH_B="env PORT={port} HOST=127.0.0.1 RUST_LOG=warn METRICS_ENABLED=false \
RATE_LIMITER_ENABLED=false SOCKUDO_MAX_CONNECTIONS=100000 \
SOCKUDO_DEFAULT_APP_ID=bench-app SOCKUDO_DEFAULT_APP_KEY=bench-key \
SOCKUDO_DEFAULT_APP_SECRET=bench-secret SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=100000 \
SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL=100000 \
SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=10 \
SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=100000 $ROOT/.tools/bin/sockudo"

[ -x "$OVERTONE" ] && [ -x "$BENCH" ] ||
  cargo build --release -p overtone-server -p overtone-bench --manifest-path "$ROOT/Cargo.toml"

OUT="$ROOT/target/bench-ab/$SCENARIO-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
RESULTS="$OUT/results.jsonl"
WORKDIR="$(mktemp -d)"
SERVER_PID=""
stop_server() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap 'stop_server; rm -rf "$WORKDIR"' EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# run SIDE TEMPLATE: one fresh server, one bench run, one JSON line tagged with the side.
run() {
  local side="$1" template="$2" port
  shift 2
  port="$(free_port)"
  local cmd="${template//"{port}"/$port}"
  # exec keeps the server's pid the one we started (env execs too), for --server-pid.
  (cd "$WORKDIR" && exec bash -c "exec $cmd") >"$OUT/server-$side-$port.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server $side exited; see $OUT/server-$side-$port.log" >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.5  # let it finish starting before its baseline RSS is read
  echo "== $side (port $port): $SCENARIO $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  local line
  line="$("$BENCH" --url "ws://127.0.0.1:$port" --server-pid "$SERVER_PID" "$SCENARIO" "$@")"
  echo "$line" >&2
  printf '%s\t%s\n' "$side" "$line" >>"$RESULTS"
  stop_server
}

for _ in $(seq "$RUNS"); do
  run A "$BENCH_A" "$@"
  run B "$BENCH_B" "$@"
  [ -z "${BENCH_C:-}" ] || run C "$BENCH_C" "$@"
done

python3 - "$RESULTS" <<'EOF'
import json, statistics, sys

runs = {"A": [], "B": [], "C": []}
for line in open(sys.argv[1]):
    side, summary = line.rstrip("\n").split("\t", 1)
    runs[side].append(json.loads(summary))

def leaves(value, prefix=""):
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, f"{prefix}{key}.")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield prefix[:-1], value

figures = {}
for side, summaries in runs.items():
    for summary in summaries:
        for name, value in leaves(summary):
            figures.setdefault(name, {"A": [], "B": [], "C": []})[side].append(value)

three = bool(runs["C"])
shown = ["A", "B", "C"] if three else ["A", "B"]
head = f"{'figure':40} {'A median':>14} {'B median':>14} {'A/B':>8}"
if three:
    head += f" {'C median':>14} {'C/B':>8}"
print(head + "   (" + " | ".join(f"{s} runs" for s in shown) + ")")
median = lambda xs: statistics.median(xs) if xs else None
show = lambda x: f"{x:14.3f}" if x is not None else f"{'-':>14}"
ratio = lambda x, b: f"{x / b:8.3f}" if x is not None and b else f"{'-':>8}"
for name, sides in figures.items():
    a, b, c = (median(sides[s]) for s in "ABC")
    line = f"{name:40} {show(a)} {show(b)} {ratio(a, b)}"
    if three:
        line += f" {show(c)} {ratio(c, b)}"
    raw = " | ".join(" ".join(map(str, sides[s])) for s in shown)
    print(f"{line}   ({raw})")
EOF
echo "raw results: $RESULTS" >&2
