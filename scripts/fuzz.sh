#!/usr/bin/env bash
# Runs a cargo-fuzz target on stable (no sanitizer):  scripts/fuzz.sh <x12|idoc|sheet> [seconds]
# Seeds the x12 corpus from tests/corpus/x12 on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh <x12|idoc|sheet> [seconds]}
secs=${2:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi
mkdir -p "fuzz/corpus/$target"
if [ "$target" = x12 ] && [ -z "$(ls -A fuzz/corpus/x12)" ]; then
    cp tests/corpus/x12/* fuzz/corpus/x12/ 2>/dev/null || true
    rm -f fuzz/corpus/x12/manifest.json fuzz/corpus/x12/PROVENANCE.md
fi
cd fuzz
exec cargo fuzz run -s none "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048
