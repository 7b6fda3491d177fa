#!/usr/bin/env bash
# Instructions, not seconds: `tallyman run` and the parse floor (examples/parse_floor.rs)
# counted by valgrind's callgrind on one generated input per format. On this shared machine
# wall times of one build move by up to 40% from run to run; instruction counts move by
# about 0.5%, so a change of a few percent shows here when the timed benchmarks cannot
# tell it from noise. They do not see cache misses, page faults or waiting: keep the timed
# scripts (bench-csv.sh etc.) for throughput, use this to compare builds.
#
#   scripts/bench-instr.sh [MB] [csv x12 idoc]     (default 4 MB, all three; under a minute each)
#
# Prints per format `RESULT instr kind=… bytes=… run=… startup=… per_byte=… floor_per_byte=…
# ratio=…`: `startup` is a run over an empty inbox (opening the ledger, loading formats), and
# `per_byte` is (run − startup) / bytes, so that the ratio against the floor is about the
# work that grows with the file. Needs valgrind (Debian's `valgrind`).
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-4}
shift || true
KINDS=("$@")
[ ${#KINDS[@]} -eq 0 ] && KINDS=(csv x12 idoc)
command -v valgrind >/dev/null || { echo "bench-instr.sh needs valgrind" >&2; exit 2; }
source scripts/bench-lib.sh
bench_setup

# Instructions executed by a command (all its threads), as callgrind counts them.
# The command's exit status is not checked: a run with rejected documents exits 1.
instr() {
  local out
  out=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null || true)
  sed -n 's/.*Collected : \([0-9]*\).*/\1/p' <<<"$out"
}

STARTUP_WS=$BENCH_TMP/empty
bench_workspace "$STARTUP_WS"
STARTUP=$(cd "$STARTUP_WS" && instr "$BIN" run)
echo "startup (empty inbox, fresh ledger): $STARTUP instructions"

for kind in "${KINDS[@]}"; do
  case $kind in
    csv) name=orders-instr.csv ;;
    x12) name=orders-instr.x12 ;;
    idoc) name=orders-instr.xml ;;
    *) echo "unknown kind $kind (csv, x12, idoc)" >&2; exit 2 ;;
  esac
  bench_input "$kind" "$MB" "$name"
  WS=$BENCH_TMP/ws-$kind
  bench_workspace "$WS"
  cp "$INPUT" "$WS/inbox/"
  RUN=$(cd "$WS" && instr "$BIN" run)
  FLOOR=$(instr "$FLOOR_BIN" "$kind" "$INPUT")
  python3 - "$kind" "$INPUT_BYTES" "$RUN" "$STARTUP" "$FLOOR" <<'EOF'
import sys
kind, size, run, startup, floor = sys.argv[1], *map(int, sys.argv[2:])
per_byte = (run - startup) / size
floor_per_byte = floor / size
print(f"RESULT instr kind={kind} bytes={size} run={run} startup={startup} "
      f"per_byte={per_byte:.0f} floor_per_byte={floor_per_byte:.1f} ratio={per_byte / floor_per_byte:.0f}")
EOF
  rm -rf "$WS"
done
