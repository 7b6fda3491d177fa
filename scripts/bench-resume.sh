#!/usr/bin/env bash
# What resuming after a crash costs: a full `tallyman run` of a generated orders CSV (or X12
# 850 interchange, or ORDERS05 IDoc file) is timed; then, in a fresh workspace, a run of the
# same file is killed with SIGKILL once about 90% of its lines are committed (the ledger's
# files.committed_lines, read with sqlite3 read-only every 10 ms: an IDoc run's last three
# batches and its end take ~100 ms, which polling every 50 ms could miss), and the resuming
# `tallyman run` is timed. A resume that redid everything would cost ~100% of the full run;
# ~10% (plus start-up) is the aim.
#
# One such round is noise on a shared machine: full runs of the same file moved by a
# quarter between runs minutes apart, and where the kill lands moves the resume's share by
# a few points. So BENCH_RESUME_ROUNDS rounds (default 3) each time a full run and a killed
# and resumed one, back to back, to the millisecond; the RESULT gives the median round's
# share and every round's.
#
#   scripts/bench-resume.sh [MB] [csv|x12|idoc]   (default 50 csv; needs sqlite3;
#                                                 CARGO_TARGET_DIR is honoured)
#
# Prints `RESULT resume kind=… resume_secs=… full_secs=… share=…% shares=…` and OK/MISMATCH
# for the units applied after each resume against the full run. Measured here, never
# asserted in tests.
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

ROUNDS=${BENCH_RESUME_ROUNDS:-3}

echo "== full run"
# One run: it gives the committed count and the units; the rounds below time the runs.
BENCH_RUNS=1 bench_measure "$KIND"
FULL_UNITS=$UNITS
# 90% of the lines the ledger counts for the file (the full run's): an IDoc's are its
# segments, fewer than the file's physical lines (`wc -l`), which put the kill at 99%.
committed_in() { # ledger → the file's committed lines
  sqlite3 -readonly -cmd ".timeout 20" "$1" "SELECT coalesce(max(committed_lines), 0) FROM files"
}
TOTAL=$(committed_in "$WS/ledger.sqlite")
TARGET=$((TOTAL * 9 / 10))

timed_run() { # dir → SECS: the run's wall time, to the millisecond
  local start end
  start=$(date +%s.%N)
  "$BIN" --config "$1/tallyman.toml" run >"$BENCH_TMP/run.log" 2>&1 || true
  end=$(date +%s.%N)
  SECS=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$start" "$end")
}

killed_run() { # dir → COMMITTED (lines when the kill landed), or "" if the run ended first
  local ledger=$1/ledger.sqlite pid seen=0
  "$BIN" --config "$1/tallyman.toml" run >"$BENCH_TMP/killed.log" 2>&1 &
  pid=$!
  BENCH_PIDS+=("$pid")
  COMMITTED=""
  while kill -0 "$pid" 2>/dev/null; do
    if [ -f "$ledger" ]; then
      seen=$(committed_in "$ledger" 2>/dev/null || echo "$seen")
      if [ "${seen:-0}" -ge "$TARGET" ]; then
        kill -KILL "$pid" 2>/dev/null && COMMITTED=killed
        break
      fi
    fi
    sleep 0.01
  done
  wait "$pid" 2>/dev/null || true
  # What was committed when the kill landed, read again: it may be past the line last seen.
  [ "$COMMITTED" = killed ] && COMMITTED=$(committed_in "$ledger")
  if [ -n "$COMMITTED" ] && [ "$COMMITTED" -ge "$TOTAL" ]; then COMMITTED=""; fi
}

ROWS=""
for round in $(seq "$ROUNDS"); do
  echo "== round $round: full run, then a run killed at ~90% committed and its resume"
  bench_workspace "$BENCH_TMP/full$round"
  cp "$INPUT" "$BENCH_TMP/full$round/inbox/"
  timed_run "$BENCH_TMP/full$round"
  full=$SECS
  bench_workspace "$BENCH_TMP/killed$round"
  cp "$INPUT" "$BENCH_TMP/killed$round/inbox/"
  killed_run "$BENCH_TMP/killed$round"
  if [ -z "$COMMITTED" ]; then
    echo "the run ended, or had committed every line, before it could be killed: no resume this round"
    continue
  fi
  at=$((100 * COMMITTED / TOTAL))
  timed_run "$BENCH_TMP/killed$round"
  resumed=$SECS
  echo "full ${full} s; killed at $COMMITTED of $TOTAL lines ($at%); resume ${resumed} s"
  RESUMED_UNITS=$(bench_units "$BENCH_TMP/killed$round")
  # The same units applied, rejected and duplicate as the uninterrupted run.
  if [ "${RESUMED_UNITS%% lines*}" = "${FULL_UNITS%% lines*}" ]; then
    echo "OK: after the resume ${RESUMED_UNITS%% lines*}, as in the full run"
  else
    echo "MISMATCH: full run: ${FULL_UNITS%% lines*}; after the resume: ${RESUMED_UNITS%% lines*}"
  fi
  ROWS="$ROWS $resumed:$full:$at"
  rm -rf "$BENCH_TMP/full$round" "$BENCH_TMP/killed$round"
done

python3 - "$KIND" $ROWS <<'PYEOF'
import sys
kind, rows = sys.argv[1], [tuple(map(float, r.split(":"))) for r in sys.argv[2:]]
if not rows:
    print(f"RESULT resume kind={kind} resume_secs=NA full_secs=NA share=NA shares=NA")
    sys.exit(0)
rows.sort(key=lambda r: r[0] / r[1])
r, f, _ = rows[len(rows) // 2]
shares = ",".join(f"{100 * r / f:.0f}%@{a:.0f}" for r, f, a in rows)
print(f"RESULT resume kind={kind} resume_secs={r:.3f} full_secs={f:.3f} share={100 * r / f:.0f}% "
      f"shares={shares} rounds={len(rows)}")
PYEOF
