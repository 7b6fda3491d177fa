#!/usr/bin/env bash
# Throughput and peak memory of `tallyman run` on a generated orders CSV.
#
#   scripts/bench.sh [ORDERS] [BATCH_LINES]
#
# Generates ORDERS orders of 3 lines each (default 300000 → 900001 lines, ~75 MB), runs one
# pass in a scratch directory with the release binary, and prints wall time, lines/s, MB/s
# and peak RSS (from /usr/bin/time or /proc). Performance is measured here, never asserted
# in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERS=${1:-300000}
BATCH=${2:-10000}
cargo build --release --quiet
BIN=$PWD/target/release/tallyman
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
"$BIN" init "$WORK/w" >/dev/null
sed -i -e 's/settle_seconds = 10/settle_seconds = 0/' -e "s/batch_lines = 10000/batch_lines = $BATCH/" "$WORK/w/tallyman.toml"
python3 - "$ORDERS" "$WORK/w/inbox/orders-bench.csv" <<'EOF'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", newline="") as f:
    f.write("order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency\n")
    for o in range(n):
        for l in (1, 2, 3):
            qty = "-1" if (o % 97 == 96 and l == 2) else "2.5"
            f.write(f"B{o:08d},{l},2026-11-{1 + o % 28:02d},C{o % 5000:05d},SKU-{l}{o % 1000:04d},\"Widget, size {l}\",{qty},19.99,EUR\n")
EOF
SIZE=$(stat -c %s "$WORK/w/inbox/orders-bench.csv")
LINES=$(wc -l < "$WORK/w/inbox/orders-bench.csv")
echo "input: $LINES lines, $((SIZE / 1024 / 1024)) MiB, batch_lines=$BATCH, cores=$(nproc)"
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "wall %e s, peak RSS %M KiB" "$BIN" --config "$WORK/w/tallyman.toml" run >/dev/null 2>"$WORK/time.txt" || true
  RES=$(tail -1 "$WORK/time.txt")
else
  START=$(date +%s.%N)
  "$BIN" --config "$WORK/w/tallyman.toml" run >/dev/null & PID=$!
  PEAK=0
  while kill -0 $PID 2>/dev/null; do
    R=$(awk '/VmHWM/ {print $2}' /proc/$PID/status 2>/dev/null || echo 0); [ "${R:-0}" -gt "$PEAK" ] && PEAK=$R; sleep 0.05
  done
  wait $PID || true
  END=$(date +%s.%N)
  RES="wall $(echo "$END - $START" | bc) s, peak RSS ${PEAK} KiB (sampled)"
fi
echo "$RES"
WALL=$(echo "$RES" | sed -E 's/wall ([0-9.]+) s.*/\1/')
python3 -c "w=float('$WALL'); print(f'throughput: {int($LINES/w)} lines/s, {$SIZE/w/1e6:.1f} MB/s')"
"$BIN" --config "$WORK/w/tallyman.toml" status | head -4
echo "ledger: $(stat -c %s "$WORK/w/ledger.sqlite") bytes"
