#!/usr/bin/env bash
# Runs a cargo-fuzz target on stable (no sanitizer):  scripts/fuzz.sh <x12|idoc|sheet> [seconds]
# Seeds each target from its corpus under tests/corpus on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh <x12|idoc|sheet> [seconds]}
secs=${2:-60}
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz
fi
mkdir -p "fuzz/corpus/$target"
# Seed each target from its real-file corpus on first use.
seed_dir() {
    case "$1" in
        x12) echo tests/corpus/x12 ;;
        idoc) echo tests/corpus/idoc ;;
        sheet) echo tests/corpus/xlsx ;;
    esac
}
if [ -z "$(ls -A "fuzz/corpus/$target")" ]; then
    src=$(seed_dir "$target")
    [ -n "$src" ] && cp "$src"/* "fuzz/corpus/$target/" 2>/dev/null || true
    rm -f "fuzz/corpus/$target/manifest.json" "fuzz/corpus/$target/PROVENANCE.md"
fi
cd fuzz
exec cargo fuzz run -s none "$target" "corpus/$target" -- -max_total_time="$secs" -rss_limit_mb=2048
