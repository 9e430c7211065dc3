#!/usr/bin/env bash
# Before and after: the sync suite of bench/run.sh (bench_sync) for two
# commits, alternated (before, after, before, after, ...), so that the
# machine's drift falls on both sides. Each commit is built in a worktree of
# its own under ${TMPDIR:-/tmp}; the figures are printed per run.
# Usage: bench/compare.sh BEFORE_REV AFTER_REV [ROUNDS] [ITEMS]
#        (ROUNDS defaults to 4, ITEMS to 10000; REPEAT=N syncs per figure, default 5)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
before="$1"; after="$2"; rounds="${3:-4}"; items="${4:-10000}"; repeat="${REPEAT:-5}"
unset RUST_BACKTRACE
rustup target add wasm32-unknown-unknown >/dev/null
base="${TMPDIR:-/tmp}/cds-compare"
mkdir -p "$base"
for rev in "$before" "$after"; do
  dir="$base/$rev"
  [ -d "$dir" ] || git -C "$root" worktree add --detach "$dir" "$rev" >/dev/null
  # As bench/run.sh builds them: the examples, then the measured binary alone.
  (cd "$dir" && cargo build -q --release --locked -p cross-domain-sync --examples \
     && cargo build -q --release --locked -p cross-domain-sync --bins \
     && cargo build -q --release --locked -p cross-domain-sync --features native-plugins \
          --target-dir target/native --bins)
done
echo "# $(date -u +%Y-%m-%d), $(nproc) cores: $before (before) against $after (after), $rounds rounds"
for round in $(seq "$rounds"); do
  for rev in "$before" "$after"; do
    dir="$base/$rev"
    echo "## $rev, round $round"
    "$dir/target/release/examples/bench_sync" --items "$items" --repeat "$repeat" \
      --bin "$dir/target/release/cross-domain-sync" \
      --native "$dir/target/native/release/cross-domain-sync"
  done
done
echo "# Remove the worktrees with: git worktree remove --force $base/<rev>"
