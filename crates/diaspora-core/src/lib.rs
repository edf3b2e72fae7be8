//! Shared vocabulary of the diaspora workspace: error kinds with their exit codes, rejected rows and the
//! reasons they carry, and the provenance records that travel from fetch to the manifest.
//!
//! Every other crate depends on this one and on nothing above it. Errors here never carry cell values:
//! they name the file, the line and the column instead (see `docs/privacy.md`).

mod table;
pub use table::*;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::Path;

/// What kind of failure ended a run; each kind maps to one documented exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The pipeline file, the settings or the command line are wrong (exit 78, `EX_CONFIG`).
    Config,
    /// Input data is malformed or exceeds its reject budget (exit 65, `EX_DATAERR`).
    Data,
    /// A failure worth retrying later: network, rate limit, lock held (exit 75, `EX_TEMPFAIL`).
    Temporary,
    /// Anything else: a bug, an I/O error on our own output (exit 70, `EX_SOFTWARE`).
    Internal,
}

impl ErrorKind {
    /// The process exit code a scheduler sees for this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Config => 78,
            ErrorKind::Data => 65,
            ErrorKind::Temporary => 75,
            ErrorKind::Internal => 70,
        }
    }
}

/// The one error type that crosses crate boundaries.
///
/// The message is a single line that names where the problem is (file, line, column, key path), never a value
/// taken from a respondent's answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What kind of failure this is.
    pub kind: ErrorKind,
    /// One human-readable line.
    pub message: String,
}

impl Error {
    /// A configuration error (exit 78).
    pub fn config(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Config, message: message.into() }
    }
    /// An input-data error (exit 65).
    pub fn data(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Data, message: message.into() }
    }
    /// A temporary failure worth retrying (exit 75).
    pub fn temporary(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Temporary, message: message.into() }
    }
    /// An internal error (exit 70).
    pub fn internal(message: impl Into<String>) -> Self {
        Self { kind: ErrorKind::Internal, message: message.into() }
    }
    /// An I/O error on `path`, classified as internal (our own files) unless the caller re-kinds it.
    pub fn io(path: &Path, action: &str, err: &std::io::Error) -> Self {
        Self::internal(format!("{action} {}: {err}", path.display()))
    }
    /// An I/O error reading an input file: a missing or unreadable input is a data error.
    pub fn input_io(path: &Path, err: &std::io::Error) -> Self {
        Self::data(format!("cannot read input {}: {err}", path.display()))
    }
    /// Prefixes the message with context, keeping the kind.
    pub fn context(mut self, ctx: impl fmt::Display) -> Self {
        self.message = format!("{ctx}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Result alias used across the workspace.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A row that could not be cleaned, with the reason. Rows are never dropped silently: they end up in an output,
/// in the `rejects` dataset, or in a duplicate count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reject {
    /// Source id from the pipeline file.
    pub source: String,
    /// 1-based physical line in the input file where the record starts (after decoding), or the record index
    /// for formats without lines.
    pub line: u64,
    /// Machine-readable reason code, e.g. `country_unresolved`.
    pub reason: String,
    /// The column that caused the rejection, if one did.
    pub column: Option<String>,
    /// The offending value, only when the column may be shown (never identifiers or free text), redacted of
    /// anything that looks like contact data.
    pub value: Option<String>,
}

/// Where a source's bytes came from; recorded in the manifest so every file traces back to its inputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// Source id from the pipeline file.
    pub source: String,
    /// The location as declared (path or URL without credentials).
    pub location: String,
    /// SHA-256 of the raw bytes, hex.
    pub sha256: String,
    /// Size of the raw bytes.
    pub bytes: u64,
    /// When the bytes were fetched or read (RFC 3339, UTC).
    pub fetched_at: String,
    /// Data vintage declared by the publisher (World Bank `lastupdated`), if any.
    pub vintage: Option<String>,
}

/// Hex encoding of a byte slice (lower case).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// Finds the closest candidate to `given` for a did-you-mean hint (edit distance at most a third of the length).
pub fn did_you_mean<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let (g, cl) = (given.to_lowercase(), c.to_lowercase());
        let prefix: String = cl.chars().take(g.chars().count()).collect();
        let d = levenshtein(&g, &cl).min(levenshtein(&g, &prefix) + 1);
        if d <= given.chars().count().max(3) / 3 + 1 && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance over Unicode scalar values.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The current time as RFC 3339 UTC with second precision, from the system clock.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    rfc3339_from_unix(secs as i64)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_from_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_are_the_documented_ones() {
        assert_eq!(ErrorKind::Config.exit_code(), 78);
        assert_eq!(ErrorKind::Data.exit_code(), 65);
        assert_eq!(ErrorKind::Temporary.exit_code(), 75);
        assert_eq!(ErrorKind::Internal.exit_code(), 70);
    }

    #[test]
    fn did_you_mean_finds_near_names() {
        assert_eq!(did_you_mean("partiton_by", ["partition_by", "dataset"]), Some("partition_by"));
        assert_eq!(did_you_mean("zzz", ["partition_by", "dataset"]), None);
    }

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339_from_unix(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_from_unix(1_709_251_200), "2024-03-01T00:00:00Z");
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
