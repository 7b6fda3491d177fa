#!/usr/bin/env bash
# Generates the acknowledgements tallyman sends for X12 files and validates every 997/999
# with pyx12 (an independent X12 validator, `pip install pyx12`).
#   scripts/validate-acks.sh [FILE...]   (default: the samples and a slice of the corpus)
# Exit status is non-zero if any ack fails validation.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v x12valid >/dev/null 2>&1; then
    echo "pyx12 is not installed (pip install pyx12); cannot validate acks" >&2
    exit 2
fi
files=("$@")
if [ ${#files[@]} -eq 0 ]; then
    # pyx12 ships only the HIPAA 997 (004010) and 999 (005010X231) maps: their AK101/AK201
    # code lists admit HIPAA functional groups and sets only (HC/HP/BE..., 837/835/834...),
    # so acks of retail groups (PO 850, IN 810, SH 856) cannot be checked by pyx12. The
    # default list is HIPAA inputs, accepted and rejected, 4010 (997) and 5010 (999).
    files=(tests/corpus/x12/pyx12_simple_837p.txt tests/corpus/x12/pyx12_835_simple.txt
        tests/corpus/x12/pyx12_fail_no_IEA.txt tests/corpus/x12/pyx12_trailer_errors.txt
        tests/corpus/x12/pyx12_bad_elements.txt tests/corpus/x12/lfh_demo.example1.837
        tests/corpus/x12/lfh_managed-care.835 tests/corpus/x12/uhin_837.edi
        tests/corpus/x12/moov_example_5010_837p.txt tests/corpus/x12/imsweb_x12_valid.txt
        tests/corpus/x12/stupidedi_X217_HI278_pass_se_mismatch.edi)
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cargo run -q --example x12_acks -- "$out" "${files[@]}" >/dev/null
fail=0
count=0
for ack in "$out"/*.x12; do
    [ -e "$ack" ] || continue
    count=$((count + 1))
    # x12valid exits 1 even on success; its verdict is the final "<file>: OK|Failure" line,
    # and any logged ERROR counts as a failure too.
    report=$(x12valid "$ack" 2>&1 || true)
    if grep -q ": OK$" <<<"$report" && ! grep -q "ERROR" <<<"$report"; then
        echo "ok: $(basename "$ack")"
    else
        echo "INVALID: $(basename "$ack")"
        echo "$report" | tail -20
        fail=1
    fi
done
echo "$count acks checked"
exit $fail
