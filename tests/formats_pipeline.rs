//! One pipeline over every input format the readers support, end to end: each source balances, the datasets
//! open in DuckDB, pyarrow and Polars as reported, a Windows-1251 copy of the survey gives the same dataset as
//! the UTF-8 original, and every line of the Big List of Naughty Strings survives from CSV to Parquet unchanged.

mod common;

use common::*;
use std::path::Path;

fn formats_pipeline(dir: &Path) -> std::path::PathBuf {
    // The sample survey re-encoded as Windows-1251 (a Russian Excel export), without saying so.
    let utf8 = std::fs::read_to_string(repo().join("data/sample/survey/emigre_panel_2022_2024.csv")).unwrap();
    // Emoji have no Windows-1251 form; compare on a copy without them.
    let plain: String = utf8.chars().filter(|c| !encoding_rs::WINDOWS_1251.encode(&c.to_string()).2).collect();
    std::fs::write(dir.join("survey_utf8.csv"), &plain).unwrap();
    std::fs::write(dir.join("survey_1251.csv"), encoding_rs::WINDOWS_1251.encode(&plain).0).unwrap();
    std::fs::write(
        dir.join("sdmx.csv"),
        "STRUCTURE,STRUCTURE_ID,ACTION,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE\n\
         dataflow,IMF:WEO(1.0),M,GEO,NGDP_RPCH,2022,10.4\n\
         dataflow,IMF:WEO(1.0),M,ARM,NGDP_RPCH,2022,12.6\n\
         dataflow,IMF:WEO(1.0),M,ARM,NGDP_RPCH,2022-Q1,3.1\n",
    )
    .unwrap();
    let fmt = |p: &str| repo().join(p).display().to_string();
    let text = format!(
        r#"
name = "formats"

[[sources]]
id = "survey_utf8"
kind = "file"
location = "{d}/survey_utf8.csv"
format = "qualtrics_csv"
[[sources.steps]]
op = "select"
columns = ["Status", "Finished", "Q1", "Q3", "wave"]

[[sources]]
id = "survey_1251"
kind = "file"
location = "{d}/survey_1251.csv"
format = "qualtrics_csv"
[[sources.steps]]
op = "select"
columns = ["Status", "Finished", "Q1", "Q3", "wave"]

[[sources]]
id = "legacy"
kind = "file"
location = "{legacy}"
format = "qualtrics_csv"

[[sources]]
id = "limesurvey"
kind = "file"
location = "{ls}"
format = "limesurvey_csv"
[[sources.steps]]
op = "select"
columns = ["Date submitted", "Last page", "Start language"]

[[sources]]
id = "wdi"
kind = "file"
location = "{wdi}"
format = "wdi_csv"
countries = ["ARM", "GEO"]
years = "2015:2023"
[sources.indicators]
"NY.GDP.MKTP.KD.ZG" = "gdp_growth"

[[sources]]
id = "weo"
kind = "file"
location = "{weo}"
format = "imf_weo"

[[sources]]
id = "workbook"
kind = "file"
location = "{xlsx}"
format = "xlsx"
[[sources.steps]]
op = "cast"
column = "Age"
to = "int32"
[[sources.steps]]
op = "timestamps"
columns = ["Submitted"]
time_zone = "UTC"

[[sources]]
id = "spss"
kind = "file"
location = "{sav}"
format = "spss"
[[sources.steps]]
op = "labels"
column = "mylabl"

[[sources]]
id = "sdmx"
kind = "file"
location = "{d}/sdmx.csv"
format = "sdmx_csv"
indicator_dimension = "INDICATOR"

[[combine]]
kind = "pivot"
id = "wdi_wide"
from = "wdi"

[[outputs]]
dataset = "survey_utf8"
from = "survey_utf8"
[[outputs]]
dataset = "survey_1251"
from = "survey_1251"
[[outputs]]
dataset = "legacy"
from = "legacy"
[[outputs]]
dataset = "limesurvey"
from = "limesurvey"
[[outputs]]
dataset = "wdi"
from = "wdi_wide"
partition_by = ["year"]
[[outputs]]
dataset = "weo"
from = "weo"
[[outputs]]
dataset = "workbook"
from = "workbook"
[[outputs]]
dataset = "spss"
from = "spss"
[[outputs]]
dataset = "sdmx"
from = "sdmx"
"#,
        d = dir.display(),
        legacy = fmt("crates/diaspora-formats/tests/data/qualtrics/sample_legacy_format_2017.csv"),
        ls = fmt("crates/diaspora-formats/tests/data/limesurvey/unit_test_quality_survey_results.csv"),
        wdi = fmt("data/reference/wdi-csv/API_NY.GDP.MKTP.KD.ZG_DS2_en_csv_v2_2788350.csv"),
        weo = fmt("crates/diaspora-formats/tests/data/imf-weo/WEOApr2024all_.xls"),
        xlsx = fmt("crates/diaspora-formats/tests/data/xlsx/survey.xlsx"),
        sav = fmt("crates/diaspora-formats/tests/data/spss/sample.sav"),
    );
    let path = dir.join("formats.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn every_format_reads_from_one_pipeline_and_balances() {
    let tmp = tempfile::tempdir().unwrap();
    let p = formats_pipeline(tmp.path());
    let root = tmp.path().join("out");
    run_ok(&root, p.to_str().unwrap());
    let r = report(&root);
    for s in r["sources"].as_array().unwrap() {
        assert_eq!(s["balanced"], true, "{s}");
        assert!(s["read"].as_u64().unwrap() > 0, "{s}");
    }
    let rows = |d: &str| r["datasets"][d]["rows"].as_u64().unwrap();
    assert_eq!(rows("survey_utf8"), 5000);
    assert_eq!(rows("legacy"), 1);
    assert_eq!(rows("limesurvey"), 70);
    assert_eq!(rows("wdi"), 2 * 9, "ARM and GEO, 2015–2023");
    assert_eq!(rows("sdmx"), 2);
    assert_eq!(rows("workbook"), 3, "the row with an error cell is a reject");
    assert_eq!(rows("spss"), 5);
    let labels = std::process::Command::new(python())
        .args(["-c", "import duckdb,sys;print(sorted(r[0] for r in duckdb.sql(f\"select distinct mylabl from read_parquet('{sys.argv[1]}/**/*.parquet')\").fetchall() if r[0]))"])
        .arg(root.join("spss"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&labels.stdout).trim(),
        "['Female', 'Male']",
        "{}",
        String::from_utf8_lossy(&labels.stderr)
    );
    assert_eq!(
        r["sources"].as_array().unwrap().iter().find(|s| s["source"] == "sdmx").unwrap()["rejected"]["not_annual"],
        1
    );
    assert!(r["datasets"]["weo"]["columns"].to_string().contains("forecast"));
    // Identifiers of the legacy export are named only in its second header row (V1 ResponseID, V3 Name,
    // V5 EmailAddress, V6 IPAddress): they are dropped all the same, as are its location columns.
    let legacy_cols: Vec<String> = r["datasets"]["legacy"]["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    for c in ["V1", "V3", "V5", "V6", "LocationLatitude", "LocationLongitude", "LocationAccuracy"] {
        assert!(!legacy_cols.iter().any(|x| x == c), "{c} published: {legacy_cols:?}");
    }
    assert!(legacy_cols.iter().any(|x| x == "V7"), "Status (V7) is kept: {legacy_cols:?}");
    // The Windows-1251 copy, detected without a hint, gives the same data as the UTF-8 original.
    assert_eq!(files_under(&root.join("survey_utf8")), files_under(&root.join("survey_1251")));
    // And the real readers agree with the report.
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/interop/check_readers.py"))
        .arg(&root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn every_naughty_string_survives_from_csv_to_parquet() {
    let tmp = tempfile::tempdir().unwrap();
    let blns = std::fs::read_to_string(repo().join("tests/data/naughty-strings/blns.txt")).unwrap();
    let lines: Vec<&str> = blns.lines().filter(|l| !l.starts_with('#') && !l.is_empty()).collect();
    let mut w = csv::WriterBuilder::new().from_path(tmp.path().join("naughty.csv")).unwrap();
    w.write_record(["n", "value"]).unwrap();
    for (i, l) in lines.iter().enumerate() {
        w.write_record([i.to_string().as_str(), l]).unwrap();
    }
    w.flush().unwrap();
    let p = tmp.path().join("naughty.toml");
    std::fs::write(
        &p,
        format!(
            "name = \"naughty\"\n[[sources]]\nid = \"n\"\nkind = \"file\"\nlocation = \"{}\"\nformat = \"csv\"\ndelimiter = \",\"\n\
             [[sources.steps]]\nop = \"cast\"\ncolumn = \"n\"\nto = \"int64\"\n[[outputs]]\ndataset = \"naughty\"\nfrom = \"n\"\n",
            tmp.path().join("naughty.csv").display()
        ),
    )
    .unwrap();
    let root = tmp.path().join("out");
    run_ok(&root, p.to_str().unwrap());
    let r = report(&root);
    assert_eq!(r["sources"][0]["read"].as_u64().unwrap(), lines.len() as u64);
    assert_eq!(r["datasets"]["naughty"]["rows"].as_u64().unwrap(), lines.len() as u64);
    let script = "import json,sys,pyarrow.dataset as d\nt=d.dataset(sys.argv[1],format='parquet').to_table()\nprint(json.dumps(dict(zip(t.column('n').to_pylist(),t.column('value').to_pylist()))))";
    let out = std::process::Command::new(python()).args(["-c", script]).arg(root.join("naughty")).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got: std::collections::BTreeMap<String, String> = serde_json::from_slice(&out.stdout).unwrap();
    let mut wrong = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if got.get(&i.to_string()).map(String::as_str) != Some(*l) {
            wrong.push(format!("line {i}: {l:?} came back as {:?}", got.get(&i.to_string())));
        }
    }
    assert!(wrong.is_empty(), "{} of {} changed:\n{}", wrong.len(), lines.len(), wrong.join("\n"));
}
