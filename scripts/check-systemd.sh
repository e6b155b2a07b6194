#!/usr/bin/env bash
# Checks systemd/omniroute.service and systemd/omniroute.sysusers:
#   1. `systemd-analyze verify` reports nothing (any output, even a warning, fails the check);
#   2. `systemd-analyze security --offline=true` rates the unit at or below MAX_EXPOSURE (2.0);
#   3. `systemd-sysusers --dry-run` accepts the sysusers file.
#
# verify checks that ExecStart's binary exists and is executable. /usr/bin/omniroute does not
# exist on a build machine, so we verify a copy of the unit whose ExecStart points at the binary
# built from this tree (OMNIROUTE_BIN, else release or debug under CARGO_TARGET_DIR or target/,
# else `cargo build`).
# Nothing else in the copy changes, so every other setting is checked as shipped. The security
# rating is taken from the shipped file itself (it does not look at the binary).
#
# On a fresh Debian machine, installs the `systemd` package if systemd-analyze is missing.
set -euo pipefail

MAX_EXPOSURE="${MAX_EXPOSURE:-2.0}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
unit="${OMNIROUTE_UNIT:-$root/systemd/omniroute.service}"
sysusers="$root/systemd/omniroute.sysusers"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "systemd-analyze not found; installing the systemd package" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq systemd
fi

bin="${OMNIROUTE_BIN:-}"
target="${CARGO_TARGET_DIR:-$root/target}"
if [ -z "$bin" ]; then
    for candidate in "$target/release/omniroute" "$target/debug/omniroute"; do
        if [ -x "$candidate" ]; then bin="$candidate"; break; fi
    done
fi
if [ -z "$bin" ]; then
    (cd "$root" && cargo build --quiet --bin omniroute)
    bin="$target/debug/omniroute"
fi
[ -x "$bin" ] || { echo "FAIL: $bin is not an executable" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Same file name, so the unit name (and its messages) match the shipped unit.
sed "s|^ExecStart=/usr/bin/omniroute |ExecStart=$bin |" "$unit" > "$work/omniroute.service"
grep -q "^ExecStart=$bin " "$work/omniroute.service" \
    || { echo "FAIL: ExecStart=/usr/bin/omniroute … not found in $unit" >&2; exit 1; }

echo "== systemd-analyze verify (ExecStart -> $bin)"
verify_out="$(systemd-analyze verify "$work/omniroute.service" 2>&1)" || {
    echo "$verify_out"; echo "FAIL: systemd-analyze verify exited non-zero" >&2; exit 1; }
if [ -n "$verify_out" ]; then
    echo "$verify_out"; echo "FAIL: systemd-analyze verify reported problems" >&2; exit 1
fi
echo "verify: clean"

echo "== systemd-analyze security --offline=true"
security_out="$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1)" || true
summary="$(printf '%s\n' "$security_out" | grep 'Overall exposure level' || true)"
if [ -z "$summary" ]; then
    echo "$security_out"; echo "FAIL: no exposure summary from systemd-analyze security" >&2; exit 1
fi
echo "$summary"
exposure="$(printf '%s\n' "$summary" | sed -E 's/.*: ([0-9]+\.[0-9]+).*/\1/')"
if ! awk -v e="$exposure" -v max="$MAX_EXPOSURE" 'BEGIN { exit !(e + 0 <= max + 0) }'; then
    printf '%s\n' "$security_out" | grep '✗' || true
    echo "FAIL: exposure $exposure is above $MAX_EXPOSURE" >&2
    exit 1
fi
echo "security: exposure $exposure <= $MAX_EXPOSURE"

echo "== systemd-sysusers --dry-run"
if command -v systemd-sysusers >/dev/null 2>&1; then
    sysusers_out="$(systemd-sysusers --dry-run --root="$work" "$sysusers" 2>&1)" || {
        echo "$sysusers_out"; echo "FAIL: systemd-sysusers rejected $sysusers" >&2; exit 1; }
    echo "sysusers: ok"
else
    echo "sysusers: systemd-sysusers not installed, skipped"
fi
echo "OK"
