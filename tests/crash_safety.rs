//! Crash safety: a seeded sweep aborts runs (like `kill -9`: no cleanup, no destructors) at many points while
//! writing and publishing, then checks with DuckDB and pyarrow that every dataset is still exactly the version
//! its manifest describes, and that a clean re-run gives exactly the output of one clean run. Injected I/O
//! errors (a full disk) must fail the run with exit 70 and leave the previous versions current.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

const DATASETS: [&str; 4] = ["respondents", "country_year_indicators", "country_summary", "rejects"];

fn cp_a(from: &Path, to: &Path) {
    let ok = Command::new("cp").arg("-a").arg(from).arg(to).status().unwrap().success();
    assert!(ok, "cp -a {} {}", from.display(), to.display());
}

/// A data root holding an older published version of every dataset (a different lag, year range and reason
/// code make every dataset differ from the current pipeline's output).
fn prepared_root(tmp: &Path) -> PathBuf {
    let old = variant(
        tmp,
        "old.toml",
        &[
            ("max_lag = 2", "max_lag = 0"),
            ("years = \"2015:2024\"", "years = \"2016:2024\""),
            ("reason = \"preview_or_test\"", "reason = \"preview\""),
        ],
    );
    let root = tmp.join("prepared");
    run_ok(&root, old.to_str().unwrap());
    root
}

fn links(root: &Path) -> Vec<String> {
    DATASETS.iter().map(|d| std::fs::read_link(root.join(d)).unwrap().display().to_string()).collect()
}

fn run_with(root: &Path, env: (&str, String)) -> std::process::Output {
    diaspora(&["--data-root", root.to_str().unwrap(), "run", "pipelines/emigration.toml"])
        .env(env.0, env.1)
        .output()
        .unwrap()
}

fn points_passed(stderr: &[u8]) -> u64 {
    let text = String::from_utf8_lossy(stderr);
    let line = text.lines().find(|l| l.starts_with("fault points passed: ")).expect("the binary reports fault points");
    line.trim_start_matches("fault points passed: ").parse().unwrap()
}

fn check_manifests(roots: &[PathBuf]) {
    let out = Command::new(python()).arg(repo().join("tests/interop/check_manifest.py")).args(roots).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
}

#[test]
fn a_seeded_kill_sweep_never_corrupts_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let prepared = prepared_root(tmp.path());
    let before = links(&prepared);

    // The reference: one clean run on top of the prepared root; it also counts the fault points.
    let reference = tmp.path().join("reference");
    cp_a(&prepared, &reference);
    let out = run_with(&reference, ("DIASPORA_FAULT_AT", u64::MAX.to_string()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let total = points_passed(&out.stderr);
    assert!(total >= 100, "expected many fault points, got {total}");

    // Seeded choice of 60 distinct points, always including the first and the last.
    let mut seed = 0x2026_1201_u64;
    let mut next = || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = seed;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut points = vec![0, total - 1];
    while points.len() < 60 {
        let k = next() % total;
        if !points.contains(&k) {
            points.push(k);
        }
    }
    points.sort();

    let mut roots = Vec::new();
    for &k in &points {
        let root = tmp.path().join(format!("crash-{k}"));
        cp_a(&prepared, &root);
        let out = run_with(&root, ("DIASPORA_FAULT_AT", k.to_string()));
        assert!(!out.status.success(), "run did not crash at point {k}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("abort at point {k}")));
        roots.push(root);
    }
    // After every crash each dataset is a complete, readable version: DuckDB and pyarrow agree with its manifest.
    check_manifests(&roots);

    // A clean re-run after any crash gives exactly the output of one clean run, and leaves nothing behind.
    let want: Vec<_> = DATASETS.iter().map(|d| files_under(&reference.join(d))).collect();
    for root in &roots {
        run_ok(root, "pipelines/emigration.toml");
        let got: Vec<_> = DATASETS.iter().map(|d| files_under(&root.join(d))).collect();
        assert!(got == want, "{}: output after crash + re-run differs from a clean run", root.display());
        assert_eq!(links(root), links(&reference));
        let staging = root.join("_diaspora/staging");
        assert_eq!(
            std::fs::read_dir(&staging).map(|d| d.count()).unwrap_or(0),
            0,
            "staging left in {}",
            root.display()
        );
        for ds in DATASETS {
            for e in std::fs::read_dir(root.join("_diaspora/versions").join(ds)).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() {
                    let m = root.join("_diaspora/versions").join(ds).join(format!("{name}.manifest.json"));
                    assert!(m.exists(), "version {name} of {ds} without manifest in {}", root.display());
                }
            }
        }
    }
    assert_ne!(before, links(&reference), "the sweep must publish new versions over the prepared ones");
}

#[test]
fn a_full_disk_fails_the_run_and_keeps_the_previous_versions() {
    let tmp = tempfile::tempdir().unwrap();
    let prepared = prepared_root(tmp.path());
    let before = links(&prepared);
    let mut roots = Vec::new();
    // Points while writing files: the first file created, a batch written mid-way, an fsync late in writing.
    for k in [0u64, 100, 250] {
        let root = tmp.path().join(format!("full-{k}"));
        cp_a(&prepared, &root);
        let out = run_with(&root, ("DIASPORA_FAULT_IO_AT", k.to_string()));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(70), "{err}");
        assert!(err.contains("No space left on device") && err.contains(".parquet"), "{err}");
        assert_eq!(links(&root), before, "a failed run must not change what is published");
        roots.push(root);
    }
    check_manifests(&roots);
}
