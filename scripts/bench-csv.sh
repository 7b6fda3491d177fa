#!/usr/bin/env bash
# Intake throughput of `tallyman run` on an orders CSV (the old bench.sh generator: 3 lines an order, 1 order in 97 rejected),
# as a ratio of the parse floor (examples/parse_floor.rs, csv) measured on the same file in the
# same run; also peak RSS and ledger bytes per input byte.
#
#   scripts/bench-csv.sh [MB]      (default 100; CARGO_TARGET_DIR is honoured)
#
# Prints the floor, the units applied/rejected (a wrong generator shows up here) and one
# RESULT line. Figures are measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-100}
source scripts/bench-lib.sh
bench_setup
bench_input csv "$MB" orders-bench.csv
bench_measure csv
