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
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
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

/// A partition's directory, its decoded key and its rows as (batch, row).
type Route = (String, String, Vec<(usize, usize)>);

/// Rows per Parquet row group.
const ROW_GROUP_ROWS: usize = 128 * 1024;

fn props() -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).expect("level 3 is valid")))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by("diaspora".into())
        .build()
}

fn partition_text(a: &dyn Array, r: usize, column: &str) -> Result<Option<String>> {
    if a.is_null(r) {
        return Ok(None);
    }
    Ok(Some(match a.data_type() {
        DataType::Int32 => a.as_primitive::<Int32Type>().value(r).to_string(),
        DataType::Utf8 => a.as_string::<i32>().value(r).to_owned(),
        other => return Err(Error::config(format!("partition column {column:?} has type {other}; use int32 or text"))),
    }))
}

/// Writes `table` as Hive-partitioned Parquet under `dir` (which must not exist), one file per partition,
/// partitions encoded in parallel. Partition columns live in the path only.
pub fn write_dataset(table: &Table, partition_by: &[String], dir: &Path) -> Result<DatasetFiles> {
    let part_idx: Vec<usize> = partition_by
        .iter()
        .map(|c| table.schema.index_of(c).map_err(|_| Error::config(format!("partition column {c:?} does not exist"))))
        .collect::<Result<_>>()?;
    let keep: Vec<usize> = (0..table.schema.fields().len()).filter(|i| !part_idx.contains(i)).collect();
    let file_schema = Arc::new(table.schema.project(&keep).map_err(|e| Error::internal(e.to_string()))?);
    // Route rows: partition path → (decoded key, rows as (batch, row)).
    let mut routes: BTreeMap<String, (String, Vec<(usize, usize)>)> = BTreeMap::new();
    let mut folded: HashMap<String, String> = HashMap::new();
    for (bi, b) in table.batches.iter().enumerate() {
        for r in 0..b.num_rows() {
            let mut path = String::new();
            let mut key = String::new();
            for (n, (&c, name)) in part_idx.iter().zip(partition_by).enumerate() {
                let v = partition_text(b.column(c).as_ref(), r, name)?;
                let enc = encode_partition_value(name, v.as_deref())?;
                if n > 0 {
                    path.push('/');
                    key.push('/');
                }
                path.push_str(&format!("{name}={enc}"));
                key.push_str(&format!("{name}={}", v.as_deref().unwrap_or(HIVE_NULL)));
            }
            let lower = path.to_lowercase();
            if let Some(other) = folded.get(&lower)
                && *other != path
            {
                return Err(Error::data(format!(
                    "partition directories {other:?} and {path:?} differ only in case; they would collide on \
                     case-insensitive file systems"
                )));
            }
            folded.insert(lower, path.clone());
            routes.entry(path).or_insert_with(|| (key, Vec::new())).1.push((bi, r));
        }
    }
    if routes.len() > 4096 {
        return Err(Error::data(format!("{} partitions exceed the limit of 4096", routes.len())));
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create", &e))?;
    let projected: Vec<RecordBatch> = table
        .batches
        .iter()
        .map(|b| b.project(&keep))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::internal(e.to_string()))?;
    let jobs: Vec<Route> = if routes.is_empty() {
        vec![(String::new(), String::new(), Vec::new())]
    } else {
        routes.into_iter().map(|(p, (k, rows))| (p, k, rows)).collect()
    };
    let mut files: Vec<FileEntry> = jobs
        .par_iter()
        .map(|(path, key, rows)| {
            let rel =
                if path.is_empty() { "part-00000.parquet".to_owned() } else { format!("{path}/part-00000.parquet") };
            let full = dir.join(&rel);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, "create", &e))?;
            }
            let n = write_file(&full, &file_schema, &projected, rows)?;
            let bytes = std::fs::read(&full).map_err(|e| Error::io(&full, "read back", &e))?;
            Ok(FileEntry {
                path: rel,
                partition: key.clone(),
                rows: n,
                bytes: bytes.len() as u64,
                sha256: diaspora_core::hex(&Sha256::digest(&bytes)),
            })
        })
        .collect::<Result<_>>()?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    // Directory entries are durable too before the version is moved into place.
    let mut dirs: Vec<std::path::PathBuf> =
        files.iter().filter_map(|f| dir.join(&f.path).parent().map(Path::to_path_buf)).collect();
    dirs.sort();
    dirs.dedup();
    for d in dirs.iter().chain(std::iter::once(&dir.to_path_buf())) {
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
    Ok(DatasetFiles { files, version, file_schema })
}

fn write_file(path: &Path, schema: &SchemaRef, batches: &[RecordBatch], rows: &[(usize, usize)]) -> Result<u64> {
    fault_point(&format!("create {}", path.display()))?;
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, "create", &e))?;
    let mut w = ArrowWriter::try_new(std::io::BufWriter::new(file), schema.clone(), Some(props()))
        .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    let all_rows = rows.is_empty() && !batches.is_empty();
    let mut written = 0u64;
    if all_rows {
        for b in batches {
            w.write(b).map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
            written += b.num_rows() as u64;
        }
    } else {
        for chunk in rows.chunks(ROW_GROUP_ROWS) {
            let b = arrow_select::interleave::interleave_record_batch(&refs, chunk)
                .map_err(|e| Error::internal(e.to_string()))?;
            w.write(&b).map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
            written += b.num_rows() as u64;
        }
    }
    fault_point(&format!("write {}", path.display()))?;
    let mut inner = w.into_inner().map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
    inner.flush().map_err(|e| Error::io(path, "write", &e))?;
    let file = inner.into_inner().map_err(|e| Error::io(path, "write", e.error()))?;
    file.sync_all().map_err(|e| Error::io(path, "fsync", &e))?;
    fault_point(&format!("fsync {}", path.display()))?;
    Ok(written)
}
