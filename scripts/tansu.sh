#!/usr/bin/env bash
# Tansu, a Kafka-compatible broker, for development and tests.
#
#   scripts/tansu.sh install         install tansu 0.6.0 with cargo unless it is already there
#   scripts/tansu.sh start           start it on 127.0.0.1:$TANSU_PORT (default 9092), memory storage
#   scripts/tansu.sh stop            stop the broker started by `start`
#   scripts/tansu.sh create-topics   create omniroute's topics on the running broker
#
# `cargo test` does not need `start`: the Kafka tests start their own broker on a free port.
set -euo pipefail

VERSION=0.6.0
PORT="${TANSU_PORT:-9092}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STATE="$ROOT/.tansu"
PIDFILE="$STATE/tansu.pid"
URL="tcp://127.0.0.1:$PORT"

have_tansu() {
  command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$VERSION"
}

install() {
  if have_tansu; then
    echo "tansu $VERSION already installed: $(command -v tansu)"
    return
  fi
  echo "installing tansu $VERSION with cargo (takes a few minutes)…"
  cargo install tansu --locked --version "$VERSION" --features dynostore,libsql
}

start() {
  have_tansu || { echo "tansu $VERSION not found: run scripts/tansu.sh install" >&2; exit 1; }
  mkdir -p "$STATE"
  if [[ -f "$PIDFILE" ]] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
    echo "tansu already running (pid $(cat "$PIDFILE")) on $URL"
    return
  fi
  # Listener and advertised listener both on 127.0.0.1 (not localhost): clients connect to
  # exactly what is advertised.
  tansu broker \
    --listener-url "$URL" \
    --advertised-listener-url "$URL" \
    --storage-engine "memory://tansu/" \
    >"$STATE/tansu.log" 2>&1 &
  echo $! >"$PIDFILE"
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      echo "tansu running (pid $(cat "$PIDFILE")) on $URL; log: $STATE/tansu.log"
      return
    fi
    sleep 0.1
  done
  echo "tansu did not start listening on $URL; see $STATE/tansu.log" >&2
  exit 1
}

stop() {
  if [[ -f "$PIDFILE" ]]; then
    kill "$(cat "$PIDFILE")" 2>/dev/null || true
    rm -f "$PIDFILE"
    echo "tansu stopped"
  else
    echo "tansu is not running (no $PIDFILE)"
  fi
}

create_topics() {
  # Tansu does not create topics on first use; the input, assignments and state topics share a
  # partition count (omniroute refuses to start otherwise).
  local partitions="${PARTITIONS:-4}"
  for t in omniroute.events omniroute.assignments omniroute.state; do
    tansu topic create "$t" --broker "$URL" --partitions "$partitions" || true
  done
  for t in omniroute.sla omniroute.dlq; do
    tansu topic create "$t" --broker "$URL" --partitions 1 || true
  done
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  create-topics) create_topics ;;
  *) echo "usage: $0 install|start|stop|create-topics" >&2; exit 2 ;;
esac
