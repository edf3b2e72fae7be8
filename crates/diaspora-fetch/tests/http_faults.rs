//! The fault matrix: the HTTP client against a real loopback server (tests/http/fault_server.py) that injects
//! the failures live services produce. Every scenario checks the outcome, the time it took and, where a body is
//! involved, that nothing partial reached the raw store.

use diaspora_core::ErrorKind;
use diaspora_fetch::api::{Polling, limesurvey_export, qualtrics_export};
use diaspora_fetch::http::{HttpClient, HttpSettings, Request};
use diaspora_fetch::store::RawStore;
use std::time::{Duration, Instant};

use diaspora_testkit::{Server, repo};

fn fast() -> HttpSettings {
    HttpSettings {
        connect_timeout_ms: 2_000,
        read_timeout_ms: 400,
        total_timeout_ms: 10_000,
        max_body_bytes: 1024 * 1024,
        max_attempts: 3,
        retry_budget: 100,
        backoff_base_ms: 20,
        backoff_max_ms: 200,
        retry_after_cap_ms: 5_000,
        max_redirects: 3,
        per_host: 2,
        proxy: None,
        user_agent: "diaspora-test".into(),
    }
}

const FILE: &str = "data/sample/worldbank/NY.GDP.MKTP.KD.ZG_p3.json";

fn file_bytes() -> Vec<u8> {
    std::fs::read(repo().join(FILE)).unwrap()
}

#[test]
fn a_500_then_200_succeeds_on_the_second_attempt() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let r = c.fetch(Request::get(s.url(&format!("/flaky/k500/1/{FILE}")), "flaky")).unwrap();
    assert_eq!(r.bytes, file_bytes());
    assert_eq!(r.attempts, 2);
    let log = s.log("k500");
    assert_eq!(log.len(), 2);
    let gap = log[1]["t"].as_f64().unwrap() - log[0]["t"].as_f64().unwrap();
    assert!(gap < 1.0, "backoff {gap} s exceeds the configured ceiling");
    eprintln!("500 then 200: {} requests, backoff {:.1} ms", log.len(), gap * 1000.0);
}

#[test]
fn retry_after_in_seconds_and_as_a_date_is_honoured() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let r = c.fetch(Request::get(s.url(&format!("/ratelimit/k429/{FILE}")), "rate limited")).unwrap();
    assert_eq!(r.bytes, file_bytes());
    let log = s.log("k429");
    let gap = log[1]["t"].as_f64().unwrap() - log[0]["t"].as_f64().unwrap();
    assert!(gap >= 0.99, "Retry-After: 1 must be waited, waited {gap}");
    eprintln!("429 Retry-After 1: waited {gap:.3} s");
    let r = c.fetch(Request::get(s.url(&format!("/ratelimit-date/kdate/{FILE}")), "rate limited")).unwrap();
    assert_eq!(r.bytes, file_bytes());
    let log = s.log("kdate");
    let gap = log[1]["t"].as_f64().unwrap() - log[0]["t"].as_f64().unwrap();
    assert!(gap >= 1.0, "an HTTP-date Retry-After 2-3 s ahead must be waited, waited {gap}");
    eprintln!("429 Retry-After date: waited {gap:.3} s");
}

#[test]
fn a_retry_after_beyond_the_cap_fails_at_once_as_temporary() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let t = Instant::now();
    let e = c.fetch(Request::get(s.url("/ratelimit-long/klong"), "rate limited")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Temporary);
    assert!(e.message.contains("3600"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[test]
fn slow_drip_and_stall_hit_the_read_timeout() {
    let s = Server::start();
    let mut settings = fast();
    settings.max_attempts = 2;
    let c = HttpClient::new(settings).unwrap();
    for path in [format!("/drip/kdrip/{FILE}"), format!("/stall/kstall/{FILE}")] {
        let t = Instant::now();
        let e = c.fetch(Request::get(s.url(&path), "slow")).unwrap_err();
        let took = t.elapsed();
        assert_eq!(e.kind, ErrorKind::Temporary, "{e}");
        assert!(e.message.contains("timed out") || e.message.contains("body"), "{e}");
        assert!(took < Duration::from_secs(5), "{path}: {took:?}");
        eprintln!("{path}: failed after {took:?}: {e}");
    }
}

#[test]
fn a_truncated_body_is_retried_and_never_stored() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = RawStore::open(tmp.path(), "src");
    let url = s.url(&format!("/truncated/ktrunc/{FILE}"));
    let e = store.get(&c, Request::get(url.clone(), "truncated"), |_| Ok(None)).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Temporary, "{e}");
    assert_eq!(s.log("ktrunc").len(), 3, "every attempt was made");
    assert!(store.lookup(&url).is_none());
    assert!(
        !tmp.path().join("_diaspora/raw/src").exists()
            || std::fs::read_dir(tmp.path().join("_diaspora/raw/src")).unwrap().count() == 0
    );
    // Once the server recovers, the second attempt succeeds.
    let r = c.fetch(Request::get(s.url(&format!("/truncated-once/konce/{FILE}")), "truncated once")).unwrap();
    assert_eq!(r.bytes, file_bytes());
}

#[test]
fn a_gzip_bomb_stops_at_the_decompressed_cap() {
    let s = Server::start();
    let mut settings = fast();
    settings.read_timeout_ms = 10_000;
    let c = HttpClient::new(settings).unwrap();
    let t = Instant::now();
    let e = c.fetch(Request::get(s.url("/gzipbomb"), "bomb")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert!(e.message.contains("cap"), "{e}");
    eprintln!("gzip bomb: stopped after {:?}", t.elapsed());
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let other = format!("http://127.0.0.1:{}/headers/kx", s.b);
    let mut req =
        Request::get(s.url(&format!("/redirect/kx?to={}", other.replace(':', "%3A").replace('/', "%2F"))), "redirect");
    req.secret_headers.push(("X-API-TOKEN".into(), "secret-token-123".into()));
    let r = c.fetch(req).unwrap();
    let seen: serde_json::Value = serde_json::from_slice(&r.bytes).unwrap();
    assert!(seen.get("x-api-token").is_none(), "token leaked to another origin: {seen}");
    // Same origin keeps it.
    let same = s.url("/headers/ky");
    let mut req =
        Request::get(s.url(&format!("/redirect/ky?to={}", same.replace(':', "%3A").replace('/', "%2F"))), "redirect");
    req.secret_headers.push(("X-API-TOKEN".into(), "secret-token-123".into()));
    let seen: serde_json::Value = serde_json::from_slice(&c.fetch(req).unwrap().bytes).unwrap();
    assert_eq!(seen["x-api-token"], "secret-token-123");
    // Loops end.
    let e = c.fetch(Request::get(s.url("/redirect-loop/kl/0"), "loop")).unwrap_err();
    assert!(e.message.contains("more than 3 redirects"), "{e}");
}

#[test]
fn client_errors_are_not_retried_and_are_classified() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let e = c.fetch(Request::get(s.url("/status/404/k404"), "missing")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data);
    assert_eq!(s.log("k404").len(), 1, "a 404 is never retried");
    let e = c.fetch(Request::get(s.url("/status/401/k401"), "unauthorised")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config);
    let _ = c.fetch(Request::get(s.url("/status/408/k408"), "timeout")).unwrap_err();
    assert_eq!(s.log("k408").len(), 3, "408 is retried");
}

#[test]
fn an_html_error_page_fails_the_format_check_and_is_not_stored() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = RawStore::open(tmp.path(), "src");
    let url = s.url("/html200/khtml");
    let e = store
        .get(&c, Request::get(url.clone(), "csv source"), |b| {
            if b.trim_ascii_start().starts_with(b"<") {
                Err(diaspora_core::Error::data("csv source: the server returned an HTML page, not CSV"))
            } else {
                Ok(None)
            }
        })
        .unwrap_err();
    assert!(e.message.contains("HTML"));
    assert!(store.lookup(&url).is_none());
}

#[test]
fn conditional_requests_reuse_the_stored_body() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = RawStore::open(tmp.path(), "src");
    let url = s.url(&format!("/ok/{FILE}"));
    let first = store.get(&c, Request::get(url.clone(), "ok"), |_| Ok(Some("2024-06-28".into()))).unwrap();
    assert!(!first.from_cache);
    let second = store.get(&c, Request::get(url.clone(), "ok"), |_| Ok(None)).unwrap();
    assert!(second.from_cache, "the server answered 304");
    assert_eq!(second.bytes, file_bytes());
    assert_eq!(second.record.vintage.as_deref(), Some("2024-06-28"));
    let log = s.log("/ok/");
    assert!(log[1]["headers"]["if-none-match"].as_str().is_some());
    assert_eq!(log[1]["status"], 304);
}

#[test]
fn requests_per_host_are_bounded() {
    let s = Server::start();
    let c = HttpClient::new(HttpSettings { per_host: 2, read_timeout_ms: 3_000, ..fast() }).unwrap();
    let reqs: Vec<Request> = (1..=6)
        .map(|p| {
            Request::get(
                s.url(&format!("/wb/slow/v2/country/ARM/indicator/NY.GDP.MKTP.KD.ZG?format=json&page={}", (p % 3) + 1)),
                "slow page",
            )
        })
        .collect();
    let t = Instant::now();
    let results = c.fetch_all(reqs);
    for r in &results {
        assert!(r.is_ok(), "{r:?}");
    }
    let log = s.log("/wb/slow/");
    let spans: Vec<(f64, f64)> = log.iter().map(|e| (e["t"].as_f64().unwrap(), e["t_end"].as_f64().unwrap())).collect();
    let max_overlap = spans.iter().map(|(a, _)| spans.iter().filter(|(b, e)| b <= a && a < e).count()).max().unwrap();
    assert!(max_overlap <= 2, "at most 2 requests in flight per host, saw {max_overlap}");
    assert!(max_overlap == 2, "the two slots are used concurrently");
    eprintln!("6 slow requests, 2 per host: {:?}", t.elapsed());
}

#[test]
fn the_retry_budget_bounds_a_run() {
    let s = Server::start();
    let c = HttpClient::new(HttpSettings { retry_budget: 2, max_attempts: 10, ..fast() }).unwrap();
    let e = c.fetch(Request::get(s.url("/always500/kbudget"), "down")).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Temporary);
    assert!(e.message.contains("budget"), "{e}");
    assert_eq!(s.log("kbudget").len(), 3);
    assert_eq!(c.retries_left(), 0);
}

#[test]
fn qualtrics_export_polls_downloads_and_unzips_safely() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let polling =
        Polling { first: Duration::from_millis(20), max: Duration::from_millis(50), timeout: Duration::from_secs(10) };
    let base = s.url("/qualtrics");
    let csv = qualtrics_export(&c, &base, "SV_ok", "test-token", polling, 10 << 20).unwrap();
    assert!(csv.starts_with(b"StartDate,") || csv.starts_with(b"\xEF\xBB\xBFStartDate,"), "{:?}", &csv[..20]);
    let polls = s.log("export-responses/ES_").len();
    assert!(polls >= 3, "polled until complete ({polls})");
    let e = qualtrics_export(&c, &base, "SV_failing", "test-token", polling, 10 << 20).unwrap_err();
    assert!(e.message.contains("failed"), "{e}");
    let e = qualtrics_export(&c, &base, "SV_ok", "wrong", polling, 10 << 20).unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(!e.message.contains("wrong"), "the token must not appear in errors: {e}");
    let e = qualtrics_export(&c, &base, "SV_zipslip", "test-token", polling, 10 << 20).unwrap_err();
    assert!(e.message.contains("escape"), "{e}");
    let mut big = fast();
    big.max_body_bytes = 64 << 20;
    big.total_timeout_ms = 60_000;
    big.read_timeout_ms = 30_000;
    let c2 = HttpClient::new(big).unwrap();
    let e = qualtrics_export(&c2, &base, "SV_bigzip", "test-token", polling, 10 << 20).unwrap_err();
    assert!(e.message.contains("cap"), "{e}");
}

#[test]
fn limesurvey_export_decodes_and_always_releases_the_session() {
    let s = Server::start();
    let c = HttpClient::new(fast()).unwrap();
    let url = s.url("/limesurvey/index.php/admin/remotecontrol");
    let csv = limesurvey_export(&c, &url, "123456", "user", "secret").unwrap();
    let want = std::fs::read(repo().join("tests/data/http/limesurvey/export_responses_result.decoded.csv")).unwrap();
    assert_eq!(csv, want);
    let e = limesurvey_export(&c, &url, "999", "user", "secret").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Data, "{e}");
    let methods: Vec<String> =
        s.log("remotecontrol").iter().filter_map(|e| e["rpc_method"].as_str().map(str::to_owned)).collect();
    assert_eq!(methods.iter().filter(|m| *m == "release_session_key").count(), 2, "{methods:?}");
    let e = limesurvey_export(&c, &url, "123456", "user", "wrong-password").unwrap_err();
    assert_eq!(e.kind, ErrorKind::Config, "{e}");
    assert!(!e.message.contains("wrong-password"));
}
