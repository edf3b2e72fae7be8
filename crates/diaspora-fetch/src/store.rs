//! The raw store: every fetched body, content-addressed under `<data_root>/_diaspora/raw/<source>/<sha256>`,
//! with a fetch record per URL (status, validators, size, hash, time, vintage) in `index.json`.
//!
//! A body is committed only after it passed its format check, so a truncated or malformed answer is never
//! stored. Records keep the validators for the next run's conditional request.

use crate::http::{HttpClient, Request, Response};
use diaspora_core::{Error, Result, SourceRecord, hex, now_rfc3339};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// What is known about the last good fetch of a URL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FetchRecord {
    /// The URL (never with credentials).
    pub url: String,
    /// HTTP status of the body stored.
    pub status: u16,
    /// `ETag` of the body stored.
    pub etag: Option<String>,
    /// `Last-Modified` of the body stored.
    pub last_modified: Option<String>,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, hex (also the blob's file name).
    pub sha256: String,
    /// When it was fetched (RFC 3339 UTC).
    pub fetched_at: String,
    /// Data vintage declared by the publisher, if any.
    pub vintage: Option<String>,
}

/// A source's raw store.
pub struct RawStore {
    dir: PathBuf,
}

/// A body with where it came from, and whether it was served from the store after a 304.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The fetch record.
    pub record: FetchRecord,
    /// True when the server answered 304 and the stored copy was used.
    pub from_cache: bool,
}

impl Fetched {
    /// The provenance record for the manifest.
    pub fn source_record(&self, source: &str) -> SourceRecord {
        SourceRecord {
            source: source.into(),
            location: self.record.url.clone(),
            sha256: self.record.sha256.clone(),
            bytes: self.record.bytes,
            fetched_at: self.record.fetched_at.clone(),
            vintage: self.record.vintage.clone(),
        }
    }
}

impl RawStore {
    /// The store of `source` under `data_root`.
    pub fn open(data_root: &Path, source: &str) -> Self {
        Self { dir: data_root.join("_diaspora").join("raw").join(source) }
    }

    fn index_path(&self) -> PathBuf {
        self.dir.join("index.json")
    }

    fn index(&self) -> BTreeMap<String, FetchRecord> {
        std::fs::read(self.index_path()).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    /// The record of `url`, if its blob is present.
    pub fn lookup(&self, url: &str) -> Option<FetchRecord> {
        self.index().remove(url).filter(|r| self.dir.join(&r.sha256).exists())
    }

    /// Reads a stored blob and checks its hash.
    pub fn blob(&self, record: &FetchRecord) -> Result<Vec<u8>> {
        let path = self.dir.join(&record.sha256);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, "read", &e))?;
        if hex(&Sha256::digest(&bytes)) != record.sha256 {
            return Err(Error::internal(format!("{}: stored body does not match its hash", path.display())));
        }
        Ok(bytes)
    }

    /// Stores a body that passed its checks and records it for `url`.
    pub fn commit(&self, url: &str, resp: &Response, vintage: Option<String>) -> Result<FetchRecord> {
        std::fs::create_dir_all(&self.dir).map_err(|e| Error::io(&self.dir, "create", &e))?;
        let sha = hex(&Sha256::digest(&resp.bytes));
        let blob = self.dir.join(&sha);
        if !blob.exists() {
            let tmp = self.dir.join(format!(".{sha}.tmp"));
            std::fs::write(&tmp, &resp.bytes).map_err(|e| Error::io(&tmp, "write", &e))?;
            std::fs::rename(&tmp, &blob).map_err(|e| Error::io(&blob, "rename", &e))?;
        }
        let record = FetchRecord {
            url: url.into(),
            status: resp.status,
            etag: resp.etag.clone(),
            last_modified: resp.last_modified.clone(),
            bytes: resp.bytes.len() as u64,
            sha256: sha,
            fetched_at: now_rfc3339(),
            vintage,
        };
        let mut index = self.index();
        // Only the last good body of each URL is kept (the store holds whole exports: keep no more than needed).
        if let Some(old) = index.insert(url.into(), record.clone())
            && old.sha256 != record.sha256
            && !index.values().any(|r| r.sha256 == old.sha256)
        {
            let _ = std::fs::remove_file(self.dir.join(&old.sha256));
        }
        let tmp = self.dir.join(".index.json.tmp");
        let bytes = serde_json::to_vec_pretty(&index).map_err(|e| Error::internal(e.to_string()))?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, "write", &e))?;
        std::fs::rename(&tmp, self.index_path()).map_err(|e| Error::io(&self.dir, "rename index in", &e))?;
        Ok(record)
    }

    /// GET with validators from the store; on 304 the stored body is returned. `check` validates a new body and
    /// returns its vintage; only a body that passes is committed.
    pub fn get(
        &self,
        client: &HttpClient,
        mut req: Request,
        check: impl Fn(&[u8]) -> Result<Option<String>>,
    ) -> Result<Fetched> {
        let url = req.url.clone();
        let known = self.lookup(&url);
        if let Some(r) = &known {
            req.if_none_match = r.etag.clone();
            req.if_modified_since = r.last_modified.clone();
        }
        let resp = client.fetch(req)?;
        self.finish(&url, known, resp, check)
    }

    /// Completes a fetch made elsewhere (e.g. in a concurrent batch): 304 → stored copy; else check and commit.
    pub fn finish(
        &self,
        url: &str,
        known: Option<FetchRecord>,
        resp: Response,
        check: impl Fn(&[u8]) -> Result<Option<String>>,
    ) -> Result<Fetched> {
        if resp.not_modified() {
            let record = known.ok_or_else(|| Error::data(format!("{url}: 304 Not Modified without a stored copy")))?;
            let bytes = self.blob(&record)?;
            return Ok(Fetched { bytes, record, from_cache: true });
        }
        let vintage = check(&resp.bytes)?;
        let record = self.commit(url, &resp, vintage)?;
        Ok(Fetched { bytes: resp.bytes, record, from_cache: false })
    }

    /// Validators for a conditional request of `url`.
    pub fn conditional(&self, mut req: Request) -> (Request, Option<FetchRecord>) {
        let known = self.lookup(&req.url);
        if let Some(r) = &known {
            req.if_none_match = r.etag.clone();
            req.if_modified_since = r.last_modified.clone();
        }
        (req, known)
    }
}
