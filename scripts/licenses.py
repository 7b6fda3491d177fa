#!/usr/bin/env python3
"""Lists the license of every crate the tallyman binary links (normal dependencies, all
platforms of this host) and fails if one is not permissive. Run: python3 scripts/licenses.py"""
import json, subprocess, sys

PERMISSIVE = {"MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause", "ISC", "Zlib", "Unlicense",
              "CC0-1.0", "Unicode-3.0", "Unicode-DFS-2016", "BSL-1.0", "Apache-2.0 WITH LLVM-exception", "MPL-2.0"}

meta = json.loads(subprocess.check_output(
    ["cargo", "metadata", "--format-version", "1", "--filter-platform",
     subprocess.check_output(["rustc", "-vV"], text=True).split("host: ")[1].split()[0]]))
pkgs = {p["id"]: p for p in meta["packages"]}
nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
root = meta["resolve"]["root"]
seen, stack = set(), [root]
while stack:
    i = stack.pop()
    if i in seen:
        continue
    seen.add(i)
    for d in nodes[i]["deps"]:
        if any(k["kind"] in (None, "normal") for k in d["dep_kinds"]):
            stack.append(d["pkg"])

def ok(expr):
    # "A OR B": one permissive option is enough; "A AND B": all must be.
    expr = expr.replace("/", " OR ").replace("(", "").replace(")", "")
    return any(all(t.strip() in PERMISSIVE for t in alt.split(" AND ")) for alt in expr.split(" OR "))

bad = []
rows = sorted((pkgs[i]["name"], pkgs[i]["version"], pkgs[i].get("license") or "?") for i in seen if i != root)
for name, ver, lic in rows:
    print(f"{name:32} {ver:12} {lic}")
    if not ok(lic):
        bad.append(f"{name} {ver}: {lic}")
print(f"\n{len(rows)} crates linked into tallyman")
if bad:
    print("NOT PERMISSIVE:\n  " + "\n  ".join(bad))
    sys.exit(1)
print("all permissive (MIT OR Apache-2.0 compatible)")
