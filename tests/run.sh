#!/usr/bin/env bash
# Runs every test of the project. Sees to what the tests need itself: the wasm
# target for the plugins (built-in, example and hostile ones).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
rustup target add wasm32-unknown-unknown wasm32-wasip2 >/dev/null
# ARCHITECTURE.md's rules on the host's source: no import cycle between its
# modules, no long function without a stated reason.
python3 tests/architecture.py
# The Agent Skills folder is skill.md's body under the allowed frontmatter.
python3 skills/make.py --check
# The Python and JavaScript guest libraries' own unit tests (natively, no
# component).
python3 plugins/sdk-python/test_cds_plugin.py
node --test plugins/sdk-js/test_cds_plugin.mjs
# The merge crate alone, with only its own features: it must build without
# the I/O and clock features the host enables in shared dependencies.
cargo check -p cds-merge --locked
cargo test --workspace --locked
# The example plugin's own unit tests (it is a project of its own).
cargo test --manifest-path examples/plugins/notes/Cargo.toml --locked

# A real MCP client this project did not write: the official Python SDK,
# in a virtual environment of its own, against the binary cargo test built.
venv="$root/target/mcp-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check "mcp==2.3.0"
CDS_CACHE_DIR="$root/target/cds-test-cache" \
  "$venv/bin/python" tests/mcp_python/test_python_sdk.py "$root/target/debug/cross-domain-sync"
# A second real client: the official TypeScript SDK, pinned, installed into a
# project-local folder (npm), against the same binary.
npm install --silent --no-audit --no-fund --prefix "$root/target/npm" "@modelcontextprotocol/sdk@1.32.2" >/dev/null
CDS_CACHE_DIR="$root/target/cds-test-cache" \
  node tests/mcp_typescript/check.mjs "$root/target/debug/cross-domain-sync" "$root/target/npm/node_modules"
