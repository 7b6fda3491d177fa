# Shared functions of the intake benchmarks (scripts/bench-*.sh); source it, don't run it.
#
#   source scripts/bench-lib.sh
#   bench_setup                          # build once, scratch dir in $BENCH_TMP (trap removes it)
#   bench_workspace DIR [THREADS]        # `tallyman init DIR`, settle_seconds = 0 (and
#                                        # batch_lines = $BENCH_BATCH_LINES if set)
#   gen_csv|gen_x12|gen_idoc FILE MB     # an input of about MB megabytes the bundled formats accept
#                                        # (gen_csv FILE MB N: one order in N bad, default 97)
#   bench_floor csv|x12|idoc FILE        # parse_floor on FILE, best of 3: sets FLOOR_SECS, FLOOR_MBPS
#   bench_run DIR                        # timed `tallyman run`: sets RUN_SECS, RUN_RSS_KIB, RUN_RC
#   bench_input KIND MB NAME             # gen_KIND into the scratch dir: sets INPUT, INPUT_BYTES, INPUT_LINES
#   bench_measure KIND [THREADS]         # fresh workspace $WS with $INPUT: floor, run, $UNITS, RESULT
#   bench_units DIR                      # prints "units applied=… rejected=… duplicate=… lines applied=…"
#   bench_result FMT BYTES LINES DIR     # prints the RESULT line of the last floor and run
#
# Every figure is a ratio against a floor measured in the same run: the machine is shared and
# noisy, absolute MB/s from different runs do not compare. MB = 10^6 bytes.

BENCH_TARGET=${CARGO_TARGET_DIR:-$PWD/target}
BIN=$BENCH_TARGET/release/tallyman
FLOOR_BIN=$BENCH_TARGET/release/examples/parse_floor

bench_setup() { # BENCH_NO_BUILD=1: the caller has built already
  if [ -z "${BENCH_NO_BUILD:-}" ]; then
    cargo build --release --quiet --bin tallyman --example parse_floor
  fi
  BENCH_TMP=$(mktemp -d)
  # shellcheck disable=SC2064
  trap "bench_cleanup; rm -rf '$BENCH_TMP'" EXIT
}

# Scripts that start background processes put their ids here; the trap ends them.
BENCH_PIDS=()
bench_cleanup() {
  local p
  for p in "${BENCH_PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

bench_workspace() { # dir [threads]
  "$BIN" init "$1" >/dev/null
  sed -i -e 's/^settle_seconds = [0-9]*/settle_seconds = 0/' "$1/tallyman.toml"
  if [ -n "${2:-}" ]; then
    sed -i -e "s/^threads = [0-9]*/threads = $2/" "$1/tallyman.toml"
  fi
  if [ -n "${BENCH_BATCH_LINES:-}" ]; then
    sed -i -e "s/^batch_lines = [0-9]*/batch_lines = $BENCH_BATCH_LINES/" "$1/tallyman.toml"
  fi
  grep -q '^settle_seconds = 0' "$1/tallyman.toml" || { echo "could not set settle_seconds" >&2; exit 1; }
}

bench_threads() { # dir → the threads setting (cores; 0 = every core)
  sed -n 's/^threads = \([0-9]*\).*/\1/p' "$1/tallyman.toml"
}

# Orders CSV, the generator of the old bench.sh: 3 lines an order, 1 order in 97 (or in the
# third argument) has a line with quantity -1 (rejected: the whole order goes; the file is
# applied while at most a quarter of its lines are rejected, else rejected whole).
gen_csv() { # file MB [bad_every]
  python3 - "$1" "$2" "${3:-97}" <<'EOF'
import sys
path, target, every = sys.argv[1], float(sys.argv[2]) * 1e6, int(sys.argv[3])
with open(path, "w", newline="") as f:
    f.write("order_no,line_no,order_date,customer_id,sku,description,quantity,unit_price,currency\n")
    base, size = 0, 0
    while size < target:
        chunk = []
        for o in range(base, base + 10000):
            for l in (1, 2, 3):
                qty = "-1" if (o % every == every - 1 and l == 2) else "2.5"
                chunk.append(f"B{o:08d},{l},2026-11-{1 + o % 28:02d},C{o % 5000:05d},SKU-{l}{o % 1000:04d},\"Widget, size {l}\",{qty},19.99,EUR\n")
        base += 10000
        s = "".join(chunk)
        f.write(s)
        size += len(s)
EOF
}

# X12 004010 850s in one interchange and group, the shape of samples/inbox/acme-orders.x12:
# sets of 10 to 16 segments with unique PO numbers (BEG03) and ST02, SE01 = segment count,
# GE01 = set count; all valid.
gen_x12() { # file MB
  python3 - "$1" "$2" <<'EOF'
import sys
path, target = sys.argv[1], float(sys.argv[2]) * 1e6
isa = "ISA*00*          *00*          *ZZ*ACME           *ZZ*TALLYMAN       *261101*0930*U*00401*000000101*0*P*>~\n"
assert len(isa) == 107 and isa[105] == "~"
with open(path, "w") as f:
    f.write(isa)
    f.write("GS*PO*ACME*TALLYMAN*20261101*0930*101*X*004010~\n")
    n, size = 0, len(isa)
    while size < target:
        chunk = []
        for n in range(n + 1, n + 2001):
            lines = 1 + n % 4
            segs = [
                f"ST*850*{n:09d}",
                f"BEG*00*SA*PO-{n:09d}**202611{1 + n % 28:02d}",
                "CUR*BY*EUR",
                f"N1*BY*ACME Retail {n % 100}*92*C-{n % 5000:05d}",
                "N3*1 Market Street",
                "N4*Springfield*IL*62701*US",
                "N1*ST*ACME Warehouse*92*W-7",
            ]
            for l in range(1, lines + 1):
                segs.append(f"PO1*{l}*{l * 2}*EA*{l}.50**VN*SKU-{l}{n % 1000:04d}*BP*A-{l}")
                segs.append(f"PID*F****Widget size {l}")
            segs.append(f"CTT*{lines}")
            segs.append(f"SE*{len(segs) + 1}*{n:09d}")
            chunk.append("~\n".join(segs) + "~\n")
        s = "".join(chunk)
        f.write(s)
        size += len(s)
    f.write(f"GE*{n}*101~\nIEA*1*000000101~\n")
EOF
}

# IDoc ORDERS05 XML: one ORDERS05 root with IDOC elements shaped like
# samples/inbox/idoc-orders05-p2p.xml, unique DOCNUM and BELNR, 1 to 4 items each; all valid.
gen_idoc() { # file MB
  python3 - "$1" "$2" <<'EOF'
import sys
path, target = sys.argv[1], float(sys.argv[2]) * 1e6
def idoc(n):
    items = []
    for i in range(1, 2 + n % 4):
        items.append(f"""<E1EDP01 SEGMENT="1"><POSEX>{i * 10:05d}</POSEX><ACTION>001</ACTION><MENGE>{i}.000</MENGE><MENEE>PCE</MENEE><VPREI>50</VPREI><PEINH>1</PEINH><NETWR>{i * 50}</NETWR><WERKS>1010</WERKS>
<E1EDP20 SEGMENT="1"><WMENG>{i}.000</WMENG><EDATU>20261129</EDATU></E1EDP20>
<E1EDPA1 SEGMENT="1"><PARVW>WE</PARVW><LIFNR>1010</LIFNR><NAME1>Plant 1010</NAME1><STRAS>Neurottstr. 16</STRAS><ORT01>Walldorf</ORT01><PSTLZ>69190</PSTLZ><LAND1>DE</LAND1></E1EDPA1>
<E1EDP19 SEGMENT="1"><QUALF>001</QUALF><IDTNR>TG{n % 1000:04d}{i}</IDTNR><KTEXT>Trading Good {i}, regular</KTEXT></E1EDP19>
<E1EDPT1 SEGMENT="1"><TDID>F03</TDID><TSSPRAS>E</TSSPRAS><E1EDPT2 SEGMENT="1"><TDLINE>Widget order text {i}</TDLINE></E1EDPT2></E1EDPT1>
</E1EDP01>
""")
    return f"""<IDOC BEGIN="1">
<EDI_DC40 SEGMENT="1"><TABNAM>EDI_DC40</TABNAM><MANDT>715</MANDT><DOCNUM>{n:016d}</DOCNUM><DOCREL>755</DOCREL><STATUS>30</STATUS><DIRECT>1</DIRECT><OUTMOD>2</OUTMOD><IDOCTYP>ORDERS05</IDOCTYP><MESTYP>ORDERS</MESTYP><SNDPOR>SAPQKX</SNDPOR><SNDPRN>BENCH_SENDER</SNDPRN><RCVPOR>ORDREQ_CCF</RCVPOR><RCVPRN>TP_IDOC_SOA_ID</RCVPRN><CREDAT>20261129</CREDAT><CRETIM>142809</CRETIM></EDI_DC40>
<E1EDK01 SEGMENT="1"><CURCY>EUR</CURCY><HWAER>EUR</HWAER><ZTERM>0004</ZTERM><BSART>NB</BSART><BELNR>45{n:08d}</BELNR></E1EDK01>
<E1EDK14 SEGMENT="1"><QUALF>014</QUALF><ORGID>1010</ORGID></E1EDK14>
<E1EDK03 SEGMENT="1"><IDDAT>012</IDDAT><DATUM>202611{1 + n % 28:02d}</DATUM></E1EDK03>
<E1EDKA1 SEGMENT="1"><PARVW>AG</PARVW><PARTN>{10100000 + n % 5000}</PARTN><BNAME>Group 001</BNAME><PAORG>1010</PAORG></E1EDKA1>
<E1EDKA1 SEGMENT="1"><PARVW>LF</PARVW><PARTN>10100099</PARTN><SPRAS>E</SPRAS><SPRAS_ISO>EN</SPRAS_ISO></E1EDKA1>
<E1EDK02 SEGMENT="1"><QUALF>001</QUALF><BELNR>45{n:08d}</BELNR><DATUM>20261129</DATUM></E1EDK02>
{"".join(items)}<E1EDS01 SEGMENT="1"><SUMID>002</SUMID><SUMME>100</SUMME><SUNIT>EUR</SUNIT></E1EDS01>
</IDOC>
"""
with open(path, "w") as f:
    f.write('<?xml version="1.0" encoding="UTF-8"?>\n<ORDERS05>\n')
    n, size = 0, 0
    while size < target:
        s = "".join(idoc(k) for k in range(n + 1, n + 201))
        n += 200
        f.write(s)
        size += len(s)
    f.write("</ORDERS05>\n")
EOF
}

# The floor is the fastest of three passes: it takes well under a second, so one pass is at
# the mercy of whatever else the machine is doing at that instant.
bench_floor() { # kind file
  local out best="" i
  for i in 1 2 3; do
    out=$("$FLOOR_BIN" "$1" "$2")
    if [ -z "$best" ] || python3 -c 'import sys; a, b = (float(x.rsplit("=", 1)[1]) for x in sys.argv[1:]); sys.exit(a <= b)' "$out" "$best"; then
      best=$out
    fi
  done
  echo "$best (best of 3)"
  FLOOR_SECS=$(sed -E 's/.* secs=([0-9.]+).*/\1/' <<<"$best")
  FLOOR_MBPS=$(sed -E 's/.* mbps=([0-9.]+).*/\1/' <<<"$best")
}

bench_run() { # dir
  RUN_RC=0
  /usr/bin/time -f "%e %M" -o "$BENCH_TMP/time.txt" \
    "$BIN" --config "$1/tallyman.toml" run >"$BENCH_TMP/run.log" 2>&1 || RUN_RC=$?
  read -r RUN_SECS RUN_RSS_KIB < <(tail -1 "$BENCH_TMP/time.txt")
  # Exit 1 is "something for a person" (the CSV's rejected orders); 2 and 3 are failures.
  if [ "$RUN_RC" -ge 2 ]; then
    echo "tallyman run FAILED with exit code $RUN_RC; last lines of its output:" >&2
    tail -5 "$BENCH_TMP/run.log" >&2
  fi
}

bench_ledger_bytes() { # dir
  local total=0 f
  for f in "$1/ledger.sqlite" "$1/ledger.sqlite-wal"; do
    [ -f "$f" ] && total=$((total + $(stat -c %s "$f")))
  done
  echo "$total"
}

bench_units() { # dir → one line, from `tallyman status --json`
  "$BIN" --config "$1/tallyman.toml" status --json | python3 -c '
import json, sys
rc = sys.argv[1]
files = json.load(sys.stdin)["recent_files"]
def s(k):
    return sum(f.get(k) or 0 for f in files)
print("units applied=%d rejected=%d duplicate=%d lines applied=%d rejected=%d run_exit=%s files=%s" % (
    s("units_applied"), s("units_rejected"), s("units_duplicate"), s("lines_applied"),
    s("lines_rejected"), rc, ",".join("%s:%s" % (f["name"], f["outcome"]) for f in files)))' "${RUN_RC:-?}"
}

bench_result() { # format bytes lines dir → RESULT line of the last bench_floor and bench_run
  local bytes=$2 lines=$3 ledger threads
  ledger=$(bench_ledger_bytes "$4")
  threads=$(bench_threads "$4")
  [ "$threads" = 0 ] && threads="0($(nproc))"
  python3 - "$1" "$bytes" "$lines" "$RUN_SECS" "$FLOOR_MBPS" "$RUN_RSS_KIB" "$ledger" "$threads" <<'EOF'
import sys
fmt, size, lines, secs, floor, rss, ledger, threads = sys.argv[1:]
size, secs, floor = int(size), float(secs), float(floor)
e2e = size / 1e6 / max(secs, 1e-3)
print(f"RESULT format={fmt} size_mb={size / 1e6:.1f} lines={lines} e2e_mbps={e2e:.1f} "
      f"floor_mbps={floor:.1f} ratio=1/{floor / e2e:.1f} peak_rss_mib={int(rss) / 1024:.0f} "
      f"ledger_mb_per_mb={int(ledger) / size:.2f} threads={threads}")
EOF
}

# Generates an input into the scratch dir: sets INPUT, INPUT_BYTES, INPUT_LINES.
bench_input() { # kind(csv|x12|idoc) MB file-name
  INPUT=$BENCH_TMP/$3
  "gen_$1" "$INPUT" "$2"
  INPUT_BYTES=$(stat -c %s "$INPUT")
  INPUT_LINES=$(wc -l <"$INPUT")
  echo "input: $3, $INPUT_BYTES bytes, $INPUT_LINES lines, cores=$(nproc)"
}

# One intake measurement of $INPUT: the floor, then BENCH_RUNS runs (default 3), each in a
# fresh workspace (the last left in $WS), the units and the RESULT line. The floor runs first,
# on the same file, so both read it from the page cache. Both sides are the fastest of their
# passes: the same run of the same build moved by a quarter between minutes here, and a
# single run against the floor's best of three made the ratio as much the machine's as
# tallyman's. The RESULT takes the fastest run's time and the highest peak RSS of any run.
BENCH_N=0
bench_measure() { # kind [threads]
  local runs=${BENCH_RUNS:-3} i best="" rss=0
  BENCH_N=$((BENCH_N + 1))
  for i in $(seq "$runs"); do
    WS=$BENCH_TMP/w$BENCH_N
    rm -rf "$WS"
    bench_workspace "$WS" "${2:-}"
    cp "$INPUT" "$WS/inbox/"
    [ "$i" = 1 ] && bench_floor "$1" "$WS/inbox/$(basename "$INPUT")"
    bench_run "$WS"
    echo "run $i of $runs: $RUN_SECS s, peak RSS $((RUN_RSS_KIB / 1024)) MiB"
    if [ -z "$best" ] || python3 -c 'import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))' "$RUN_SECS" "$best"; then
      best=$RUN_SECS
    fi
    [ "$RUN_RSS_KIB" -gt "$rss" ] && rss=$RUN_RSS_KIB
  done
  RUN_SECS=$best
  RUN_RSS_KIB=$rss
  UNITS=$(bench_units "$WS")
  echo "$UNITS"
  bench_result "$1" "$INPUT_BYTES" "$INPUT_LINES" "$WS"
}
