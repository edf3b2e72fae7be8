#!/usr/bin/env python3
"""Build sample World Bank Indicators API v2 JSON pages from the bundled WDI CSVs.

Reads   data/reference/wdi-csv/   (real World Bank / datahub files, see its PROVENANCE.md)
Writes  data/sample/worldbank/<INDICATOR>_p<N>.json

Each file is one page of a real-shaped API v2 response: a 2-element JSON array
[meta, records].  Values are the source's number tokens copied verbatim (full
precision); a missing source cell becomes JSON null, never 0.

Usage:  python3 scripts/build_sample_worldbank.py
(Python 3.11 stdlib only; paths are resolved from this file's location, so it
can be run from any working directory.  Output is byte-deterministic.)
"""

import csv
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REF = REPO / "data" / "reference" / "wdi-csv"
OUT = REPO / "data" / "sample" / "worldbank"

GDP_GROWTH_CSV = REF / "API_NY.GDP.MKTP.KD.ZG_DS2_en_csv_v2_2788350.csv"
COUNTRY_META_CSV = REF / "Metadata_Country_API_NY.GDP.MKTP.KD.ZG_DS2_en_csv_v2_2788350.csv"
CPI_WIDE_CSV = REF / "FP.CPI.TOTL.ZG_wide_2025.csv"
GDP_USD_LONG_CSV = REF / "gdp_current_usd_long.csv"

YEARS = list(range(2015, 2025))
PER_PAGE = 100

# The 29 host countries of the emigre panel (ISO3) -> ISO 3166-1 alpha-2,
# which the API returns as country.id.  (The WDI bulk CSVs carry no ISO2.)
HOSTS = {
    "ARM": "AM", "GEO": "GE", "TUR": "TR", "KAZ": "KZ", "SRB": "RS", "DEU": "DE",
    "ISR": "IL", "USA": "US", "GBR": "GB", "FRA": "FR", "FIN": "FI", "EST": "EE",
    "LVA": "LV", "LTU": "LT", "POL": "PL", "CZE": "CZ", "NLD": "NL", "ESP": "ES",
    "PRT": "PT", "CYP": "CY", "MNE": "ME", "KGZ": "KG", "UZB": "UZ", "ARE": "AE",
    "THA": "TH", "IDN": "ID", "ARG": "AR", "CAN": "CA", "MNG": "MN",
}

# Vintages: the raw file states its own "Last Updated Date" in the preamble
# (read below); the datahub files carry none, so the date of the datahub
# commit the copy was taken from is used (see data/reference/wdi-csv/PROVENANCE.md).
CPI_LASTUPDATED = "2025-07-01"
GDP_USD_LASTUPDATED = "2026-03-20"
GDP_USD_NAME = "GDP (current US$)"  # not in the long file; official WDI name

# Real API: "decimal":1 for the % indicators, "decimal":0 for NY.GDP.MKTP.CD
# (see the recorded response in shared/data/worldbank-api-v2-json).
DECIMALS = {"NY.GDP.MKTP.KD.ZG": 1, "FP.CPI.TOTL.ZG": 1, "NY.GDP.MKTP.CD": 0}

# To mirror real API messiness: on these (indicator, page) pairs the meta
# numbers are JSON strings, as on the API's metadata endpoints.
STRING_META_PAGES = {("FP.CPI.TOTL.ZG", 2)}

JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\Z")


def die(msg):
    sys.exit(f"build_sample_worldbank: {msg}")


def number_token(text, where):
    """Source cell -> JSON value text: the number verbatim, or 'null' if empty."""
    text = text.strip()
    if text == "":
        return "null"
    if not JSON_NUMBER.match(text):
        die(f"{where}: {text!r} is not a JSON number")
    float(text)  # sanity
    return text


def read_wide(path, code, skip_preamble):
    """WB wide layout -> (vintage or None, {iso3: (name, indicator_name, {year: cell})})."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    vintage = None
    if skip_preamble:
        pre, rows = rows[:4], rows[4:]
        if pre[0][:2] != ["Data Source", "World Development Indicators"]:
            die(f"{path.name}: unexpected preamble {pre[0]!r}")
        if pre[2][0] != "Last Updated Date":
            die(f"{path.name}: no 'Last Updated Date' in preamble")
        vintage = pre[2][1]
    header = rows[0]
    if header[:4] != ["Country Name", "Country Code", "Indicator Name", "Indicator Code"]:
        die(f"{path.name}: unexpected header {header[:4]!r}")
    col = {h: i for i, h in enumerate(header)}
    out = {}
    for r in rows[1:]:
        if not r:
            continue
        # Validate the indicator code, never trust the file name.
        if r[3] != code:
            die(f"{path.name}: row {r[1]} has indicator {r[3]!r}, expected {code!r}")
        cells = {y: (r[col[str(y)]] if str(y) in col else "") for y in YEARS}
        out[r[1]] = (r[0], r[2], cells)
    return vintage, out


def read_long(path):
    """datahub long layout (Country Name,Country Code,Year,Value) -> {iso3: (name, {year: cell})}."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        rd = csv.DictReader(f)
        if rd.fieldnames != ["Country Name", "Country Code", "Year", "Value"]:
            die(f"{path.name}: unexpected header {rd.fieldnames!r}")
        out = {}
        for r in rd:
            name, cells = out.setdefault(r["Country Code"], (r["Country Name"], {}))
            cells[int(r["Year"])] = r["Value"]
    return out


def record_json(code, ind_name, iso3, name, year, value_token):
    # Key order and compact separators follow the real API payloads.
    return (
        '{"indicator":{"id":%s,"value":%s},"country":{"id":%s,"value":%s},'
        '"countryiso3code":%s,"date":%s,"value":%s,"unit":"","obs_status":"","decimal":%d}'
        % (
            json.dumps(code), json.dumps(ind_name, ensure_ascii=False),
            json.dumps(HOSTS[iso3]), json.dumps(name, ensure_ascii=False),
            json.dumps(iso3), json.dumps(str(year)), value_token, DECIMALS[code],
        )
    )


def write_pages(code, lastupdated, series):
    """series: list of (iso3, name, ind_name, {year: token}) already in output order."""
    records = []
    for iso3, name, ind_name, tokens in series:
        for year in sorted(YEARS, reverse=True):  # date descending, like the API
            records.append(record_json(code, ind_name, iso3, name, year, tokens[year]))
    total = len(records)
    pages = (total + PER_PAGE - 1) // PER_PAGE
    written = []
    for p in range(1, pages + 1):
        chunk = records[(p - 1) * PER_PAGE: p * PER_PAGE]
        meta = {"page": p, "pages": pages, "per_page": PER_PAGE, "total": total,
                "sourceid": "2", "sourcename": "World Development Indicators",
                "lastupdated": lastupdated}
        if (code, p) in STRING_META_PAGES:
            for k in ("page", "pages", "per_page", "total"):
                meta[k] = str(meta[k])
        text = "[" + json.dumps(meta, separators=(",", ":")) + ",[" + ",".join(chunk) + "]]\n"
        json.loads(text)  # must parse
        path = OUT / f"{code}_p{p}.json"
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        written.append((path, len(chunk)))
    return written


def main():
    for p in (GDP_GROWTH_CSV, COUNTRY_META_CSV, CPI_WIDE_CSV, GDP_USD_LONG_CSV):
        if not p.is_file():
            die(f"missing reference file {p}")

    # Country metadata: every host must be a real country (non-empty Region).
    with open(COUNTRY_META_CSV, encoding="utf-8-sig", newline="") as f:
        meta = {r["Country Code"]: r for r in csv.DictReader(f)}
    for iso3 in HOSTS:
        if iso3 not in meta or not meta[iso3]["Region"]:
            die(f"{iso3} is not a country in {COUNTRY_META_CSV.name}")

    gdpg_vintage, gdpg = read_wide(GDP_GROWTH_CSV, "NY.GDP.MKTP.KD.ZG", skip_preamble=True)
    _, cpi = read_wide(CPI_WIDE_CSV, "FP.CPI.TOTL.ZG", skip_preamble=False)
    gdpusd = read_long(GDP_USD_LONG_CSV)

    # Country name as the API shows it = the data-row name of the WDI file
    # (e.g. "Turkiye", "Kyrgyz Republic"), not Metadata_Country TableName.
    names = {iso3: gdpg[iso3][0] for iso3 in HOSTS}
    order = sorted(HOSTS, key=lambda c: names[c])  # API: alphabetical by country name

    OUT.mkdir(parents=True, exist_ok=True)
    summary = []

    def tok(cell, where):
        return number_token(cell, where)

    series = [(c, names[c], gdpg[c][1],
               {y: tok(gdpg[c][2][y], f"GDP growth {c} {y}") for y in YEARS}) for c in order]
    summary.append(("NY.GDP.MKTP.KD.ZG", gdpg_vintage, series,
                    write_pages("NY.GDP.MKTP.KD.ZG", gdpg_vintage, series)))

    series = [(c, names[c], cpi[c][1],
               {y: tok(cpi[c][2][y], f"CPI {c} {y}") for y in YEARS}) for c in order]
    summary.append(("FP.CPI.TOTL.ZG", CPI_LASTUPDATED, series,
                    write_pages("FP.CPI.TOTL.ZG", CPI_LASTUPDATED, series)))

    series = [(c, names[c], GDP_USD_NAME,
               {y: tok(gdpusd.get(c, ("", {}))[1].get(y, ""), f"GDP US$ {c} {y}") for y in YEARS})
              for c in order]
    summary.append(("NY.GDP.MKTP.CD", GDP_USD_LASTUPDATED, series,
                    write_pages("NY.GDP.MKTP.CD", GDP_USD_LASTUPDATED, series)))

    for code, vintage, series, written in summary:
        nulls = [(c, y) for c, _, _, t in series for y in YEARS if t[y] == "null"]
        print(f"{code}: lastupdated {vintage}, {sum(n for _, n in written)} records in "
              f"{len(written)} pages, {len(nulls)} null values")
        by_year = {}
        for c, y in nulls:
            by_year.setdefault(y, []).append(c)
        for y in sorted(by_year):
            cs = by_year[y]
            print(f"    null {y}: " + ("all countries" if len(cs) == len(HOSTS) else " ".join(cs)))
        for path, n in written:
            print(f"    {path.relative_to(REPO)} ({n} records)")


if __name__ == "__main__":
    main()
