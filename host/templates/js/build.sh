#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-js (npm), installed into this folder on
# first use. The component carries a JavaScript engine and imports WASI; the
# host gives it a deny-all world.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x node_modules/.bin/componentize-js ]; then
  npm install --silent --no-audit --no-fund
fi
npm run --silent build
echo "Built $(pwd)/{{name}}.wasm"
