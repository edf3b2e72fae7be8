//! `diaspora plan`: what a run would fetch and write, from the files on disk and the cache state, without
//! fetching anything or writing.

use crate::{read_state, report};
use diaspora_config::{Pipeline, Settings, SourceKind, parse_years};
use diaspora_core::{Result, hex};
use diaspora_fetch::store::RawStore;
use diaspora_sink::Layout;
use sha2::{Digest, Sha256};

/// Lines describing what `run` would do.
pub fn plan(pipeline: &Pipeline, settings: &Settings) -> Result<Vec<String>> {
    let layout = Layout::new(&settings.data_root);
    let mut out = vec![format!(
        "pipeline {} (profile {}, data root {}, {})",
        pipeline.name,
        settings.profile,
        settings.data_root.display(),
        if settings.offline { "offline" } else { "online" }
    )];
    let state = read_state(&layout.meta().join("state").join(format!("{}.json", pipeline.name)));
    let last = state.as_ref().and_then(|s| report::read(&layout, &s.report_run_id));
    let known = |sha: &str| last.as_ref().is_some_and(|r| r.inputs.iter().any(|i| i.sha256 == sha));
    let mut all_known = last.is_some();
    for s in &pipeline.sources {
        let store = RawStore::open(&settings.data_root, &s.id);
        match s.kind {
            SourceKind::File => {
                let loc = s.location.as_deref().unwrap_or_default();
                match diaspora_fetch::local_path(loc)
                    .and_then(|p| std::fs::read(&p).map_err(|e| diaspora_core::Error::input_io(&p, &e)))
                {
                    Ok(bytes) => {
                        let sha = hex(&Sha256::digest(&bytes));
                        let seen = known(&sha);
                        all_known &= seen;
                        out.push(format!(
                            "source {}: read {loc} ({} bytes, sha256 {}…): {}",
                            s.id,
                            bytes.len(),
                            &sha[..12],
                            if seen { "unchanged since the last publish" } else { "new or changed" }
                        ));
                    }
                    Err(e) => {
                        all_known = false;
                        out.push(format!("source {}: {e}", s.id));
                    }
                }
            }
            SourceKind::WorldbankApi if settings.offline => {
                out.push(format!(
                    "source {}: read recorded pages of {} indicator(s) from {}",
                    s.id,
                    s.indicators.len(),
                    settings.worldbank.offline_dir.display()
                ));
            }
            SourceKind::WorldbankApi => {
                let (from, to) = s.years.as_deref().and_then(parse_years).unwrap_or((1960, 2100));
                for code in s.indicators.keys() {
                    let url = format!(
                        "{}/v2/country/{}/indicator/{code}?format=json&date={from}:{to}&per_page=1000&page=1",
                        settings.worldbank.base_url.trim_end_matches('/'),
                        s.countries.join(";")
                    );
                    out.push(format!(
                        "source {}: GET {url} and its further pages; {}",
                        s.id,
                        cache_state(&store, &url)
                    ));
                }
                all_known = false;
            }
            SourceKind::Url => {
                let url = s.location.clone().unwrap_or_default();
                let what = if settings.offline { "replay the stored body".to_owned() } else { format!("GET {url}") };
                out.push(format!("source {}: {what}; {}", s.id, cache_state(&store, &url)));
                all_known = false;
            }
            SourceKind::QualtricsApi | SourceKind::LimesurveyRc | SourceKind::ImfDatamapper => {
                out.push(format!(
                    "source {}: {} via the {:?} API{}",
                    s.id,
                    if settings.offline { "replay the last stored export" } else { "export" },
                    s.kind,
                    s.survey_id.as_ref().map(|id| format!(" (survey {id})")).unwrap_or_default()
                ));
                all_known = false;
            }
        }
    }
    for c in &pipeline.combine {
        out.push(format!("combine {}: {:?} of {}", c.id(), kind_name(c), c.inputs().join(", ")));
    }
    let datasets = pipeline
        .outputs
        .iter()
        .map(|o| (o.dataset.as_str(), o.partition_by.join(", ")))
        .chain([("rejects", String::new())]);
    for (ds, parts) in datasets {
        let current =
            layout.current_version(ds).map_or("not published yet".to_owned(), |v| format!("current version {v}"));
        let by = if parts.is_empty() { String::new() } else { format!(" partitioned by {parts}") };
        out.push(format!("write {ds}{by} ({current})"));
    }
    if all_known {
        out.push("every local input is as last published: a run will most likely be up to date".into());
    }
    Ok(out)
}

fn kind_name(c: &diaspora_config::CombineSpec) -> &'static str {
    match c {
        diaspora_config::CombineSpec::Pivot { .. } => "pivot",
        diaspora_config::CombineSpec::AsofJoin { .. } => "asof_join",
        diaspora_config::CombineSpec::Summary { .. } => "summary",
    }
}

fn cache_state(store: &RawStore, url: &str) -> String {
    match store.lookup(url) {
        Some(r) => format!(
            "stored from {} (sha256 {}…{}); a conditional request will be sent",
            r.fetched_at,
            &r.sha256[..12],
            r.etag.as_deref().map(|e| format!(", ETag {e}")).unwrap_or_default()
        ),
        None => "nothing stored yet".into(),
    }
}
