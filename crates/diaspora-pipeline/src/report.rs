use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use diaspora_clean::Restriction;
use diaspora_config::{Pipeline, Settings};
use diaspora_core::{Error, Reject, Result, SourceRecord, Table};
use diaspora_sink::{DatasetFiles, Layout};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The run report, written to `<data_root>/_diaspora/runs/<run_id>.json` and `latest.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Unique id of the run.
    pub run_id: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Settings profile.
    pub profile: String,
    /// Start time (RFC 3339 UTC).
    pub started_at: String,
    /// End time.
    pub finished_at: String,
    /// `published` or `up_to_date`.
    pub status: String,
    /// Row accounting per source.
    pub sources: Vec<SourceReport>,
    /// What each dataset holds.
    pub datasets: BTreeMap<String, DatasetReport>,
    /// Identifier handling.
    pub privacy: PrivacyReport,
    /// Small-cell suppression per aggregate.
    pub suppression: SuppressionReport,
    /// Input documents with hashes and vintages.
    pub inputs: Vec<SourceRecord>,
    /// For an up-to-date run: the run whose outputs are still current.
    pub up_to_date_since: Option<String>,
}

/// Row accounting of one source: `read = passed + rejected + duplicates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SourceReport {
    /// Source id.
    pub source: String,
    /// Data rows read.
    pub read: u64,
    /// Rows that passed every step.
    pub passed: u64,
    /// Rejected rows by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Rows removed as duplicates.
    pub duplicates: u64,
    /// Whether the sums balance (always true in a written report: a run that does not balance fails).
    pub balanced: bool,
}

impl SourceReport {
    pub(crate) fn new(source: &str, read: u64) -> Self {
        Self { source: source.into(), read, passed: 0, rejected: BTreeMap::new(), duplicates: 0, balanced: false }
    }
    /// All rejected rows.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
    pub(crate) fn check_balance(&mut self) -> Result<()> {
        self.balanced = self.read == self.passed + self.rejected_total() + self.duplicates;
        if !self.balanced {
            return Err(Error::internal(format!(
                "source {}: rows do not balance: read {} != passed {} + rejected {} + duplicates {}",
                self.source,
                self.read,
                self.passed,
                self.rejected_total(),
                self.duplicates
            )));
        }
        Ok(())
    }
}

/// A column and its type name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// `utf8`, `int32`, `int64`, `float64`, `bool` or `timestamp_us`.
    pub r#type: String,
}

/// What a dataset holds, in the form the interop checker compares with DuckDB, pyarrow and Polars.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetReport {
    /// Directory under the data root.
    pub path: String,
    /// Rows.
    pub rows: u64,
    /// Partition columns.
    pub partition_by: Vec<String>,
    /// Decoded partition key → rows.
    pub partitions: BTreeMap<String, u64>,
    /// File columns (partition columns excluded).
    pub columns: Vec<ColumnInfo>,
    /// Sum of each numeric column.
    pub sums: BTreeMap<String, f64>,
    /// Null count of each column.
    pub nulls: BTreeMap<String, u64>,
    /// Version id.
    pub version: String,
    /// `published` or `unchanged`.
    pub outcome: String,
}

/// How identifiers were handled.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PrivacyReport {
    /// Id of the pseudonymisation key (never the key).
    pub key_id: Option<String>,
    /// Restricted columns dropped before output.
    pub dropped: Vec<DroppedColumn>,
    /// Restricted columns published under a named allowance.
    pub allowances: Vec<AllowanceUsed>,
}

/// A dropped column.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DroppedColumn {
    /// Source id.
    pub source: String,
    /// Column.
    pub column: String,
    /// Why it was restricted.
    #[serde(with = "restriction_serde")]
    pub restriction: Restriction,
}

/// A restricted column published under an allowance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AllowanceUsed {
    /// Source id.
    pub source: String,
    /// Column.
    pub column: String,
    /// Why it was restricted.
    #[serde(with = "restriction_serde")]
    pub restriction: Restriction,
    /// The allowance's stated reason.
    pub reason: String,
}

mod restriction_serde {
    use diaspora_clean::Restriction;
    pub fn serialize<S: serde::Serializer>(r: &Restriction, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(r, s)
    }
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Restriction, D::Error> {
        let s: String = serde::Deserialize::deserialize(d)?;
        Ok(match s.as_str() {
            "identifier" => Restriction::Identifier,
            "respondent_id" => Restriction::RespondentId,
            _ => Restriction::FreeText,
        })
    }
}

/// Suppression per aggregate table.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SuppressionReport {
    /// One entry per summary step.
    pub tables: Vec<SuppressedTable>,
}

/// Suppression counts of one table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SuppressedTable {
    /// Combine step id.
    pub table: String,
    /// Threshold used.
    pub min_cell: u32,
    /// Cells hidden because they were below the threshold.
    pub primary: usize,
    /// Cells hidden so the primary ones cannot be recovered from totals.
    pub complementary: usize,
}

impl RunReport {
    pub(crate) fn up_to_date(
        run_id: &str,
        pipeline: &Pipeline,
        settings: &Settings,
        started_at: String,
        since: String,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            pipeline: pipeline.name.clone(),
            profile: settings.profile.clone(),
            started_at,
            finished_at: String::new(),
            status: "up_to_date".into(),
            sources: Vec::new(),
            datasets: BTreeMap::new(),
            privacy: PrivacyReport::default(),
            suppression: SuppressionReport::default(),
            inputs: Vec::new(),
            up_to_date_since: Some(since),
        }
    }

    /// One line for stderr.
    pub fn summary_line(&self) -> String {
        if self.status == "up_to_date" {
            return format!(
                "{}: up to date (inputs, pipeline and settings unchanged; nothing published)",
                self.pipeline
            );
        }
        let src: Vec<String> = self
            .sources
            .iter()
            .map(|s| {
                format!(
                    "{} read {} = passed {} + rejected {} + duplicates {}",
                    s.source,
                    s.read,
                    s.passed,
                    s.rejected_total(),
                    s.duplicates
                )
            })
            .collect();
        let ds: Vec<String> =
            self.datasets.iter().map(|(n, d)| format!("{n} {} rows ({})", d.rows, d.outcome)).collect();
        format!("{}: {}; {}", self.pipeline, src.join("; "), ds.join(", "))
    }
}

/// Run reports kept in `_diaspora/runs/` besides `latest.json`.
const REPORTS_KEPT: usize = 100;

/// Reads an earlier run's report.
pub(crate) fn read(layout: &Layout, run_id: &str) -> Option<RunReport> {
    serde_json::from_slice(&std::fs::read(layout.runs().join(format!("{run_id}.json"))).ok()?).ok()
}

/// Writes the report as `<run_id>.json`, replaces `latest.json` (write to a temporary name, then rename) and
/// keeps the newest reports only.
pub(crate) fn write(layout: &Layout, report: &RunReport) -> Result<()> {
    let dir = layout.runs();
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "create", &e))?;
    let bytes = serde_json::to_vec_pretty(report).map_err(|e| Error::internal(e.to_string()))?;
    let path = dir.join(format!("{}.json", report.run_id));
    std::fs::write(&path, &bytes).map_err(|e| Error::io(&path, "write", &e))?;
    let tmp = dir.join(".latest.json.tmp");
    std::fs::write(&tmp, &bytes).map_err(|e| Error::io(&tmp, "write", &e))?;
    std::fs::rename(&tmp, dir.join("latest.json")).map_err(|e| Error::io(&dir, "rename latest.json in", &e))?;
    let mut reports: Vec<_> = std::fs::read_dir(&dir)
        .map_err(|e| Error::io(&dir, "list", &e))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("latest.json"))
        // Only this pipeline's reports, and never the one an up-to-date run points back to.
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().contains(&format!("-{}-", report.pipeline))))
        .filter(|p| !report.up_to_date_since.as_ref().is_some_and(|since| p.ends_with(format!("{since}.json"))))
        .collect();
    reports.sort();
    let excess = reports.len().saturating_sub(REPORTS_KEPT);
    for old in &reports[..excess] {
        let _ = std::fs::remove_file(old);
    }
    Ok(())
}

/// Type name used in reports and manifests.
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Utf8 => "utf8",
        DataType::Int32 => "int32",
        DataType::Int64 => "int64",
        DataType::Float64 => "float64",
        DataType::Boolean => "bool",
        DataType::Timestamp(..) => "timestamp_us",
        DataType::UInt64 => "uint64",
        other => return other.to_string(),
    }
    .into()
}

/// Running totals of a dataset's columns, gathered batch by batch as it is written: rows, NULLs per column and
/// sums of numeric columns (added row by row, so the result does not depend on how rows were split into batches).
#[derive(Debug, Default, Clone)]
pub struct ColumnStats {
    rows: u64,
    nulls: BTreeMap<String, u64>,
    sums: BTreeMap<String, Option<f64>>,
}

impl ColumnStats {
    /// Adds a batch.
    pub fn add(&mut self, b: &arrow_array::RecordBatch) {
        self.rows += b.num_rows() as u64;
        for (f, a) in b.schema().fields().iter().zip(b.columns()) {
            *self.nulls.entry(f.name().clone()).or_default() += a.null_count() as u64;
            let sum = self.sums.entry(f.name().clone()).or_insert(Some(0.0));
            let Some(s) = sum else { continue };
            match a.data_type() {
                DataType::Int32 => a.as_primitive::<Int32Type>().iter().flatten().for_each(|v| *s += f64::from(v)),
                DataType::Int64 => a.as_primitive::<Int64Type>().iter().flatten().for_each(|v| *s += v as f64),
                DataType::Float64 => a.as_primitive::<Float64Type>().iter().flatten().for_each(|v| *s += v),
                _ => *sum = None,
            }
        }
    }

    /// Stats of a whole table.
    pub fn of(table: &Table) -> Self {
        let mut s = Self::default();
        for b in &table.batches {
            s.add(b);
        }
        s
    }
}

/// Builds the report of a written dataset from its column stats and the files.
pub fn dataset_report(name: &str, stats: &ColumnStats, partition_by: &[String], files: &DatasetFiles) -> DatasetReport {
    let mut partitions = BTreeMap::new();
    if !partition_by.is_empty() {
        for f in &files.files {
            *partitions.entry(f.partition.clone()).or_insert(0) += f.rows;
        }
    }
    let columns = files
        .file_schema
        .fields()
        .iter()
        .map(|f| ColumnInfo { name: f.name().clone(), r#type: type_name(f.data_type()) })
        .collect();
    let mut sums = BTreeMap::new();
    let mut nulls = BTreeMap::new();
    for f in files.file_schema.fields() {
        // A column only a dataset without rows would lack: numeric columns sum to 0 then.
        let numeric = matches!(f.data_type(), DataType::Int32 | DataType::Int64 | DataType::Float64);
        if numeric {
            sums.insert(f.name().clone(), stats.sums.get(f.name()).copied().flatten().unwrap_or(0.0));
        }
        nulls.insert(f.name().clone(), stats.nulls.get(f.name()).copied().unwrap_or(0));
    }
    DatasetReport {
        path: name.into(),
        rows: stats.rows,
        partition_by: partition_by.to_vec(),
        partitions,
        columns,
        sums,
        nulls,
        version: files.version.clone(),
        outcome: String::new(),
    }
}

/// The `rejects` dataset: source, line, reason, column_name and the (redacted, never restricted) value.
pub(crate) fn rejects_table(rejects: &[Reject]) -> Result<Table> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("source", DataType::Utf8, false),
        Field::new("line", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, true),
        Field::new("value", DataType::Utf8, true),
    ]));
    let mut sorted: Vec<&Reject> = rejects.iter().collect();
    sorted.sort_by(|a, b| (&a.source, a.line).cmp(&(&b.source, b.line)));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(arrow_array::StringArray::from_iter_values(sorted.iter().map(|r| r.source.as_str()))),
        Arc::new(arrow_array::Int64Array::from_iter_values(sorted.iter().map(|r| r.line as i64))),
        Arc::new(arrow_array::StringArray::from_iter_values(sorted.iter().map(|r| r.reason.as_str()))),
        Arc::new(sorted.iter().map(|r| r.column.as_deref()).collect::<arrow_array::StringArray>()),
        Arc::new(sorted.iter().map(|r| r.value.as_deref()).collect::<arrow_array::StringArray>()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::internal(e.to_string()))?;
    Ok(Table::new(schema, vec![batch]))
}
