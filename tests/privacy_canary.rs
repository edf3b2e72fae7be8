//! Privacy canaries: an export seeded with distinctive fake e-mails, IP addresses, coordinates, names and ids
//! (in the identifier columns, in free text and in the host-country answer) is run through every pipeline in
//! `pipelines/` with trace logging on. Then every decoded Parquet value, every file and directory name, every
//! manifest, report and state file, and the captured logs are searched: no canary may appear anywhere.

mod common;

use common::*;
use std::path::Path;

const CANARIES: &[&str] = &[
    "canary.alpha.7731@example.org",
    "canary.beta.8842@example.org",
    "203.0.113.77",
    "198.51.100.213",
    "55.7512441",
    "37.6184233",
    "Zhenevyeva",
    "Canaryovna",
    "R_CANARY",
    "EXTREF-CANARY",
];

/// The sample export with canaries planted in every seventh row.
fn canary_export(dir: &Path) -> std::path::PathBuf {
    let src = repo().join("data/sample/survey/emigre_panel_2022_2024.csv");
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).from_path(&src).unwrap();
    let path = dir.join("canary_export.csv");
    let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_path(&path).unwrap();
    let mut names: Vec<String> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.unwrap();
        if i == 0 {
            names = rec.iter().map(str::to_owned).collect();
        }
        if i < 3 || i % 7 != 0 {
            w.write_record(&rec).unwrap();
            continue;
        }
        let mut row: Vec<String> = rec.iter().map(str::to_owned).collect();
        let mut set = |col: &str, v: String| {
            let k = names.iter().position(|n| n == col).unwrap();
            row[k] = v;
        };
        set("IPAddress", if i % 2 == 0 { "203.0.113.77".into() } else { "198.51.100.213".into() });
        set("RecipientEmail", "canary.alpha.7731@example.org".into());
        set("RecipientFirstName", "Zhenevyeva".into());
        set("RecipientLastName", "Canaryovna".into());
        set("LocationLatitude", "55.7512441".into());
        set("LocationLongitude", "37.6184233".into());
        set("ExternalReference", format!("EXTREF-CANARY-{i}"));
        set("ResponseId", format!("R_CANARY{i:08}"));
        set("Q5", "Пишите мне: canary.beta.8842@example.org — Zhenevyeva Canaryovna, 203.0.113.77".into());
        match i % 4 {
            0 => set("Q1", "Zhenevyeva Canaryovna".into()),
            1 => set("Q1", "canary.alpha.7731@example.org".into()),
            2 => set("Q1", "Грузия, R_CANARY00000001".into()),
            _ => {}
        }
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    path
}

fn search(haystack: &str, place: &str, hits: &mut Vec<String>) {
    for c in CANARIES {
        if haystack.contains(c) || haystack.to_lowercase().contains(&c.to_lowercase()) {
            hits.push(format!("{c:?} in {place}"));
        }
    }
}

#[test]
fn no_canary_reaches_any_output_of_any_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let export = canary_export(tmp.path());
    let mut pipelines: Vec<_> = std::fs::read_dir(repo().join("pipelines"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    pipelines.sort();
    assert!(!pipelines.is_empty());
    let mut seeded = 0;
    let mut hits = Vec::new();
    for p in &pipelines {
        let text = std::fs::read_to_string(p).unwrap();
        let replaced = text.replace("data/sample/survey/emigre_panel_2022_2024.csv", export.to_str().unwrap());
        seeded += usize::from(replaced != text);
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let pipeline = tmp.path().join(&name);
        std::fs::write(&pipeline, replaced).unwrap();
        let root = tmp.path().join(format!("out-{name}"));
        let out = diaspora(&[
            "-vv",
            "--log-format",
            "json",
            "--data-root",
            root.to_str().unwrap(),
            "run",
            pipeline.to_str().unwrap(),
        ])
        .output()
        .unwrap();
        let logs = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{name}: {logs}");
        assert!(
            logs.contains("\"level\":\"TRACE\"") || logs.contains("DEBUG") || logs.contains("INFO"),
            "logs captured"
        );
        search(&logs, &format!("{name}: logs"), &mut hits);
        // Names and non-Parquet files (manifests, reports, state) byte for byte.
        for (path, bytes) in files_under(&root) {
            search(&path, &format!("{name}: file name {path}"), &mut hits);
            if !path.ends_with(".parquet") {
                search(&String::from_utf8_lossy(&bytes), &format!("{name}: {path}"), &mut hits);
            }
        }
        // Decoded Parquet values, as pyarrow reads them.
        let dump = std::process::Command::new(python())
            .arg(repo().join("tests/interop/dump_values.py"))
            .arg(&root)
            .output()
            .unwrap();
        assert!(dump.status.success(), "{}", String::from_utf8_lossy(&dump.stderr));
        let values = String::from_utf8_lossy(&dump.stdout);
        assert!(values.lines().count() > 10_000, "{name}: too few values decoded to be a real check");
        search(&values, &format!("{name}: Parquet values"), &mut hits);
        // The rejected canary rows are there, with their line numbers, but without the planted text.
        let report = report(&root);
        assert!(
            report["sources"][0]["rejected"]["country_unresolved"].as_u64().unwrap() > 60,
            "canary answers rejected"
        );
    }
    assert!(seeded >= 1, "no pipeline reads the survey export the canaries were planted in");
    assert!(hits.is_empty(), "canaries leaked:\n{}", hits.join("\n"));
}

#[test]
fn the_canary_search_finds_a_planted_leak() {
    // The check itself must be able to fail: a pipeline that publishes the e-mail column under an allowance leaks.
    let tmp = tempfile::tempdir().unwrap();
    let export = canary_export(tmp.path());
    let p = variant(
        tmp.path(),
        "leaky.toml",
        &[
            ("data/sample/survey/emigre_panel_2022_2024.csv", export.to_str().unwrap()),
            ("\"weight\"]", "\"weight\", \"RecipientEmail\"]"),
            (
                "max_reject_share = 0.25",
                "max_reject_share = 0.25\n[[sources.privacy.allow]]\ncolumn = \"RecipientEmail\"\nreason = \"test of the canary search\"",
            ),
        ],
    );
    let root = tmp.path().join("out");
    let out = diaspora(&["--data-root", root.to_str().unwrap(), "run", p.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&root);
    assert_eq!(r["privacy"]["allowances"][0]["column"], "RecipientEmail", "allowances are shown in the report");
    let dump = std::process::Command::new(python())
        .arg(repo().join("tests/interop/dump_values.py"))
        .arg(&root)
        .output()
        .unwrap();
    let mut hits = Vec::new();
    search(&String::from_utf8_lossy(&dump.stdout), "values", &mut hits);
    assert!(hits.iter().any(|h| h.contains("canary.alpha.7731@example.org")), "{hits:?}");
}
