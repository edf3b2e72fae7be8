//! Getting source bytes: local paths and `file://` URLs, and the recorded World Bank pages used offline.
//!
//! Every read produces a [`diaspora_core::SourceRecord`] (location, size, SHA-256, time, vintage) so the
//! manifest can trace each output to the exact bytes it came from. A missing or unreadable input is a data error
//! (exit 65) naming the path.

pub mod api;
pub mod http;
pub mod store;

use diaspora_core::{Error, Result, SourceRecord, hex, now_rfc3339};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// Bytes of one input with their provenance.
#[derive(Debug, Clone)]
pub struct Raw {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// Where they came from.
    pub record: SourceRecord,
}

/// Resolves a `file://` URL or a path (relative to the working directory).
pub fn local_path(location: &str) -> Result<PathBuf> {
    if let Some(rest) = location.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(Error::config(format!("{location}: file:// URLs must be absolute (file:///path)")));
        }
        return Ok(PathBuf::from(rest));
    }
    if location.contains("://") {
        return Err(Error::config(format!(
            "{location}: only local paths and file:// URLs can be read by source kind \"file\""
        )));
    }
    Ok(PathBuf::from(location))
}

/// Reads a local input.
pub fn read_local(source: &str, location: &str) -> Result<Raw> {
    let path = local_path(location)?;
    let bytes = std::fs::read(&path).map_err(|e| Error::input_io(&path, &e))?;
    Ok(Raw { record: record(source, location, &bytes, None), bytes })
}

/// The provenance record of a local input, hashed a piece at a time (for inputs read as a stream, which are
/// never held in memory whole).
pub fn local_record(source: &str, location: &str) -> Result<SourceRecord> {
    use std::io::Read;
    let path = local_path(location)?;
    let mut f = std::fs::File::open(&path).map_err(|e| Error::input_io(&path, &e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::input_io(&path, &e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(SourceRecord {
        source: source.to_owned(),
        location: location.to_owned(),
        sha256: hex(&h.finalize()),
        bytes,
        fetched_at: now_rfc3339(),
        vintage: None,
    })
}

/// Builds the provenance record of some bytes.
pub fn record(source: &str, location: &str, bytes: &[u8], vintage: Option<String>) -> SourceRecord {
    SourceRecord {
        source: source.to_owned(),
        location: location.to_owned(),
        sha256: hex(&Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
        fetched_at: now_rfc3339(),
        vintage,
    }
}

/// Reads recorded World Bank page `page` of `indicator` from `dir` (`<indicator>_p<page>.json`).
pub fn worldbank_offline_page(source: &str, dir: &Path, indicator: &str, page: u64) -> Result<Raw> {
    let path = dir.join(format!("{indicator}_p{page}.json"));
    let bytes = std::fs::read(&path).map_err(|e| Error::input_io(&path, &e))?;
    Ok(Raw { record: record(source, &path.display().to_string(), &bytes, None), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_and_missing_files_are_data_errors() {
        assert_eq!(local_path("file:///tmp/x.csv").unwrap(), PathBuf::from("/tmp/x.csv"));
        assert_eq!(local_path("data/x.csv").unwrap(), PathBuf::from("data/x.csv"));
        assert!(local_path("https://example.org/x.csv").is_err());
        let e = read_local("s", "/definitely/not/here.csv").unwrap_err();
        assert_eq!(e.kind, diaspora_core::ErrorKind::Data);
        assert!(e.message.contains("/definitely/not/here.csv"));
    }

    #[test]
    fn records_hash_the_bytes() {
        let r = record("s", "x", b"abc", Some("2024-06-28".into()));
        assert_eq!(r.sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(r.bytes, 3);
    }
}
