//! Survey-platform export APIs: the Qualtrics v3 response export (start, poll, download, unzip safely) and
//! LimeSurvey RemoteControl (session key, base64 CSV export, release). Credentials travel only in
//! [`Request::secret_headers`] or JSON-RPC bodies sent to the configured origin, never in messages.

use crate::http::{HttpClient, Request};
use base64::Engine;
use diaspora_core::{Error, Result};
use serde_json::{Value, json};
use std::io::Read;
use std::time::{Duration, Instant};

/// How long and how often to poll a Qualtrics export.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// First wait between polls; grows by half each time up to `max`.
    pub first: Duration,
    /// Longest wait between polls.
    pub max: Duration,
    /// Give up after this long.
    pub timeout: Duration,
}

impl Default for Polling {
    fn default() -> Self {
        Self { first: Duration::from_secs(1), max: Duration::from_secs(15), timeout: Duration::from_secs(1800) }
    }
}

/// Runs a Qualtrics response export and returns the CSV bytes inside the downloaded zip.
pub fn qualtrics_export(
    client: &HttpClient,
    base_url: &str,
    survey_id: &str,
    token: &str,
    polling: Polling,
    max_uncompressed: u64,
) -> Result<Vec<u8>> {
    let base = format!("{}/API/v3/surveys/{survey_id}/export-responses", base_url.trim_end_matches('/'));
    let what = format!("Qualtrics export of survey {survey_id}");
    let auth = vec![("X-API-TOKEN".to_owned(), token.to_owned())];
    let mut start = Request::post_json(
        format!("{base}/"),
        &json!({"format": "csv", "useLabels": true, "breakoutSets": true}),
        format!("{what}: start"),
    );
    start.secret_headers = auth.clone();
    let started: Value = json_body(&client.fetch(start)?.bytes, &what)?;
    let progress_id = started
        .pointer("/result/progressId")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::data(format!("{what}: start answer has no result.progressId")))?
        .to_owned();
    let deadline = Instant::now() + polling.timeout;
    let mut wait = polling.first;
    let file_id = loop {
        let mut poll = Request::get(format!("{base}/{progress_id}"), format!("{what}: progress"));
        poll.secret_headers = auth.clone();
        let p: Value = json_body(&client.fetch(poll)?.bytes, &what)?;
        match p.pointer("/result/status").and_then(Value::as_str) {
            Some("complete") => {
                break p
                    .pointer("/result/fileId")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::data(format!("{what}: complete without a fileId")))?
                    .to_owned();
            }
            Some("failed") => return Err(Error::data(format!("{what}: Qualtrics reports the export failed"))),
            Some("inProgress") => {}
            other => return Err(Error::data(format!("{what}: unexpected export status {other:?}"))),
        }
        if Instant::now() + wait > deadline {
            return Err(Error::temporary(format!("{what}: not complete after {} s", polling.timeout.as_secs())));
        }
        std::thread::sleep(wait);
        wait = (wait + wait / 2).min(polling.max);
    };
    let mut download = Request::get(format!("{base}/{file_id}/file"), format!("{what}: download"));
    download.secret_headers = auth;
    let zip = client.fetch(download)?;
    unzip_single_table(&zip.bytes, max_uncompressed, &what)
}

/// Extracts the CSV/TSV member of an export zip (the `API_…` data file of a World Bank bulk zip, else the first). Member names that would escape a directory (`..`,
/// absolute paths, drive letters, backslashes) are refused, and decompression stops at `max_uncompressed` bytes.
pub fn unzip_single_table(bytes: &[u8], max_uncompressed: u64, what: &str) -> Result<Vec<u8>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| Error::data(format!("{what}: not a readable zip: {e}")))?;
    let mut found = None;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(|e| Error::data(format!("{what}: zip entry {i}: {e}")))?;
        let name = entry.name().to_owned();
        let unsafe_name = name.starts_with('/')
            || name.contains('\\')
            || name.split('/').any(|part| part == "..")
            || name.as_bytes().get(1) == Some(&b':');
        if unsafe_name {
            return Err(Error::data(format!("{what}: zip member {name:?} would escape the extraction directory")));
        }
        let lower = name.to_lowercase();
        if lower.ends_with(".csv") || lower.ends_with(".tsv") {
            // The World Bank bulk zip holds the data (API_…) beside two metadata files: prefer the data.
            let base = name.rsplit('/').next().unwrap_or(&name);
            if found.is_none() || base.starts_with("API_") {
                found = Some(i);
            }
        }
    }
    let i = found.ok_or_else(|| Error::data(format!("{what}: the zip holds no .csv or .tsv file")))?;
    let entry = archive.by_index(i).map_err(|e| Error::data(format!("{what}: zip entry {i}: {e}")))?;
    let mut out = Vec::new();
    entry
        .take(max_uncompressed + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::data(format!("{what}: decompressing: {e}")))?;
    if out.len() as u64 > max_uncompressed {
        return Err(Error::data(format!("{what}: zip member larger than the {max_uncompressed} byte cap")));
    }
    Ok(out)
}

/// Exports LimeSurvey responses as CSV through RemoteControl JSON-RPC. The session key is always released.
pub fn limesurvey_export(
    client: &HttpClient,
    url: &str,
    survey_id: &str,
    user: &str,
    password: &str,
) -> Result<Vec<u8>> {
    let what = format!("LimeSurvey export of survey {survey_id}");
    let call = |method: &str, params: Value| -> Result<Value> {
        let req =
            Request::post_json(url, &json!({"method": method, "params": params, "id": 1}), format!("{what}: {method}"));
        let v: Value = json_body(&client.fetch(req)?.bytes, &what)?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(Error::data(format!("{what}: {method}: JSON-RPC error {}", short(err))));
        }
        let result = v.get("result").cloned().unwrap_or(Value::Null);
        if let Some(status) = result.get("status").and_then(Value::as_str) {
            let kind =
                if status.contains("password") || status.contains("session") { Error::config } else { Error::data };
            return Err(kind(format!("{what}: {method}: {status}")));
        }
        Ok(result)
    };
    let key = call("get_session_key", json!([user, password]))?;
    let key = key.as_str().ok_or_else(|| Error::data(format!("{what}: get_session_key returned no key")))?.to_owned();
    let exported = call("export_responses", json!([key, survey_id.parse::<i64>().unwrap_or(0), "csv", null, "all"]));
    let released = call("release_session_key", json!([key]));
    let b64 = exported?;
    released?;
    let b64 = b64.as_str().ok_or_else(|| Error::data(format!("{what}: export_responses returned no data")))?;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| Error::data(format!("{what}: export is not valid base64: {e}")))
}

fn json_body(bytes: &[u8], what: &str) -> Result<Value> {
    serde_json::from_slice(bytes)
        .map_err(|e| Error::data(format!("{what}: invalid JSON at line {}, column {}", e.line(), e.column())))
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 200 { format!("{}…", s.chars().take(200).collect::<String>()) } else { s }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut buf = std::io::Cursor::new(Vec::new());
        let mut w = zip::ZipWriter::new(&mut buf);
        for (name, data) in members {
            w.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            w.write_all(data).unwrap();
        }
        w.finish().unwrap();
        buf.into_inner()
    }

    #[test]
    fn unzips_the_table_and_refuses_escapes_and_bombs() {
        let z = zip_of(&[("Survey.csv", b"a,b\n1,2\n")]);
        assert_eq!(unzip_single_table(&z, 1000, "t").unwrap(), b"a,b\n1,2\n");
        let z = zip_of(&[("../../evil.csv", b"x"), ("Survey.csv", b"a")]);
        assert!(unzip_single_table(&z, 1000, "t").unwrap_err().message.contains("escape"));
        let z = zip_of(&[("Survey.csv", &vec![b'a'; 5000])]);
        assert!(unzip_single_table(&z, 1000, "t").unwrap_err().message.contains("cap"));
        assert!(unzip_single_table(b"not a zip", 1000, "t").is_err());
    }
}
