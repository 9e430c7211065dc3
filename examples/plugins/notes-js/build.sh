#!/usr/bin/env bash
# Builds notes-js.wasm with componentize-js (npm), installed into this folder.
# componentize-js sees only the folder it runs in, so the guest library and
# the WIT are copied in first (a project made by `cross-domain-sync plugins
# new --lang js` holds its own copies).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
cd "$here"
cp "$root/plugins/sdk-js/cds_plugin.js" .
mkdir -p wit && cp "$root/wit/entity.wit" wit/
npm install --silent --no-audit --no-fund
npx componentize-js app.js --wit wit/entity.wit -n entity-plugin -d http fetch-event -o notes-js.wasm
echo "Built $here/notes-js.wasm"
