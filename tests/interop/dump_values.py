#!/usr/bin/env python3
"""Prints every value of every Parquet file under ROOT (following symlinks), one per line, decoded by pyarrow.

Usage: dump_values.py ROOT. Column names and partition directory names are printed too. Used by the privacy
canary test to search decoded output values rather than compressed bytes.
"""
import os
import sys

import pyarrow.parquet as pq


def main(root):
    n = 0
    for d, _, names in os.walk(root, followlinks=True):
        for name in names:
            if not name.endswith(".parquet"):
                continue
            path = os.path.join(d, name)
            print(os.path.relpath(path, root))
            table = pq.read_table(path)
            for col in table.column_names:
                print(col)
                for v in table.column(col).to_pylist():
                    if v is not None:
                        print(v)
                        n += 1
    print(f"dump_values: {n} values", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
