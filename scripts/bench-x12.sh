#!/usr/bin/env bash
# Intake throughput of `tallyman run` on an X12 004010 interchange of 850 purchase orders (one GS, many ST/SE sets),
# as a ratio of the parse floor (examples/parse_floor.rs, x12) measured on the same file in the
# same run; also peak RSS and ledger bytes per input byte.
#
#   scripts/bench-x12.sh [MB]      (default 75; CARGO_TARGET_DIR is honoured)
#
# Prints the floor, the units applied/rejected (a wrong generator shows up here) and one
# RESULT line. Figures are measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-75}
source scripts/bench-lib.sh
bench_setup
bench_input x12 "$MB" acme-bench.x12
bench_measure x12
