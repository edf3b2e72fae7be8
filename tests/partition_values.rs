//! Partition values that break software (the Big List of Naughty Strings, plus spaces, `/`, `=`, `%`, Cyrillic
//! and NULL) either round-trip through DuckDB, pyarrow and Polars exactly, or are rejected before anything is
//! written; no directory ever escapes the dataset root.

mod common;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use common::*;
use diaspora_core::Table;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// Directory names taken (lower-cased) and the rows (row number, value) of one dataset.
type Group = (HashSet<String>, Vec<(i64, Option<String>)>);

fn values() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("tests/data/naughty-strings/blns.txt")).unwrap();
    let mut seen = HashSet::new();
    let mut out: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(str::to_owned)
        .chain(["with space", "a/b", "x=y", "100%", "Россия", "..", ".", "../../etc"].map(String::from))
        .filter(|v| seen.insert(v.clone()))
        .collect();
    out.push(String::new());
    out
}

#[test]
fn naughty_partition_values_round_trip_or_are_rejected_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut rejected = Vec::new();
    // Values whose directory names would collide on a case-insensitive file system go to different datasets.
    let mut groups: Vec<Group> = Vec::new();
    let mut all = values().into_iter().map(Some).collect::<Vec<_>>();
    all.push(None);
    for (n, v) in all.into_iter().enumerate() {
        match diaspora_sink::encode_partition_value("iso3", v.as_deref()) {
            Err(e) => {
                assert!(
                    !e.message.contains(v.as_deref().unwrap_or("\u{0}")) || v.as_deref() == Some(""),
                    "error echoes the value"
                );
                rejected.push(v);
            }
            Ok(enc) => {
                assert!(!enc.contains('/') && enc != "." && enc != "..", "{enc}");
                let key = enc.to_lowercase();
                match groups.iter_mut().find(|(keys, _)| !keys.contains(&key)) {
                    Some((keys, rows)) => {
                        keys.insert(key);
                        rows.push((n as i64, v));
                    }
                    None => groups.push((HashSet::from([key]), vec![(n as i64, v)])),
                }
            }
        }
    }
    let schema =
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("iso3", DataType::Utf8, true)]));
    let mut expected = BTreeMap::new();
    let mut written = 0;
    for (g, (_, rows)) in groups.iter().enumerate() {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
            Arc::new(rows.iter().map(|r| r.1.as_deref()).collect::<StringArray>()),
        ];
        let table = Table::new(schema.clone(), vec![RecordBatch::try_new(schema.clone(), cols).unwrap()]);
        let dir = tmp.path().join(format!("g{g}"));
        let files = diaspora_sink::write_dataset(&table, &["iso3".into()], &dir).unwrap();
        assert_eq!(files.files.len(), rows.len(), "one partition per distinct value");
        // Every path stays inside the dataset directory.
        for f in &files.files {
            let p = dir.join(&f.path).canonicalize().unwrap();
            assert!(p.starts_with(dir.canonicalize().unwrap()), "{} escapes", f.path);
        }
        written += rows.len();
        let vals: BTreeMap<String, Option<String>> = rows.iter().map(|(n, v)| (n.to_string(), v.clone())).collect();
        expected.insert(dir.display().to_string(), serde_json::json!({"column": "iso3", "values": vals}));
    }
    assert!(written > 450, "most naughty strings should be publishable, {written} were");
    assert!(rejected.contains(&Some(String::new())), "the empty string cannot round-trip and is rejected");
    let path = tmp.path().join("expected.json");
    std::fs::write(&path, serde_json::to_vec(&expected).unwrap()).unwrap();
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/interop/check_partition_values.py"))
        .arg(&path)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{}", text.lines().take(60).collect::<Vec<_>>().join("\n"));
}
