#!/usr/bin/env bash
# Reproduces every row of BENCHMARKS.md in one run: the sync suite (B1-B6), the
# sandbox's start-up and interruption costs, and MCP against command-line latency.
# Usage: bench/run.sh [ITEMS_PER_TYPE]   (default 10000, the contract's limit)
#        REPEAT=N bench/run.sh          (runs of each sync measurement, default 5:
#                                        the median and the range are printed)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
items="${1:-10000}"
repeat="${REPEAT:-5}"
unset RUST_BACKTRACE
rustup target add wasm32-unknown-unknown >/dev/null
# The examples first, then the binary on its own: building examples turns on
# the dev-dependencies, and with them the test-only `fault-injection` feature
# (host/Cargo.toml); built last and alone, the measured binary is the shipped one.
cargo build --release --locked -p cross-domain-sync --examples
cargo build --release --locked -p cross-domain-sync --bins
cargo build --release --locked -p cross-domain-sync --features native-plugins --target-dir target/native --bins
echo "# $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -m)"
echo "## Sync at the limits"
target/release/examples/bench_sync --items "$items" --repeat "$repeat" \
  --native target/native/release/cross-domain-sync
echo
target/release/examples/bench_sandbox
echo
echo "## MCP: 100 small syncs"
target/release/examples/bench_mcp
