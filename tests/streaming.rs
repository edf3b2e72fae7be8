//! Streaming a large delimited source gives the same results as reading it whole: the same rows in the same
//! order in every dataset, the same rejects with the same line numbers, the same report; and the same files
//! whatever the number of threads. The sample survey is forced through the streaming path with tiny pieces,
//! a tiny writer buffer and few open files, so every piece boundary, early row group and extra part file is
//! exercised.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// The sample pipeline without the steps that need the whole table (`dedupe_by`, the summary), so the survey
/// can stream.
fn streamable(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(repo().join("pipelines/emigration.toml")).unwrap();
    let dedupe_by =
        "[[sources.steps]]\nop = \"dedupe_by\"\nkey = \"ResponseId\"\norder_by = \"RecordedDate\"\nkeep = \"latest\"\n";
    assert!(text.contains(dedupe_by));
    let summary_at = text.find("[[combine]]\nkind = \"summary\"").unwrap();
    let outputs_at = text.find("[[outputs]]").unwrap();
    let summary_output_at = text.find("[[outputs]]\ndataset = \"country_summary\"").unwrap();
    let text = format!("{}{}", &text[..summary_at], &text[outputs_at..summary_output_at]).replace(dedupe_by, "");
    let path = dir.join("streamable.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(root: &Path, pipeline: &Path, env: &[(&str, &str)]) -> String {
    let mut c =
        diaspora(&["--log-format", "json", "--data-root", root.to_str().unwrap(), "run", pipeline.to_str().unwrap()]);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "run failed: {err}");
    err
}

const TINY: &[(&str, &str)] = &[
    ("DIASPORA__STREAMING__ABOVE_BYTES", "0"),
    ("DIASPORA__STREAMING__PIECE_BYTES", "20000"),
    ("DIASPORA__STREAMING__PIECES_IN_FLIGHT", "3"),
    ("DIASPORA__STREAMING__WRITER_BUFFER_BYTES", "150000"),
    ("DIASPORA__STREAMING__OPEN_FILES", "7"),
];

fn rows(dataset: &Path) -> String {
    let out = Command::new(python()).arg(repo().join("tests/interop/dataset_rows.py")).arg(dataset).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn streaming_gives_what_reading_whole_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = streamable(tmp.path());
    let (whole, streamed) = (tmp.path().join("whole"), tmp.path().join("streamed"));
    let log = run(&whole, &pipeline, &[]);
    assert!(!log.contains("streaming source"), "a small file is read whole by default");
    let log = run(&streamed, &pipeline, TINY);
    assert!(log.contains("\"message\":\"streaming source\""), "{log}");

    let (a, b) = (report(&whole), report(&streamed));
    assert_eq!(a["sources"], b["sources"], "same counts per source and reason");
    let survey = &b["sources"][0];
    assert_eq!(survey["read"], 5000);
    assert!(
        survey["duplicates"].as_u64().unwrap() > 0 && survey["rejected"]["country_unresolved"].as_u64().unwrap() > 0
    );
    for ds in ["respondents", "country_year_indicators", "rejects"] {
        for field in ["rows", "partitions", "columns", "sums", "nulls"] {
            assert_eq!(a["datasets"][ds][field], b["datasets"][ds][field], "{ds}.{field}");
        }
        assert_eq!(rows(&whole.join(ds)), rows(&streamed.join(ds)), "{ds}: rows or their order differ");
    }
    // The tiny limits really split the output: early row groups and more than one file in some partitions.
    let files = files_under(&streamed.join("respondents"));
    assert!(files.iter().any(|(p, _)| p.ends_with("part-00001.parquet")), "open-file limit never closed a file");
    assert_eq!(privacy(&a), privacy(&b));

    // DuckDB, pyarrow and Polars read the streamed output and agree with its report.
    let out =
        Command::new(python()).arg(repo().join("tests/interop/check_readers.py")).arg(&streamed).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for reader in ["duckdb", "pyarrow", "polars"] {
        assert!(text.contains(&format!("ok  respondents  {reader}")), "{text}");
    }
}

fn privacy(report: &serde_json::Value) -> serde_json::Value {
    let mut p = report["privacy"].clone();
    p.as_object_mut().unwrap().remove("key_id");
    p
}

#[test]
fn streamed_files_do_not_depend_on_the_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = streamable(tmp.path());
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    run(&one, &pipeline, &[TINY, &[("DIASPORA__THREADS", "1")]].concat());
    run(&two, &pipeline, &[TINY, &[("DIASPORA__THREADS", "2")]].concat());
    for ds in ["respondents", "rejects"] {
        assert_eq!(files_under(&one.join(ds)), files_under(&two.join(ds)), "{ds}");
    }
}

#[test]
fn a_pipeline_that_needs_the_whole_table_is_not_streamed() {
    // The sample pipeline keeps the latest submission per respondent and summarises: the survey stays in memory
    // even when streaming is asked for every file, and the run still succeeds.
    let tmp = tempfile::tempdir().unwrap();
    let log = run(tmp.path(), &repo().join("pipelines/emigration.toml"), TINY);
    assert!(!log.contains("streaming source"), "{log}");
    assert_eq!(report(tmp.path())["sources"][0]["passed"], 4550);
}
