//! Publishing: Hive-partitioned Parquet written to a staging area, verified, then published atomically.
//!
//! Layout under the data root:
//! - `<dataset>` — a symlink to the current version; readers glob `<dataset>/**/*.parquet` and see only data.
//! - `_diaspora/versions/<dataset>/<version>/` — immutable versions; `<version>.manifest.json` beside each.
//! - `_diaspora/staging/` — work in progress, removed by the next run or `diaspora gc`.
//! - `_diaspora/runs/` — run reports; `_diaspora/locks/` — one lock file per pipeline.
//!
//! A version id is a hash of the dataset's file names and contents, so writing the same data twice yields the
//! same version and publishes nothing. The symlink is swapped with a rename, so a reader sees the old version or
//! the new one, never a mix; a crash at any point leaves the previous version current.

mod layout;
mod partition;
mod write;

pub use layout::{Layout, Lock, PublishOutcome, gc, publish, read_manifest};
pub use partition::{HIVE_NULL, encode_partition_value};
pub use write::{DatasetFiles, FileEntry, Manifest, write_dataset};

/// Crash-test hook: when `DIASPORA_FAULT_AT=<n>` is set, the process aborts at the n-th fault point (0-based)
/// reached while writing and publishing. Used by the kill sweep in the test suite; unset in normal runs.
pub fn fault_point(what: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static TARGET: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
    let target = *TARGET.get_or_init(|| std::env::var("DIASPORA_FAULT_AT").ok().and_then(|v| v.parse().ok()));
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    if target == Some(n) {
        eprintln!("fault injected at point {n} ({what})");
        std::process::abort();
    }
}
