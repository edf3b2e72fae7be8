use crate::fault_point;
use crate::partition::{HIVE_NULL, encode_partition_value};
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, SchemaRef};
use diaspora_core::{Error, Result, SourceRecord, Table};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One written file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path relative to the dataset root, e.g. `wave=2022/iso3=ARM/part-00000.parquet`.
    pub path: String,
    /// Decoded partition key, e.g. `wave=2022/iso3=ARM` (empty when unpartitioned).
    pub partition: String,
    /// Rows in the file.
    pub rows: u64,
    /// File size.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// What [`write_dataset`] wrote.
#[derive(Debug, Clone)]
pub struct DatasetFiles {
    /// The files, sorted by path.
    pub files: Vec<FileEntry>,
    /// Content version: a hash of the file paths and contents.
    pub version: String,
    /// Schema of the files (partition columns excluded).
    pub file_schema: SchemaRef,
}

/// The manifest of a published version: what is in it and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Dataset name.
    pub dataset: String,
    /// Version id.
    pub version: String,
    /// Pipeline that wrote it.
    pub pipeline: String,
    /// Run that wrote it.
    pub run_id: String,
    /// When it was written (RFC 3339 UTC).
    pub created_at: String,
    /// Total rows.
    pub rows: u64,
    /// Hive partition columns, outermost first.
    pub partition_by: Vec<String>,
    /// File columns and types (partition columns excluded).
    pub schema: Vec<(String, String)>,
    /// Every file with its checksum.
    pub files: Vec<FileEntry>,
    /// The inputs, with content hashes and data vintages.
    pub sources: Vec<SourceRecord>,
}

/// Rows per Parquet row group (fewer when the writer's memory budget flushes a group early).
const ROW_GROUP_ROWS: usize = 128 * 1024;

/// Rows routed together (see [`DatasetWriter::write`]).
const GROUP_ROWS: usize = 256 * 1024;

/// Most partitions one dataset may have.
const MAX_PARTITIONS: usize = 4096;

/// Writer properties for a file whose first rows are `sample`: zstd, and dictionary encoding only for columns
/// that repeat values. A column whose sampled values are mostly distinct (timestamps, weights, free numbers)
/// is written plain: a dictionary would not shrink it and costs a hash lookup per value.
fn props(sample: Option<&RecordBatch>) -> WriterProperties {
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3 is valid")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("diaspora".into());
    if let Some(sample) = sample {
        for (f, a) in sample.schema().fields().iter().zip(sample.columns()) {
            if mostly_distinct(a.as_ref()) {
                b = b.set_column_dictionary_enabled(parquet::schema::types::ColumnPath::from(f.name().as_str()), false);
            }
        }
    }
    b.build()
}

/// Rows looked at to judge a column's cardinality.
const SAMPLE_ROWS: usize = 4096;

/// Whether more than half of the first [`SAMPLE_ROWS`] non-null values of a column are distinct.
fn mostly_distinct(a: &dyn Array) -> bool {
    let n = a.len().min(SAMPLE_ROWS);
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut values = 0usize;
    let mut note = |bytes: &[u8]| {
        values += 1;
        seen.insert(xxhash_rust::xxh3::xxh3_64(bytes));
    };
    match a.data_type() {
        DataType::Utf8 => {
            let s = a.as_string::<i32>();
            (0..n).filter(|&r| s.is_valid(r)).for_each(|r| note(s.value(r).as_bytes()));
        }
        DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Timestamp(..) => {
            let width = a.data_type().primitive_width().unwrap_or(8);
            let data = a.to_data();
            let buf = &data.buffers()[0].as_slice()[data.offset() * width..];
            (0..n).filter(|&r| a.is_valid(r)).for_each(|r| note(&buf[r * width..(r + 1) * width]));
        }
        _ => return false,
    }
    values >= 16 && seen.len() * 2 > values
}

/// How much a [`DatasetWriter`] may hold at once.
#[derive(Debug, Clone, Copy)]
pub struct WriterLimits {
    /// Bytes of rows waiting, across all partitions, to be encoded. Past it, the largest partitions' rows are
    /// encoded into row groups early (smaller row groups, bounded memory).
    pub buffer_bytes: usize,
    /// Files open at once. Past it, the least recently written file is finished; later rows of its partition
    /// go to the partition's next part file.
    pub open_files: usize,
}

impl Default for WriterLimits {
    fn default() -> Self {
        Self { buffer_bytes: 256 << 20, open_files: 256 }
    }
}

/// One partition: its directory, decoded key, open file, rows waiting to be encoded, and how many part files
/// it has.
struct Part {
    path: String,
    key: String,
    next_seq: u32,
    open: Option<OpenFile>,
    last_used: u64,
    /// Rows waiting for a row group, in order.
    buffer: Vec<RecordBatch>,
    buffered_rows: usize,
    buffered_bytes: usize,
}

struct OpenFile {
    rel: String,
    full: PathBuf,
    writer: ArrowWriter<BufWriter<std::fs::File>>,
    rows: u64,
}

impl Part {
    fn push(&mut self, b: RecordBatch) {
        self.buffered_rows += b.num_rows();
        self.buffered_bytes += b.get_array_memory_size();
        self.buffer.push(b);
    }

    /// Encodes the first `rows` buffered rows (all when `None`) as one row group. Parquet column encoders exist
    /// only while a row group is encoded, so the memory they take does not grow with the number of partitions.
    fn encode(&mut self, dir: &Path, schema: &SchemaRef, rows: Option<usize>) -> Result<()> {
        let mut want = rows.unwrap_or(self.buffered_rows).min(self.buffered_rows);
        if want == 0 {
            return Ok(());
        }
        if self.open.is_none() {
            self.open = Some(open_file(dir, schema, &self.path, self.next_seq, self.buffer.first())?);
            self.next_seq += 1;
        }
        let f = self.open.as_mut().expect("opened above");
        let err = |e: parquet::errors::ParquetError| Error::internal(format!("{}: {e}", f.full.display()));
        let mut rest = Vec::new();
        for b in std::mem::take(&mut self.buffer) {
            if want == 0 {
                rest.push(b);
            } else if b.num_rows() <= want {
                want -= b.num_rows();
                f.writer.write(&b).map_err(err)?;
                f.rows += b.num_rows() as u64;
            } else {
                f.writer.write(&b.slice(0, want)).map_err(err)?;
                f.rows += want as u64;
                rest.push(b.slice(want, b.num_rows() - want));
                want = 0;
            }
        }
        f.writer.flush().map_err(err)?;
        self.buffered_rows = rest.iter().map(RecordBatch::num_rows).sum();
        self.buffered_bytes = rest.iter().map(RecordBatch::get_array_memory_size).sum();
        self.buffer = rest;
        Ok(())
    }

    /// Encodes what is buffered and finishes the open file, if any.
    fn close(&mut self, dir: &Path, schema: &SchemaRef) -> Result<Option<FileEntry>> {
        self.encode(dir, schema, None)?;
        match self.open.take() {
            Some(f) => finish_file(f, self.key.clone()).map(Some),
            None => Ok(None),
        }
    }
}

/// Writes a dataset as Hive-partitioned Parquet from batches that arrive in order, one call at a time:
/// rows are routed to their partition, buffered until a full row group (or the memory limit) is reached, and
/// encoded in parallel across partitions. Memory stays within [`WriterLimits`] however many rows pass
/// through. Partition columns live in the path only.
///
/// The output depends only on the batches (their rows and how they are split into calls), never on the
/// number of threads.
pub struct DatasetWriter {
    dir: PathBuf,
    partition_by: Vec<String>,
    part_idx: Vec<usize>,
    keep: Vec<usize>,
    file_schema: SchemaRef,
    limits: WriterLimits,
    parts: Vec<Part>,
    /// Raw partition values (tagged, separated) → index into `parts`.
    ids: HashMap<String, usize>,
    /// Lower-cased directory → directory, to refuse partitions that collide on case-insensitive systems.
    folded: HashMap<String, String>,
    files: Vec<FileEntry>,
    tick: u64,
}

impl DatasetWriter {
    /// A writer for rows of `schema` into `dir` (which must not exist yet).
    pub fn create(dir: &Path, schema: &SchemaRef, partition_by: &[String], limits: WriterLimits) -> Result<Self> {
        let part_idx: Vec<usize> = partition_by
            .iter()
            .map(|c| schema.index_of(c).map_err(|_| Error::config(format!("partition column {c:?} does not exist"))))
            .collect::<Result<_>>()?;
        for (&i, c) in part_idx.iter().zip(partition_by) {
            let t = schema.field(i).data_type();
            if !matches!(t, DataType::Int32 | DataType::Utf8) {
                return Err(Error::config(format!("partition column {c:?} has type {t}; use int32 or text")));
            }
        }
        let keep: Vec<usize> = (0..schema.fields().len()).filter(|i| !part_idx.contains(i)).collect();
        let file_schema = Arc::new(schema.project(&keep).map_err(|e| Error::internal(e.to_string()))?);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", &e))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            partition_by: partition_by.to_vec(),
            part_idx,
            keep,
            file_schema,
            limits: WriterLimits { buffer_bytes: limits.buffer_bytes, open_files: limits.open_files.max(1) },
            parts: Vec::new(),
            ids: HashMap::new(),
            folded: HashMap::new(),
            files: Vec::new(),
            tick: 0,
        })
    }

    /// Writes the rows of `batches`, in order.
    pub fn write(&mut self, batches: &[RecordBatch]) -> Result<()> {
        self.tick += 1;
        // Batches are routed in groups of up to GROUP_ROWS rows, each made one batch, so every partition's rows
        // of a group are gathered with one `take`.
        let mut start = 0;
        while start < batches.len() {
            let mut end = start + 1;
            let mut rows = batches[start].num_rows();
            while end < batches.len() && rows + batches[end].num_rows() <= GROUP_ROWS {
                rows += batches[end].num_rows();
                end += 1;
            }
            let group = if end - start == 1 {
                batches[start].clone()
            } else {
                arrow_select::concat::concat_batches(&batches[start].schema(), &batches[start..end])
                    .map_err(|e| Error::internal(e.to_string()))?
            };
            self.write_group(&group)?;
            self.enforce_limits()?;
            start = end;
        }
        Ok(())
    }

    fn write_group(&mut self, batch: &RecordBatch) -> Result<()> {
        let routes = self.route(batch)?;
        let projected = batch.project(&self.keep).map_err(|e| Error::internal(e.to_string()))?;
        let (dir, schema, tick) = (&self.dir, &self.file_schema, self.tick);
        let mut jobs: Vec<(&mut Part, &Vec<u32>)> =
            self.parts.iter_mut().zip(&routes).filter(|(_, rows)| !rows.is_empty()).collect();
        jobs.par_iter_mut()
            .map(|(part, rows)| {
                part.last_used = tick;
                let piece = if rows.len() == projected.num_rows() {
                    projected.clone()
                } else {
                    let idx = arrow_array::UInt32Array::from(rows.to_vec());
                    arrow_select::take::take_record_batch(&projected, &idx)
                        .map_err(|e| Error::internal(e.to_string()))?
                };
                part.push(piece);
                while part.buffered_rows >= ROW_GROUP_ROWS {
                    part.encode(dir, schema, Some(ROW_GROUP_ROWS))?;
                }
                Ok(())
            })
            .collect::<Result<Vec<()>>>()?;
        Ok(())
    }

    /// Routes every row of a batch to its partition: per partition (in `parts` order), its row numbers.
    fn route(&mut self, b: &RecordBatch) -> Result<Vec<Vec<u32>>> {
        let mut routes: Vec<Vec<u32>> = vec![Vec::new(); self.parts.len()];
        let mut raw = String::new();
        let cols: Vec<&dyn Array> = self.part_idx.iter().map(|&i| b.column(i).as_ref()).collect();
        if cols.is_empty() {
            if b.num_rows() > 0 {
                if self.parts.is_empty() {
                    self.new_part(&cols, 0)?;
                    routes.push(Vec::new());
                }
                routes[0] = (0..b.num_rows() as u32).collect();
            }
            return Ok(routes);
        }
        for r in 0..b.num_rows() {
            raw.clear();
            for a in &cols {
                push_raw_value(&mut raw, *a, r);
            }
            let id = match self.ids.get(raw.as_str()) {
                Some(&id) => id,
                None => {
                    let id = self.new_part(&cols, r)?;
                    self.ids.insert(raw.clone(), id);
                    routes.push(Vec::new());
                    id
                }
            };
            routes[id].push(r as u32);
        }
        Ok(routes)
    }

    fn new_part(&mut self, cols: &[&dyn Array], r: usize) -> Result<usize> {
        let mut path = String::new();
        let mut key = String::new();
        for (n, (a, name)) in cols.iter().zip(&self.partition_by).enumerate() {
            let v = partition_text(*a, r);
            let enc = encode_partition_value(name, v.as_deref())?;
            if n > 0 {
                path.push('/');
                key.push('/');
            }
            path.push_str(&format!("{name}={enc}"));
            key.push_str(&format!("{name}={}", v.as_deref().unwrap_or(HIVE_NULL)));
        }
        let lower = path.to_lowercase();
        if let Some(other) = self.folded.get(&lower)
            && *other != path
        {
            return Err(Error::data(format!(
                "partition directories {other:?} and {path:?} differ only in case; they would collide on \
                 case-insensitive file systems"
            )));
        }
        self.folded.insert(lower, path.clone());
        if self.parts.len() == MAX_PARTITIONS {
            return Err(Error::data(format!("more than {MAX_PARTITIONS} partitions; the limit is {MAX_PARTITIONS}")));
        }
        self.parts.push(Part {
            path,
            key,
            next_seq: 0,
            open: None,
            last_used: 0,
            buffer: Vec::new(),
            buffered_rows: 0,
            buffered_bytes: 0,
        });
        Ok(self.parts.len() - 1)
    }

    /// Encodes the largest buffers when the buffered rows pass the memory limit (down to half of it), and
    /// finishes files past the open-file limit (least recently written first).
    fn enforce_limits(&mut self) -> Result<()> {
        let (dir, schema) = (&self.dir, &self.file_schema);
        let total: usize = self.parts.iter().map(|p| p.buffered_bytes).sum();
        if total > self.limits.buffer_bytes {
            let mut by_size: Vec<(usize, usize)> =
                self.parts.iter().enumerate().map(|(i, p)| (p.buffered_bytes, i)).filter(|(s, _)| *s > 0).collect();
            by_size.sort_by(|a, b| b.cmp(a));
            let mut left = total;
            let mut chosen = vec![false; self.parts.len()];
            for (s, i) in by_size {
                if left <= self.limits.buffer_bytes / 2 {
                    break;
                }
                left -= s;
                chosen[i] = true;
            }
            let mut targets: Vec<&mut Part> =
                self.parts.iter_mut().zip(&chosen).filter(|(_, c)| **c).map(|(p, _)| p).collect();
            targets.par_iter_mut().map(|p| p.encode(dir, schema, None)).collect::<Result<Vec<()>>>()?;
        }
        let open = self.parts.iter().filter(|p| p.open.is_some()).count();
        if open > self.limits.open_files {
            let mut order: Vec<(u64, usize)> = (0..self.parts.len())
                .filter(|&i| self.parts[i].open.is_some())
                .map(|i| (self.parts[i].last_used, i))
                .collect();
            order.sort();
            let closing: Vec<usize> = order[..open - self.limits.open_files].iter().map(|(_, i)| *i).collect();
            let mut targets: Vec<&mut Part> =
                self.parts.iter_mut().enumerate().filter(|(i, _)| closing.contains(i)).map(|(_, p)| p).collect();
            let done = targets.par_iter_mut().map(|p| p.close(dir, schema)).collect::<Result<Vec<_>>>()?;
            self.files.extend(done.into_iter().flatten());
        }
        Ok(())
    }

    /// Encodes what is left, finishes every file, makes them durable and returns what was written.
    pub fn finish(mut self) -> Result<DatasetFiles> {
        let (dir, schema) = (&self.dir, &self.file_schema);
        let done = self.parts.par_iter_mut().map(|p| p.close(dir, schema)).collect::<Result<Vec<_>>>()?;
        self.files.extend(done.into_iter().flatten());
        if self.files.is_empty() {
            // No rows: one empty file at the root still tells readers the schema.
            let f = open_file(&self.dir, &self.file_schema, "", 0, None)?;
            self.files.push(finish_file(f, String::new())?);
        }
        let mut files = self.files;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        // Directory entries are durable too before the version is moved into place.
        let mut dirs: Vec<PathBuf> =
            files.iter().filter_map(|f| self.dir.join(&f.path).parent().map(Path::to_path_buf)).collect();
        dirs.sort();
        dirs.dedup();
        for d in dirs.iter().chain(std::iter::once(&self.dir)) {
            std::fs::File::open(d).and_then(|f| f.sync_all()).map_err(|e| Error::io(d, "fsync", &e))?;
        }
        let mut h = Sha256::new();
        for f in &files {
            h.update(f.path.as_bytes());
            h.update([0]);
            h.update(f.sha256.as_bytes());
            h.update([0]);
        }
        let version = diaspora_core::hex(&h.finalize()[..8]);
        Ok(DatasetFiles { files, version, file_schema: self.file_schema })
    }
}

/// A partition value as text (`None` for NULL); the column type was checked when the writer was created.
fn partition_text(a: &dyn Array, r: usize) -> Option<String> {
    if a.is_null(r) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Int32 => a.as_primitive::<Int32Type>().value(r).to_string(),
        _ => a.as_string::<i32>().value(r).to_owned(),
    })
}

/// Appends a partition value to a routing key: tagged so NULL, numbers and text never collide.
fn push_raw_value(out: &mut String, a: &dyn Array, r: usize) {
    use std::fmt::Write as _;
    if a.is_null(r) {
        out.push('\u{0}');
    } else if let Some(i) = a.as_primitive_opt::<Int32Type>() {
        let _ = write!(out, "\u{1}{}", i.value(r));
    } else {
        out.push('\u{2}');
        out.push_str(a.as_string::<i32>().value(r));
    }
    out.push('\u{3}');
}

fn open_file(dir: &Path, schema: &SchemaRef, path: &str, seq: u32, sample: Option<&RecordBatch>) -> Result<OpenFile> {
    let name = format!("part-{seq:05}.parquet");
    let rel = if path.is_empty() { name } else { format!("{path}/{name}") };
    let full = dir.join(&rel);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create", &e))?;
    }
    fault_point(&format!("create {}", full.display()))?;
    let file = std::fs::File::create(&full).map_err(|e| Error::io(&full, "create", &e))?;
    let writer = ArrowWriter::try_new(BufWriter::new(file), schema.clone(), Some(props(sample)))
        .map_err(|e| Error::internal(format!("{}: {e}", full.display())))?;
    Ok(OpenFile { rel, full, writer, rows: 0 })
}

fn finish_file(f: OpenFile, partition: String) -> Result<FileEntry> {
    let path = &f.full;
    fault_point(&format!("write {}", path.display()))?;
    let mut inner = f.writer.into_inner().map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    inner.flush().map_err(|e| Error::io(path, "write", &e))?;
    let file = inner.into_inner().map_err(|e| Error::io(path, "write", e.error()))?;
    file.sync_all().map_err(|e| Error::io(path, "fsync", &e))?;
    fault_point(&format!("fsync {}", path.display()))?;
    drop(file);
    // Hash what is on disk, in pieces.
    let mut h = Sha256::new();
    let mut rd = std::fs::File::open(path).map_err(|e| Error::io(path, "read back", &e))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    loop {
        let n = rd.read(&mut buf).map_err(|e| Error::io(path, "read back", &e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        bytes += n as u64;
    }
    Ok(FileEntry { path: f.rel, partition, rows: f.rows, bytes, sha256: diaspora_core::hex(&h.finalize()) })
}

/// Writes a whole table as Hive-partitioned Parquet under `dir` (which must not exist), one file per partition.
pub fn write_dataset(table: &Table, partition_by: &[String], dir: &Path) -> Result<DatasetFiles> {
    let mut w = DatasetWriter::create(dir, &table.schema, partition_by, WriterLimits::default())?;
    w.write(&table.batches)?;
    w.finish()
}
