//! Helpers shared by the end-to-end tests: run the real binary against a temporary data root.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn test_key() -> String {
    "5d".repeat(32)
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `diaspora <args>` run from the repository root with the test key and JSON logs.
pub fn diaspora(args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_diaspora"));
    c.current_dir(repo()).args(args).env("DIASPORA_PSEUDONYM_KEY", test_key()).env_remove("DIASPORA_PROFILE");
    for (k, _) in std::env::vars() {
        if k.starts_with("DIASPORA__") {
            c.env_remove(k);
        }
    }
    c
}

pub fn run_ok(root: &Path, pipeline: &str) -> Output {
    let out = diaspora(&["--data-root", root.to_str().unwrap(), "run", pipeline]).output().unwrap();
    assert!(out.status.success(), "run failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

pub fn report(root: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(root.join("_diaspora/runs/latest.json")).unwrap()).unwrap()
}

/// The Python with DuckDB, pyarrow and Polars that `scripts/test.sh` installs.
pub fn python() -> String {
    std::env::var("DIASPORA_PYTHON").unwrap_or_else(|_| {
        let venv = repo().join(".venv/bin/python");
        assert!(venv.exists(), "reader tests need DuckDB/pyarrow/Polars: run scripts/test.sh (it creates .venv)");
        venv.display().to_string()
    })
}

/// All regular files under `dir` (following the dataset symlinks at the top), relative paths sorted.
pub fn files_under(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            let md = std::fs::metadata(&p).unwrap();
            if md.is_dir() {
                walk(base, &p, out);
            } else {
                out.push((p.strip_prefix(base).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Copies the pipeline file with text replaced, into `dir`, returning its path.
pub fn variant(dir: &Path, name: &str, replacements: &[(&str, &str)]) -> PathBuf {
    let mut text = std::fs::read_to_string(repo().join("pipelines/emigration.toml")).unwrap();
    for (from, to) in replacements {
        assert!(text.contains(from), "pipeline has no {from:?}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}
