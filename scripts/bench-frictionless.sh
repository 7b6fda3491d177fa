#!/usr/bin/env bash
# The CSV intake benchmark against a known validator: frictionless (Python) validates the same
# generated orders CSV with a Table Schema derived from formats/orders.toml (required, types,
# max lengths, minimum / exclusive minimum, the currency code list), and `tallyman run`
# processes it (validation, mapping, ledger, outbox) in the same run.
#
#   scripts/bench-frictionless.sh [MB]      (default 20; CARGO_TARGET_DIR is honoured)
#
# Uses frictionless if importable, else tries `pip install --user frictionless`; prints SKIP
# and exits 0 if neither works. Prints `RESULT frictionless secs=… tallyman_secs=…
# frictionless_slower=…x` (frictionless validates on one core, with no ledger and no output).
# Measured here, never asserted in tests.
set -euo pipefail
cd "$(dirname "$0")/.."
MB=${1:-20}
if ! python3 -c 'import frictionless' 2>/dev/null; then
  pip install --user --quiet frictionless >/dev/null 2>&1 || true
  if ! python3 -c 'import frictionless' 2>/dev/null; then
    echo "SKIP: frictionless is not importable and could not be installed"
    exit 0
  fi
fi
source scripts/bench-lib.sh
bench_setup
bench_input csv "$MB" orders-bench.csv
echo "== tallyman"
# One run, as frictionless gets one: tallyman's fastest of three against it would not be fair.
BENCH_RUNS=1 bench_measure csv
echo "== frictionless $(python3 -c 'import frictionless; print(frictionless.__version__)')"
FRICTIONLESS_SECS=$(python3 - formats/orders.toml "$INPUT" <<'PYEOF'
import os, sys, time, tomllib
from frictionless import Resource
fmt = tomllib.load(open(sys.argv[1], "rb"))
types = {"integer": "integer", "decimal": "number", "date": "date", "code": "string"}
fields = []
for f in fmt["fields"]:
    c = {}
    if f.get("required"):
        c["required"] = True
    if "max_length" in f:
        c["maxLength"] = f["max_length"]
    if "min" in f:
        c["minimum"] = f["min"]
    if "exclusive_min" in f:
        c["exclusiveMinimum"] = f["exclusive_min"]
    if "values" in f:
        c["enum"] = f["values"]
    assert f.get("type", "string") != "date" or f.get("format") == "%Y-%m-%d"
    fields.append({"name": f["name"], "type": types.get(f.get("type", "string"), "string"), "constraints": c})
# exclusiveMinimum is Data Package v2: the resource must say so, or it is validated as v1.
resource = Resource.from_descriptor({
    "$schema": "https://datapackage.org/profiles/2.0/dataresource.json",
    "name": "orders", "path": os.path.basename(sys.argv[2]), "format": "csv",
    "schema": {"fields": fields},
}, basepath=os.path.dirname(sys.argv[2]))
start = time.perf_counter()
report = resource.validate(limit_errors=10**9)
secs = time.perf_counter() - start
task = report.tasks[0]
bad_rows = len({e.row_number for e in task.errors if hasattr(e, "row_number")})
print(f"frictionless: {task.stats.get('rows')} rows, {len(task.errors)} errors in {bad_rows} rows, "
      f"valid={report.valid}, {secs:.2f} s", file=sys.stderr)
print(f"{secs:.3f}")
PYEOF
)
python3 -c "import sys; f, t = map(float, sys.argv[1:]); print(f'RESULT frictionless secs={f:.2f} tallyman_secs={t:.2f} frictionless_slower={f / t:.1f}x')" "$FRICTIONLESS_SECS" "$RUN_SECS"
