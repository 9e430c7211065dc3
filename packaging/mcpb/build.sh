#!/usr/bin/env bash
# Builds the MCP Bundle (.mcpb) of the server for Claude Desktop and other
# clients that install bundles: the release binary and manifest.json, checked
# and packed by the official tool (npm @anthropic-ai/mcpb, installed under
# target/npm). Usage: packaging/mcpb/build.sh [OUT.mcpb]
#   (default target/cross-domain-sync.mcpb)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="${1:-$root/target/cross-domain-sync.mcpb}"
rustup target add wasm32-unknown-unknown >/dev/null
cargo build --release --locked -p cross-domain-sync --bins
npm install --silent --no-audit --no-fund --prefix target/npm "@anthropic-ai/mcpb@2.1.2" >/dev/null
mcpb=target/npm/node_modules/.bin/mcpb
stage="$(mktemp -d "${TMPDIR:-/tmp}/cds-mcpb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/server"
cp packaging/mcpb/manifest.json "$stage/"
cp target/release/cross-domain-sync "$stage/server/"
cp README.md "$stage/"
"$mcpb" validate "$stage/manifest.json"
"$mcpb" pack "$stage" "$out"
echo "wrote $out"
