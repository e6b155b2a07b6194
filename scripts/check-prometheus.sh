#!/usr/bin/env bash
# Checks config/prometheus/: `promtool check rules` on the rule file, `promtool check config` on
# the example scrape configuration (which also checks the rule file it loads), and
# `promtool test rules` on the rule unit tests. Installs the Debian `prometheus` package (which
# ships promtool) on a fresh machine if promtool is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="$root/config/prometheus"

if ! command -v promtool >/dev/null 2>&1; then
    echo "promtool not found; installing the prometheus package" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends prometheus
fi

promtool --version 2>&1 | head -n1
echo "== promtool check rules"
promtool check rules "$dir/omniroute.rules.yml"
echo "== promtool check config"
# Relative rule_files paths resolve against the config file's directory.
promtool check config "$dir/prometheus.yml"
echo "== promtool test rules"
promtool test rules "$dir/omniroute.rules.test.yml"
echo "OK"
