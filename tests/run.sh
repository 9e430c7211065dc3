#!/usr/bin/env bash
# Runs every test of the project. Sees to what the tests need itself: the wasm
# target for the plugins (built-in, example and hostile ones).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rustup target add wasm32-unknown-unknown >/dev/null
cargo test --workspace --locked
# The example plugin's own unit tests (it is a project of its own).
cargo test --manifest-path examples/plugins/notes/Cargo.toml --locked
