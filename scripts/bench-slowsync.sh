#!/usr/bin/env bash
# What a slow disk costs: `tallyman run` on one generated file as the disk here makes it,
# then with every fsync taking US microseconds longer (scripts/slowsync.c, an LD_PRELOAD
# shim built with cc), as on network block storage (1-3 ms) or a spinning disk (5-10 ms).
# Each batch commits the ledger with an fsync; the outbox chunks are synced beside the next
# batches (src/engine/syncer.rs), so the slower run should cost about one fsync a batch more.
#
#   scripts/bench-slowsync.sh [MB] [csv|x12|idoc] [US]   (default 30 x12 2000; needs cc;
#                                                         CARGO_TARGET_DIR is honoured)
#
# Prints `RESULT slowsync kind=… us=… plain_secs=… slowed_secs=… ratio=…` (slowed over
# plain, three runs each, alternating, the best of each). Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-30}
KIND=${2:-x12}
US=${3:-2000}
command -v cc >/dev/null || { echo "bench-slowsync needs a C compiler (cc)" >&2; exit 1; }
source scripts/bench-lib.sh
bench_setup
SHIM=$BENCH_TMP/slowsync.so
cc -O2 -shared -fPIC -o "$SHIM" scripts/slowsync.c -ldl
case "$KIND" in
  csv) bench_input csv "$MB" orders-bench.csv ;;
  x12) bench_input x12 "$MB" po-bench.x12 ;;
  idoc) bench_input idoc "$MB" orders-bench.xml ;;
  *) echo "bench-slowsync: kind is csv, x12 or idoc, not $KIND" >&2; exit 2 ;;
esac

timed() { # us → seconds of one fresh run with fsync slowed by us
  local ws=$BENCH_TMP/ws
  rm -rf "$ws"
  bench_workspace "$ws"
  cp "$INPUT" "$ws/inbox/"
  sync
  SLOWSYNC_US=$1 LD_PRELOAD=$SHIM /usr/bin/time -f "%e" -o "$BENCH_TMP/t" \
    "$BIN" --config "$ws/tallyman.toml" run >/dev/null 2>&1 || true
  tail -1 "$BENCH_TMP/t"
}

PLAIN=() SLOWED=()
for _ in 1 2 3; do
  PLAIN+=("$(timed 0)")
  SLOWED+=("$(timed "$US")")
done
echo "plain: ${PLAIN[*]} s; fsync +$US us: ${SLOWED[*]} s"
python3 - "$KIND" "$US" "${PLAIN[*]}" "${SLOWED[*]}" <<'PYEOF'
import sys
kind, us, plain, slowed = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
p, s = min(map(float, plain)), min(map(float, slowed))
print(f"RESULT slowsync kind={kind} us={us} plain_secs={p:.2f} slowed_secs={s:.2f} ratio={s / p:.2f}")
PYEOF
