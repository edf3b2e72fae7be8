#!/usr/bin/env python3
"""Checks data roots after a crash: every published dataset is exactly its manifest.

Usage: check_manifest.py ROOT [ROOT ...]

For each ROOT and each dataset symlink in it, the current version's manifest
(`_diaspora/versions/<ds>/<version>.manifest.json`) must exist, the set of
`*.parquet` files under the dataset must equal the manifest's files, and DuckDB
and pyarrow must each read exactly the manifest's row count. Prints one line per
problem; exits 1 if there is any, 0 otherwise. Last line: "N roots ok" or a count.
"""
import json
import os
import sys

try:
    import duckdb
    import pyarrow.dataset as pads
except ImportError as e:  # pragma: no cover
    print(f"check_manifest: missing module: {e}", file=sys.stderr)
    sys.exit(2)


def check_root(root):
    problems = []
    datasets = [d for d in sorted(os.listdir(root)) if os.path.islink(os.path.join(root, d))]
    if not datasets:
        problems.append(f"{root}: no published dataset")
    for ds in datasets:
        link = os.path.join(root, ds)
        version = os.path.basename(os.readlink(link))
        manifest_path = os.path.join(root, "_diaspora", "versions", ds, f"{version}.manifest.json")
        if not os.path.isdir(link):
            problems.append(f"{root}: {ds} points to a missing version {version}")
            continue
        if not os.path.exists(manifest_path):
            problems.append(f"{root}: {ds} version {version} has no manifest")
            continue
        with open(manifest_path) as f:
            m = json.load(f)
        listed = sorted(x["path"] for x in m["files"])
        found = sorted(
            os.path.relpath(os.path.join(d, n), link)
            for d, _, names in os.walk(link)
            for n in names
        )
        if listed != found:
            problems.append(f"{root}: {ds} files differ from manifest: extra {sorted(set(found)-set(listed))[:3]} missing {sorted(set(listed)-set(found))[:3]}")
            continue
        hive = bool(m["partition_by"])
        con = duckdb.connect()
        n_duck = con.execute(
            f"select count(*) from read_parquet('{link}/**/*.parquet', hive_partitioning={'true' if hive else 'false'})"
        ).fetchone()[0]
        n_pa = pads.dataset(link, format="parquet", partitioning="hive" if hive else None).count_rows()
        if n_duck != m["rows"] or n_pa != m["rows"]:
            problems.append(f"{root}: {ds} manifest rows {m['rows']} but duckdb {n_duck}, pyarrow {n_pa}")
    return problems


def main():
    roots = sys.argv[1:]
    if not roots:
        print(__doc__)
        return 2
    problems = []
    for r in roots:
        problems.extend(check_root(r))
    for p in problems:
        print("FAIL", p)
    print(f"check_manifest: {len(roots)} roots, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
