//! HTTP with the behaviour an unattended job needs: explicit connect, read and total timeouts; caps on the
//! body (after decompression, so a gzip bomb stops at the cap); retries with exponential backoff and full
//! jitter on connect errors, timeouts, truncated bodies, 408, 429 and 5xx, honouring `Retry-After` (seconds or
//! an HTTP date) up to a cap, within a per-run retry budget; never a retry of another 4xx; redirects followed by
//! hand, a limited number of times, dropping credentials when the origin changes or https drops to http; no
//! ambient proxy; at most `per_host` requests in flight per host.

pub use diaspora_config::HttpSettings;
use diaspora_core::{Error, Result};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET.
    Get,
    /// POST.
    Post,
}

/// A request. Headers in `secret_headers` are credentials: never logged, never sent to another origin.
#[derive(Debug, Clone)]
pub struct Request {
    /// Absolute URL.
    pub url: String,
    /// Method.
    pub method: Method,
    /// Body (POST).
    pub body: Option<Vec<u8>>,
    /// Ordinary headers.
    pub headers: Vec<(String, String)>,
    /// Credential headers (e.g. `X-API-TOKEN`).
    pub secret_headers: Vec<(String, String)>,
    /// Validators for a conditional GET.
    pub if_none_match: Option<String>,
    /// `If-Modified-Since` value.
    pub if_modified_since: Option<String>,
    /// What to call this request in errors (e.g. "World Bank indicator NY.GDP.MKTP.KD.ZG page 2").
    pub what: String,
}

impl Request {
    /// A GET of `url`.
    pub fn get(url: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: Method::Get,
            body: None,
            headers: Vec::new(),
            secret_headers: Vec::new(),
            if_none_match: None,
            if_modified_since: None,
            what: what.into(),
        }
    }
    /// A POST of a JSON body.
    pub fn post_json(url: impl Into<String>, body: &serde_json::Value, what: impl Into<String>) -> Self {
        let mut r = Self::get(url, what);
        r.method = Method::Post;
        r.body = Some(serde_json::to_vec(body).unwrap_or_default());
        r.headers.push(("content-type".into(), "application/json".into()));
        r
    }
}

/// A successful response (2xx, or 304 for a conditional GET).
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// The body (empty for 304).
    pub bytes: Vec<u8>,
    /// `ETag`.
    pub etag: Option<String>,
    /// `Last-Modified`.
    pub last_modified: Option<String>,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// Attempts made.
    pub attempts: u32,
    /// The URL finally answered (after redirects).
    pub final_url: String,
}

impl Response {
    /// Whether the server said the cached copy is current.
    pub fn not_modified(&self) -> bool {
        self.status == 304
    }
}

/// The client. Blocking API over an internal Tokio runtime; `fetch_all` runs requests concurrently.
pub struct HttpClient {
    client: reqwest::Client,
    rt: tokio::runtime::Runtime,
    settings: HttpSettings,
    budget: AtomicU32,
    hosts: Mutex<HashMap<String, Arc<Semaphore>>>,
}

enum Attempt {
    Done(Response),
    /// Worth another try, after at least this long (a `Retry-After`), with a cause for the error message.
    Retry(Option<Duration>, String),
    Fail(Error),
}

impl HttpClient {
    /// Builds a client from settings.
    pub fn new(settings: HttpSettings) -> Result<Self> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .read_timeout(Duration::from_millis(settings.read_timeout_ms))
            .timeout(Duration::from_millis(settings.total_timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(settings.user_agent.clone())
            .no_proxy();
        if let Some(p) = &settings.proxy {
            let proxy = reqwest::Proxy::all(p).map_err(|e| Error::config(format!("http.proxy: {e}")))?;
            b = b.proxy(proxy);
        }
        let client = b.build().map_err(|e| Error::internal(format!("HTTP client: {e}")))?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .enable_io()
            .build()
            .map_err(|e| Error::internal(format!("runtime: {e}")))?;
        Ok(Self {
            client,
            rt,
            budget: AtomicU32::new(settings.retry_budget),
            settings,
            hosts: Mutex::new(HashMap::new()),
        })
    }

    /// Performs one request (with retries).
    pub fn fetch(&self, req: Request) -> Result<Response> {
        self.rt.block_on(self.fetch_async(req))
    }

    /// Performs requests concurrently (bounded per host); results in request order.
    pub fn fetch_all(&self, reqs: Vec<Request>) -> Vec<Result<Response>> {
        self.rt.block_on(async {
            let futs: Vec<_> = reqs.into_iter().map(|r| self.fetch_async(r)).collect();
            join_all(futs).await
        })
    }

    /// Retries still available in this run.
    pub fn retries_left(&self) -> u32 {
        self.budget.load(Ordering::SeqCst)
    }

    async fn fetch_async(&self, req: Request) -> Result<Response> {
        let s = &self.settings;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let sem = self.host_semaphore(&req.url)?;
            let permit = sem.acquire_owned().await.map_err(|e| Error::internal(e.to_string()))?;
            let outcome = self.attempt(&req, attempt).await;
            drop(permit);
            let (retry_after, cause) = match outcome {
                Attempt::Done(r) => return Ok(r),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(after, cause) => (after, cause),
            };
            if attempt >= s.max_attempts {
                return Err(Error::temporary(format!("{}: gave up after {attempt} attempts: {cause}", req.what)));
            }
            if self.budget.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| b.checked_sub(1)).is_err() {
                return Err(Error::temporary(format!("{}: retry budget of the run is spent: {cause}", req.what)));
            }
            let wait = match retry_after {
                Some(d) if d.as_millis() as u64 > s.retry_after_cap_ms => {
                    return Err(Error::temporary(format!(
                        "{}: server asks to retry after {} s, longer than the {} s cap: {cause}",
                        req.what,
                        d.as_secs(),
                        s.retry_after_cap_ms / 1000
                    )));
                }
                Some(d) => d,
                None => full_jitter(s.backoff_base_ms, s.backoff_max_ms, attempt),
            };
            tracing::warn!(what = %req.what, attempt, wait_ms = wait.as_millis() as u64, cause = %cause, "retrying");
            tokio::time::sleep(wait).await;
        }
    }

    fn host_semaphore(&self, url: &str) -> Result<Arc<Semaphore>> {
        let u = reqwest::Url::parse(url).map_err(|e| Error::config(format!("invalid URL: {e}")))?;
        let key = format!("{}:{}", u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0));
        let mut hosts = self.hosts.lock().map_err(|_| Error::internal("host table poisoned"))?;
        Ok(hosts.entry(key).or_insert_with(|| Arc::new(Semaphore::new(self.settings.per_host.max(1)))).clone())
    }

    async fn attempt(&self, req: &Request, attempt: u32) -> Attempt {
        let s = &self.settings;
        let mut url = match reqwest::Url::parse(&req.url) {
            Ok(u) => u,
            Err(e) => return Attempt::Fail(Error::config(format!("{}: invalid URL: {e}", req.what))),
        };
        let origin = url.origin();
        let mut send_secrets = true;
        let mut redirects = 0;
        loop {
            let mut rb = match req.method {
                Method::Get => self.client.get(url.clone()),
                Method::Post => self.client.post(url.clone()),
            };
            for (k, v) in &req.headers {
                rb = rb.header(k, v);
            }
            if send_secrets {
                for (k, v) in &req.secret_headers {
                    rb = rb.header(k, v);
                }
            }
            if let Some(v) = &req.if_none_match {
                rb = rb.header("if-none-match", v);
            }
            if let Some(v) = &req.if_modified_since {
                rb = rb.header("if-modified-since", v);
            }
            if let Some(b) = &req.body {
                rb = rb.body(b.clone());
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) => return Attempt::Retry(None, describe(&e)),
            };
            let status = resp.status().as_u16();
            if (300..400).contains(&status) && status != 304 {
                let Some(loc) = resp.headers().get("location").and_then(|v| v.to_str().ok()) else {
                    return Attempt::Fail(Error::data(format!("{}: redirect {status} without a Location", req.what)));
                };
                redirects += 1;
                if redirects > s.max_redirects {
                    return Attempt::Fail(Error::data(format!(
                        "{}: more than {} redirects",
                        req.what, s.max_redirects
                    )));
                }
                if req.method != Method::Get {
                    return Attempt::Fail(Error::data(format!("{}: a POST was redirected ({status})", req.what)));
                }
                let next = match url.join(loc) {
                    Ok(u) => u,
                    Err(e) => return Attempt::Fail(Error::data(format!("{}: bad redirect target: {e}", req.what))),
                };
                // Credentials never go to another origin, nor from https down to http.
                if next.origin() != origin || (url.scheme() == "https" && next.scheme() != "https") {
                    send_secrets = false;
                }
                url = next;
                continue;
            }
            let headers = resp.headers().clone();
            let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).map(str::to_owned);
            if status == 408 || status == 429 || status >= 500 {
                let after = header("retry-after").and_then(|v| parse_retry_after(&v));
                return Attempt::Retry(after, format!("HTTP {status}"));
            }
            if !(200..300).contains(&status) && status != 304 {
                let body = read_capped(resp, 64 * 1024).await.map(|(b, _)| b).unwrap_or_default();
                let kind = if status == 401 || status == 403 { Error::config } else { Error::data };
                return Attempt::Fail(kind(format!(
                    "{}: HTTP {status}{}",
                    req.what,
                    summarize_error_body(&body, header("content-type").as_deref())
                )));
            }
            let expected_len = if header("content-encoding").is_none() { resp.content_length() } else { None };
            let bytes = match read_capped(resp, s.max_body_bytes).await {
                Ok((b, false)) => b,
                Ok((_, true)) => {
                    return Attempt::Fail(Error::data(format!(
                        "{}: body larger than the {} byte cap (after decompression)",
                        req.what, s.max_body_bytes
                    )));
                }
                Err(cause) => return Attempt::Retry(None, cause),
            };
            if let Some(n) = expected_len
                && status != 304
                && n != bytes.len() as u64
            {
                return Attempt::Retry(None, format!("body has {} bytes, Content-Length says {n}", bytes.len()));
            }
            return Attempt::Done(Response {
                status,
                bytes,
                etag: header("etag"),
                last_modified: header("last-modified"),
                content_type: header("content-type"),
                attempts: attempt,
                final_url: url.to_string(),
            });
        }
    }
}

async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    // A small join: poll all futures on this task until each is done.
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futs.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("every future completed")).collect()
}

/// Reads the body up to `cap` bytes; `(bytes, true)` when the cap was exceeded. A failed or stalled read is an
/// error string (retryable).
async fn read_capped(mut resp: reqwest::Response, cap: u64) -> std::result::Result<(Vec<u8>, bool), String> {
    let mut buf = Vec::new();
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if buf.len() as u64 + c.len() as u64 > cap {
                    return Ok((buf, true));
                }
                buf.extend_from_slice(&c);
            }
            Ok(None) => return Ok((buf, false)),
            Err(e) => return Err(format!("reading the body: {}", describe(&e))),
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "body incomplete or undecodable"
    } else if e.is_request() {
        "request failed"
    } else {
        "HTTP error"
    };
    // The URL is part of reqwest's message; ours carry no credentials, but keep only the kind and the source.
    let mut cause = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        cause = s.to_string();
        src = s.source();
    }
    if cause.is_empty() { kind.into() } else { format!("{kind} ({cause})") }
}

/// A short description of an error body: World Bank error messages, or "an HTML page".
fn summarize_error_body(body: &[u8], content_type: Option<&str>) -> String {
    let text = String::from_utf8_lossy(body);
    let t = text.trim_start_matches('\u{feff}').trim_start();
    if t.starts_with('<') || content_type.is_some_and(|c| c.contains("html")) {
        return " (the server returned an HTML/XML error page)".into();
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
        let msg = v.pointer("/0/message/0/value").or_else(|| v.pointer("/meta/error/errorMessage"));
        if let Some(m) = msg.and_then(|m| m.as_str()) {
            return format!(" ({m})");
        }
    }
    String::new()
}

/// `Retry-After`: delta seconds or an HTTP date.
pub fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = parse_http_date(v)?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?.as_secs() as i64;
    Some(Duration::from_secs(when.saturating_sub(now).max(0) as u64))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
fn parse_http_date(v: &str) -> Option<i64> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| *m == parts[2])? as i64
        + 1;
    let year: i64 = parts[3].parse().ok()?;
    let hms: Vec<i64> = parts[4].split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // Days from civil (inverse of core's civil_from_days).
    let (y, m) = if month <= 2 { (year - 1, month + 9) } else { (year, month - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2])
}

/// Exponential backoff with full jitter: uniform in `[0, min(max, base · 2^(attempt-1))]`.
pub fn full_jitter(base_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    let ceiling = base_ms.saturating_mul(1u64 << (attempt.saturating_sub(1)).min(20)).min(max_ms);
    let mut r = [0u8; 8];
    let _ = getrandom::fill(&mut r);
    Duration::from_millis(if ceiling == 0 { 0 } else { u64::from_le_bytes(r) % (ceiling + 1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn jitter_stays_under_the_ceiling() {
        for attempt in 1..10 {
            let d = full_jitter(100, 1000, attempt);
            assert!(d <= Duration::from_millis((100u64 << (attempt - 1)).min(1000)));
        }
        assert_eq!(full_jitter(0, 1000, 3), Duration::ZERO);
    }

    #[test]
    fn error_bodies_are_summarised_without_dumping_them() {
        let wb = br#"[{"message":[{"id":"120","key":"Invalid value","value":"The provided parameter value is not valid"}]}]"#;
        assert_eq!(summarize_error_body(wb, None), " (The provided parameter value is not valid)");
        assert!(summarize_error_body(b"\xEF\xBB\xBF<?xml?><html/>", None).contains("HTML"));
    }
}
