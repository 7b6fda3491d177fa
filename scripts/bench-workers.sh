#!/usr/bin/env bash
# Several workers over one inbox and one ledger: the same orders CSV files taken by 1, 2 and
# 3 `tallyman run` processes at once, each with a `work/` folder of its own (as on other
# hosts), sharing the ledger: the embedded SQLite file, then a PostgreSQL database (a server
# this script starts on a loopback port from Debian's `postgresql` package, fsync on, as a
# real one would run). Each figure is a ratio against the first run of the same invocation
# (one SQLite worker by default): on one 2-core machine more workers cannot be much faster
# (each process already uses both cores, and the database server shares them too); what
# this shows is what sharing the ledger and the inbox costs.
#
#   scripts/bench-workers.sh [MB] [FILES] [sqlite|postgres|both]
#                                   (defaults 40 MB in 20 files, both; CARGO_TARGET_DIR is
#                                    honoured)
#
# Prints one RESULT line per ledger and worker count (wall time until every worker's pass
# ended, MB/s, the ratio to the first line, how many files each worker took) and checks
# that every file was applied exactly once. Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-40}
FILES=${2:-20}
LEDGERS=${3:-both}
[ "$LEDGERS" = both ] && LEDGERS="sqlite postgres"
source scripts/bench-lib.sh
bench_setup

# The PostgreSQL server, when asked for: initdb and pg_ctl as the postgres user when root.
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
PG_PORT=55439
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_start() {
  # Not under $BENCH_TMP: the postgres user cannot enter a private temporary folder.
  PG_DIR=$(mktemp -d /tmp/tallyman-bench-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres "$PG_DIR"; fi
  as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U tallyman --auth=trust -E UTF8 --locale=C >/dev/null
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w -t 30 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR" start >/dev/null
  # shellcheck disable=SC2064
  trap "as_pg '$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m immediate -w stop >/dev/null 2>&1; bench_cleanup; rm -rf '$BENCH_TMP' '$PG_DIR'" EXIT
}
psql_q() { "$PG_BIN/psql" -h 127.0.0.1 -p "$PG_PORT" -U tallyman -At "$@"; }
case " $LEDGERS " in *" postgres "*) pg_start ;; esac

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
for LEDGER in $LEDGERS; do
for N in 1 2 3; do
  WS=$BENCH_TMP/ws-$LEDGER-$N
  bench_workspace "$WS"
  if [ "$LEDGER" = postgres ]; then
    psql_q -d postgres -c "CREATE DATABASE w$N" >/dev/null
    printf '\n[ledger]\nurl = "postgres://tallyman@127.0.0.1:%s/w%s"\n' "$PG_PORT" "$N" >>"$WS/tallyman.toml"
  fi
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
  OUTCOMES_SQL="SELECT state || ':' || COALESCE(outcome, '-') || '=' || COUNT(*) FROM files GROUP BY state, outcome"
  TAKERS_SQL="SELECT COUNT(*) FROM files f JOIN runs r ON r.id = f.run_id GROUP BY r.work ORDER BY r.work"
  if [ "$LEDGER" = postgres ]; then
    OUTCOMES=$(psql_q -d "w$N" -c "$OUTCOMES_SQL" | paste -sd' ')
    TAKERS=$(psql_q -d "w$N" -c "$TAKERS_SQL" | paste -sd/)
  else
    OUTCOMES=$(python3 -c "import sqlite3,sys; print(' '.join(r[0] for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" "$WS/ledger.sqlite" "$OUTCOMES_SQL")
    TAKERS=$(python3 -c "import sqlite3,sys; print('/'.join(str(r[0]) for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2])))" "$WS/ledger.sqlite" "$TAKERS_SQL")
  fi
  case "$OUTCOMES" in
    "done:applied_with_rejects=$FILES" | "done:applied=$FILES") CHECK="applied_once=yes" ;;
    *) CHECK="applied_once=NO($OUTCOMES)" ;;
  esac
  CHECK="$CHECK files_per_worker=$TAKERS"
  SECS=$(python3 -c "print(f'{$END - $START:.2f}')")
  [ -z "$ONE" ] && ONE=$SECS
  python3 - "$LEDGER" "$N" "$SECS" "$ONE" "$BYTES" "$RCS" "$CHECK" <<'EOF'
import sys
ledger, n, secs, one, size, rcs, check = sys.argv[1:]
secs, one, size = float(secs), float(one), int(size)
print(f"RESULT ledger={ledger} workers={n} secs={secs:.2f} e2e_mbps={size / 1e6 / secs:.1f} "
      f"speed_vs_first={one / secs:.2f} exit_codes={rcs.rstrip(',')} {check}")
EOF
done
done
