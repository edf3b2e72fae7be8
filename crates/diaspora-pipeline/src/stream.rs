//! Streaming a large delimited source: read in pieces of whole records, decoded in parallel, cleaned, joined to
//! the (small, already computed) tables on the right, and written to partitioned Parquet as it goes. Only a
//! wave of pieces and the writers' bounded buffers are in memory, plus 16 bytes a row for an exact dedupe.
//!
//! The results equal those of reading the source whole: the same rows in the same order, the same rejects with
//! the same line numbers, the same report.

use crate::report::{ColumnStats, PrivacyReport, SourceReport};
use crate::{RejectSink, clean, guard_no_identifiers, location_of, project_away, respondent_ids, settle_privacy};
use crate::{strip_lines, writer_limits};
use diaspora_clean::{CleanContext, CountryResolver, PrivacyPolicy, PseudonymKey, StepMemory};
use diaspora_config::{CombineSpec, Format, Pipeline, Settings, SourceKind, Step};
use diaspora_core::{Error, Reject, Result, Table};
use diaspora_formats::{
    CsvSplitter, Piece, QualtricsOptions, ReadOutput, read_delimited, read_piece, read_qualtrics_csv,
};
use diaspora_sink::{DatasetFiles, DatasetWriter};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use tracing::info;

/// Which source is streamed, the joins that take it as their left side, and the outputs written from either.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Index of the streamed source.
    pub source: usize,
    /// Indices of the `asof_join` combines whose left side is the source.
    pub joins: Vec<usize>,
    /// Indices of the outputs written from the source or those joins.
    pub outputs: Vec<usize>,
}

fn references(c: &CombineSpec, id: &str) -> bool {
    match c {
        CombineSpec::Pivot { from, .. } | CombineSpec::Summary { from, .. } => from == id,
        CombineSpec::AsofJoin { left, right, .. } => left == id || right == id,
    }
}

/// Picks the source to stream, if any: the largest local delimited file of at least
/// `streaming.above_bytes` whose rows flow only through per-row steps, exact dedupe, as-of joins against other
/// tables, and into outputs. Anything that needs the whole table at once (a `dedupe_by`, a pivot or summary of
/// it) keeps the source in memory.
pub(crate) fn choose(pipeline: &Pipeline, settings: &Settings) -> Option<Plan> {
    let mut best: Option<(u64, Plan)> = None;
    for (i, s) in pipeline.sources.iter().enumerate() {
        if s.kind != SourceKind::File
            || !matches!(s.format, Some(Format::Csv | Format::LimesurveyCsv | Format::QualtricsCsv))
            || s.steps.iter().any(|st| matches!(st, Step::DedupeBy { .. }))
        {
            continue;
        }
        let Some(path) = s.location.as_deref().and_then(|l| diaspora_fetch::local_path(l).ok()) else { continue };
        let Ok(md) = std::fs::metadata(&path) else { continue };
        if md.len() < settings.streaming.above_bytes || is_zip(&path) {
            continue;
        }
        let mut joins = Vec::new();
        let mut ok = true;
        for (ci, c) in pipeline.combine.iter().enumerate() {
            match c {
                CombineSpec::AsofJoin { left, right, .. } if *left == s.id && *right != s.id => joins.push(ci),
                other if references(other, &s.id) => ok = false,
                _ => {}
            }
        }
        for &ci in &joins {
            let id = pipeline.combine[ci].id();
            if pipeline.combine.iter().any(|c| references(c, id)) {
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        let ids: Vec<&str> =
            std::iter::once(s.id.as_str()).chain(joins.iter().map(|&ci| pipeline.combine[ci].id())).collect();
        let outputs: Vec<usize> =
            (0..pipeline.outputs.len()).filter(|&o| ids.contains(&pipeline.outputs[o].from.as_str())).collect();
        if best.as_ref().is_none_or(|(size, _)| md.len() > *size) {
            best = Some((md.len(), Plan { source: i, joins, outputs }));
        }
    }
    best.map(|(_, p)| p)
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && magic == *b"PK\x03\x04"
}

/// What the streamed run needs from the rest of the run.
pub(crate) struct Env<'a> {
    pub pipeline: &'a Pipeline,
    pub settings: &'a Settings,
    pub resolver: &'a CountryResolver,
    pub key: Option<&'a PseudonymKey>,
    /// Every table computed in memory (the right sides of the joins among them).
    pub tables: &'a HashMap<String, Table>,
    pub staging: &'a Path,
}

/// A dataset written by the stream.
pub(crate) struct Written {
    pub output: usize,
    pub files: DatasetFiles,
    pub stats: ColumnStats,
}

/// Streams the planned source into its outputs; its rejects go to `rejects` in line order. Also returns the
/// SHA-256 (hex) and size of the file's bytes.
pub(crate) fn run(
    plan: &Plan,
    env: &Env<'_>,
    privacy: &mut PrivacyReport,
    rejects: &mut RejectSink,
) -> Result<(SourceReport, Vec<Written>, (String, u64))> {
    let pipeline = env.pipeline;
    let spec = &pipeline.sources[plan.source];
    let at = format!("sources[{}]", plan.source);
    let loc = spec.location.clone().unwrap_or_default();
    let path = diaspora_fetch::local_path(&loc)?;
    let opts = QualtricsOptions {
        source: spec.id.clone(),
        name: loc.clone(),
        batch_rows: env.settings.batch_rows,
        encoding: spec.encoding.clone(),
        delimiter: spec.delimiter.and_then(|c| u8::try_from(c).ok()),
    };
    let qualtrics = spec.format == Some(Format::QualtricsCsv);
    let file = std::fs::File::open(&path).map_err(|e| Error::input_io(&path, &e))?;
    let mut whole_digest = None;
    let (head, split) = match CsvSplitter::open(HashingReader::new(file), &opts, qualtrics)? {
        Some((s, head)) => (head, Some(s)),
        None => {
            // Not UTF-8: decoded whole (as the in-memory path would), then cleaned and written the same way.
            let bytes = std::fs::read(&path).map_err(|e| Error::input_io(&path, &e))?;
            whole_digest = Some((diaspora_core::hex(&Sha256::digest(&bytes)), bytes.len() as u64));
            let out = if qualtrics { read_qualtrics_csv(&bytes, &opts)? } else { read_delimited(&bytes, &opts)? };
            (out, None)
        }
    };
    let st = &env.settings.streaming;
    info!(source = %spec.id, piece_bytes = st.piece_bytes, pieces_in_flight = st.pieces_in_flight, "streaming source");
    let schema = head.table.schema.clone();
    let meta = head.table.meta.clone();
    let base_policy = PrivacyPolicy::for_source(&head.table.column_names(), &meta, &spec.privacy, respondent_ids(spec));
    let memory = StepMemory::new();
    let location = location_of(spec);
    let ctx = CleanContext {
        source: &spec.id,
        location: &location,
        resolver: env.resolver,
        key: env.key,
        memory: Some(&memory),
    };

    // Plan every step, join and writer on an empty table first: configuration errors surface before any work,
    // and the privacy policy learns the renames once.
    let mut policy = base_policy.clone();
    let mut scratch = SourceReport::new(&spec.id, 0);
    let empty = Table { schema: schema.clone(), batches: Vec::new(), meta: meta.clone() };
    let (planned, _) = clean(empty, spec, &at, &ctx, &mut policy, &mut scratch)?;
    let drop = settle_privacy(spec, &policy, &planned.column_names(), privacy);
    let drop: Vec<&str> = drop.iter().map(String::as_str).collect();
    let planned = project_away(planned, &drop)?;
    let shaped = shape(plan, planned, env)?;
    let mut writers = Vec::new();
    for &oi in &plan.outputs {
        let o = &pipeline.outputs[oi];
        let t = strip_lines(&shaped[&o.from])?;
        guard_no_identifiers(&o.dataset, &t, privacy)?;
        let w = DatasetWriter::create(
            &env.staging.join(&o.dataset),
            &t.schema,
            &o.partition_by,
            writer_limits(env.settings),
        )?;
        writers.push((oi, w, ColumnStats::default()));
    }

    let mut sr = SourceReport::new(&spec.id, 0);
    // Cleans and joins a wave, counting into `sr`.
    let prepare = |read: ReadOutput, sr: &mut SourceReport| -> Result<Prepared> {
        sr.read += read.rows_read;
        for r in &read.rejects {
            *sr.rejected.entry(r.reason.clone()).or_default() += 1;
        }
        let mut wave_rejects: Vec<Reject> = read.rejects;
        let mut wave_policy = base_policy.clone();
        let (t, step_rejects) = clean(read.table, spec, &at, &ctx, &mut wave_policy, sr)?;
        wave_rejects.extend(step_rejects);
        let t = project_away(t, &drop)?;
        sr.passed += t.num_rows() as u64;
        Ok((shape(plan, t, env)?, wave_rejects))
    };
    // Writes a prepared wave to the outputs and the rejects.
    let emit = |(shaped, wave_rejects): Prepared,
                writers: &mut Vec<(usize, DatasetWriter, ColumnStats)>,
                rejects: &mut RejectSink|
     -> Result<()> {
        for (oi, w, stats) in writers.iter_mut() {
            let o = &pipeline.outputs[*oi];
            let t = strip_lines(&shaped[&o.from])?;
            for b in &t.batches {
                stats.add(b);
            }
            w.write(&t.batches)?;
        }
        rejects.write(&wave_rejects)
    };
    // The header rows may have carried data (the legacy Qualtrics form), or the whole file when it was decoded whole.
    let mut pending = Some(prepare(head, &mut sr)?);
    let digest = match split {
        None => whole_digest.expect("hashed when read whole"),
        Some(mut split) => std::thread::scope(|scope| -> Result<(String, u64)> {
            let delimiter = split.delimiter();
            // A reader thread finds the pieces (and hashes the bytes) while the pool decodes the previous wave.
            let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Piece>>>(1);
            let (piece_bytes, in_flight) = (st.piece_bytes, st.pieces_in_flight);
            let reader = scope.spawn(move || {
                loop {
                    let mut wave = Vec::with_capacity(in_flight);
                    let mut failed = None;
                    while wave.len() < in_flight {
                        match split.next_piece(piece_bytes) {
                            Ok(Some(mut p)) => {
                                if let std::borrow::Cow::Owned(b) = split.decoded(&p.bytes) {
                                    p.bytes = b;
                                }
                                wave.push(p)
                            }
                            Ok(None) => break,
                            Err(e) => {
                                failed = Some(e);
                                break;
                            }
                        }
                    }
                    let done = wave.len() < in_flight || failed.is_some();
                    let msg = match failed {
                        Some(e) => Err(e),
                        None => Ok(wave),
                    };
                    if tx.send(msg).is_err() || done {
                        break;
                    }
                }
                let (utf8, chars, bad) = split.looks_utf8();
                (split.into_inner().finish(), utf8, chars, bad)
            });
            let decode = |pieces: Vec<Piece>| -> Result<ReadOutput> {
                let reads: Vec<ReadOutput> = pieces
                    .par_iter()
                    .map(|p| read_piece(&p.bytes, p.first_line, &schema, delimiter, &opts))
                    .collect::<Result<_>>()?;
                let mut wave = ReadOutput {
                    table: Table { schema: schema.clone(), batches: Vec::new(), meta: meta.clone() },
                    rejects: Vec::new(),
                    rows_read: 0,
                };
                for r in reads {
                    wave.table.batches.extend(r.table.batches);
                    wave.rejects.extend(r.rejects);
                    wave.rows_read += r.rows_read;
                }
                Ok(wave)
            };
            for pieces in rx {
                let pieces = pieces?;
                if pieces.is_empty() {
                    break;
                }
                // Wave k is written while wave k + 1 is decoded and cleaned; each in order, so the output is the
                // same as one wave at a time.
                let earlier = pending.take();
                let (emitted, prepared) = rayon::join(
                    || earlier.map_or(Ok(()), |p| emit(p, &mut writers, rejects)),
                    || decode(pieces).and_then(|w| prepare(w, &mut sr)),
                );
                emitted?;
                pending = Some(prepared?);
            }
            let (digest, utf8, chars, bad) =
                reader.join().map_err(|_| Error::internal("the reader thread panicked"))?;
            if !utf8 {
                return Err(Error::data(format!(
                    "{loc}: the file is not UTF-8 ({bad} undecodable bytes, {chars} UTF-8 characters), though its \
                     first MiB looked so; declare its encoding in the source (encoding = \"windows-1251\" or \
                     \"koi8-r\"); nothing was published"
                )));
            }
            Ok(digest)
        })?,
    };
    if let Some(p) = pending.take() {
        emit(p, &mut writers, rejects)?;
    }
    let written = writers
        .into_iter()
        .map(|(output, w, stats)| Ok(Written { output, files: w.finish()?, stats }))
        .collect::<Result<Vec<_>>>()?;
    Ok((sr, written, digest))
}

/// A reader that hashes (SHA-256) what passes through it, for the provenance record of a streamed file.
struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    fn new(inner: R) -> Self {
        Self { inner, hasher: Sha256::new(), bytes: 0 }
    }

    /// The hex digest and byte count of everything read.
    fn finish(self) -> (String, u64) {
        (diaspora_core::hex(&self.hasher.finalize()), self.bytes)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A cleaned and joined wave (by table id) and its rejects, ready to be written.
type Prepared = (HashMap<String, Table>, Vec<Reject>);

/// The cleaned piece and what each planned join makes of it, by table id.
fn shape(plan: &Plan, cleaned: Table, env: &Env<'_>) -> Result<HashMap<String, Table>> {
    let pipeline = env.pipeline;
    let mut out = HashMap::new();
    out.insert(pipeline.sources[plan.source].id.clone(), cleaned);
    for &ci in &plan.joins {
        let at = format!("combine[{ci}]");
        let CombineSpec::AsofJoin { left, right, on, left_time, right_time, max_lag, year_columns, .. } =
            &pipeline.combine[ci]
        else {
            return Err(Error::internal(format!("{at}: planned as a join")));
        };
        let l = out.get(left).ok_or_else(|| Error::internal(format!("{at}: {left} not computed")))?;
        let r = env.tables.get(right).ok_or_else(|| Error::internal(format!("{at}: {right} not computed")))?;
        let t = diaspora_transform::asof_join(l, r, on, left_time, right_time, *max_lag, *year_columns, &at)?;
        out.insert(pipeline.combine[ci].id().to_owned(), t);
    }
    Ok(out)
}
