#!/usr/bin/env bash
# User-space instructions per delivery of the server, counted by callgrind (load-independent,
# unlike wall-clock runs): the server under valgrind, `overtone-bench fanout` to N subscribers
# at R events/s for a long and a short run, each on a fresh process, then
#   (instructions of the long run - of the short run) / (N x R x (LONG - SHORT))
# so starting, connecting, subscribing and the drain cancel out.
#
#   scripts/bench-callgrind.sh [SERVER_BINARY]     (default: target/release/overtone)
#   N=200 R=20 LONG=8 SHORT=3 are the defaults; override them from the environment.
# callgrind's output files are kept in target/bench-callgrind/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVER="${1:-$ROOT/target/release/overtone}"
BENCH="$ROOT/target/release/overtone-bench"
N="${N:-200}" R="${R:-20}" LONG="${LONG:-8}" SHORT="${SHORT:-3}"
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -x "$SERVER" ] && [ -x "$BENCH" ] ||
  cargo build --release -p overtone-server -p overtone-bench --manifest-path "$ROOT/Cargo.toml"

OUT="$ROOT/target/bench-callgrind/$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$OUT"
SERVER_PID=""
trap '[ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true' EXIT

# instructions SECONDS: one fresh server under callgrind, one fanout run; prints its total.
instructions() {
  local seconds="$1" port
  port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  OVERTONE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$seconds.out" \
    "$SERVER" serve --port "$port" --config "$ROOT/scripts/bench/overtone.toml" \
    >"$OUT/server.$seconds.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 600); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "server exited; see $OUT/server.$seconds.log" >&2; exit 1; }
    sleep 0.1
  done
  "$BENCH" --url "ws://127.0.0.1:$port" fanout -n "$N" --rate "$R" --duration "$seconds" \
    >"$OUT/fanout.$seconds.json"
  kill -INT "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=""
  grep -E '^(summary|totals):' "$OUT/callgrind.$seconds.out" | head -1 | awk '{print $2}'
}

long="$(instructions "$LONG")"
short="$(instructions "$SHORT")"
python3 - "$long" "$short" "$N" "$R" "$LONG" "$SHORT" "$OUT" <<'PY'
import json, sys
long, short, n, r, l, s = map(int, sys.argv[1:7])
out = sys.argv[7]
loss = [json.load(open(f"{out}/fanout.{d}.json")).get("loss") for d in (l, s)]
deliveries = n * r * (l - s)
print(f"instructions: {long:,} ({l} s run) - {short:,} ({s} s run) = {long - short:,}")
print(f"per delivery: {(long - short) / deliveries:,.0f} over {deliveries:,} deliveries (loss {loss[0]}, {loss[1]})")
PY
