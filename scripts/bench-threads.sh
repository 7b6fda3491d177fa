#!/usr/bin/env bash
# How `tallyman run` scales from one validation worker to two: the CSV intake benchmark
# (scripts/bench-csv.sh) on one generated file with `threads = 1`, then `threads = 2`, each
# with its own parse floor measured in the same run.
#
#   scripts/bench-threads.sh [MB]      (default 50; CARGO_TARGET_DIR is honoured)
#
# Prints both RESULT lines and `RESULT scaling two_vs_one=…` (the one-thread wall time over
# the two-thread one: 2.00 would be perfect on two cores). Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-50}
source scripts/bench-lib.sh
bench_setup
bench_input csv "$MB" orders-bench.csv
echo "== threads = 1"
bench_measure csv 1
ONE=$RUN_SECS
echo "== threads = 2"
bench_measure csv 2
TWO=$RUN_SECS
python3 -c "import sys; print(f'RESULT scaling two_vs_one={float(sys.argv[1]) / float(sys.argv[2]):.2f} one_secs={sys.argv[1]} two_secs={sys.argv[2]}')" "$ONE" "$TWO"
