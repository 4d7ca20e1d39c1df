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
# The runs are scripts/bench-ab.sh's, with its servers (BENCH_A, BENCH_B: Sockudo by default,
# BENCH_C optional); its table comes first, then the split of each side's medians.
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
# compile does not); bench-ab.sh prints the load average with every run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUNS=1
if [ "${1:-}" = "-r" ]; then RUNS="$2"; shift 2; fi
[ $# -gt 0 ] || set -- -n 1000 --rate 20 --duration 10

LOG="$(mktemp)"
trap 'rm -f "$LOG"' EXIT
status=0
"$ROOT/scripts/bench-ab.sh" -r "$RUNS" fanout "$@" 2>"$LOG" || status=$?
cat "$LOG" >&2
[ "$status" = 0 ] || exit "$status"
RESULTS="$(sed -n 's/^raw results: //p' "$LOG")"

python3 - "$RESULTS" <<'EOF'
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
echo "raw: $RESULTS" >&2
