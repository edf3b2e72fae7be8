use crate::fault_point;
use crate::write::Manifest;
use diaspora_core::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

/// Paths under a data root.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The data root.
    pub root: PathBuf,
}

impl Layout {
    /// A layout rooted at `root` (created on demand).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `_diaspora/`.
    pub fn meta(&self) -> PathBuf {
        self.root.join("_diaspora")
    }
    /// Staging directory for one run.
    pub fn staging(&self, run_id: &str) -> PathBuf {
        self.meta().join("staging").join(run_id)
    }
    /// Directory of a dataset's versions.
    pub fn versions(&self, dataset: &str) -> PathBuf {
        self.meta().join("versions").join(dataset)
    }
    /// Run reports.
    pub fn runs(&self) -> PathBuf {
        self.meta().join("runs")
    }
    /// The published name readers use.
    pub fn dataset(&self, dataset: &str) -> PathBuf {
        self.root.join(dataset)
    }
    /// The version the dataset symlink points to, if any.
    pub fn current_version(&self, dataset: &str) -> Option<String> {
        let target = fs::read_link(self.dataset(dataset)).ok()?;
        target.file_name().map(|n| n.to_string_lossy().into_owned())
    }
}

/// A held single-instance lock; released by the kernel when the process ends, however it ends.
pub struct Lock {
    _file: fs::File,
}

impl Lock {
    /// Takes the lock for `name` under the data root, or fails at once with a temporary error (exit 75).
    pub fn acquire(layout: &Layout, name: &str) -> Result<Self> {
        let dir = layout.meta().join("locks");
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create", &e))?;
        let path = dir.join(format!("{name}.lock"));
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(&path, "open", &e))?;
        match file.try_lock() {
            Ok(()) => Ok(Self { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::temporary(format!(
                "another run of pipeline {name:?} holds the lock on {}; try again later",
                layout.root.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, "lock", &e)),
        }
    }
}

impl Lock {
    /// Takes every pipeline lock under the data root (for `gc`); fails with exit 75 if any run is in progress.
    pub fn acquire_all(layout: &Layout) -> Result<Vec<Self>> {
        let dir = layout.meta().join("locks");
        let mut held = Vec::new();
        if let Ok(entries) = fs::read_dir(&dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(pipeline) = name.strip_suffix(".lock") {
                    held.push(Self::acquire(layout, pipeline)?);
                }
            }
        }
        Ok(held)
    }
}

/// What publishing did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// A new version became current.
    Published(String),
    /// The staged data equals the current version; nothing changed.
    Unchanged(String),
}

fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir).and_then(|f| f.sync_all()).map_err(|e| Error::io(dir, "fsync", &e))
}

/// Publishes the staged directory of one dataset as version `manifest.version`: moves it into the versions
/// directory, writes its manifest, then atomically repoints the dataset symlink. Old versions beyond `retention`
/// (the current one always kept) are removed afterwards.
pub fn publish(layout: &Layout, staged: &Path, manifest: &Manifest, retention: usize) -> Result<PublishOutcome> {
    let ds = &manifest.dataset;
    let version = &manifest.version;
    let link = layout.dataset(ds);
    if let Ok(md) = fs::symlink_metadata(&link)
        && !md.file_type().is_symlink()
    {
        return Err(Error::config(format!(
            "{} exists and is not a dataset published by diaspora; move it away or choose another data root",
            link.display()
        )));
    }
    let versions = layout.versions(ds);
    let target = versions.join(version);
    if layout.current_version(ds).as_deref() == Some(version.as_str()) && target.is_dir() {
        fs::remove_dir_all(staged).map_err(|e| Error::io(staged, "remove", &e))?;
        return Ok(PublishOutcome::Unchanged(version.clone()));
    }
    fs::create_dir_all(&versions).map_err(|e| Error::io(&versions, "create", &e))?;
    if target.is_dir() {
        // Identical content was published before (for example before a rollback): reuse it.
        fs::remove_dir_all(staged).map_err(|e| Error::io(staged, "remove", &e))?;
    } else {
        fault_point("move version into place")?;
        fs::rename(staged, &target).map_err(|e| Error::io(&target, "move staged data to", &e))?;
        sync_dir(&versions)?;
    }
    let manifest_path = versions.join(format!("{version}.manifest.json"));
    let tmp = versions.join(format!(".{version}.manifest.json.tmp"));
    let json = serde_json::to_vec_pretty(manifest).map_err(|e| Error::internal(e.to_string()))?;
    fault_point("write manifest")?;
    write_synced(&tmp, &json)?;
    fs::rename(&tmp, &manifest_path).map_err(|e| Error::io(&manifest_path, "rename", &e))?;
    sync_dir(&versions)?;
    // Swap the symlink atomically: create it under a temporary name, then rename over the old one.
    let rel = Path::new("_diaspora").join("versions").join(ds).join(version);
    // The new link is made inside _diaspora (never where readers look), then renamed over the dataset name.
    let links = layout.meta().join("links");
    fs::create_dir_all(&links).map_err(|e| Error::io(&links, "create", &e))?;
    let tmp_link = links.join(format!("{ds}.tmp"));
    let _ = fs::remove_file(&tmp_link);
    fault_point("create new link")?;
    std::os::unix::fs::symlink(&rel, &tmp_link).map_err(|e| Error::io(&tmp_link, "create symlink", &e))?;
    fault_point("swap link")?;
    fs::rename(&tmp_link, &link).map_err(|e| Error::io(&link, "swap symlink", &e))?;
    sync_dir(&layout.root)?;
    fault_point("after publish")?;
    apply_retention(layout, ds, retention)?;
    Ok(PublishOutcome::Published(version.clone()))
}

/// Writes a file and flushes it to disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut f = fs::File::create(path).map_err(|e| Error::io(path, "create", &e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, "write", &e))?;
    f.sync_all().map_err(|e| Error::io(path, "fsync", &e))
}

/// Removes versions beyond the newest `retention` (by manifest time), never the current one; also removes
/// version directories without a manifest (left by a crash between move and manifest) unless current.
fn apply_retention(layout: &Layout, dataset: &str, retention: usize) -> Result<Vec<String>> {
    let dir = layout.versions(dataset);
    let current = layout.current_version(dataset);
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(Vec::new()) };
    let mut versions: Vec<(std::time::SystemTime, String)> = Vec::new();
    let mut removed = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !e.path().is_dir() {
            continue;
        }
        let manifest = dir.join(format!("{name}.manifest.json"));
        match fs::metadata(&manifest).and_then(|m| m.modified()) {
            Ok(t) => versions.push((t, name)),
            Err(_) if current.as_deref() != Some(name.as_str()) => {
                fs::remove_dir_all(e.path()).map_err(|err| Error::io(&e.path(), "remove", &err))?;
                removed.push(name);
            }
            Err(_) => {}
        }
    }
    versions.sort_by(|a, b| b.cmp(a));
    let mut kept = 0;
    for (_, name) in versions {
        if current.as_deref() == Some(name.as_str()) || kept < retention.saturating_sub(1) {
            if current.as_deref() != Some(name.as_str()) {
                kept += 1;
            }
            continue;
        }
        let path = dir.join(&name);
        fs::remove_dir_all(&path).map_err(|e| Error::io(&path, "remove", &e))?;
        let _ = fs::remove_file(dir.join(format!("{name}.manifest.json")));
        removed.push(name);
    }
    Ok(removed)
}

/// Removes staging leftovers and temporary links (the caller holds every pipeline lock, see
/// [`Lock::acquire_all`]) and versions beyond retention for every dataset. Returns what was removed.
pub fn gc(layout: &Layout, retention: usize) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let staging = layout.meta().join("staging");
    if let Ok(entries) = fs::read_dir(&staging) {
        for e in entries.flatten() {
            fs::remove_dir_all(e.path()).map_err(|err| Error::io(&e.path(), "remove", &err))?;
            removed.push(e.path());
        }
    }
    if let Ok(entries) = fs::read_dir(layout.meta().join("versions")) {
        for e in entries.flatten() {
            let ds = e.file_name().to_string_lossy().into_owned();
            for v in apply_retention(layout, &ds, retention)? {
                removed.push(layout.versions(&ds).join(v));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(layout.meta().join("links")) {
        for e in entries.flatten() {
            fs::remove_file(e.path()).map_err(|err| Error::io(&e.path(), "remove", &err))?;
            removed.push(e.path());
        }
    }
    Ok(removed)
}

/// Reads the manifest of a dataset's current version.
pub fn read_manifest(layout: &Layout, dataset: &str) -> Result<Manifest> {
    let version = layout
        .current_version(dataset)
        .ok_or_else(|| Error::config(format!("{} is not a published dataset", layout.dataset(dataset).display())))?;
    let path = layout.versions(dataset).join(format!("{version}.manifest.json"));
    let bytes = fs::read(&path).map_err(|e| Error::io(&path, "read", &e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::internal(format!("{}: {e}", path.display())))
}
