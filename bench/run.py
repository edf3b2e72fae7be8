#!/usr/bin/env python3
"""Benchmark: the survey ETL in diaspora against the DuckDB and Polars references, in one run.

usage: python3 bench/run.py N [RUNS] [--threads 2,1] [--shared ../shared/bench] [--keep]

  N        survey rows to generate (../shared/bench/gen.py, seed 42; regenerated when N changes)
  RUNS     timed runs per tool (default 3), alternating tools so machine noise hits all alike
  --threads diaspora thread counts to time (default 2,1); DuckDB and Polars use all cores

Needs ../shared/bench (the generator and the reference ETLs) and target/release/diaspora
(`cargo build --release`). Creates bench/.venv with ../shared/bench/requirements.txt on first use.
Generated data (bench/data/<N>/, one folder per size) and outputs (bench/out) are git-ignored, never committed.

For every run it records wall time and the peak RSS of the process (os.wait4), checks that the outputs
agree (rows per wave/iso3 partition, sums and non-null counts of the numeric columns both keep, country
rejects per reason), and prints medians and ratios against DuckDB, as a Markdown table.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DATA = os.path.join(HERE, "data")
OUT = os.path.join(HERE, "out")
VENV = os.path.join(HERE, ".venv")
SUM_COLS = ["age", "weight", "Duration", "Progress", "Q_income_band", "Q_children", "return_intent",
            "Q_sat_1", "ny_gdp_pcap_cd", "sp_pop_totl", "fp_cpi_totl_zg"]


def venv_python(shared):
    py = os.path.join(VENV, "bin", "python")
    if not os.path.exists(py):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r",
                        os.path.join(shared, "requirements.txt")], check=True)
    return py


def generate(py, shared, n):
    """Generates the data for n rows into bench/data/<n>/ (kept, so several sizes can be timed in turn)."""
    data = os.path.join(DATA, str(n))
    stamp = os.path.join(data, ".complete")
    if os.path.exists(stamp):
        return data
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    subprocess.run([py, os.path.join(shared, "gen.py"), str(n), data], check=True)
    open(stamp, "w").close()
    return data


def pipeline_for(data):
    """bench/bench.toml with its inputs pointed at this size's data, written beside the outputs."""
    text = open(os.path.join(HERE, "bench.toml")).read().replace("bench/data/", os.path.relpath(data, REPO) + "/")
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, f"bench-{os.path.basename(data)}.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def timed(cmd, env=None, cwd=REPO):
    """Runs cmd; returns (seconds, peak RSS in MB)."""
    t = time.monotonic()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    took = time.monotonic() - t
    err = p.stderr.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return took, usage.ru_maxrss / 1024


def summary(py, respondents_dir, rejects):
    """Partition counts and sums, computed by pyarrow in the bench venv (prints JSON)."""
    code = r'''
import json, sys
import pyarrow.dataset as ds, pyarrow.compute as pc
d = ds.dataset(sys.argv[1], format="parquet", partitioning="hive")
t = d.to_table()
cols = [c for c in json.loads(sys.argv[2]) if c in t.column_names]
parts = {}
for w, i in zip(t.column("wave").to_pylist(), t.column("iso3").to_pylist()):
    parts[f"{w}/{i}"] = parts.get(f"{w}/{i}", 0) + 1
sums = {c: [pc.sum(t.column(c)).as_py(), t.column(c).null_count] for c in cols}
rej = {}
if sys.argv[3]:
    r = ds.dataset(sys.argv[3], format="parquet").to_table()
    col = "reject_reason" if "reject_reason" in r.column_names else "reason"
    for x in r.column(col).to_pylist():
        rej[x] = rej.get(x, 0) + 1
print(json.dumps({"rows": t.num_rows, "columns": t.column_names, "parts": parts, "sums": sums, "rejects": rej}))
'''
    import json
    out = subprocess.run([py, "-c", code, respondents_dir, json.dumps(SUM_COLS), rejects or ""],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def agree(a, b, name):
    problems = []
    if a["parts"] != b["parts"]:
        diff = {k for k in set(a["parts"]) | set(b["parts"]) if a["parts"].get(k) != b["parts"].get(k)}
        problems.append(f"{len(diff)} partitions differ, e.g. {sorted(diff)[:3]}")
    for c, (s, n) in a["sums"].items():
        if c in b["sums"]:
            s2, n2 = b["sums"][c]
            if n != n2 or (s or 0) != (s2 or 0) and abs((s or 0) - (s2 or 0)) > 1e-9 * max(1.0, abs(s or 0)):
                problems.append(f"{c}: sum {s} vs {s2}, nulls {n} vs {n2}")
    for reason in ("country_missing", "country_unmapped"):
        if a["rejects"].get(reason, 0) != b["rejects"].get(reason, 0):
            problems.append(f"rejects {reason}: {a['rejects'].get(reason, 0)} vs {b['rejects'].get(reason, 0)}")
    if problems:
        sys.exit(f"outputs of DuckDB and {name} disagree:\n  " + "\n  ".join(problems))
    return sorted(set(a["sums"]) & set(b["sums"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int)
    ap.add_argument("runs", type=int, nargs="?", default=3)
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--shared", default=os.path.join(REPO, "..", "shared", "bench"))
    args = ap.parse_args()
    shared = os.path.abspath(args.shared)
    binary = os.path.join(REPO, "target", "release", "diaspora")
    if not os.path.exists(os.path.join(shared, "gen.py")):
        sys.exit(f"no benchmark references at {shared}")
    if not os.path.exists(binary):
        sys.exit("build first: cargo build --release")
    py = venv_python(shared)
    data = generate(py, shared, args.n)
    pipeline = pipeline_for(data)
    size = os.path.getsize(os.path.join(data, "survey.csv")) / 1e6
    tools = {
        "DuckDB": lambda out: [py, os.path.join(shared, "etl_duckdb.py"), data, out],
        "Polars": lambda out: [py, os.path.join(shared, "etl_polars.py"), data, out],
    }
    threads = [int(t) for t in args.threads.split(",")]
    for t in threads:
        tools[f"diaspora ({t} thread{'s' if t > 1 else ''})"] = (
            lambda out, t=t: [binary, "-q", "--data-root", out, "run", pipeline], t)
    results = {name: [] for name in tools}
    for run in range(args.runs):
        for name, spec in tools.items():
            out = os.path.join(OUT, name.split()[0].lower() + (str(spec[1]) if isinstance(spec, tuple) else ""))
            shutil.rmtree(out, ignore_errors=True)
            env = dict(os.environ)
            if isinstance(spec, tuple):
                cmd, t = spec[0](out), spec[1]
                env["DIASPORA__THREADS"] = str(t)
            else:
                cmd = spec(out)
            results[name].append(timed(cmd, env))
            print(f"run {run + 1}/{args.runs} {name}: {results[name][-1][0]:.2f} s, {results[name][-1][1]:.0f} MB",
                  file=sys.stderr)
    # Agreement, on the last run's outputs.
    ref = summary(py, os.path.join(OUT, "duckdb", "respondents"), os.path.join(OUT, "duckdb", "rejects.parquet"))
    pol = summary(py, os.path.join(OUT, "polars", "respondents"), os.path.join(OUT, "polars", "rejects.parquet"))
    agree(ref, pol, "Polars")
    checked = []
    for t in threads:
        out = os.path.join(OUT, f"diaspora{t}")
        ours = summary(py, os.path.join(out, "respondents"), os.path.join(out, "rejects"))
        checked = agree(ref, ours, f"diaspora ({t} threads)")
    base_t = statistics.median(r[0] for r in results["DuckDB"])
    base_m = statistics.median(r[1] for r in results["DuckDB"])
    print(f"\n{args.n:,} rows ({size:.0f} MB CSV), median of {args.runs} alternating runs; outputs agree "
          f"(rows per partition, sums and nulls of {', '.join(checked)}, country rejects)\n")
    print("| tool | wall (median) | × DuckDB | peak RSS (median) | × DuckDB |")
    print("|---|---:|---:|---:|---:|")
    for name, rs in results.items():
        t = statistics.median(r[0] for r in rs)
        m = statistics.median(r[1] for r in rs)
        print(f"| {name} | {t:.2f} s | {t / base_t:.2f} | {m:.0f} MB | {m / base_m:.2f} |")


if __name__ == "__main__":
    main()
