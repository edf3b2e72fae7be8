#!/usr/bin/env python3
"""Prints every row of a published dataset as JSON lines, in file order, decoded by pyarrow.

Usage: dataset_rows.py DATASET_DIR. Files are visited in path order (partition directories, then part-NNNNN),
each row prefixed with its partition directory, so two datasets with the same rows in the same order print the
same text whatever their row groups or file splits.
"""
import json
import os
import sys

import pyarrow.parquet as pq


def main(root):
    paths = []
    for d, _, names in os.walk(root, followlinks=True):
        paths += [os.path.join(d, n) for n in names if n.endswith(".parquet")]
    paths.sort()
    rows = 0
    for path in paths:
        partition = os.path.relpath(os.path.dirname(path), root)
        # Read the file alone: the partition columns are in its directory name, not in the file.
        table = pq.ParquetFile(path).read()
        for row in table.to_pylist():
            print(json.dumps([partition, row], default=str, sort_keys=True))
            rows += 1
    print(f"dataset_rows: {rows} rows in {len(paths)} files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
