#!/usr/bin/env bash
# omniroute benchmarks against Tansu on 127.0.0.1 (see docs/PERFORMANCE.md).
#
#   scripts/bench.sh            build, start a private Tansu, run everything, print a table
#
# Steps: (1) throughput: one pre-recorded workload, read by the pass-through baseline and by the
# daemon in turn, three rounds → the median ratio; (1b) one more round with the daemon's record path
# in parts (consume, decode, route, full) → what each part costs; (2) latency of a live workload against the daemon process at
# 10–100 % of the daemon's measured maximum (the half-load row is the headline) → CSV and SVG plot;
# (3) memory per agent and per waiting contact (engine only). Bounded: every step has a timeout,
# the whole run takes a few minutes; the broker and the daemon are stopped on exit.
#
# Environment: BENCH_PORT (Kafka, default 19092), BENCH_METRICS_PORT (19464), BENCH_COUNT
# (records for the throughput step, 300000), BENCH_ROUNDS (its rounds, 3), BENCH_SECONDS
# (seconds per latency step, 8), BENCH_OUT (results, target/bench). Not part of CI: figures
# depend on the machine and its load.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PORT="${BENCH_PORT:-19092}"
METRICS_PORT="${BENCH_METRICS_PORT:-19464}"
COUNT="${BENCH_COUNT:-300000}"
ROUNDS="${BENCH_ROUNDS:-3}"
SECONDS_PER_STEP="${BENCH_SECONDS:-8}"
OUT="${BENCH_OUT:-$ROOT/target/bench}"
BIN="$ROOT/target/release/omniroute"

command -v tansu >/dev/null || { echo "tansu not found (scripts/tansu.sh install)" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT/latency.csv"

echo "== building (release)"
(cd "$ROOT" && cargo build --release --quiet)

PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT

TANSU=""
start_tansu() {
  tansu broker \
    --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" \
    --storage-engine "memory://tansu/" >>"$OUT/tansu.log" 2>&1 &
  TANSU=$!
  PIDS+=($TANSU)
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.1
  done
}
stop_tansu() {
  kill "$TANSU" 2>/dev/null || true
  wait "$TANSU" 2>/dev/null || true
}
echo "== starting Tansu on 127.0.0.1:$PORT (memory storage)"
start_tansu

cat >"$OUT/bench.toml" <<EOF
# Written by scripts/bench.sh: omniroute's defaults, a private broker and metrics port.
[kafka]
brokers = ["127.0.0.1:$PORT"]
group_id = "omniroute-bench"
input_topics = ["omniroute.events"]
# The live steps start at the end of the input (the throughput step sets its own groups).
start_from = "latest"

[kafka.client]
# Faster group joins on a single-broker test setup.
"session.timeout.ms" = "6000"

[metrics]
listen = "127.0.0.1:$METRICS_PORT"

[log]
level = "warn"
EOF

"$BIN" loadgen topics -c "$OUT/bench.toml" --partitions 4

echo "== 1. throughput: pass-through vs omniroute on the same $COUNT records"
# Several rounds on the same records: the last lines are the medians.
timeout 420 "$BIN" loadgen compare -c "$OUT/bench.toml" --count "$COUNT" --rounds "$ROUNDS" \
  --timeout 120s | tee "$OUT/compare.txt"
PASS_RATE=$(awk '/^  passthrough:/ {v = $2} END {print v}' "$OUT/compare.txt")
OMNI_RATE=$(awk '/^  omniroute:/ {v = $2} END {print v}' "$OUT/compare.txt")
RATIO=$(awk '/^  ratio omniroute/ {v = $5} END {print v}' "$OUT/compare.txt")

echo "== 1b. where the time goes: the daemon's record path in parts, one round"
# consume (offsets only), decode, route (outputs dropped), full: the differences in CPU per
# record are what decoding, the engines and producing the outputs cost.
timeout 420 "$BIN" loadgen compare -c "$OUT/bench.toml" --count "$COUNT" --rounds 1 \
  --stages consume,decode,route,full --timeout 120s | tee "$OUT/stages.txt"
# "<rate> records/s, <CPU> µs CPU/record" of a stage ("full" is the plain omniroute line).
stage() {
  awk -v s="$1" '
    (s == "full" && /^  omniroute: /) || $0 ~ ("^  omniroute, stage " s ":") {
      rate = (s == "full") ? $2 : $4; want = 1; next }
    want && /CPU per record/ { printf "%s records/s, %s µs CPU/record", rate, $4; exit }
  ' "$OUT/stages.txt"
}

echo "== 2. latency: live workload against the daemon process"
DAEMON=""
start_daemon() {
  sed "s/^group_id = .*/group_id = \"omniroute-live-$1\"/" "$OUT/bench.toml" >"$OUT/live-$1.toml"
  "$BIN" run -c "$OUT/live-$1.toml" >"$OUT/daemon-$1.log" 2>&1 &
  DAEMON=$!
  PIDS+=($DAEMON)
  for _ in $(seq 1 150); do
    curl -sf "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
}
stop_daemon() {
  kill "$DAEMON" 2>/dev/null || true
  wait "$DAEMON" 2>/dev/null || true
}
# Max load is the daemon's throughput from step 1; a contact brings about four input records
# (created, answer, completed, wrap-up done). Each step runs on a fresh broker and daemon, so
# that one step's records do not slow the next (Tansu's memory storage grows with them).
stop_tansu
for frac in 0.1 0.25 0.5 0.75 1.0; do
  rate=$(awk -v r="$OMNI_RATE" -v f="$frac" 'BEGIN {printf "%d", r * f / 4}')
  echo "-- ${frac} of max load: $rate contacts/s"
  start_tansu
  "$BIN" loadgen topics -c "$OUT/bench.toml" --partitions 4 >/dev/null
  start_daemon "$frac"
  timeout 90 "$BIN" loadgen live -c "$OUT/bench.toml" --rate "$rate" --tenants 200 \
    --duration "${SECONDS_PER_STEP}s" --csv "$OUT/latency.csv" | tee "$OUT/live-$frac.txt"
  stop_daemon
  stop_tansu
done

echo "== 3. memory (engine only)"
timeout 300 "$BIN" loadgen memory --agents 100000 --contacts 1000000 | tee "$OUT/memory.txt"

"$BIN" loadgen plot --csv "$OUT/latency.csv" --out "$OUT/latency-vs-load.svg" \
  --title "omniroute on Tansu, $(nproc) cores: created -> offer received"

HALF=$(sed -n 4p "$OUT/latency.csv")
BPA=$(awk '/agents:/ {print $(NF-1); exit}' "$OUT/memory.txt")
BPC=$(awk '/waiting contacts:/ {print $(NF-1); exit}' "$OUT/memory.txt")
echo
echo "== results ($OUT)"
printf '%-44s %s\n' "pass-through (records/s)" "$PASS_RATE"
printf '%-44s %s\n' "omniroute (records/s)" "$OMNI_RATE"
printf '%-44s %s   (target >= 0.9)\n' "ratio omniroute / pass-through" "$RATIO"
for st in consume decode route full; do
  printf '%-44s %s\n' "stage $st (one round)" "$(stage $st)"
done
printf '%-44s %s\n' "half load: input records/s" "$(echo "$HALF" | cut -d, -f2)"
printf '%-44s %s / %s / %s\n' "half load: p50 / p99 / max latency (ms)" \
  "$(echo "$HALF" | cut -d, -f4)" "$(echo "$HALF" | cut -d, -f6)" "$(echo "$HALF" | cut -d, -f7)"
printf '%-44s %s   (target <= 1024)\n' "bytes per agent (100k agents, RSS)" "$BPA"
printf '%-44s %s   (target <= 512)\n' "bytes per waiting contact (1M, RSS)" "$BPC"
echo
echo "latency by offered load:"
column -s, -t "$OUT/latency.csv"
