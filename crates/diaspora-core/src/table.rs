//! The in-memory unit passed between stages: Arrow batches sharing one schema, plus what the reader learnt.

use arrow_array::{RecordBatch, UInt64Array};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Name of the hidden column holding each row's input line; never written to outputs.
pub const LINE_COL: &str = "__line";

/// A table: batches with one schema. Source tables carry [`LINE_COL`] as their first column.
#[derive(Debug, Clone)]
pub struct Table {
    /// The schema every batch has.
    pub schema: SchemaRef,
    /// The rows, in input order.
    pub batches: Vec<RecordBatch>,
    /// What the reader learnt about the columns.
    pub meta: TableMeta,
}

/// Facts about a table's columns that outlive the header rows they came from.
#[derive(Debug, Clone, Default)]
pub struct TableMeta {
    /// Column → time zone declared by the export (Qualtrics ImportId `timeZone`).
    pub time_zones: BTreeMap<String, String>,
    /// Column → Qualtrics ImportId (e.g. `QID5_TEXT`), used to recognise free text.
    pub import_ids: BTreeMap<String, String>,
    /// Data vintage declared by the publisher.
    pub vintage: Option<String>,
}

impl Table {
    /// Builds a table from batches (all with `schema`).
    pub fn new(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        Self { schema, batches, meta: TableMeta::default() }
    }

    /// Total rows.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// Column names, in order, without the hidden line column.
    pub fn column_names(&self) -> Vec<String> {
        self.schema.fields().iter().map(|f| f.name().clone()).filter(|n| n != LINE_COL).collect()
    }

    /// Whether a column exists.
    pub fn has_column(&self, name: &str) -> bool {
        self.schema.index_of(name).is_ok()
    }
}

/// The line numbers of a batch's rows (or `0..n` if the batch has no line column).
pub fn lines_of(batch: &RecordBatch) -> Vec<u64> {
    match batch.column_by_name(LINE_COL).and_then(|c| c.as_any().downcast_ref::<UInt64Array>()) {
        Some(a) => a.values().to_vec(),
        None => (1..=batch.num_rows() as u64).collect(),
    }
}

/// The field for the hidden line column.
pub fn line_field() -> Arc<Field> {
    Arc::new(Field::new(LINE_COL, DataType::UInt64, false))
}

/// A schema of the line column followed by nullable text columns.
pub fn text_schema(names: &[String]) -> SchemaRef {
    let mut fields = vec![line_field()];
    fields.extend(names.iter().map(|n| Arc::new(Field::new(n, DataType::Utf8, true))));
    Arc::new(Schema::new(fields))
}
