#!/usr/bin/env bash
# Delivery throughput into the ERP simulator over loopback, against a floor measured in the
# same run (a bare ureq client creating the same records at the same concurrency), plus the
# rate-limited case and the ledger's growth per delivered record.
#
#   scripts/bench-delivery.sh [RECORDS] [LIMITED_RECORDS]
#
# RECORDS (default 30000) customers are processed, then delivered by `tallyman deliver`
# with no rate limit; LIMITED_RECORDS (default 9000, 90 s) are delivered at a limit of
# 6,000 requests a minute, and the simulator reports the busiest 60-second window and the
# 429s it sent. Figures are measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-30000}
NL=${2:-9000}
CONC=8
cargo build --release --quiet --bin tallyman --bin tallyman-erp-sim --example http_floor
BIN=$PWD/target/release/tallyman
SIM=$PWD/target/release/tallyman-erp-sim
FLOOR=$PWD/target/release/examples/http_floor
TMP=$(mktemp -d)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT

start_sim() { # port, extra flags...
  local port=$1; shift
  "$SIM" --listen "127.0.0.1:$port" --token bench --no-customer-check "$@" >"$TMP/sim-$port.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do curl -s "http://127.0.0.1:$port/_sim/stats" >/dev/null && return; sleep 0.1; done
  echo "simulator did not start" >&2; exit 1
}

workdir() { # dir, port, limit line, records
  "$BIN" init "$1" >/dev/null
  sed -i -e 's/settle_seconds = 10/settle_seconds = 0/' -e 's/budget_seconds = 240/budget_seconds = 0/' "$1/tallyman.toml"
  cat >>"$1/tallyman.toml" <<EOT

[[targets]]
name = "erp"
kind = "http"
base_url = "http://127.0.0.1:$2"
token_env = "BENCH_TOKEN"
entities = ["customer"]
concurrency = $CONC
$3
EOT
  python3 - "$4" "$1/inbox/customers-bench.csv" <<'EOT'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w") as f:
    f.write("customer_id,name,email,phone,city,postal_code,country,vat_id,active\n")
    for i in range(n):
        f.write(f"B-{i:07d},Customer {i},c{i}@bench.example,,Berlin,10115,DE,,yes\n")
EOT
  BENCH_TOKEN=bench "$BIN" --config "$1/tallyman.toml" run >/dev/null
  sed -i 's/budget_seconds = 0/budget_seconds = 3600/' "$1/tallyman.toml"
}

timed_deliver() { # dir → seconds
  local t0 t1
  t0=$(date +%s.%N)
  BENCH_TOKEN=bench "$BIN" --config "$1/tallyman.toml" deliver >"$TMP/deliver.log"
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

echo "== floor: bare client, $N creates, concurrency $CONC"
start_sim 18091
read -r FOK FSECS FRATE < <("$FLOOR" http://127.0.0.1:18091 bench "$N" "$CONC")
echo "floor: $FOK records in ${FSECS}s = $FRATE records/s"

echo "== tallyman deliver, no rate limit, $N records"
start_sim 18092
workdir "$TMP/free" 18092 "" "$N"
L0=$(stat -c %s "$TMP/free/ledger.sqlite")
SECS=$(timed_deliver "$TMP/free")
L1=$(stat -c %s "$TMP/free/ledger.sqlite")
RATE=$(echo "$N / $SECS" | bc -l)
DUPS=$(curl -s http://127.0.0.1:18092/_sim/stats | python3 -c 'import json,sys; s=json.load(sys.stdin); print(len(s["duplicates"]), s["records"].get("customers", 0))')
printf 'tallyman: %d records in %.2fs = %.0f records/s (%.2f × floor); ERP duplicates, records: %s\n' "$N" "$SECS" "$RATE" "$(echo "$RATE / $FRATE" | bc -l)" "$DUPS"
printf 'ledger growth by delivery: %d bytes per delivered record\n' "$(( (L1 - L0) / N ))"

echo "== tallyman deliver at 6000/min (the simulator enforces the same limit), $NL records"
start_sim 18093 --rate-limit 6000
workdir "$TMP/limited" 18093 "rate_limit_per_minute = 6000" "$NL"
SECS=$(timed_deliver "$TMP/limited")
RATE=$(echo "$NL / $SECS * 60" | bc -l)
python3 - "$RATE" <<EOT
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:18093/_sim/stats"))
rate = float(sys.argv[1])
print(f"tallyman: {rate:.0f} requests/min = {rate / 6000:.3f} of the limit; "
      f"busiest 60 s window: {s['max_requests_in_60s']} (limit 6000); "
      f"429s: {s['status_429_sent']} of {s['requests_total']} ({100 * s['status_429_sent'] / max(1, s['requests_total']):.2f}%); "
      f"duplicates: {len(s['duplicates'])}")
EOT
