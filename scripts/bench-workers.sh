#!/usr/bin/env bash
# Several workers over one inbox and one ledger: the same orders CSV files taken by 1, 2 and
# 3 `tallyman run` processes at once, each with a `work/` folder of its own (as on other
# hosts), sharing the SQLite ledger. Each figure is a ratio against the one-worker run of the
# same invocation: on one 2-core machine more workers cannot be much faster (each process
# already uses both cores); what this shows is what sharing the ledger and the inbox costs.
#
#   scripts/bench-workers.sh [MB] [FILES]     (defaults 40 MB in 20 files; CARGO_TARGET_DIR
#                                              is honoured)
#
# Prints one RESULT line per worker count (wall time until every worker's pass ended, MB/s,
# the ratio to one worker, how many files each worker took) and checks that every file was
# applied exactly once. Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-40}
FILES=${2:-20}
source scripts/bench-lib.sh
bench_setup

# FILES inputs with order numbers of their own (F<i>-…), MB/FILES each.
SRC=$BENCH_TMP/src
mkdir -p "$SRC"
gen_csv "$BENCH_TMP/one.csv" "$(python3 -c "print($MB / $FILES)")"
for i in $(seq -w 1 "$FILES"); do
  sed "s/^B/F$i-/" "$BENCH_TMP/one.csv" >"$SRC/orders-w$i.csv"
done
BYTES=$(cat "$SRC"/*.csv | wc -c)
echo "inputs: $FILES files, $BYTES bytes"

ONE=""
for N in 1 2 3; do
  WS=$BENCH_TMP/ws$N
  bench_workspace "$WS"
  CONFIGS=("$WS/tallyman.toml")
  for k in $(seq 2 "$N"); do
    sed -e "s/^work = \"work\"/work = \"work-$k\"/" "$WS/tallyman.toml" >"$WS/worker-$k.toml"
    mkdir -p "$WS/work-$k"
    CONFIGS+=("$WS/worker-$k.toml")
  done
  cp "$SRC"/*.csv "$WS/inbox/"
  START=$(date +%s.%N)
  PIDS=()
  for c in "${CONFIGS[@]}"; do
    "$BIN" --config "$c" run >"$BENCH_TMP/run-$N-$(basename "$c").log" 2>&1 &
    PIDS+=($!)
  done
  RCS=""
  for p in "${PIDS[@]}"; do
    rc=0
    wait "$p" || rc=$?
    RCS="$RCS$rc,"
  done
  END=$(date +%s.%N)
  # Every file applied by exactly one attempt, and which worker took how many.
  CHECK=$(python3 - "$WS/ledger.sqlite" "$FILES" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
files = int(sys.argv[2])
outcomes = dict(db.execute("SELECT state || ':' || COALESCE(outcome, '-'), COUNT(*) FROM files GROUP BY 1"))
takers = [n for (n,) in db.execute(
    "SELECT COUNT(*) FROM files f JOIN runs r ON r.id = f.run_id GROUP BY r.work ORDER BY r.work")]
ok = outcomes == {"done:applied_with_rejects": files} or outcomes == {"done:applied": files}
print(f"applied_once={'yes' if ok else 'NO ' + str(outcomes)} files_per_worker={'/'.join(map(str, takers))}")
EOF
)
  SECS=$(python3 -c "print(f'{$END - $START:.2f}')")
  [ -z "$ONE" ] && ONE=$SECS
  python3 - "$N" "$SECS" "$ONE" "$BYTES" "$RCS" "$CHECK" <<'EOF'
import sys
n, secs, one, size, rcs, check = sys.argv[1:]
secs, one, size = float(secs), float(one), int(size)
print(f"RESULT workers={n} secs={secs:.2f} e2e_mbps={size / 1e6 / secs:.1f} "
      f"speed_vs_one={one / secs:.2f} exit_codes={rcs.rstrip(',')} {check}")
EOF
done
