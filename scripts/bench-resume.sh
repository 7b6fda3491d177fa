#!/usr/bin/env bash
# What resuming after a crash costs: one full `tallyman run` of a generated orders CSV (or
# X12 850 interchange, or ORDERS05 IDoc file) is timed; then, in a fresh workspace, a run
# of the same file is killed with SIGKILL once about 90% of its lines are committed (the
# ledger's files.committed_lines, read with sqlite3 read-only every 10 ms: an IDoc run's last
# three batches and its end take ~100 ms, which polling every 50 ms could miss), and the resuming
# `tallyman run` is timed. A resume that redid everything would cost ~100% of the full run;
# ~10% (plus start-up) is the aim.
#
#   scripts/bench-resume.sh [MB] [csv|x12|idoc]   (default 50 csv; needs sqlite3;
#                                                 CARGO_TARGET_DIR is honoured)
#
# Prints `RESULT resume kind=… resume_secs=… full_secs=… share=…%` and OK/MISMATCH for the units
# applied after the resume against the full run. Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-50}
KIND=${2:-csv}
command -v sqlite3 >/dev/null || { echo "bench-resume needs sqlite3" >&2; exit 1; }
source scripts/bench-lib.sh
bench_setup
case "$KIND" in
  csv) bench_input csv "$MB" orders-bench.csv ;;
  x12) bench_input x12 "$MB" po-bench.x12 ;;
  idoc) bench_input idoc "$MB" idoc-orders05-bench.xml ;;
  *) echo "bench-resume: kind is csv, x12 or idoc, not $KIND" >&2; exit 2 ;;
esac

echo "== full run"
bench_measure "$KIND"
FULL_SECS=$RUN_SECS
FULL_UNITS=$UNITS

echo "== run killed at ~90% committed"
bench_workspace "$BENCH_TMP/killed"
cp "$INPUT" "$BENCH_TMP/killed/inbox/"
LEDGER=$BENCH_TMP/killed/ledger.sqlite
# 90% of the lines the ledger counts for the file (the full run's): an IDoc's are its
# segments, fewer than the file's physical lines (`wc -l`), which put the kill at 99%.
committed_in() { # ledger → the file's committed lines
  sqlite3 -readonly -cmd ".timeout 20" "$1" "SELECT coalesce(max(committed_lines), 0) FROM files"
}
TOTAL=$(committed_in "$WS/ledger.sqlite")
TARGET=$((TOTAL * 9 / 10))
"$BIN" --config "$BENCH_TMP/killed/tallyman.toml" run >"$BENCH_TMP/killed.log" 2>&1 &
PID=$!
BENCH_PIDS+=("$PID")
COMMITTED=0
KILLED=no
while kill -0 "$PID" 2>/dev/null; do
  if [ -f "$LEDGER" ]; then
    COMMITTED=$(committed_in "$LEDGER" 2>/dev/null || echo "$COMMITTED")
    if [ "${COMMITTED:-0}" -ge "$TARGET" ]; then
      kill -KILL "$PID" 2>/dev/null && KILLED=yes
      break
    fi
  fi
  sleep 0.01
done
wait "$PID" 2>/dev/null || true
# What was committed when the kill landed, read again: it may be past the line last seen.
[ "$KILLED" = yes ] && COMMITTED=$(committed_in "$LEDGER")
if [ "$KILLED" = yes ] && [ "$COMMITTED" -lt "$TOTAL" ]; then
  echo "killed with SIGKILL at $COMMITTED of $TOTAL lines committed ($((100 * COMMITTED / TOTAL))%)"
else
  echo "the run ended, or had committed every line ($COMMITTED of $TOTAL), before it could be killed: no resume measured"
  echo "RESULT resume kind=$KIND resume_secs=NA full_secs=$FULL_SECS share=NA"
  exit 0
fi

echo "== resuming run"
bench_run "$BENCH_TMP/killed"
RESUMED_UNITS=$(bench_units "$BENCH_TMP/killed")
echo "$RESUMED_UNITS"
python3 -c "import sys; r, f = map(float, sys.argv[1:]); print(f'RESULT resume kind=$KIND resume_secs={r:.2f} full_secs={f:.2f} share={100 * r / f:.0f}%')" "$RUN_SECS" "$FULL_SECS"
# The same units applied, rejected and duplicate as the uninterrupted run.
if [ "${RESUMED_UNITS%% lines*}" = "${FULL_UNITS%% lines*}" ]; then
  echo "OK: after the resume ${RESUMED_UNITS%% lines*}, as in the full run"
else
  echo "MISMATCH: full run: ${FULL_UNITS%% lines*}; after the resume: ${RESUMED_UNITS%% lines*}"
fi
