#!/usr/bin/env bash
# How `tallyman run` scales from one core to two: the CSV intake benchmark
# (scripts/bench-csv.sh) on one generated file with `threads = 1` (one core: the reading loop
# runs on the committing thread and hands it every batch) and `threads = 2` (the three-stage
# pipeline with a worker per core), each with its own parse floor measured in the same run.
#
#   scripts/bench-threads.sh [MB]      (default 50; CARGO_TARGET_DIR is honoured;
#                                       BENCH_THREAD_PAIRS=N alternating pairs, default 5)
#
# The two are run in alternating pairs: a single pair on this shared machine put the same
# build anywhere from 1.43× to 1.59×, and the pairs of one run from 1.30× to 1.83×, so five
# by default, for a median one odd pair cannot move. Prints each run, the RESULT lines of
# the median run of each width, and `RESULT scaling two_vs_one=…`: the median over the pairs
# of the one-thread wall time over the two-thread one (2.00 would be perfect on two cores).
# Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-50}
PAIRS=${BENCH_THREAD_PAIRS:-5}
source scripts/bench-lib.sh
bench_setup
bench_input csv "$MB" orders-bench.csv
RUNS=$BENCH_TMP/thread-runs
: >"$RUNS"
for pair in $(seq 1 "$PAIRS"); do
  for threads in 1 2; do
    echo "== pair $pair, threads = $threads"
    # One run a width: the alternating pairs are this script's answer to the noise.
    BENCH_RUNS=1 bench_measure csv "$threads" >"$BENCH_TMP/measure.out"
    grep -v '^RESULT ' "$BENCH_TMP/measure.out" || true
    result=$(grep '^RESULT ' "$BENCH_TMP/measure.out")
    echo "run: ${result#RESULT }"
    echo "$threads $RUN_SECS $result" >>"$RUNS"
    rm -rf "$WS"
  done
done
python3 - "$RUNS" <<'PYEOF'
import sys
runs = {1: [], 2: []}
for line in open(sys.argv[1]):
    threads, secs, result = line.split(" ", 2)
    runs[int(threads)].append((float(secs), result.strip()))
mid = lambda xs: sorted(xs)[len(xs) // 2]
for threads, rs in runs.items():
    print(mid(rs)[1])
# A pair's two runs are back to back, so the machine's state moves less within a pair than
# between pairs: the ratio is the median of the pairs' ratios.
ratios = [a[0] / b[0] for a, b in zip(runs[1], runs[2])]
each = lambda xs: ",".join(f"{x:.2f}" for x in xs)
print(f"RESULT scaling two_vs_one={mid(ratios):.2f} one_secs={mid(runs[1])[0]:.2f} "
      f"two_secs={mid(runs[2])[0]:.2f} pairs={len(ratios)} pair_ratios={each(ratios)} "
      f"one_runs={each(s for s, _ in runs[1])} two_runs={each(s for s, _ in runs[2])}")
PYEOF
