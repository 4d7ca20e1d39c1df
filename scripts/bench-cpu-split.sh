#!/usr/bin/env bash
# Where a fanout's server CPU goes, for Overtone and a peer in the same run: user space, kernel,
# and the part of the kernel time that is the receivers' loopback TCP work. On one machine the
# softirq that takes a loopback segment in (net_rx_action -> tcp_v4_rcv, queueing it on the
# client's socket and waking the client) runs inside the sender's `send`, so it is billed to
# the server; on two machines it runs on the client's. Subtracting it gives what a two-machine
# run would bill the server.
#
#   scripts/bench-cpu-split.sh [-r RUNS] [bench fanout flags...]
#   scripts/bench-cpu-split.sh -r 3 -n 10000 --rate 5 --duration 10
#
# Servers: SPLIT_A (default: target/release/overtone), SPLIT_B (default: Sockudo from
# .tools/bin, as scripts/bench-ab.sh starts it), SPLIT_C optional; templates with {port}.
#
# How, without perf's kernel samples (this machine: perf_event_paranoid=2, no root, no
# hardware counters in the VM): `overtone-bench fanout` reads, over its publish window, the
# server's user and system time (/proc/PID/stat) and the machine's softirq time (/proc/stat).
# Tick accounting (HZ=250 here) bills a tick spent serving a softirq both to the task it
# interrupted (as system time) and to the softirq column, so the softirq figure is the loopback
# receive work whichever task ran it: the server's sends (data into the clients' sockets) and
# the clients' (their ACKs into the server's). All of it is taken off as the receivers' work:
# an upper bound of what moves off the server on two machines (ACK processing would stay; data
# segments outnumber ACKs). Nothing else on the machine should do network I/O meanwhile (a
# compile does not); the load average is printed with every run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/target/release/overtone-bench"
RUNS=1
if [ "${1:-}" = "-r" ]; then RUNS="$2"; shift 2; fi
[ $# -gt 0 ] || set -- -n 1000 --rate 20 --duration 10

[ -n "${SPLIT_A:-}" ] || SPLIT_A="env OVERTONE_LOG=warn $ROOT/target/release/overtone serve --port {port} --config $ROOT/scripts/bench/overtone.toml"
[ -n "${SPLIT_B:-}" ] || SPLIT_B="env PORT={port} HOST=127.0.0.1 RUST_LOG=warn METRICS_ENABLED=false \
RATE_LIMITER_ENABLED=false SOCKUDO_MAX_CONNECTIONS=100000 \
SOCKUDO_DEFAULT_APP_ID=bench-app SOCKUDO_DEFAULT_APP_KEY=bench-key \
SOCKUDO_DEFAULT_APP_SECRET=bench-secret SOCKUDO_DEFAULT_APP_MAX_CONNECTIONS=100000 \
SOCKUDO_DEFAULT_APP_MAX_PRESENCE_MEMBERS_PER_CHANNEL=100000 \
SOCKUDO_DEFAULT_APP_ENABLE_CLIENT_MESSAGES=true SOCKUDO_DEFAULT_APP_MAX_CLIENT_EVENTS_PER_SECOND=10 \
SOCKUDO_DEFAULT_APP_MAX_BACKEND_EVENTS_PER_SECOND=100000 $ROOT/.tools/bin/sockudo"

OUT="$ROOT/target/bench-cpu-split/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
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
  (cd "$WORKDIR" && exec bash -c "exec $cmd") >"$OUT/server-$side-$port.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server $side exited; see $OUT/server-$side-$port.log" >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.5
  echo "== $side (port $port): fanout $* (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  local line
  line="$("$BENCH" --url "ws://127.0.0.1:$port" --server-pid "$SERVER_PID" fanout "$@")"
  echo "$line" >&2
  printf '%s\t%s\n' "$side" "$line" >>"$OUT/results.jsonl"
  stop_server
}

for _ in $(seq "$RUNS"); do
  run A "$SPLIT_A" "$@"
  run B "$SPLIT_B" "$@"
  [ -z "${SPLIT_C:-}" ] || run C "$SPLIT_C" "$@"
done

python3 - "$OUT/results.jsonl" <<'EOF'
import json, statistics, sys

rows = {}
for line in open(sys.argv[1]):
    side, summary = line.rstrip("\n").split("\t", 1)
    s = json.loads(summary)
    total, kernel, softirq = (s[k] for k in
        ("server_cpu_s_per_100k", "server_kernel_s_per_100k", "softirq_s_per_100k"))
    rows.setdefault(side, []).append(
        (total - kernel, kernel, softirq, kernel - softirq, total, total - softirq))
names = ["user", "kernel", "softirq", "kernel-softirq", "total", "two-machine"]
print("server CPU s per 100k deliveries, publish window (median of runs)")
print(f"{'side':6}" + "".join(f"{n:>15}" for n in names))
med = {s: [statistics.median(r[i] for r in runs) for i in range(6)] for s, runs in rows.items()}
for side in sorted(med):
    print(f"{side:6}" + "".join(f"{x:15.3f}" for x in med[side]))
for other in ("C", "A"):
    if other in med and "B" in med:
        o, b = med[other], med["B"]
        print(f"{other}/B: total {o[4] / b[4]:.3f}, two-machine {o[5] / b[5]:.3f}, user {o[0] / b[0]:.3f}")
EOF
echo "raw: $OUT/results.jsonl" >&2
