//! Runs a pipeline: read and clean every source, combine, write every dataset to staging, verify, publish
//! atomically, and write the run report that proves every input row is accounted for.

mod key;
mod plan;
mod report;
mod sources;
mod stream;

pub use key::load_key;
pub use plan::plan;
pub use report::{ColumnStats, DatasetReport, RunReport, SourceReport, dataset_report};

use diaspora_clean::{CleanContext, CountryResolver, PrivacyPolicy, apply_step};
use diaspora_config::SourceSpec;
use diaspora_config::{CombineSpec, Pipeline, Settings, Step};
use diaspora_core::{Error, LINE_COL, Reject, Result, SourceRecord, Table, now_rfc3339};
use diaspora_sink::{DatasetFiles, DatasetWriter, Layout, Lock, Manifest, PublishOutcome, WriterLimits, publish};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use tracing::info;

/// Runs `pipeline` with `settings`. `pipeline_text` is the file's text, part of the run fingerprint.
pub fn run(pipeline: &Pipeline, pipeline_text: &str, settings: &Settings) -> Result<RunReport> {
    let started_at = now_rfc3339();
    let layout = Layout::new(&settings.data_root);
    std::fs::create_dir_all(layout.meta()).map_err(|e| Error::io(&layout.meta(), "create", &e))?;
    let _lock = Lock::acquire(&layout, &pipeline.name)?;
    // We hold the lock: staging left by an interrupted run of this pipeline is garbage now.
    clean_staging(&layout, &pipeline.name)?;
    let run_id = run_id(&pipeline.name);
    info!(pipeline = %pipeline.name, run_id = %run_id, profile = %settings.profile, "run started");

    let needs_key = pipeline.sources.iter().any(|s| s.steps.iter().any(|st| matches!(st, Step::Pseudonymize { .. })));
    let key = if needs_key { Some(load_key(settings)?) } else { None };
    let resolver = CountryResolver::new();

    // Fetch every source first: a run whose inputs have not changed since the last published run stops here.
    let net = sources::Net::new(settings);
    // A large delimited file is streamed: hashed here a piece at a time, read piece by piece below.
    let plan = stream::choose(pipeline, settings);
    let streamed = |i: usize| plan.as_ref().is_some_and(|p| p.source == i);
    let state_path = layout.meta().join("state").join(format!("{}.json", pipeline.name));
    // A streamed file is hashed up front only when an earlier publish could make this run unnecessary; on a
    // first run it is hashed while it streams (the same bytes, read once).
    let hash_first = read_state(&state_path).is_some();
    let raws = pipeline
        .sources
        .iter()
        .enumerate()
        .map(
            |(i, s)| {
                if streamed(i) { sources::fetch_streamed(s, hash_first) } else { sources::fetch(s, settings, &net) }
            },
        )
        .collect::<Result<Vec<_>>>()?;
    let not_modified: u64 = raws.iter().map(|r| r.not_modified).sum();
    if not_modified > 0 {
        info!(documents = not_modified, "the servers said these inputs are unchanged (HTTP 304)");
    }
    let key_id = key.as_ref().map(|k| k.key_id());
    let mut records: Vec<SourceRecord> = raws.iter().flat_map(|r| r.records.iter().cloned()).collect();
    let fingerprint_of = |records: &[SourceRecord]| fingerprint(pipeline_text, settings, key_id.as_deref(), records);
    let mut fingerprint = fingerprint_of(&records);
    if let Some(prev) = read_state(&state_path)
        && prev.fingerprint == fingerprint
        && prev.datasets.iter().all(|(ds, v)| layout.current_version(ds).as_deref() == Some(v.as_str()))
    {
        info!(pipeline = %pipeline.name, "inputs, pipeline and settings unchanged since the last publish; nothing to do");
        let mut report = report::read(&layout, &prev.report_run_id)
            .unwrap_or_else(|| RunReport::up_to_date(&run_id, pipeline, settings, started_at.clone(), String::new()));
        report.run_id = run_id.clone();
        report.started_at = started_at;
        report.status = "up_to_date".into();
        report.up_to_date_since = Some(prev.report_run_id);
        for d in report.datasets.values_mut() {
            d.outcome = "unchanged".into();
        }
        report.finished_at = now_rfc3339();
        report::write(&layout, &report)?;
        return Ok(report);
    }

    let mut tables: HashMap<String, Table> = HashMap::new();
    let mut all_rejects: Vec<Reject> = Vec::new();
    let mut source_reports = Vec::new();
    let mut privacy = report::PrivacyReport::default();
    if let Some(k) = &key {
        privacy.key_id = Some(k.key_id());
    }
    for (i, (spec, raw)) in pipeline.sources.iter().zip(raws).enumerate() {
        if streamed(i) {
            continue;
        }
        let at = format!("sources[{i}]");
        let read = sources::read(spec, &raw, settings)?;
        let mut sr = SourceReport::new(&spec.id, read.rows_read);
        for r in &read.rejects {
            *sr.rejected.entry(r.reason.clone()).or_default() += 1;
        }
        let mut rejects = read.rejects;
        let mut policy = PrivacyPolicy::for_source(
            &read.table.column_names(),
            &read.table.meta,
            &spec.privacy,
            respondent_ids(spec),
        );
        let location = location_of(spec);
        let ctx = CleanContext {
            source: &spec.id,
            location: &location,
            resolver: &resolver,
            key: key.as_ref(),
            memory: None,
        };
        let (table, step_rejects) = clean(read.table, spec, &at, &ctx, &mut policy, &mut sr)?;
        rejects.extend(step_rejects);
        let drop = settle_privacy(spec, &policy, &table.column_names(), &mut privacy);
        let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
        let table = project_away(table, &drop)?;
        sr.passed = table.num_rows() as u64;
        finish_source(spec, &mut sr)?;
        source_reports.push(sr);
        all_rejects.extend(rejects);
        tables.insert(spec.id.clone(), table);
    }

    let mut suppression = report::SuppressionReport::default();
    for (i, c) in pipeline.combine.iter().enumerate() {
        if plan.as_ref().is_some_and(|p| p.joins.contains(&i)) {
            continue;
        }
        let at = format!("combine[{i}]");
        let get = |id: &str| tables.get(id).ok_or_else(|| Error::internal(format!("{at}: {id} not computed")));
        let out = match c {
            CombineSpec::Pivot { from, names, .. } => {
                diaspora_transform::pivot(&strip_lines(get(from)?)?, *names, &at)?
            }
            CombineSpec::AsofJoin { left, right, on, left_time, right_time, max_lag, year_columns, .. } => {
                diaspora_transform::asof_join(
                    get(left)?,
                    get(right)?,
                    on,
                    left_time,
                    right_time,
                    *max_lag,
                    *year_columns,
                    &at,
                )?
            }
            CombineSpec::Summary { from, by, weight, shares, carry, min_cell, .. } => {
                let k = min_cell.unwrap_or(settings.min_cell);
                let (t, p, comp) =
                    diaspora_transform::summary(get(from)?, by, weight.as_deref(), shares, carry, k, &at)?;
                suppression.tables.push(report::SuppressedTable {
                    table: c.id().to_owned(),
                    min_cell: k,
                    primary: p,
                    complementary: comp,
                });
                t
            }
        };
        tables.insert(c.id().to_owned(), out);
    }

    // Write everything to staging first; publish only when every dataset was written and verified.
    let staging = layout.staging(&format!("{}-{run_id}", pipeline.name));
    // Rejects are written sorted by (source, line): the sources before the streamed one, its rejects as they
    // come (in line order), then the rest.
    let mut rejects = RejectSink::create(&staging.join("rejects"), settings, &privacy)?;
    all_rejects.sort_by(|a, b| (&a.source, a.line).cmp(&(&b.source, b.line)));
    let split_at = match &plan {
        Some(p) => all_rejects.partition_point(|r| r.source < pipeline.sources[p.source].id),
        None => all_rejects.len(),
    };
    rejects.write(&all_rejects[..split_at])?;
    let mut written: Vec<Option<(DatasetFiles, ColumnStats)>> = (0..pipeline.outputs.len()).map(|_| None).collect();
    if let Some(p) = &plan {
        let env = stream::Env {
            pipeline,
            settings,
            resolver: &resolver,
            key: key.as_ref(),
            tables: &tables,
            staging: &staging,
        };
        let (mut sr, files, digest) = stream::run(p, &env, &mut privacy, &mut rejects)?;
        let id = &pipeline.sources[p.source].id;
        if let Some(rec) = records.iter_mut().find(|r| r.source == *id) {
            if rec.sha256.is_empty() {
                (rec.sha256, rec.bytes) = digest;
                fingerprint = fingerprint_of(&records);
            } else if rec.sha256 != digest.0 {
                return Err(Error::temporary(format!(
                    "{}: the file changed while it was read (its SHA-256 differs from the one taken before); \
                     nothing was published; run again",
                    rec.location
                )));
            }
        }
        finish_source(&pipeline.sources[p.source], &mut sr)?;
        source_reports.push(sr);
        for w in files {
            written[w.output] = Some((w.files, w.stats));
        }
    }
    rejects.write(&all_rejects[split_at..])?;
    drop(all_rejects);
    let order = |id: &str| pipeline.sources.iter().position(|s| s.id == id);
    source_reports.sort_by_key(|r| order(&r.source));
    for (oi, o) in pipeline.outputs.iter().enumerate() {
        if written[oi].is_some() {
            continue;
        }
        let t = strip_lines(tables.get(&o.from).ok_or_else(|| Error::internal(format!("{} not computed", o.from)))?)?;
        guard_no_identifiers(&o.dataset, &t, &privacy)?;
        let mut w =
            DatasetWriter::create(&staging.join(&o.dataset), &t.schema, &o.partition_by, writer_limits(settings))?;
        w.write(&t.batches)?;
        written[oi] = Some((w.finish()?, ColumnStats::of(&t)));
    }
    let (rejects_files, rejects_stats) = rejects.finish()?;
    let mut outputs: Vec<(String, Vec<String>, DatasetFiles, ColumnStats)> = pipeline
        .outputs
        .iter()
        .zip(written)
        .map(|(o, w)| {
            let (files, stats) = w.expect("every output written");
            (o.dataset.clone(), o.partition_by.clone(), files, stats)
        })
        .collect();
    outputs.push(("rejects".into(), Vec::new(), rejects_files, rejects_stats));
    let mut dataset_reports = BTreeMap::new();
    let mut staged = Vec::new();
    for (ds, partition_by, files, stats) in &outputs {
        let rep = dataset_report(ds, stats, partition_by, files);
        if rep.rows != files.files.iter().map(|f| f.rows).sum::<u64>() {
            return Err(Error::internal(format!("{ds}: the files do not hold the {} rows written", rep.rows)));
        }
        let manifest = Manifest {
            dataset: ds.clone(),
            version: files.version.clone(),
            pipeline: pipeline.name.clone(),
            run_id: run_id.clone(),
            created_at: now_rfc3339(),
            rows: rep.rows,
            partition_by: partition_by.clone(),
            schema: rep.columns.iter().map(|c| (c.name.clone(), c.r#type.clone())).collect(),
            files: files.files.clone(),
            sources: records.clone(),
        };
        dataset_reports.insert(ds.clone(), rep);
        staged.push((staging.join(ds), manifest));
    }
    let mut published = BTreeMap::new();
    for (dir, manifest) in &staged {
        let outcome = publish(&layout, dir, manifest, settings.retention)?;
        let (state, version) = match outcome {
            PublishOutcome::Published(v) => ("published", v),
            PublishOutcome::Unchanged(v) => ("unchanged", v),
        };
        if let Some(r) = dataset_reports.get_mut(&manifest.dataset) {
            r.version = version.clone();
            r.outcome = state.into();
        }
        published.insert(manifest.dataset.clone(), version);
    }
    let _ = std::fs::remove_dir_all(&staging);
    let mut report = RunReport {
        run_id: run_id.clone(),
        pipeline: pipeline.name.clone(),
        profile: settings.profile.clone(),
        started_at,
        finished_at: now_rfc3339(),
        status: if dataset_reports.values().all(|d| d.outcome == "unchanged") {
            "up_to_date".into()
        } else {
            "published".into()
        },
        sources: source_reports,
        datasets: dataset_reports,
        privacy,
        suppression,
        inputs: records,
        up_to_date_since: None,
    };
    report.finished_at = now_rfc3339();
    report::write(&layout, &report)?;
    write_state(&state_path, &State { fingerprint, datasets: published, report_run_id: run_id })?;
    Ok(report)
}

/// Runs a source's steps in order on `table`, counting rejects and duplicates into `sr`.
pub(crate) fn clean(
    mut table: Table,
    spec: &SourceSpec,
    at: &str,
    ctx: &CleanContext<'_>,
    policy: &mut PrivacyPolicy,
    sr: &mut SourceReport,
) -> Result<(Table, Vec<Reject>)> {
    let mut rejects = Vec::new();
    for (j, step) in spec.steps.iter().enumerate() {
        let out = apply_step(table, step, &format!("{at}.steps[{j}]"), ctx, policy)?;
        for r in &out.rejects {
            *sr.rejected.entry(r.reason.clone()).or_default() += 1;
        }
        sr.duplicates += out.duplicates;
        rejects.extend(out.rejects);
        table = out.table;
    }
    Ok((table, rejects))
}

/// Privacy: restricted columns never leave the source unless an allowance names them. Records in the report
/// every restricted column that does not leave (whether a step or the policy removed it) and every allowance
/// used; returns the columns to drop.
pub(crate) fn settle_privacy(
    spec: &SourceSpec,
    policy: &PrivacyPolicy,
    cols: &[String],
    privacy: &mut report::PrivacyReport,
) -> Vec<String> {
    let drop = policy.to_drop(cols);
    for (c, r) in policy.restricted() {
        if !cols.iter().any(|x| x == c) || drop.iter().any(|(d, _)| d == c) {
            privacy.dropped.push(report::DroppedColumn {
                source: spec.id.clone(),
                column: c.to_owned(),
                restriction: r,
            });
        }
    }
    for (c, r, why) in policy.allowances(cols) {
        tracing::warn!(source = %spec.id, column = %c, "restricted column published under an allowance");
        privacy.allowances.push(report::AllowanceUsed {
            source: spec.id.clone(),
            column: c,
            restriction: r,
            reason: why,
        });
    }
    drop.into_iter().map(|(c, _)| c).collect()
}

/// Checks that a cleaned source balances and stays under its reject share, and logs its counts.
fn finish_source(spec: &SourceSpec, sr: &mut SourceReport) -> Result<()> {
    sr.check_balance()?;
    if let Some(max) = spec.max_reject_share {
        let share = sr.rejected_total() as f64 / sr.read.max(1) as f64;
        if share > max {
            let reasons: Vec<String> = sr.rejected.iter().map(|(r, n)| format!("{r} {n}")).collect();
            return Err(Error::data(format!(
                "source {}: {:.1}% of rows rejected, above max_reject_share {:.1}% (rejected by reason: {}); \
                 nothing was published",
                spec.id,
                share * 100.0,
                max * 100.0,
                reasons.join(", ")
            )));
        }
    }
    info!(source = %spec.id, read = sr.read, passed = sr.passed, rejected = sr.rejected_total(), duplicates = sr.duplicates, "source cleaned");
    Ok(())
}

/// LimeSurvey names its respondent id `id` (code headings) or `Response ID` (full-text headings).
pub(crate) fn respondent_ids(spec: &SourceSpec) -> &'static [&'static str] {
    let limesurvey = spec.kind == diaspora_config::SourceKind::LimesurveyRc
        || spec.format == Some(diaspora_config::Format::LimesurveyCsv);
    if limesurvey { &["id", "Response ID"] } else { &[] }
}

/// Where a source came from, for messages.
pub(crate) fn location_of(spec: &SourceSpec) -> String {
    spec.location.clone().unwrap_or_else(|| format!("source {} ({:?})", spec.id, spec.kind))
}

/// The writers' memory and open-file limits from the settings.
pub(crate) fn writer_limits(settings: &Settings) -> WriterLimits {
    WriterLimits { buffer_bytes: settings.streaming.writer_buffer_bytes, open_files: settings.streaming.open_files }
}

/// The `rejects` dataset, written as rejects arrive (each call's rejects sorted by source and line).
pub(crate) struct RejectSink {
    writer: DatasetWriter,
    stats: ColumnStats,
}

impl RejectSink {
    fn create(dir: &std::path::Path, settings: &Settings, privacy: &report::PrivacyReport) -> Result<Self> {
        let empty = report::rejects_table(&[])?;
        guard_no_identifiers("rejects", &empty, privacy)?;
        Ok(Self {
            writer: DatasetWriter::create(dir, &empty.schema, &[], writer_limits(settings))?,
            stats: ColumnStats::default(),
        })
    }

    /// Writes rejects (sorted here by source and line).
    pub(crate) fn write(&mut self, rejects: &[Reject]) -> Result<()> {
        if rejects.is_empty() {
            return Ok(());
        }
        let t = report::rejects_table(rejects)?;
        for b in &t.batches {
            self.stats.add(b);
        }
        self.writer.write(&t.batches)
    }

    fn finish(self) -> Result<(DatasetFiles, ColumnStats)> {
        Ok((self.writer.finish()?, self.stats))
    }
}

fn run_id(pipeline: &str) -> String {
    let mut r = [0u8; 4];
    let _ = getrandom::fill(&mut r);
    let ts = now_rfc3339().replace([':', '-'], "");
    format!("{ts}-{pipeline}-{}", diaspora_core::hex(&r))
}

fn clean_staging(layout: &Layout, pipeline: &str) -> Result<()> {
    let dir = layout.meta().join("staging");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("{pipeline}-")) {
                std::fs::remove_dir_all(e.path()).map_err(|err| Error::io(&e.path(), "remove", &err))?;
            }
        }
    }
    Ok(())
}

pub(crate) fn strip_lines(t: &Table) -> Result<Table> {
    project_away(t.clone(), &[LINE_COL])
}

pub(crate) fn project_away(t: Table, names: &[&str]) -> Result<Table> {
    let keep: Vec<usize> =
        (0..t.schema.fields().len()).filter(|&i| !names.contains(&t.schema.field(i).name().as_str())).collect();
    if keep.len() == t.schema.fields().len() {
        return Ok(t);
    }
    let schema = Arc::new(t.schema.project(&keep).map_err(|e| Error::internal(e.to_string()))?);
    let batches = t
        .batches
        .iter()
        .map(|b| b.project(&keep))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::internal(e.to_string()))?;
    Ok(Table { schema, batches, meta: t.meta })
}

/// Last line of defence: no built-in identifier or respondent-id column reaches a writer without an allowance.
pub(crate) fn guard_no_identifiers(dataset: &str, t: &Table, privacy: &report::PrivacyReport) -> Result<()> {
    for c in t.column_names() {
        let lower = c.to_lowercase();
        let builtin = diaspora_clean::privacy::BUILTIN_IDENTIFIERS
            .iter()
            .chain(diaspora_clean::privacy::BUILTIN_RESPONDENT_IDS)
            .any(|b| b.to_lowercase() == lower);
        if builtin && !privacy.allowances.iter().any(|a| a.column == c) {
            return Err(Error::internal(format!(
                "{dataset}: identifier column {c:?} reached the writer without an allowance; refusing to write"
            )));
        }
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct State {
    fingerprint: String,
    datasets: BTreeMap<String, String>,
    report_run_id: String,
}

/// What decides a run's output: the program (version and binary identity), the pipeline text, the settings,
/// the pseudonymisation key (by id) and the input bytes. Equal fingerprints mean nothing needs doing.
fn fingerprint(pipeline_text: &str, settings: &Settings, key_id: Option<&str>, records: &[SourceRecord]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    if let Some(md) = std::env::current_exe().ok().and_then(|p| std::fs::metadata(p).ok()) {
        let mtime = md.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_nanos());
        h.update(format!("{}|{mtime:?}", md.len()).as_bytes());
    }
    h.update(pipeline_text.as_bytes());
    h.update(serde_json::to_vec(settings).unwrap_or_default());
    h.update(key_id.unwrap_or("-").as_bytes());
    // Readers that date-stamp (IMF projections from the current year on) change with the calendar year.
    h.update(&diaspora_core::now_rfc3339().as_bytes()[..4]);
    for rec in records {
        h.update(rec.sha256.as_bytes());
    }
    diaspora_core::hex(&h.finalize())
}

fn read_state(path: &std::path::Path) -> Option<State> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn write_state(path: &std::path::Path, state: &State) -> Result<()> {
    let dir = path.parent().expect("state path has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", &e))?;
    let tmp = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(state).map_err(|e| Error::internal(e.to_string()))?;
    diaspora_sink::fault_point("write state")?;
    std::fs::write(&tmp, bytes).map_err(|e| Error::io(&tmp, "write", &e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename", &e))
}
