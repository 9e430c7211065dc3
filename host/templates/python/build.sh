#!/usr/bin/env bash
# Builds {{name}}.wasm with componentize-py (PyPI), in a virtual environment
# made here on first use. The component carries CPython and imports WASI; the
# host gives it a deny-all world.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi
.venv/bin/componentize-py -d wit/entity.wit -w entity-plugin componentize app -p . -o {{name}}.wasm
echo "Built $(pwd)/{{name}}.wasm"
