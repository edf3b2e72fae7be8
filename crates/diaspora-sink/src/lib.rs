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
pub use write::{DatasetFiles, DatasetWriter, FileEntry, Manifest, WriterLimits, write_dataset};

/// Crash-test hooks at every step of writing and publishing.
///
/// - `DIASPORA_FAULT_AT=<n>`: the process aborts (no cleanup, like `kill -9`) at the n-th fault point (0-based).
/// - `DIASPORA_FAULT_IO_AT=<n>`: the n-th fault point fails with an injected "No space left on device".
///
/// Both are for the crash tests; a normal run sets neither and each point costs one atomic increment.
pub fn fault_point(what: &str) -> diaspora_core::Result<()> {
    use std::sync::atomic::Ordering;
    static TARGETS: std::sync::OnceLock<(Option<u64>, Option<u64>)> = std::sync::OnceLock::new();
    let (abort_at, io_at) = *TARGETS.get_or_init(|| {
        let get = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok());
        (get("DIASPORA_FAULT_AT"), get("DIASPORA_FAULT_IO_AT"))
    });
    let n = FAULT_POINTS.fetch_add(1, Ordering::SeqCst);
    if abort_at == Some(n) {
        eprintln!("fault injected: abort at point {n} ({what})");
        std::process::abort();
    }
    if io_at == Some(n) {
        return Err(diaspora_core::Error::internal(format!(
            "{what}: No space left on device (os error 28, injected at fault point {n})"
        )));
    }
    Ok(())
}

static FAULT_POINTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many fault points this process has passed (for the crash tests' sweep).
pub fn fault_points_passed() -> u64 {
    FAULT_POINTS.load(std::sync::atomic::Ordering::SeqCst)
}
