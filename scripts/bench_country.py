#!/usr/bin/env python3
"""Accuracy benchmark: the diaspora country resolver vs the Python package country_converter.

Usage:
    python3 scripts/bench_country.py [--diaspora PATH_TO_BINARY]
                                     [--skip-diaspora] [--skip-coco]
                                     [--only LIST ...] [--max-misses N]

Lists (scripts/country_lists/*.tsv, UTF-8, LF, header `text<TAB>expected`, no quoting; a
text may have leading/trailing spaces and never contains a tab, CR or LF):
    wdi_economies.tsv     every WDI economy (Metadata_Country row with a Region) by its WDI
                          "Country Name" -> its WDI Country Code (XKX and CHI are not ISO codes)
    wdi_aggregates.tsv    every WDI aggregate (Metadata_Country row without a Region) -> REGION
    survey_spellings.tsv  data/sample/survey/country_spellings.tsv minus EMPTY rows, then
                          hand-written realistic survey answers
    garbage.tsv           non-answers -> UNRESOLVED
expected is an ISO 3166-1 alpha-3 code (or XKX / CHI), REGION or UNRESOLVED.

diaspora protocol: `<binary> country --batch` is run once per list; stdin gets one text per
line (UTF-8, each line ended by LF, texts sent verbatim, spaces kept); stdout must have exactly
one line per input line, in order: `input<TAB>status<TAB>iso3`, status in
{country, region, unresolved, ambiguous, empty}, iso3 non-empty iff status is country.
Lines are matched by position; an echoed input that differs from what was sent is reported as a
warning (not an error). A wrong line count, an unknown status or a bad iso3 field is a protocol
error (exit 1).

Scoring (the same rule for both tools as far as their outputs allow):
    expected ISO3        diaspora: status == country and iso3 == expected
                         country_converter: exactly one match and it equals expected
    expected REGION      diaspora: status == region
                         country_converter: no match at all ("not found"). country_converter
                         has no notion of aggregates/regions (its to='ISO3' output is always a
                         country code or the not_found filler), so declining to name a country
                         is the best answer it can give; this is more lenient than the rule for
                         diaspora, which must say "region" (plain unresolved counts as a miss).
    expected UNRESOLVED  diaspora: status in {unresolved, ambiguous}
                         country_converter: not found, or more than one match (its ambiguous)
country_converter is called as `convert(names=[...], to='ISO3', not_found=SENTINEL,
enforce_list=True)`: with not_found=None it returns the input itself for a miss, which cannot
be told apart from a found code equal to the input (e.g. "GEO"), so a sentinel is used instead.
Both tools get the identical raw text.

This script installs nothing. Exit codes: 0 done, 1 protocol/input error, 2 missing tool.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import unicodedata

COCO_VERSION = "1.3.2"
# country_converter 1.3.2 fails on pandas 3 (TypeError while compiling its ISO2 regexes).
COCO_INSTALL = f"pip install country_converter=={COCO_VERSION} 'pandas<3'"
LIST_NAMES = ["wdi_economies", "wdi_aggregates", "survey_spellings", "garbage"]
STATUSES = {"country", "region", "unresolved", "ambiguous", "empty"}
NOT_FOUND = "\x00not-found\x00"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


class BenchError(Exception):
    """A protocol or input error: the numbers would be meaningless."""


def load_list(path):
    """Read a `text<TAB>expected` list; texts are kept verbatim (no stripping)."""
    with open(path, "rb") as f:
        data = f.read().decode("utf-8")
    lines = data.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "text\texpected":
        raise BenchError(f"{path}: header must be 'text<TAB>expected'")
    rows = []
    for no, line in enumerate(lines[1:], start=2):
        if "\r" in line:
            raise BenchError(f"{path}:{no}: CR in line (file must use LF line ends)")
        parts = line.split("\t")
        if len(parts) != 2:
            raise BenchError(f"{path}:{no}: expected 2 tab-separated fields, got {len(parts)}")
        text, expected = parts
        if not (expected in ("REGION", "UNRESOLVED") or (len(expected) == 3 and expected.isascii()
                                                         and expected.isalpha() and expected.isupper())):
            raise BenchError(f"{path}:{no}: bad expected value {expected!r}")
        rows.append((text, expected))
    return rows


def show(text):
    """Quote a text so leading/trailing spaces, NBSP and other invisible characters are visible."""
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch != " " and (cat.startswith("Z") or cat.startswith("C")):
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return json.dumps("".join(out), ensure_ascii=False).replace("\\\\u", "\\u").replace("|", "\\|")


# ---------------------------------------------------------------- diaspora

def find_binary(path):
    """Return the binary path and the paths tried (relative: cwd first, then the repo root)."""
    if os.path.isabs(path) or os.path.exists(path):
        return path, [path]
    alt = os.path.join(REPO, path)
    return (alt if os.path.exists(alt) else path), list(dict.fromkeys([os.path.abspath(path), alt]))


def run_diaspora(binary, texts, timeout):
    payload = "".join(t + "\n" for t in texts).encode("utf-8")
    try:
        proc = subprocess.run([binary, "country", "--batch"], input=payload,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise BenchError(f"{binary} country --batch did not finish within {timeout} s")
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()[-2000:]
        raise BenchError(f"{binary} country --batch exited with {proc.returncode}: {err}")
    try:
        out = proc.stdout.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BenchError(f"diaspora output is not UTF-8: {e}")
    lines = out.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) != len(texts):
        raise BenchError(f"diaspora printed {len(lines)} lines for {len(texts)} inputs")
    results, echo_mismatch = [], []
    for i, (line, text) in enumerate(zip(lines, texts), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        parts = line.rsplit("\t", 2)
        if len(parts) != 3:
            raise BenchError(f"diaspora output line {i} has no 3 tab-separated fields: {line!r}")
        echo, status, iso3 = parts
        if status not in STATUSES:
            raise BenchError(f"diaspora output line {i}: unknown status {status!r}")
        if status == "country":
            if not (len(iso3) == 3 and iso3.isascii() and iso3.isalpha() and iso3.isupper()):
                raise BenchError(f"diaspora output line {i}: status country with iso3 {iso3!r}")
        elif iso3 != "":
            raise BenchError(f"diaspora output line {i}: status {status} with non-empty iso3 {iso3!r}")
        if echo != text:
            echo_mismatch.append((i, text, echo))
        results.append((status, iso3))
    return results, echo_mismatch


def score_diaspora(expected, result):
    status, iso3 = result
    if expected == "REGION":
        return status == "region"
    if expected == "UNRESOLVED":
        return status in ("unresolved", "ambiguous")
    return status == "country" and iso3 == expected


def fmt_diaspora(result):
    status, iso3 = result
    return f"country {iso3}" if status == "country" else status


# ---------------------------------------------------------------- country_converter

def load_coco():
    try:
        import country_converter as coco  # noqa: WPS433 (optional dependency)
    except ImportError:
        print(f"country_converter is not installed. Install it with:\n    {COCO_INSTALL}",
              file=sys.stderr)
        sys.exit(2)
    version = getattr(coco, "__version__", "?")
    if version != COCO_VERSION:
        print(f"warning: country_converter {version} installed, the benchmark was made with "
              f"{COCO_VERSION} ({COCO_INSTALL}); numbers may differ", file=sys.stderr)
    logging.getLogger("country_converter").setLevel(logging.ERROR)
    try:
        conv = coco.CountryConverter()
    except TypeError as e:
        print(f"country_converter {version} does not work with the installed pandas ({e}). "
              f"Install:\n    {COCO_INSTALL}", file=sys.stderr)
        sys.exit(2)
    return conv, version


def run_coco(conv, texts):
    out = conv.convert(names=list(texts), to="ISO3", not_found=NOT_FOUND, enforce_list=True)
    if len(texts) == 1 and out and not isinstance(out[0], list):
        out = [out]
    if len(out) != len(texts):
        raise BenchError(f"country_converter returned {len(out)} results for {len(texts)} names")
    results = []
    for r in out:
        r = r if isinstance(r, list) else [r]
        results.append([] if r == [NOT_FOUND] else [str(x) for x in r])
    return results


def score_coco(expected, result):
    if expected == "REGION":
        return result == []
    if expected == "UNRESOLVED":
        return len(result) != 1
    return result == [expected]


def fmt_coco(result):
    return "not found" if not result else "|".join(result)


# ---------------------------------------------------------------- main

def pct(k, n):
    return f"{100.0 * k / n:.1f}" if n else "-"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--diaspora", default="target/release/diaspora",
                    help="path of the diaspora binary (default: target/release/diaspora, "
                         "relative to the current directory, else to the repository root)")
    ap.add_argument("--lists", default=os.path.join(HERE, "country_lists"),
                    help="directory with the *.tsv lists")
    ap.add_argument("--only", action="append", choices=LIST_NAMES,
                    help="run only this list (repeatable)")
    ap.add_argument("--skip-diaspora", action="store_true", help="score country_converter only")
    ap.add_argument("--skip-coco", action="store_true", help="score diaspora only")
    ap.add_argument("--max-misses", type=int, default=20, help="misses shown per list and tool")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds per diaspora run")
    a = ap.parse_args(argv)

    names = a.only or LIST_NAMES
    try:
        lists = {n: load_list(os.path.join(a.lists, n + ".tsv")) for n in names}
    except (OSError, BenchError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    binary = None
    if not a.skip_diaspora:
        binary, tried = find_binary(a.diaspora)
        if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
            print(f"diaspora binary not found or not executable (tried {', '.join(tried)});\n"
                  f"build it (cargo build --release), pass --diaspora PATH, or use --skip-diaspora",
                  file=sys.stderr)
            return 2
    conv = coco_version = None
    if not a.skip_coco:
        conv, coco_version = load_coco()

    tools = []
    if binary:
        tools.append(("diaspora", lambda texts: run_diaspora(binary, texts, a.timeout),
                      score_diaspora, fmt_diaspora))
    if conv is not None:
        tools.append((f"country_converter", lambda texts: (run_coco(conv, texts), []),
                      score_coco, fmt_coco))

    table, misses, warnings = [], [], []
    totals = {t[0]: [0, 0] for t in tools}
    try:
        for name in names:
            rows = lists[name]
            texts = [t for t, _ in rows]
            cells = [name, str(len(rows))]
            for tool, run, score, fmt in tools:
                results, echo_mismatch = run(texts)
                if echo_mismatch:
                    i, sent, got = echo_mismatch[0]
                    warnings.append(f"{tool} {name}: {len(echo_mismatch)} echoed inputs differ from "
                                    f"what was sent (first: line {i} sent {show(sent)} got {show(got)})")
                bad = [(t, e, fmt(r)) for (t, e), r in zip(rows, results) if not score(e, r)]
                ok = len(rows) - len(bad)
                totals[tool][0] += ok
                totals[tool][1] += len(rows)
                cells.append(pct(ok, len(rows)))
                misses.append((tool, name, len(rows), bad))
            table.append(cells)
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    head = ["list", "n"] + [f"{t[0]} %" for t in tools]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for cells in table:
        print("| " + " | ".join(cells) + " |")
    if len(names) > 1:
        n_all = sum(len(lists[n]) for n in names)
        print("| **all** | " + str(n_all) + " | "
              + " | ".join(pct(*totals[t[0]]) for t in tools) + " |")
    print()
    if coco_version:
        print(f"country_converter {coco_version}; lists in {os.path.relpath(a.lists)}")
        print()
    for w in warnings:
        print(f"warning: {w}")
        print()
    for tool, name, n, bad in misses:
        print(f"### {tool} misses in {name}: {len(bad)} of {n}")
        if bad:
            print()
            print("| text | expected | got |")
            print("|---|---|---|")
            for text, exp, got in bad[:a.max_misses]:
                print(f"| {show(text)} | {exp} | {got} |")
            if len(bad) > a.max_misses:
                print(f"\n… and {len(bad) - a.max_misses} more")
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
