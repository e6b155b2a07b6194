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
# The Erlang C validation at 70/85/95% occupancy simulates millions of contacts: too long for the
# debug profile, where it is ignored, so it runs here in release.
echo "== cargo test --release --test sim_validation"
cargo test --release --test sim_validation
echo "== all checks passed"
