#!/usr/bin/env python3
"""Check that diaspora's Hive-partitioned Parquet output reads back, in three
independent real-world readers (DuckDB, pyarrow.dataset, Polars), exactly as the
run report `<data_root>/_diaspora/runs/latest.json` says it should.

Usage:
    $DIASPORA_PYTHON tests/interop/check_readers.py <data_root> [--datasets a,b] [--json]

Exit status:
    0  every check ran and passed
    1  at least one mismatch, or a check could not run (bad report, reader error, ...)
    2  a required Python module (duckdb, pyarrow, polars) is missing, or bad usage

For each dataset it prints one line per check, e.g.
    ok  respondents  layout  files=87 rows=4561 partitions=87
    ok  respondents  duckdb  rows=4561 partitions=87
followed, on failure, by one indented line per mismatch. With --json the last
stdout line is {dataset: {check: {"rows": n, "ok": bool}}}, where check is
"duckdb", "pyarrow", "polars" and also "layout" (directory layout and Parquet
footers, read with pyarrow.parquet; "rows" is the sum of the footers' row counts).

How the readers treat Hive directory names (measured with duckdb 2.0.1,
pyarrow 26.0.1, polars 2.1.0 on directories written by hand and by
pyarrow.dataset.write_dataset(..., partitioning_flavor='hive'), which
percent-encodes: ' ' -> %20, 'Москва' -> %D0%9C%D0%BE%D1%81%D0%BA%D0%B2%D0%B0,
'/' -> %2F, '%' -> %25, '=' -> %3D):

  * Values: all three readers percent-decode the VALUE exactly once (UTF-8
    sequences, upper- or lower-case hex): 'New%20York' -> 'New York',
    'a%2Fb%25c%3Dd' -> 'a/b%c=d', '%2541' -> '%41' (no double decoding).
    An un-encoded value ('New York', raw UTF-8 'Москва') reads unchanged in all
    three. Invalid escapes stay literal ('100%', '%ZZ'). '+' is NOT a space in
    any of them ('a+b' -> 'a+b', '%2B' -> '+'). So the report's partition keys
    (decoded values) are compared directly with what each reader returns.
  * NULL: `col=__HIVE_DEFAULT_PARTITION__` reads as NULL in all three.
    `col=` (empty value) reads as '' (not NULL) when the column is a string;
    Polars however turns it into NULL when the other values make it infer an
    integer type (DuckDB and pyarrow then fall back to strings). 'null'/'NULL'
    are plain strings. A percent-encoded %5F%5FHIVE_DEFAULT_PARTITION%5F%5F is
    NULL in pyarrow and Polars (they decode first) but the literal string
    '__HIVE_DEFAULT_PARTITION__' in DuckDB (it compares before decoding).
  * Keys (column names): only pyarrow decodes them ('my%20k=1' -> column
    'my k'); DuckDB and Polars keep 'my%20k'. The writer must not encode keys.
  * Type inference differs per reader (all defaults kept, as a user would):
      DuckDB:  BIGINT for integers (but '007' stays VARCHAR '007'), DATE for
               2024-01-02, VARCHAR otherwise (also for 'true', '1.5');
               a column whose only value is NULL is VARCHAR.
      pyarrow: int32 only ('99999999999' -> whole column string), '007' -> 7,
               everything else string; a column whose only value is NULL makes
               inference FAIL ("No non-null segments were available for field
               ... couldn't infer type") - this checker then retries with all
               partition columns typed as string and prints a note.
      Polars:  Int64 ('007' -> 7), Float64 ('2' -> 2.0), Boolean, Date, String.
    Reader values are formatted with str() (bool as true/false, NULL as
    __HIVE_DEFAULT_PARTITION__). Where a reader typed a partition column, each
    report value is first parsed into that type (so 'wave=2022' matches 2022
    and 'k=2' matches Polars' 2.0); a note is printed when that changes the
    text (e.g. '007' read as 7), and two report partitions that a reader cannot
    tell apart ('k=007' and 'k=7') are a mismatch.
  * Symlinks: a symlinked dataset directory (data_root/respondents ->
    versions/...) is followed by all three. A symlinked directory INSIDE the
    dataset is followed by pyarrow and Polars but NOT by DuckDB's '**' glob
    (its rows silently vanish), so the layout check rejects inner symlinks.
"""

import argparse
import datetime as _dt
import json
import math
import os
import sys
import traceback

try:
    import duckdb
    import polars as pl
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq
except ImportError as _e:  # pragma: no cover - exercised by hand
    print(
        f"check_readers.py: missing Python module: {_e}. "
        f"Interpreter: {sys.executable}. Install the pinned readers with "
        f"'pip install -r tests/interop/requirements.txt' (scripts/test.sh does this "
        f"in .venv and exports DIASPORA_PYTHON).",
        file=sys.stderr,
    )
    sys.exit(2)

HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
READERS = ("duckdb", "pyarrow", "polars")
REPORT_TYPES = ("utf8", "int64", "int32", "float64", "bool", "timestamp_us", "date32")
REL_TOL = 1e-9
ABS_TOL = 1e-6


class ReportError(Exception):
    """The run report itself is missing or malformed."""


# --------------------------------------------------------------------------
# report


def load_report(data_root):
    path = os.path.join(data_root, "_diaspora", "runs", "latest.json")
    try:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
    except FileNotFoundError:
        raise ReportError(f"run report {path} does not exist")
    except (OSError, ValueError) as e:
        raise ReportError(f"run report {path} is not readable JSON: {e}")
    if not isinstance(report, dict) or not isinstance(report.get("datasets"), dict):
        raise ReportError(f"run report {path}: top-level key 'datasets' missing or not an object")
    return path, report["datasets"]


def validate_spec(name, spec):
    """Return a list of problems with one dataset entry of the report."""
    errs = []

    def want(key, kind, what):
        if key not in spec:
            errs.append(f"report: dataset '{name}' has no key '{key}'")
            return False
        if not isinstance(spec[key], kind) or (kind is int and isinstance(spec[key], bool)):
            errs.append(f"report: dataset '{name}' key '{key}' must be {what}, got {spec[key]!r}")
            return False
        return True

    if not isinstance(spec, dict):
        return [f"report: dataset '{name}' is not an object: {spec!r}"]
    if want("path", str, "a string") and (
        os.path.isabs(spec["path"]) or ".." in spec["path"].split("/") or not spec["path"]
    ):
        errs.append(f"report: dataset '{name}' path {spec['path']!r} is not a relative dir under data_root")
    want("rows", int, "an integer")
    if want("partition_by", list, "a list of column names"):
        if not all(isinstance(c, str) and c for c in spec["partition_by"]):
            errs.append(f"report: dataset '{name}' partition_by must hold non-empty strings: {spec['partition_by']!r}")
        elif len(set(spec["partition_by"])) != len(spec["partition_by"]):
            errs.append(f"report: dataset '{name}' partition_by has duplicates: {spec['partition_by']!r}")
    if want("partitions", dict, "an object"):
        for k, v in spec["partitions"].items():
            if not isinstance(v, int) or isinstance(v, bool):
                errs.append(f"report: dataset '{name}' partition {k!r} count must be an integer, got {v!r}")
    if want("columns", list, "a list"):
        for c in spec["columns"]:
            if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("type"), str)):
                errs.append(f"report: dataset '{name}' column entry {c!r} must be {{\"name\": str, \"type\": str}}")
            elif c["type"] not in REPORT_TYPES:
                errs.append(
                    f"report: dataset '{name}' column '{c['name']}' has unknown type {c['type']!r} "
                    f"(expected one of {', '.join(REPORT_TYPES)})"
                )
    if want("sums", dict, "an object"):
        for k, v in spec["sums"].items():
            if v is not None and (not isinstance(v, (int, float)) or isinstance(v, bool)):
                errs.append(f"report: dataset '{name}' sum of '{k}' must be a number, got {v!r}")
    if want("nulls", dict, "an object"):
        for k, v in spec["nulls"].items():
            if not isinstance(v, int) or isinstance(v, bool):
                errs.append(f"report: dataset '{name}' null count of '{k}' must be an integer, got {v!r}")
    return errs


def parse_partition_key(key, cols):
    """'wave=2022/iso3=New York' -> ('2022', 'New York'); NULL -> None.

    Values are decoded and may themselves contain '/' or '=', so the key is
    split on the known '/<next column>=' separators, in order."""
    vals = []
    pos = 0
    for i, c in enumerate(cols):
        prefix = f"{c}="
        if not key.startswith(prefix, pos):
            return None
        start = pos + len(prefix)
        if i + 1 < len(cols):
            end = key.find(f"/{cols[i + 1]}=", start)
            if end < 0:
                return None
            pos = end + 1
        else:
            end = len(key)
        raw = key[start:end]
        vals.append(None if raw == HIVE_NULL else raw)
    return tuple(vals)


# --------------------------------------------------------------------------
# value formatting / coercion for partition keys


def fmt_value(v):
    if v is None:
        return HIVE_NULL
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and math.isnan(v):
        return "NaN"
    return str(v)


def value_kind(v):
    for kind in (bool, int, float, _dt.datetime, _dt.date, str):
        if isinstance(v, kind):
            return kind
    return type(v)


def coerce(raw, kind):
    """Parse a report partition value into the type a reader inferred.
    Returns (ok, value)."""
    if raw is None:
        return True, None
    try:
        if kind is str or kind is None:
            return True, raw
        if kind is bool:
            low = raw.lower()
            if low in ("true", "false"):
                return True, low == "true"
            return False, raw
        if kind is int:
            s = raw.strip()
            if s.lstrip("+-").isdigit():
                return True, int(s)
            return False, raw
        if kind is float:
            return True, float(raw)
        if kind is _dt.datetime:
            return True, _dt.datetime.fromisoformat(raw)
        if kind is _dt.date:
            return True, _dt.date.fromisoformat(raw)
    except ValueError:
        return False, raw
    return False, raw


def close(got, want):
    if want is None:  # JSON null: the writer's sum was NaN (serde_json writes NaN as null)
        return got is not None and isinstance(got, float) and math.isnan(got)
    if got is None:
        got = 0.0  # sum over no non-null values
    got, want = float(got), float(want)
    if math.isnan(got) or math.isnan(want):
        return math.isnan(got) and math.isnan(want)
    return math.isclose(got, want, rel_tol=REL_TOL, abs_tol=ABS_TOL)


# --------------------------------------------------------------------------
# readers. Each returns an Observation; exceptions are turned into mismatches.


class Observation:
    def __init__(self):
        self.rows = None
        self.schema = {}  # column -> reader's native type
        self.partitions = {}  # tuple of native values -> count
        self.sums = {}  # column -> number | None, or ("error", msg)
        self.nulls = {}  # column -> int
        self.notes = []


def _needed(spec, names):
    pcols = spec["partition_by"]
    sum_cols = [c for c in spec["sums"] if c in names]
    null_cols = [c for c in spec["nulls"] if c in names]
    return pcols, sum_cols, null_cols


def _qi(name):
    return '"' + name.replace('"', '""') + '"'


def _ql(s):
    return "'" + s.replace("'", "''") + "'"


DUCK_INT = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT",
            "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
DUCK_FLOAT = {"FLOAT", "DOUBLE", "REAL"}


def read_duckdb(dirpath, spec):
    obs = Observation()
    hive = bool(spec["partition_by"])
    src = f"read_parquet({_ql(dirpath + '/**/*.parquet')}, hive_partitioning={'true' if hive else 'false'})"
    con = duckdb.connect(":memory:")
    try:
        for row in con.execute(f"DESCRIBE SELECT * FROM {src}").fetchall():
            obs.schema[row[0]] = row[1]
        pcols, sum_cols, null_cols = _needed(spec, obs.schema)
        obs.rows = con.execute(f"SELECT count(*) FROM {src}").fetchone()[0]
        if pcols and all(c in obs.schema for c in pcols):
            cl = ", ".join(_qi(c) for c in pcols)
            for row in con.execute(f"SELECT {cl}, count(*) FROM {src} GROUP BY ALL").fetchall():
                obs.partitions[tuple(row[:-1])] = row[-1]
        exprs = []
        for c in sum_cols:
            t = obs.schema[c].upper()
            if t in DUCK_INT:
                exprs.append(f"sum(CAST({_qi(c)} AS HUGEINT))")
            elif t in DUCK_FLOAT or t.startswith("DECIMAL"):
                exprs.append(f"sum(CAST({_qi(c)} AS DOUBLE))")
            elif t == "BOOLEAN":
                exprs.append(f"sum(CAST({_qi(c)} AS BIGINT))")
            else:
                obs.sums[c] = ("error", f"column is {obs.schema[c]}, not numeric")
        exprs += [f"count(*) - count({_qi(c)})" for c in null_cols]
        sum_cols = [c for c in sum_cols if c not in obs.sums]
        if exprs:
            vals = con.execute(f"SELECT {', '.join(exprs)} FROM {src}").fetchone()
            for c, v in zip(sum_cols, vals):
                obs.sums[c] = v
            for c, v in zip(null_cols, vals[len(sum_cols):]):
                obs.nulls[c] = v
    finally:
        con.close()
    return obs


def read_pyarrow(dirpath, spec):
    obs = Observation()
    pcols = spec["partition_by"]
    if pcols:
        try:
            dataset = pads.dataset(dirpath, format="parquet", partitioning="hive")
        except pa.ArrowInvalid as e:
            if "infer" not in str(e):
                raise
            # pyarrow cannot infer a type for a partition column whose only value is
            # __HIVE_DEFAULT_PARTITION__; a user would have to spell out the schema.
            obs.notes.append(f"pyarrow could not infer partition types ({e}); retried with every partition column as string")
            schema = pa.schema([(c, pa.string()) for c in pcols])
            dataset = pads.dataset(dirpath, format="parquet",
                                   partitioning=pads.partitioning(schema, flavor="hive"))
    else:
        dataset = pads.dataset(dirpath, format="parquet")
    for field in dataset.schema:
        obs.schema[field.name] = field.type
    pcols, sum_cols, null_cols = _needed(spec, obs.schema)
    obs.rows = dataset.count_rows()
    have_p = [c for c in pcols if c in obs.schema] if all(c in obs.schema for c in pcols) else []
    cols = list(dict.fromkeys(have_p + sum_cols + null_cols))
    table = dataset.to_table(columns=cols) if cols else None
    if have_p:
        g = table.select(have_p).group_by(have_p).aggregate([([], "count_all")])
        for row in g.to_pylist():
            obs.partitions[tuple(row[c] for c in have_p)] = row["count_all"]
    for c in sum_cols:
        col = table[c]
        t = col.type
        if pa.types.is_integer(t) or pa.types.is_boolean(t):
            if pa.types.is_boolean(t):
                col = col.cast(pa.int64())
            s = pc.sum(col.cast(pa.decimal128(38, 0))).as_py()  # exact: int64 sums wrap
            obs.sums[c] = None if s is None else int(s)
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            obs.sums[c] = pc.sum(col.cast(pa.float64())).as_py()
        else:
            obs.sums[c] = ("error", f"column is {t}, not numeric")
    for c in null_cols:
        obs.nulls[c] = table[c].null_count
    return obs


def read_polars(dirpath, spec):
    obs = Observation()
    hive = bool(spec["partition_by"])
    lf = pl.scan_parquet(f"{dirpath}/**/*.parquet", hive_partitioning=hive)
    obs.schema = dict(lf.collect_schema().items())
    pcols, sum_cols, null_cols = _needed(spec, obs.schema)
    obs.rows = lf.select(pl.len()).collect().item()
    if pcols and all(c in obs.schema for c in pcols):
        for row in lf.group_by(pcols).len().collect().rows():
            obs.partitions[tuple(row[:-1])] = row[-1]
    exprs = []
    good_sums = []
    for c in sum_cols:
        t = obs.schema[c]
        if t.is_integer() or t == pl.Boolean:
            exprs.append(pl.col(c).cast(pl.Int128).sum().alias(f"s{len(exprs)}"))  # Int64 sums wrap
        elif t.is_float() or t.is_decimal():
            exprs.append(pl.col(c).cast(pl.Float64).sum().alias(f"s{len(exprs)}"))
        else:
            obs.sums[c] = ("error", f"column is {t}, not numeric")
            continue
        good_sums.append(c)
    for c in null_cols:
        exprs.append(pl.col(c).null_count().alias(f"s{len(exprs)}"))
    if exprs:
        vals = lf.select(exprs).collect().row(0)
        for c, v in zip(good_sums, vals):
            obs.sums[c] = v
        for c, v in zip(null_cols, vals[len(good_sums):]):
            obs.nulls[c] = v
    return obs


READ = {"duckdb": read_duckdb, "pyarrow": read_pyarrow, "polars": read_polars}


def type_matches(reader, native, want):
    if reader == "duckdb":
        t = str(native).upper()
        return {
            "utf8": t == "VARCHAR",
            "int64": t == "BIGINT",
            "int32": t == "INTEGER",
            "float64": t == "DOUBLE",
            "bool": t == "BOOLEAN",
            "timestamp_us": t in ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE"),
            "date32": t == "DATE",
        }.get(want, False)
    if reader == "pyarrow":
        t = native
        return {
            "utf8": pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t),
            "int64": t == pa.int64(),
            "int32": t == pa.int32(),
            "float64": t == pa.float64(),
            "bool": t == pa.bool_(),
            "timestamp_us": pa.types.is_timestamp(t) and t.unit == "us",
            "date32": t == pa.date32(),
        }.get(want, False)
    t = native
    return {
        "utf8": t == pl.String,
        "int64": t == pl.Int64,
        "int32": t == pl.Int32,
        "float64": t == pl.Float64,
        "bool": t == pl.Boolean,
        "timestamp_us": isinstance(t, pl.Datetime) and t.time_unit == "us",
        "date32": t == pl.Date,
    }.get(want, False)


def compare(name, reader, spec, obs, mismatches, notes):
    who = f"{name}/{reader}"
    pcols = spec["partition_by"]

    def bad(msg):
        mismatches.append(f"{who}: {msg}")

    if obs.rows != spec["rows"]:
        bad(f"total rows: report {spec['rows']}, {reader} {obs.rows}")

    # columns (file columns = everything the reader sees minus partition columns)
    for c in pcols:
        if c not in obs.schema:
            bad(f"partition column '{c}' not present in what {reader} reads (columns: {sorted(obs.schema)})")
    got_cols = {c for c in obs.schema if c not in pcols}
    want_cols = {c["name"]: c["type"] for c in spec["columns"]}
    for c in sorted(set(want_cols) - got_cols):
        bad(f"column '{c}' is in the report but {reader} does not see it")
    for c in sorted(got_cols - set(want_cols)):
        bad(f"column '{c}' ({obs.schema[c]}) is read by {reader} but not listed in the report's columns")
    for c in sorted(set(want_cols) & got_cols):
        if not type_matches(reader, obs.schema[c], want_cols[c]):
            bad(f"column '{c}': report type {want_cols[c]}, {reader} reads {obs.schema[c]}")

    # partitions
    if not pcols:
        if spec["partitions"]:
            bad(f"dataset is not partitioned (partition_by is empty) but report lists {len(spec['partitions'])} partitions")
    elif all(c in obs.schema for c in pcols):
        kinds = []
        for i in range(len(pcols)):
            ks = {value_kind(k[i]) for k in obs.partitions if k[i] is not None}
            kinds.append(ks.pop() if len(ks) == 1 else (str if not ks else None))
        reader_counts = {}
        for tup, n in obs.partitions.items():
            key = "/".join(f"{c}={fmt_value(v)}" for c, v in zip(pcols, tup))
            reader_counts[key] = reader_counts.get(key, 0) + n
        want_counts, origin = {}, {}
        for key, n in spec["partitions"].items():
            parsed = parse_partition_key(key, pcols)
            if parsed is None:
                bad(f"report partition key {key!r} is not of the form "
                    + "/".join(f"{c}=<value>" for c in pcols))
                continue
            parts = []
            for c, raw, kind in zip(pcols, parsed, kinds):
                ok, v = coerce(raw, kind) if kind is not None else (True, raw)
                parts.append(f"{c}={fmt_value(v) if ok else raw}")
            canon = "/".join(parts)
            if canon != key and n:
                notes.append(f"{who}: report partition {key!r} is read as {canon!r} ({reader} type inference)")
            want_counts[canon] = want_counts.get(canon, 0) + n
            origin.setdefault(canon, []).append(key)
        for canon, keys in origin.items():
            if len(keys) > 1:
                bad(f"report partitions {', '.join(repr(k) for k in keys)} are indistinguishable to {reader} "
                    f"(all read as {canon!r})")
        for canon in sorted(set(want_counts) | set(reader_counts)):
            w, g = want_counts.get(canon, 0), reader_counts.get(canon, 0)
            if w == g:
                continue
            label = " + ".join(repr(k) for k in origin.get(canon, [canon]))
            if canon not in reader_counts:
                bad(f"partition {label}: report {w} rows, {reader} reads no such partition")
            elif canon not in want_counts:
                bad(f"partition {canon!r}: {reader} reads {g} rows, report has no such partition")
            else:
                bad(f"partition {label}: report {w} rows, {reader} {g}")

    # sums and null counts
    for c, want in spec["sums"].items():
        if c not in obs.schema:
            bad(f"sum of '{c}': column not present in what {reader} reads")
            continue
        got = obs.sums.get(c)
        if isinstance(got, tuple):
            bad(f"sum of '{c}': {got[1]}")
        elif not close(got, want):
            bad(f"sum of '{c}': report {want!r}, {reader} {got!r}")
    for c, want in spec["nulls"].items():
        if c not in obs.schema:
            bad(f"null count of '{c}': column not present in what {reader} reads")
        elif obs.nulls.get(c) != want:
            bad(f"null count of '{c}': report {want}, {reader} {obs.nulls.get(c)}")


# --------------------------------------------------------------------------
# layout


def check_layout(name, data_root, dirpath, spec, mismatches):
    """Walk the dataset dir: only col=value dirs (in partition_by order) and
    *.parquet files at the leaf depth. Also read every Parquet footer."""
    who = f"{name}/layout"
    pcols = spec["partition_by"]
    depth = len(pcols)
    files, leaf_dirs, footer_rows = [], 0, 0
    bad = lambda msg: mismatches.append(f"{who}: {msg}")

    def rel(p):
        return os.path.relpath(p, data_root)

    def walk(d, level):
        nonlocal leaf_dirs, footer_rows
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError as e:
            bad(f"cannot list {rel(d)}: {e}")
            return
        if level == depth:
            leaf_dirs += 1
        if level > 0 and not entries:
            bad(f"empty directory {rel(d)}")
        for e in entries:
            p = e.path
            if e.is_symlink():
                bad(f"stray symlink {rel(p)} (DuckDB's ** glob does not follow symlinks inside a dataset)")
            elif e.is_dir():
                if level >= depth:
                    bad(f"stray directory {rel(p)}"
                        + (" (dataset is not partitioned)" if depth == 0 else f" (deeper than partition_by {pcols})"))
                elif not e.name.startswith(f"{pcols[level]}="):
                    bad(f"stray directory {rel(p)}: expected a name starting with '{pcols[level]}='")
                else:
                    walk(p, level + 1)
            elif e.is_file() and e.name.endswith(".parquet"):
                if level != depth:
                    bad(f"parquet file {rel(p)} is at depth {level}, expected inside {depth} partition director"
                        + ("y" if depth == 1 else "ies"))
                    continue
                files.append(p)
                try:
                    f = pq.ParquetFile(p)
                    footer_rows += f.metadata.num_rows
                    names = set(f.schema_arrow.names)
                except Exception as ex:  # noqa: BLE001
                    bad(f"cannot read Parquet footer of {rel(p)}: {type(ex).__name__}: {ex}")
                    continue
                want = {c["name"] for c in spec["columns"]}
                if names != want:
                    extra, missing = sorted(names - want), sorted(want - names)
                    bad(f"file {rel(p)} columns differ from report columns"
                        + (f"; extra {extra}" if extra else "") + (f"; missing {missing}" if missing else ""))
            else:
                bad(f"stray file {rel(p)}")

    if not os.path.isdir(dirpath):
        what = "a dangling symlink" if os.path.islink(dirpath) else ("not a directory" if os.path.exists(dirpath) else "missing")
        bad(f"dataset directory {rel(dirpath)} is {what}")
        return None, 0, 0
    walk(dirpath, 0)
    if not files:
        bad(f"no *.parquet files under {rel(dirpath)} (readers cannot read an empty dataset)")
    elif footer_rows != spec["rows"]:
        bad(f"total rows in Parquet footers: report {spec['rows']}, files {footer_rows}")
    return footer_rows, len(files), leaf_dirs


# --------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_root")
    ap.add_argument("--datasets", help="comma-separated dataset names to check (default: all in the report)")
    ap.add_argument("--json", action="store_true", help="print a JSON summary as the last stdout line")
    args = ap.parse_args(argv)

    data_root = os.path.abspath(args.data_root)
    summary = {}
    mismatches, notes = [], []
    checks = 0

    try:
        report_path, datasets = load_report(data_root)
    except ReportError as e:
        print(f"FAIL  {e}")
        print("check_readers: report could not be read; nothing was checked")
        if args.json:
            print(json.dumps(summary))
        return 1

    names = sorted(datasets)
    if args.datasets is not None:
        wanted = [n for n in (s.strip() for s in args.datasets.split(",")) if n]
        for n in wanted:
            if n not in datasets:
                mismatches.append(f"{n}: requested with --datasets but not in {os.path.relpath(report_path, data_root)} "
                                  f"(has: {', '.join(names) or 'none'})")
                print(f"FAIL  {n}  report  not in the run report")
        names = [n for n in wanted if n in datasets]
    if not names and not mismatches:
        mismatches.append("no datasets to check (report 'datasets' is empty or --datasets matched none)")
        print("FAIL  no datasets to check")

    for name in names:
        spec = datasets[name]
        summary[name] = {}
        errs = validate_spec(name, spec)
        if errs:
            mismatches.extend(errs)
            print(f"FAIL  {name}  report  malformed entry")
            for e in errs:
                print(f"    - {e}")
            for r in ("layout",) + READERS:
                summary[name][r] = {"rows": None, "ok": False}
            continue
        dirpath = os.path.join(data_root, spec["path"])

        before = len(mismatches)
        rows, nfiles, nparts = check_layout(name, data_root, dirpath, spec, mismatches)
        ok = len(mismatches) == before
        checks += 1
        summary[name]["layout"] = {"rows": rows, "ok": ok}
        print(f"{'ok' if ok else 'FAIL'}  {name}  layout  files={nfiles} rows={rows} partitions={nparts if spec['partition_by'] else 0}")
        for m in mismatches[before:]:
            print(f"    - {m}")
        if rows is None:  # directory missing: the readers would only repeat it
            for r in READERS:
                summary[name][r] = {"rows": None, "ok": False}
            continue

        for reader in READERS:
            before, nbefore = len(mismatches), len(notes)
            obs = None
            try:
                obs = READ[reader](dirpath, spec)
            except Exception as e:  # noqa: BLE001 - any reader failure is a mismatch
                msg = str(e).strip().splitlines()
                mismatches.append(f"{name}/{reader}: {reader} failed to read {spec['path']}: "
                                  f"{type(e).__name__}: {' | '.join(msg[:6])}")
            if obs is not None:
                notes.extend(f"{name}/{reader}: {n}" for n in obs.notes)
                try:
                    compare(name, reader, spec, obs, mismatches, notes)
                except Exception as e:  # noqa: BLE001
                    mismatches.append(f"{name}/{reader}: comparison crashed: {type(e).__name__}: {e}")
                    traceback.print_exc()
            ok = len(mismatches) == before
            checks += 1
            rows = obs.rows if obs is not None else None
            nparts = len(obs.partitions) if obs is not None else 0
            summary[name][reader] = {"rows": rows, "ok": ok}
            print(f"{'ok' if ok else 'FAIL'}  {name}  {reader}  rows={rows} partitions={nparts}")
            for n in notes[nbefore:]:
                print(f"    note: {n}")
            for m in mismatches[before:]:
                print(f"    - {m}")

    if mismatches:
        print(f"check_readers: {len(mismatches)} mismatch(es) in {len(names)} dataset(s) under {data_root}:")
        for m in mismatches:
            print(f"  MISMATCH {m}")
    else:
        print(f"check_readers: all {checks} checks ok ({len(names)} dataset(s) x layout+{'+'.join(READERS)})")
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    sys.stdout.flush()
    return 1 if mismatches else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except BaseException:  # never exit 0 when something unexpected happened
        traceback.print_exc()
        print("check_readers: internal error (see traceback above); treating as failure")
        sys.exit(1)
