#!/usr/bin/env python3
"""Reads partitioned datasets with DuckDB, pyarrow and Polars and compares partition values with the expected ones.

Usage: check_partition_values.py EXPECTED.json
EXPECTED.json maps a dataset directory to {"column": name, "values": {"<n>": "<value>"}}: row n (column `n`) must
come back with exactly that partition value. Prints one line per mismatch and a count; exits 1 on any mismatch.
"""
import json
import sys

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as pads


def read_duckdb(d, col):
    rows = duckdb.connect().execute(
        f"select n, \"{col}\"::varchar from read_parquet('{d}/**/*.parquet', hive_partitioning=true, hive_types={{'{col}': VARCHAR}})"
    ).fetchall()
    return {str(n): v for n, v in rows}


def read_pyarrow(d, col):
    part = pads.partitioning(pa.schema([(col, pa.string())]), flavor="hive")
    t = pads.dataset(d, format="parquet", partitioning=part).to_table()
    return {str(n): v for n, v in zip(t.column("n").to_pylist(), t.column(col).to_pylist())}


def read_polars(d, col):
    df = pl.scan_parquet(f"{d}/**/*.parquet", hive_partitioning=True, hive_schema={col: pl.String}).collect()
    return {str(n): v for n, v in zip(df["n"].to_list(), df[col].to_list())}


def main(path):
    with open(path) as f:
        expected = json.load(f)
    problems = 0
    checked = 0
    for d, spec in expected.items():
        col, want = spec["column"], spec["values"]
        for name, reader in (("duckdb", read_duckdb), ("pyarrow", read_pyarrow), ("polars", read_polars)):
            try:
                got = reader(d, col)
            except Exception as e:  # a reader that cannot read the dataset at all is a failure
                print(f"FAIL {name} {d}: {type(e).__name__}: {e}"[:400])
                problems += 1
                continue
            for n, v in want.items():
                checked += 1
                if got.get(n) != v:
                    print(f"FAIL {name} row {n}: want {v!r} got {got.get(n)!r}")
                    problems += 1
            if len(got) != len(want):
                print(f"FAIL {name} {d}: {len(got)} rows, want {len(want)}")
                problems += 1
    print(f"check_partition_values: {checked} value reads, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
