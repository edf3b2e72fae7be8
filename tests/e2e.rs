//! End-to-end: the sample pipeline through the real binary, checked in Rust and by DuckDB, pyarrow and Polars.

mod common;

use common::*;
use std::path::Path;

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(repo().join("data/sample/survey/expected_counts.json")).unwrap()).unwrap()
}

#[test]
fn sample_run_accounts_for_every_row() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), "pipelines/emigration.toml");
    let r = report(tmp.path());
    let e = expected();
    let survey = &r["sources"][0];
    let rej = &survey["rejected"];
    let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    assert_eq!(n(&survey["read"]), n(&e["data_lines"]));
    assert_eq!(n(&rej["preview_or_test"]), n(&e["survey_preview"]) + n(&e["survey_test"]));
    assert_eq!(n(&rej["unfinished"]), n(&e["unfinished"]));
    assert_eq!(n(&rej["country_unresolved"]) + n(&rej["country_ambiguous"]), n(&e["country_garbage"]));
    assert_eq!(n(&rej["country_missing"]), n(&e["country_empty"]));
    assert_eq!(n(&rej["country_is_region"]), n(&e["country_region"]));
    assert_eq!(n(&survey["duplicates"]), n(&e["exact_duplicates"]) + n(&e["repeated_response_ids"]));
    let rejected: u64 = rej.as_object().unwrap().values().map(n).sum();
    assert_eq!(n(&survey["read"]), n(&survey["passed"]) + rejected + n(&survey["duplicates"]));
    assert_eq!(survey["balanced"], true);
    // Every passed row is published, every rejected row is in `rejects`.
    assert_eq!(n(&r["datasets"]["respondents"]["rows"]), n(&survey["passed"]));
    let all_rejected: u64 = r["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rejected"].as_object().unwrap().values().map(n).sum::<u64>())
        .sum();
    assert_eq!(n(&r["datasets"]["rejects"]["rows"]), all_rejected);
    assert_eq!(n(&r["datasets"]["country_year_indicators"]["rows"]), 290);
}

#[test]
fn armenia_2022_gets_the_bundled_wdi_growth() {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int32Type};
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), "pipelines/emigration.toml");
    let dir = tmp.path().join("respondents/wave=2022/iso3=ARM");
    let mut rows = 0;
    for f in std::fs::read_dir(&dir).unwrap().flatten() {
        let file = std::fs::File::open(f.path()).unwrap();
        let reader =
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
        for b in reader {
            let b = b.unwrap();
            let g = b.column_by_name("gdp_growth").unwrap().as_primitive::<Float64Type>();
            let y = b.column_by_name("gdp_growth_year").unwrap().as_primitive::<Int32Type>();
            for i in 0..b.num_rows() {
                assert_eq!(format!("{:.1}", g.value(i)), "12.6");
                assert_eq!(y.value(i), 2022);
                rows += 1;
            }
        }
    }
    assert!(rows > 100, "Armenia 2022 should hold many respondents, found {rows}");
}

#[test]
fn no_identifier_column_in_any_output() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), "pipelines/emigration.toml");
    let r = report(tmp.path());
    let banned = [
        "ipaddress",
        "locationlatitude",
        "locationlongitude",
        "recipientfirstname",
        "recipientlastname",
        "recipientemail",
        "externalreference",
        "responseid",
        "q1",
        "q5",
    ];
    for (name, ds) in r["datasets"].as_object().unwrap() {
        for c in ds["columns"].as_array().unwrap() {
            let c = c["name"].as_str().unwrap().to_lowercase();
            assert!(!banned.contains(&c.as_str()), "{name} has identifier or free-text column {c}");
        }
    }
    // And in the files themselves (the report could lie).
    for (path, bytes) in files_under(&tmp.path().join("respondents")) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("IPAddress") && !text.contains("ResponseId"), "{path}");
    }
}

#[test]
fn same_inputs_give_identical_files_and_a_rerun_publishes_nothing() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    run_ok(a.path(), "pipelines/emigration.toml");
    run_ok(b.path(), "pipelines/emigration.toml");
    for ds in ["respondents", "country_year_indicators", "country_summary", "rejects"] {
        let fa = files_under(&a.path().join(ds));
        let fb = files_under(&b.path().join(ds));
        assert!(!fa.is_empty());
        assert_eq!(fa, fb, "{ds} differs between two runs on the same inputs");
    }
    let before: Vec<_> = files_under(&a.path().join("_diaspora/versions")).into_iter().map(|f| f.0).collect();
    let out = run_ok(a.path(), "pipelines/emigration.toml");
    assert!(String::from_utf8_lossy(&out.stderr).contains("up to date"), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(report(a.path())["status"], "up_to_date");
    let after: Vec<_> = files_under(&a.path().join("_diaspora/versions")).into_iter().map(|f| f.0).collect();
    assert_eq!(before, after, "a re-run with unchanged inputs must not publish");
}

#[test]
fn duckdb_pyarrow_and_polars_read_every_dataset_as_reported() {
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), "pipelines/emigration.toml");
    let out = std::process::Command::new(python())
        .arg(repo().join("tests/interop/check_readers.py"))
        .arg(tmp.path())
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    for reader in ["duckdb", "pyarrow", "polars"] {
        assert!(text.contains(&format!("ok  respondents  {reader}")), "{text}");
    }
}

fn current(root: &Path, ds: &str) -> String {
    std::fs::read_link(root.join(ds)).unwrap().display().to_string()
}

#[test]
fn bad_inputs_fail_clearly_and_leave_the_published_version() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    run_ok(&root, "pipelines/emigration.toml");
    let published = current(&root, "respondents");
    let root_s = root.to_str().unwrap();

    // A missing input file: exit 65, naming the file.
    let p = variant(tmp.path(), "missing.toml", &[("emigre_panel_2022_2024.csv", "no_such_export.csv")]);
    let out = diaspora(&["--data-root", root_s, "run", p.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(err.contains("no_such_export.csv"), "{err}");

    // A step naming a column the export does not have: exit 78 with a did-you-mean.
    let p = variant(tmp.path(), "column.toml", &[("column = \"Status\"", "column = \"Statsu\"")]);
    let out = diaspora(&["--data-root", root_s, "run", p.to_str().unwrap()]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{err}");
    assert!(err.contains("sources[0].steps[0].column") && err.contains("did you mean \"Status\""), "{err}");

    // A malformed World Bank page: exit 65, naming the indicator and the page file.
    let pages = tmp.path().join("pages");
    std::fs::create_dir(&pages).unwrap();
    for f in std::fs::read_dir(repo().join("data/sample/worldbank")).unwrap().flatten() {
        std::fs::copy(f.path(), pages.join(f.file_name())).unwrap();
    }
    let bad = pages.join("FP.CPI.TOTL.ZG_p2.json");
    let text = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &text[..text.len() / 2]).unwrap();
    let out = diaspora(&["--data-root", root_s, "run", "pipelines/emigration.toml"])
        .env("DIASPORA__WORLDBANK__OFFLINE_DIR", &pages)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(65), "{err}");
    assert!(
        err.contains("FP.CPI.TOTL.ZG") && err.contains("FP.CPI.TOTL.ZG_p2.json") && err.contains("invalid JSON"),
        "{err}"
    );

    // The published version is untouched and nothing was left in staging.
    assert_eq!(current(&root, "respondents"), published);
    let staging = root.join("_diaspora/staging");
    assert!(std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0) == 0);
}

#[test]
fn validate_reports_every_problem_with_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let p = variant(
        tmp.path(),
        "bad.toml",
        &[
            ("op = \"dedupe_exact\"", "op = \"dedupe_exakt\""),
            ("partition_by = [\"wave\", \"iso3\"]", "partition_by = [\"wave\", \"age\"]"),
            ("max_lag = 2", "max_lag = 2\nmaxlag = 3"),
        ],
    );
    let out = diaspora(&["validate", p.to_str().unwrap(), "pipelines/emigration.toml"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(text.contains("3 problem(s)"), "{text}");
    assert!(
        text.contains("sources[0].steps[2].op: unknown value \"dedupe_exakt\" (did you mean \"dedupe_exact\"?)"),
        "{text}"
    );
    assert!(text.contains("outputs[0].partition_by[1]: \"age\" may not be a partition key"), "{text}");
    assert!(text.contains("combine[1].maxlag: unknown key \"maxlag\" (did you mean \"max_lag\"?)"), "{text}");
    assert!(text.contains("pipelines/emigration.toml: ok"), "{text}");
}

#[test]
fn a_second_run_exits_75_at_once_while_the_lock_is_held() {
    let tmp = tempfile::tempdir().unwrap();
    let locks = tmp.path().join("_diaspora/locks");
    std::fs::create_dir_all(&locks).unwrap();
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(locks.join("emigration.lock"))
        .unwrap();
    f.lock().unwrap();
    let t = std::time::Instant::now();
    let out =
        diaspora(&["--data-root", tmp.path().to_str().unwrap(), "run", "pipelines/emigration.toml"]).output().unwrap();
    let elapsed = t.elapsed();
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds the lock"));
    assert!(elapsed.as_secs() < 5, "lock refusal took {elapsed:?}");
    drop(f);
    // Released by the kernel with the file: the next run goes ahead.
    run_ok(tmp.path(), "pipelines/emigration.toml");
}

#[test]
fn live_profile_refuses_to_run_without_a_key() {
    let tmp = tempfile::tempdir().unwrap();
    let out = diaspora(&[
        "--profile",
        "live",
        "--data-root",
        tmp.path().to_str().unwrap(),
        "run",
        "pipelines/emigration.toml",
    ])
    .env_remove("DIASPORA_PSEUDONYM_KEY")
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(78), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DIASPORA_PSEUDONYM_KEY"));
}

#[test]
fn offline_sample_generates_a_private_local_key_outside_the_data_root() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("secrets/key");
    let root = tmp.path().join("out");
    let out = diaspora(&["--data-root", root.to_str().unwrap(), "run", "pipelines/emigration.toml"])
        .env_remove("DIASPORA_PSEUDONYM_KEY")
        .env("DIASPORA__PSEUDONYM__KEY_FILE", &key)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key_text = std::fs::read_to_string(&key).unwrap();
    for (path, bytes) in files_under(&root.join("_diaspora")) {
        assert!(!String::from_utf8_lossy(&bytes).contains(key_text.trim()), "key found in {path}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains(key_text.trim()));
}

#[test]
fn plan_says_what_a_run_would_do_without_doing_it() {
    let tmp = tempfile::tempdir().unwrap();
    let plan = |root: &Path| {
        let out =
            diaspora(&["--data-root", root.to_str().unwrap(), "plan", "pipelines/emigration.toml"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let before = plan(tmp.path());
    assert!(before.contains("source survey: read data/sample/survey/emigre_panel_2022_2024.csv"), "{before}");
    assert!(
        before.contains("new or changed")
            && before.contains("write respondents partitioned by wave, iso3 (not published yet)"),
        "{before}"
    );
    assert!(!tmp.path().join("respondents").exists(), "plan writes nothing");
    run_ok(tmp.path(), "pipelines/emigration.toml");
    let after = plan(tmp.path());
    assert!(after.contains("unchanged since the last publish") && after.contains("current version"), "{after}");
    assert!(after.contains("a run will most likely be up to date"), "{after}");
}

#[test]
fn without_a_terminal_every_log_line_is_json() {
    let tmp = tempfile::tempdir().unwrap();
    let out = run_ok(tmp.path(), "pipelines/emigration.toml");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut logs = 0;
    for line in stderr.lines() {
        if line.starts_with("emigration: ") {
            continue; // the one-line summary
        }
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line:?}"));
        assert!(v["level"].is_string() && v["fields"]["message"].is_string(), "{line}");
        logs += 1;
    }
    assert!(logs >= 3, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no terminal escapes (spinner, colours) without a terminal");
}
