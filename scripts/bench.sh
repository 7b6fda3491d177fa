#!/usr/bin/env bash
# All the intake benchmarks, as one Markdown table: tallyman's end-to-end MB/s against a
# parse floor measured on the same file in the same run (examples/parse_floor.rs), peak RSS
# and ledger growth, for CSV, X12 and IDoc; then thread scaling, the cost of resuming after a
# SIGKILL (CSV, X12 and IDoc), and frictionless on the same CSV.
#
#   scripts/bench.sh [CSV_MB] [X12_MB] [IDOC_MB] [RESUME_MB] [THREADS_MB] [FRICTIONLESS_MB]
#
# Defaults 100 30 50 50 50 20: about 9 minutes on two cores. Each part runs alone too:
# scripts/bench-{csv,x12,idoc,threads,resume,frictionless}.sh [MB]; their shared code is
# scripts/bench-lib.sh. The old `bench.sh [ORDERS] [BATCH_LINES]` is gone: sizes are in MB
# now (~14,100 orders a MB), and batch_lines is set with BENCH_BATCH_LINES=N in the
# environment. Each format's run is the fastest of BENCH_RUNS=N (default 3; before stop 53 one
# run, against the floor's best of three). CARGO_TARGET_DIR is honoured. Figures are measured
# here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
CSV_MB=${1:-100}
X12_MB=${2:-30}
IDOC_MB=${3:-50}
RESUME_MB=${4:-50}
THREADS_MB=${5:-50}
FRICTIONLESS_MB=${6:-20}
cargo build --release --quiet --bin tallyman --example parse_floor
export BENCH_NO_BUILD=1
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT

part() { # tag script MB [args]: the script's output, its RESULT lines tagged into $LOG
  echo "== $1 ($3 MB)"
  "scripts/$2" "${@:3}" | tee >(sed -n "s/^RESULT /RESULT part=$1 /p" >>"$LOG")
}
part csv bench-csv.sh "$CSV_MB"
part x12 bench-x12.sh "$X12_MB"
part idoc bench-idoc.sh "$IDOC_MB"
part threads bench-threads.sh "$THREADS_MB"
part resume bench-resume.sh "$RESUME_MB"
part resume-x12 bench-resume.sh "$X12_MB" x12
part resume-idoc bench-resume.sh "$IDOC_MB" idoc
part frictionless bench-frictionless.sh "$FRICTIONLESS_MB"

echo
python3 - "$LOG" <<'PYEOF'
import sys
rows, extra = [], []
for line in open(sys.argv[1]):
    if not line.startswith("RESULT "):
        continue
    kv = dict(w.split("=", 1) for w in line.split()[1:] if "=" in w)
    if "format" in kv:
        # The full run of the resume part and tallyman's run beside frictionless repeat the
        # CSV row; the table keeps the formats and the thread counts.
        if kv["part"] in ("csv", "x12", "idoc", "threads"):
            rows.append(kv)
    else:
        extra.append(line.strip().replace(f"part={kv['part']} ", ""))
print("tallyman intake, MB = 10^6 bytes; ratio = tallyman / parse floor, same file, same run\n")
print("| input | tallyman | floor | ratio | peak RSS | ledger MB per input MB |")
print("|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['format']} {r['size_mb']} MB, {r['lines']} lines, threads={r['threads']} "
          f"| {r['e2e_mbps']} MB/s | {r['floor_mbps']} MB/s | {r['ratio']} "
          f"| {r['peak_rss_mib']} MiB | {r['ledger_mb_per_mb']} |")
print()
for e in extra:
    print(f"- `{e}`")
PYEOF
