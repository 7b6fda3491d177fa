#!/usr/bin/env bash
# Intake throughput of `tallyman run` on an IDoc ORDERS05 XML file of many IDOC elements,
# as a ratio of the parse floor (examples/parse_floor.rs, idoc) measured on the same file in the
# same run; also peak RSS and ledger bytes per input byte.
#
#   scripts/bench-idoc.sh [MB]      (default 100; CARGO_TARGET_DIR is honoured)
#
# Prints the floor, the units applied/rejected (a wrong generator shows up here) and one
# RESULT line. Figures are measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-100}
source scripts/bench-lib.sh
bench_setup
bench_input idoc "$MB" idoc-orders05-bench.xml
bench_measure idoc
