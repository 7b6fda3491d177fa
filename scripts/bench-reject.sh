#!/usr/bin/env bash
# What a file rejected whole costs against one applied: two orders CSV files of the same
# size, one with one order in 97 bad (applied with its rejects) and one with every other
# order bad. Half of the second one's lines are rejected, over the format's
# max_reject_ratio (0.25), so it is rejected whole once all its batches are committed: the
# decision rejects the documents it had applied and takes back their keys and versions in
# one ledger transaction (every other writer waits on it), and the reject report and the
# corrections file then list every line.
#
#   scripts/bench-reject.sh [MB]    (default 30; CARGO_TARGET_DIR is honoured;
#                                    BENCH_REJECT_PAIRS=N alternating pairs, default 3)
#
# Prints each run and `RESULT reject applied_secs=… rejected_secs=… ratio=…`: medians over
# the pairs, the ratio being the file rejected whole over the one applied. Measured here,
# never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-30}
PAIRS=${BENCH_REJECT_PAIRS:-3}
source scripts/bench-lib.sh
bench_setup
gen_csv "$BENCH_TMP/orders-applied.csv" "$MB"
gen_csv "$BENCH_TMP/orders-rejected.csv" "$MB" 2
RUNS=$BENCH_TMP/reject-runs
: >"$RUNS"
for pair in $(seq 1 "$PAIRS"); do
  for kind in applied rejected; do
    WS=$BENCH_TMP/ws
    rm -rf "$WS"
    bench_workspace "$WS"
    cp "$BENCH_TMP/orders-$kind.csv" "$WS/inbox/"
    bench_run "$WS"
    echo "pair $pair, $kind: ${RUN_SECS} s, peak RSS $((RUN_RSS_KIB / 1024)) MiB; $(bench_units "$WS")"
    echo "$kind $RUN_SECS" >>"$RUNS"
  done
done
python3 - "$RUNS" "$MB" <<'PYEOF'
import statistics, sys
secs = {"applied": [], "rejected": []}
for line in open(sys.argv[1]):
    kind, s = line.split()
    secs[kind].append(float(s))
a, r = statistics.median(secs["applied"]), statistics.median(secs["rejected"])
print(f"RESULT reject size_mb={sys.argv[2]} applied_secs={a:.2f} rejected_secs={r:.2f} ratio={r / a:.2f}")
PYEOF
