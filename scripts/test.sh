#!/usr/bin/env bash
# The one test command: formatting, lints, and every test (the Kafka tests start their own
# Tansu broker on a free 127.0.0.1 port; set OMNIROUTE_TEST_BROKERS=host:port to use another).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/tansu.sh install
# cargo install puts tansu here; make sure the tests find it.
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test --all-targets
cargo test --doc
# Two tests need an optimised build and are ignored in the debug profile: the Erlang C
# validation at 70/85/95% occupancy (millions of simulated contacts) and the SIGKILL chaos run
# (its deadlines are those of a release daemon).
echo "== cargo test --release --test sim_validation --test kafka_chaos"
cargo test --release --test sim_validation --test kafka_chaos
echo "== all checks passed"
