//! Pipelines over the network, against the loopback server: online equals offline, re-runs are conditional
//! and publish nothing, failures exit with the right code and leave the published version, and every network
//! source kind runs from one pipeline file without a credential reaching any output or log.

mod common;

use common::*;
use diaspora_testkit::{Server, closed_port};
use std::path::Path;
use std::process::{Command, Output};

fn online<'a>(cmd: &'a mut Command, s: &Server, wb_mode: &str) -> &'a mut Command {
    cmd.env("DIASPORA__OFFLINE", "false")
        .env("DIASPORA__WORLDBANK__BASE_URL", s.url(&format!("/wb/{wb_mode}")))
        .env("DIASPORA__QUALTRICS__BASE_URL", s.url("/qualtrics"))
        .env("DIASPORA__QUALTRICS__POLL_FIRST_MS", "20")
        .env("DIASPORA__LIMESURVEY__BASE_URL", s.url("/limesurvey/index.php/admin/remotecontrol"))
        .env("DIASPORA__IMF__BASE_URL", s.url("/imf"))
        .env("DIASPORA__HTTP__BACKOFF_BASE_MS", "10")
        .env("DIASPORA__HTTP__BACKOFF_MAX_MS", "50")
        .env("DIASPORA__HTTP__READ_TIMEOUT_MS", "2000")
        .env("QUALTRICS_TEST_TOKEN", "test-token")
        .env("LIMESURVEY_TEST_PASSWORD", "secret")
}

fn run(root: &Path, pipeline: &str, s: &Server, wb_mode: &str) -> Output {
    let mut cmd = diaspora(&["--data-root", root.to_str().unwrap(), "run", pipeline]);
    online(&mut cmd, s, wb_mode).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn world_bank_online_equals_offline_and_a_rerun_is_conditional_and_publishes_nothing() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let (off, on) = (tmp.path().join("offline"), tmp.path().join("online"));
    run_ok(&off, "pipelines/emigration.toml");
    let o = run(&on, "pipelines/emigration.toml", &s, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    for ds in ["respondents", "country_year_indicators", "country_summary", "rejects"] {
        assert_eq!(files_under(&off.join(ds)), files_under(&on.join(ds)), "{ds}: online differs from offline");
    }
    let first = s.log("/wb/ok/");
    assert_eq!(first.len(), 9, "3 indicators × 3 pages");
    // The raw store holds the pages with their vintages, and the manifest traces them.
    let manifest = std::fs::read_to_string(
        on.join("_diaspora/versions/respondents")
            .read_dir()
            .unwrap()
            .flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "json"))
            .unwrap()
            .path(),
    )
    .unwrap();
    assert!(
        manifest.contains("2024-06-28") && manifest.contains("/wb/ok/v2/country/"),
        "vintage and URL in the manifest"
    );

    let versions_before = files_under(&on.join("_diaspora/versions")).len();
    let o = run(&on, "pipelines/emigration.toml", &s, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("up to date"), "{}", stderr(&o));
    let second: Vec<_> = s.log("/wb/ok/").into_iter().skip(9).collect();
    assert_eq!(second.len(), 9);
    assert!(
        second.iter().all(|e| e["headers"]["if-none-match"].is_string() && e["status"] == 304),
        "conditional GETs answered 304"
    );
    assert_eq!(files_under(&on.join("_diaspora/versions")).len(), versions_before, "nothing new published");
}

#[test]
fn an_api_that_stays_down_exits_75_and_keeps_the_published_version() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    run_ok(tmp.path(), "pipelines/emigration.toml");
    let before = std::fs::read_link(tmp.path().join("respondents")).unwrap();
    let mut cmd = diaspora(&["--data-root", tmp.path().to_str().unwrap(), "run", "pipelines/emigration.toml"]);
    online(&mut cmd, &s, "ok").env("DIASPORA__WORLDBANK__BASE_URL", format!("http://127.0.0.1:{}", closed_port()));
    let o = cmd.output().unwrap();
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    assert!(stderr(&o).contains("connection failed") || stderr(&o).contains("gave up"), "{}", stderr(&o));
    assert_eq!(std::fs::read_link(tmp.path().join("respondents")).unwrap(), before);
    // A flaky API is survived.
    let o = run(tmp.path(), "pipelines/emigration.toml", &s, "flaky");
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn world_bank_errors_fail_clearly_and_nothing_is_stored() {
    let s = Server::start();
    for (mode, want) in [
        ("error", "The provided parameter value is not valid"),
        ("html400", "HTML/XML error page"),
        ("total-changes", "total changed between pages"),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let o = run(tmp.path(), "pipelines/emigration.toml", &s, mode);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(65), "{mode}: {err}");
        assert!(err.contains(want) && err.contains("World Bank indicator"), "{mode}: {err}");
        assert!(!tmp.path().join("respondents").exists(), "{mode}: nothing published");
        let raw = tmp.path().join("_diaspora/raw/indicators");
        if mode != "total-changes" {
            assert!(
                !raw.exists() || std::fs::read_dir(&raw).unwrap().count() == 0,
                "{mode}: a failing body was stored"
            );
        }
    }
}

#[test]
fn every_network_source_kind_runs_from_one_pipeline_without_leaking_credentials() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("out");
    let mut cmd = diaspora(&[
        "-vv",
        "--log-format",
        "json",
        "--data-root",
        root.to_str().unwrap(),
        "run",
        "tests/data/pipelines/apis.toml",
    ]);
    let o = online(&mut cmd, &s, "ok").output().unwrap();
    let logs = format!("{}{}", String::from_utf8_lossy(&o.stdout), stderr(&o));
    assert!(o.status.success(), "{logs}");
    let r = report(&root);
    let read = |src: &str| {
        r["sources"].as_array().unwrap().iter().find(|x| x["source"] == src).unwrap()["read"].as_u64().unwrap()
    };
    assert!(read("qualtrics") > 0 && read("limesurvey") > 0 && read("imf") > 0 && read("worldbank") > 0);
    assert!(r["datasets"]["imf_growth"]["rows"].as_u64().unwrap() == 33, "3 countries × 11 years");
    assert!(r["datasets"]["imf_growth"]["columns"].to_string().contains("forecast"));
    // The LimeSurvey id and the Qualtrics ResponseId were pseudonymised.
    let dropped = r["privacy"]["dropped"].to_string();
    assert!(dropped.contains("\"id\"") && dropped.contains("ResponseId"), "{dropped}");
    // Credentials appear nowhere: not in logs, reports, manifests, raw store records or file names.
    for secret in ["test-token", "sessionkey123", "\"secret\""] {
        assert!(!logs.contains(secret), "{secret} in logs");
        for (path, bytes) in files_under(&root) {
            // Raw bodies are the services' own answers; their index (URLs, validators) is checked like the rest.
            let raw_body = path.contains("/raw/") && !path.ends_with("index.json");
            if !path.ends_with(".parquet") && !raw_body {
                assert!(!String::from_utf8_lossy(&bytes).contains(secret), "{secret} in {path}");
            }
            assert!(!path.contains(secret));
        }
    }
    // Offline, the same pipeline replays what was stored and has nothing to do.
    let o = diaspora(&["--data-root", root.to_str().unwrap(), "run", "tests/data/pipelines/apis.toml"])
        .env("DIASPORA__QUALTRICS__BASE_URL", s.url("/qualtrics"))
        .env("DIASPORA__LIMESURVEY__BASE_URL", s.url("/limesurvey/index.php/admin/remotecontrol"))
        .env("DIASPORA__IMF__BASE_URL", s.url("/imf"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_wdi_bulk_zip_and_an_sdmx_file_are_read_from_urls() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("urls.toml");
    std::fs::write(
        &p,
        format!(
            r#"name = "urls"
[[sources]]
id = "wdi"
kind = "url"
location = "{}"
format = "wdi_csv"
countries = ["ARM", "GEO"]
years = "2020:2023"
[sources.indicators]
"NY.GDP.MKTP.KD.ZG" = "gdp_growth"
[[sources]]
id = "sdmx"
kind = "url"
location = "{}"
format = "sdmx_csv"
indicator_dimension = "INDICATOR"
[[combine]]
kind = "pivot"
id = "wide"
from = "wdi"
[[outputs]]
dataset = "wdi"
from = "wide"
[[outputs]]
dataset = "sdmx"
from = "sdmx"
"#,
            s.url("/ok/tests/data/http/worldbank/API_NY.GDP.MKTP.KD.ZG_DS2_en_csv_v2_2788350.zip"),
            s.url("/ok/tests/data/http/sdmx/weo_sdmx2.csv"),
        ),
    )
    .unwrap();
    let root = tmp.path().join("out");
    let o = run(&root, p.to_str().unwrap(), &s, "ok");
    assert!(o.status.success(), "{}", stderr(&o));
    let r = report(&root);
    assert_eq!(r["datasets"]["wdi"]["rows"], 8, "ARM and GEO × 2020–2023");
    assert_eq!(r["datasets"]["sdmx"]["rows"], 3);
    let sdmx = r["sources"].as_array().unwrap().iter().find(|x| x["source"] == "sdmx").unwrap();
    assert_eq!(sdmx["rejected"]["not_annual"], 1);
    let sum = r["datasets"]["wdi"]["sums"]["gdp_growth"].as_f64().unwrap();
    assert!(sum > 0.0);
}
