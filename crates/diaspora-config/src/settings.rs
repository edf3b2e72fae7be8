use diaspora_core::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where and how fast a pipeline runs. Everything here can be overridden per profile or by environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The profile these settings were built for (`default`, `ci`, `live`, …).
    pub profile: String,
    /// Root directory of published datasets, the raw store and run reports.
    pub data_root: PathBuf,
    /// Read recorded responses instead of calling remote APIs.
    pub offline: bool,
    /// Worker threads for CPU stages; 0 means one per core.
    pub threads: usize,
    /// Rows per Arrow batch when reading.
    pub batch_rows: usize,
    /// Published versions kept per dataset (the current one included).
    pub retention: usize,
    /// Smallest published cell in aggregates; smaller cells are suppressed.
    pub min_cell: u32,
    /// Where the pseudonymisation key comes from.
    pub pseudonym: PseudonymSettings,
    /// World Bank Indicators API endpoint and the recorded pages used offline.
    pub worldbank: WorldBankSettings,
    /// HTTP behaviour: timeouts, caps, retries, redirects, concurrency.
    #[serde(default)]
    pub http: HttpSettings,
    /// Qualtrics API endpoint.
    #[serde(default)]
    pub qualtrics: EndpointSettings,
    /// LimeSurvey RemoteControl endpoint.
    #[serde(default)]
    pub limesurvey: EndpointSettings,
    /// IMF DataMapper endpoint.
    #[serde(default)]
    pub imf: EndpointSettings,
    /// When and how sources are streamed instead of read whole.
    #[serde(default)]
    pub streaming: StreamingSettings,
}

/// Streaming: a large delimited file is read, cleaned, joined and written piece by piece, so memory does not
/// grow with the input. Results are the same as reading it whole.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingSettings {
    /// Files at least this large are streamed when the pipeline allows it (0 streams every file).
    pub above_bytes: u64,
    /// Bytes of input per piece.
    pub piece_bytes: usize,
    /// Pieces decoded and cleaned together (in parallel).
    pub pieces_in_flight: usize,
    /// Encoded Parquet bytes held in memory across a dataset's open files before row groups are written early.
    pub writer_buffer_bytes: usize,
    /// Parquet files open at once per dataset.
    pub open_files: usize,
}

impl Default for StreamingSettings {
    fn default() -> Self {
        Self {
            above_bytes: 64 << 20,
            piece_bytes: 4 << 20,
            pieces_in_flight: 8,
            writer_buffer_bytes: 256 << 20,
            open_files: 256,
        }
    }
}

/// An API endpoint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSettings {
    /// Base URL, e.g. `https://fra1.qualtrics.com` or `https://www.imf.org/external/datamapper`.
    pub base_url: Option<String>,
    /// First wait between polls of an asynchronous export (Qualtrics), in milliseconds.
    pub poll_first_ms: Option<u64>,
}

/// How the keyed-pseudonym secret is found. The key itself is never part of settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PseudonymSettings {
    /// Environment variable holding the key (≥ 32 bytes; hex or raw).
    pub key_env: String,
    /// A file holding the key, used when the variable is unset.
    pub key_file: Option<PathBuf>,
    /// Generate and keep a local key in `key_file` when none exists (allowed only for the offline sample).
    pub generate_local_key: bool,
}

/// World Bank Indicators API settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorldBankSettings {
    /// API base, e.g. `https://api.worldbank.org`.
    pub base_url: String,
    /// Directory of recorded pages (`<indicator>_p<n>.json`) read when `offline` is set.
    pub offline_dir: PathBuf,
}

/// HTTP tunables (the `[http]` settings section).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSettings {
    /// TCP + TLS connect timeout.
    pub connect_timeout_ms: u64,
    /// Longest wait for the next bytes of a response.
    pub read_timeout_ms: u64,
    /// Longest a whole request (headers and body) may take.
    pub total_timeout_ms: u64,
    /// Largest body accepted, after decompression.
    pub max_body_bytes: u64,
    /// Attempts per request (1 = no retry).
    pub max_attempts: u32,
    /// Retries allowed across the whole run.
    pub retry_budget: u32,
    /// First backoff; doubles per attempt (full jitter: a uniform wait in `[0, backoff]`).
    pub backoff_base_ms: u64,
    /// Largest backoff.
    pub backoff_max_ms: u64,
    /// Longest `Retry-After` honoured; a longer one fails the request as temporary.
    pub retry_after_cap_ms: u64,
    /// Redirects followed per request.
    pub max_redirects: u32,
    /// Requests in flight per host.
    pub per_host: usize,
    /// Explicit proxy URL; environment proxies are never used.
    pub proxy: Option<String>,
    /// User-Agent header.
    pub user_agent: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout_ms: 10_000,
            read_timeout_ms: 30_000,
            total_timeout_ms: 300_000,
            max_body_bytes: 512 * 1024 * 1024,
            max_attempts: 5,
            retry_budget: 50,
            backoff_base_ms: 500,
            backoff_max_ms: 30_000,
            retry_after_cap_ms: 120_000,
            max_redirects: 5,
            per_host: 2,
            proxy: None,
            user_agent: concat!("diaspora/", env!("CARGO_PKG_VERSION")).into(),
        }
    }
}

const BUILTIN: &str = r#"
profile = "default"
data_root = "out"
offline = true
threads = 0
batch_rows = 8192
retention = 3
min_cell = 10
[pseudonym]
key_env = "DIASPORA_PSEUDONYM_KEY"
generate_local_key = false
[worldbank]
base_url = "https://api.worldbank.org"
offline_dir = "data/sample/worldbank"
"#;

/// Builds settings from the layers. `config_dir` holds `default.toml` and `<profile>.toml`; missing files are
/// skipped, except a profile file for a profile other than `default`, and an explicit `extra` file.
pub fn load_settings(config_dir: &Path, profile: Option<&str>, extra: Option<&Path>) -> Result<Settings> {
    use config::{Config, Environment, File, FileFormat};
    let profile = profile.map(str::to_owned).or_else(|| std::env::var("DIASPORA_PROFILE").ok());
    let mut b = Config::builder()
        .add_source(File::from_str(BUILTIN, FileFormat::Toml))
        .add_source(File::from(config_dir.join("default.toml")).required(false));
    if let Some(p) = profile.as_deref().filter(|p| *p != "default") {
        let path = config_dir.join(format!("{p}.toml"));
        if !path.exists() {
            return Err(Error::config(format!("profile {p:?}: no settings file {}", path.display())));
        }
        b = b.add_source(File::from(path)).set_override("profile", p).map_err(cfg_err)?;
    }
    if let Some(extra) = extra {
        if !extra.exists() {
            return Err(Error::config(format!("settings file {} does not exist", extra.display())));
        }
        b = b.add_source(File::from(extra));
    }
    b = b.add_source(Environment::with_prefix("DIASPORA").prefix_separator("__").separator("__").try_parsing(true));
    let settings: Settings = b.build().map_err(cfg_err)?.try_deserialize().map_err(cfg_err)?;
    if settings.streaming.piece_bytes == 0 || settings.streaming.pieces_in_flight == 0 {
        return Err(Error::config("settings: streaming.piece_bytes and streaming.pieces_in_flight must be at least 1"));
    }
    if settings.batch_rows == 0 {
        return Err(Error::config("settings: batch_rows must be at least 1"));
    }
    if settings.retention == 0 {
        return Err(Error::config("settings: retention must be at least 1"));
    }
    Ok(settings)
}

fn cfg_err(e: config::ConfigError) -> Error {
    Error::config(format!("settings: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), "retention = 5\nmin_cell = 12\n").unwrap();
        std::fs::write(dir.path().join("ci.toml"), "retention = 2\n").unwrap();
        let s = load_settings(dir.path(), Some("ci"), None).unwrap();
        assert_eq!(s.profile, "ci");
        assert_eq!(s.retention, 2);
        assert_eq!(s.min_cell, 12);
        assert_eq!(s.batch_rows, 8192);
    }

    #[test]
    fn unknown_profile_and_unknown_keys_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_settings(dir.path(), Some("nope"), None).unwrap_err().message.contains("nope"));
        std::fs::write(dir.path().join("default.toml"), "retension = 5\n").unwrap();
        let e = load_settings(dir.path(), None, None).unwrap_err();
        assert!(e.message.contains("retension"), "{e}");
    }
}
