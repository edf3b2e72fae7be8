use crate::country::{CountryResolver, Resolution};
use crate::privacy::{PrivacyPolicy, redact};
use crate::pseudonym::PseudonymKey;
use arrow_array::builder::{Float64Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use diaspora_config::{CastType, Keep, Step, Unmapped};
use diaspora_core::{Error, LINE_COL, Reject, Result, Table, did_you_mean, lines_of};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::sync::Mutex;

/// What steps need besides the table.
pub struct CleanContext<'a> {
    /// Source id (for rejects and messages).
    pub source: &'a str,
    /// Where the source came from (for messages).
    pub location: &'a str,
    /// The country resolver.
    pub resolver: &'a CountryResolver,
    /// The pseudonymisation key, if one was loaded.
    pub key: Option<&'a PseudonymKey>,
    /// State kept across calls when a source is cleaned piece by piece (streaming); `None` when each call sees
    /// the whole source.
    pub memory: Option<&'a StepMemory>,
}

/// What steps remember between the pieces of one source: the row hashes each `dedupe_exact` step has seen
/// (16 bytes a row, never the rows) and the lookup tables already loaded.
#[derive(Default)]
pub struct StepMemory {
    seen: Mutex<HashMap<String, SeenSet>>,
    lookups: Mutex<HashMap<String, Arc<LookupMap>>>,
}

impl StepMemory {
    /// Empty memory, for the first piece of a source.
    pub fn new() -> Self {
        Self::default()
    }

    fn lookup(&self, file: &str, key: &str, value: &str, at: &str) -> Result<Arc<LookupMap>> {
        let id = format!("{file}\u{0}{key}\u{0}{value}");
        if let Some(m) = self.lookups.lock().expect("lookup cache").get(&id) {
            return Ok(m.clone());
        }
        let m = Arc::new(load_lookup(file, key, value, at)?);
        self.lookups.lock().expect("lookup cache").insert(id, m.clone());
        Ok(m)
    }
}

/// A set of short strings (step values, missing-value codes), hashed with XXH3 rather than SipHash: it is asked
/// once per cell.
type FastSet<'a> = HashSet<&'a str, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

/// A lookup table's keys and values, hashed with XXH3.
type LookupMap = HashMap<String, String, xxhash_rust::xxh3::Xxh3DefaultBuilder>;

/// A hasher for values that are already uniform hashes: it keeps their bits.
#[derive(Default)]
struct HashBits(u64);

impl Hasher for HashBits {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

/// The result of one step.
pub struct StepOutput {
    /// The rows that passed.
    pub table: Table,
    /// The rows rejected by this step.
    pub rejects: Vec<Reject>,
    /// Rows removed as duplicates by this step.
    pub duplicates: u64,
}

/// Applies one step. `path` is the step's key path (`sources[0].steps[3]`) for configuration errors; `policy`
/// follows renames and decides which cell values may appear in rejects.
pub fn apply_step(
    table: Table,
    step: &Step,
    path: &str,
    ctx: &CleanContext<'_>,
    policy: &mut PrivacyPolicy,
) -> Result<StepOutput> {
    let out = apply(table, step, path, ctx, policy)?;
    match step {
        // Written in place, a pseudonym or a country code replaces the restricted text: the column is released.
        Step::Pseudonymize { column, into } | Step::Country { column, into } if column == into => {
            policy.release(column);
        }
        // A derived value that reads a restricted column is restricted like it.
        Step::Derive { name, expr } => {
            let lower = expr.to_lowercase();
            let inherited: Vec<_> =
                policy.restricted().filter(|(c, _)| lower.contains(&c.to_lowercase())).map(|(_, r)| r).collect();
            if let Some(r) = inherited.first() {
                policy.restrict(name, *r);
            }
        }
        _ => {}
    }
    Ok(out)
}

fn apply(
    table: Table,
    step: &Step,
    path: &str,
    ctx: &CleanContext<'_>,
    policy: &mut PrivacyPolicy,
) -> Result<StepOutput> {
    let col = |name: &str, key: &str| -> Result<usize> { column_index(&table, name, &format!("{path}.{key}"), ctx) };
    match step {
        Step::DropValues { column, values, reason } | Step::KeepValues { column, values, reason } => {
            let i = col(column, "column")?;
            let keep_listed = matches!(step, Step::KeepValues { .. });
            let set: FastSet<'_> = values.iter().map(String::as_str).collect();
            let show = policy.may_show(column);
            per_batch(table, ctx, |b| {
                let a = text(b, i, column, path)?;
                Ok(filter_rows(b, ctx, |r| {
                    let listed = a.is_valid(r) && set.contains(a.value(r));
                    if listed == keep_listed { None } else { Some(reject(reason, column, a, r, show)) }
                }))
            })
        }
        Step::DropMissing { columns, reason } => {
            let idx: Vec<usize> =
                columns.iter().enumerate().map(|(k, c)| col(c, &format!("columns[{k}]"))).collect::<Result<_>>()?;
            per_batch(table, ctx, |b| {
                Ok(filter_rows(b, ctx, |r| {
                    let missing = idx.iter().zip(columns).find(|(i, _)| {
                        let a = b.column(**i);
                        a.is_null(r) || a.as_string_opt::<i32>().is_some_and(|s| s.value(r).trim().is_empty())
                    });
                    missing.map(|(_, c)| (reason.clone(), Some(c.clone()), None))
                }))
            })
        }
        Step::MinValue { column, min, reason } => {
            let i = col(column, "column")?;
            let show = policy.may_show(column);
            per_batch(table, ctx, |b| {
                let a = text(b, i, column, path)?;
                Ok(filter_rows(b, ctx, |r| {
                    let ok = a.is_valid(r) && a.value(r).trim().parse::<f64>().is_ok_and(|v| v >= *min);
                    (!ok).then(|| reject(reason, column, a, r, show))
                }))
            })
        }
        Step::Range { column, min, max, reason } => {
            let i = col(column, "column")?;
            let show = policy.may_show(column);
            per_batch(table, ctx, |b| {
                let a = b.column(i);
                let vals = numeric_values(a.as_ref()).ok_or_else(|| {
                    Error::config(format!("{path}.column: {column:?} must be numeric here (cast it first)"))
                })?;
                Ok(filter_rows(b, ctx, |r| match vals[r] {
                    Some(v) if v < *min || v > *max => {
                        Some((reason.clone(), Some(column.clone()), show.then(|| fmt_num(v))))
                    }
                    _ => None,
                }))
            })
        }
        Step::MissingCodes { columns, codes } => {
            let idx: Vec<usize> =
                columns.iter().enumerate().map(|(k, c)| col(c, &format!("columns[{k}]"))).collect::<Result<_>>()?;
            let set: FastSet<'_> = codes.iter().map(String::as_str).collect();
            map_batches(table, |b| {
                let mut cols = b.columns().to_vec();
                for (&i, name) in idx.iter().zip(columns) {
                    let a = text(b, i, name, path)?;
                    // Only the validity changes: the text buffers are shared with the input.
                    let valid: arrow_buffer::BooleanBuffer =
                        (0..a.len()).map(|r| a.is_valid(r) && !set.contains(a.value(r).trim())).collect();
                    let nulls = arrow_buffer::NullBuffer::new(valid);
                    let out = StringArray::new(a.offsets().clone(), a.values().clone(), Some(nulls));
                    cols[i] = Arc::new(out);
                }
                rebuild(b.schema(), cols)
            })
        }
        Step::Cast { column, to, into, reason } => {
            let i = col(column, "column")?;
            let reason = reason.as_deref().unwrap_or("cast_failed");
            let dtype = match to {
                CastType::Int32 => DataType::Int32,
                CastType::Int64 => DataType::Int64,
                CastType::Float64 => DataType::Float64,
                CastType::Bool => DataType::Boolean,
            };
            let out_name = into.clone().unwrap_or_else(|| column.clone());
            if out_name != *column {
                policy.rename(column, &out_name);
            }
            let schema = replace_field(&table.schema, i, &out_name, dtype);
            let show = policy.may_show(&out_name);
            let t = Table { schema: schema.clone(), ..table };
            per_batch(t, ctx, |b| {
                let a = text(b, i, column, path)?;
                let (arr, bad) = cast_text(a, *to);
                let mut cols = b.columns().to_vec();
                cols[i] = arr;
                let nb = rebuild(schema.clone(), cols)?;
                Ok(filter_rows(&nb, ctx, |r| bad.contains(&r).then(|| reject(reason, column, a, r, show))))
            })
        }
        Step::ValueMap { column, into, map, unmapped, reason } => {
            let i = col(column, "column")?;
            let exact: HashMap<&str, &str> = map.iter().map(|(k, v)| (k.trim(), v.as_str())).collect();
            let folded: HashMap<String, &str> = map.iter().map(|(k, v)| (crate::normalize(k), v.as_str())).collect();
            let reason = reason.as_deref().unwrap_or("value_unmapped");
            let show = policy.may_show(column);
            let schema = replace_field(&table.schema, i, into, DataType::Utf8);
            let t = Table { schema: schema.clone(), ..table };
            let out = per_batch(t, ctx, |b| {
                let a = text(b, i, column, path)?;
                let mut bad = Vec::new();
                let mut builder = StringBuilder::with_capacity(a.len(), a.len() * 8);
                for r in 0..a.len() {
                    if a.is_null(r) {
                        builder.append_null();
                        continue;
                    }
                    let v = a.value(r);
                    match exact.get(v.trim()).copied().or_else(|| folded.get(&crate::normalize(v)).copied()) {
                        Some(m) => builder.append_value(m),
                        None => match unmapped {
                            Unmapped::Reject => {
                                bad.push(r);
                                builder.append_null();
                            }
                            Unmapped::Null => builder.append_null(),
                            Unmapped::Keep => builder.append_value(v),
                        },
                    }
                }
                let mut cols = b.columns().to_vec();
                cols[i] = Arc::new(builder.finish());
                let nb = rebuild(schema.clone(), cols)?;
                Ok(filter_rows(&nb, ctx, |r| bad.contains(&r).then(|| reject(reason, column, a, r, show))))
            })?;
            // A mapped value is a code chosen by the pipeline, not the respondent's words.
            if into == column {
                policy.release(column);
            }
            Ok(out)
        }
        Step::Country { column, into } => {
            let i = col(column, "column")?;
            // A typed answer (Qualtrics `_TEXT`) is free text: it may hold a name, so it is withheld from rejects;
            // a coded or choice answer is shown, redacted of contact data.
            let show = policy.may_show(column);
            let schema = replace_field(&table.schema, i, into, DataType::Utf8);
            let t = Table { schema: schema.clone(), ..table };
            per_batch(t, ctx, |b| {
                let a = text(b, i, column, path)?;
                let mut reasons: Vec<Option<&'static str>> = Vec::with_capacity(a.len());
                let codes: StringArray = (0..a.len())
                    .map(|r| {
                        let res = if a.is_null(r) { Resolution::Empty } else { ctx.resolver.resolve(a.value(r)) };
                        let (code, why) = match res {
                            Resolution::Country(c) => (Some(c), None),
                            Resolution::Empty => (None, Some("country_missing")),
                            Resolution::Region => (None, Some("country_is_region")),
                            Resolution::Ambiguous => (None, Some("country_ambiguous")),
                            Resolution::Unresolved => (None, Some("country_unresolved")),
                        };
                        reasons.push(why);
                        code
                    })
                    .collect();
                let mut cols = b.columns().to_vec();
                cols[i] = Arc::new(codes);
                let nb = rebuild(schema.clone(), cols)?;
                Ok(filter_rows(&nb, ctx, |r| {
                    reasons[r].map(|why| {
                        (why.to_owned(), Some(column.clone()), (show && a.is_valid(r)).then(|| redact(a.value(r))))
                    })
                }))
            })
        }
        Step::Timestamps { columns, time_zone } => {
            let mut out = table;
            let mut rejects = Vec::new();
            for (k, c) in columns.iter().enumerate() {
                let i = column_index(&out, c, &format!("{path}.columns[{k}]"), ctx)?;
                let naive = time_zone.as_deref() == Some("naive");
                let zone_name = time_zone.clone().or_else(|| out.meta.time_zones.get(c).cloned()).ok_or_else(|| {
                    Error::config(format!(
                        "{path}: column {c:?} of {} declares no time zone; set time_zone in the step",
                        ctx.location
                    ))
                })?;
                // "naive" keeps wall-clock times: parsed as if UTC, stored without a zone.
                let tz = if naive {
                    jiff::tz::TimeZone::UTC
                } else {
                    jiff::tz::TimeZone::get(&zone_name)
                        .map_err(|_| Error::config(format!("{path}: unknown time zone {zone_name:?}")))?
                };
                let zone: Option<Arc<str>> = if naive { None } else { Some("UTC".into()) };
                let schema = replace_field(&out.schema, i, c, DataType::Timestamp(TimeUnit::Microsecond, zone.clone()));
                let t = Table { schema: schema.clone(), ..out };
                let step_out = per_batch(t, ctx, |b| {
                    let a = text(b, i, c, path)?;
                    let mut bad = Vec::new();
                    let mut builder = TimestampMicrosecondBuilder::with_capacity(a.len());
                    for r in 0..a.len() {
                        if a.is_null(r) {
                            builder.append_null();
                            continue;
                        }
                        match parse_local(a.value(r), &tz) {
                            Some(us) => builder.append_value(us),
                            None => {
                                bad.push(r);
                                builder.append_null();
                            }
                        }
                    }
                    let arr = builder.finish().with_timezone_opt(zone.clone());
                    let mut cols = b.columns().to_vec();
                    cols[i] = Arc::new(arr);
                    let nb = rebuild(schema.clone(), cols)?;
                    Ok(filter_rows(&nb, ctx, |r| {
                        bad.contains(&r).then(|| ("timestamp_invalid".to_owned(), Some(c.clone()), None))
                    }))
                })?;
                out = step_out.table;
                rejects.extend(step_out.rejects);
            }
            Ok(StepOutput { table: out, rejects, duplicates: 0 })
        }
        Step::Lookup { column, into, table: path_csv, key, value, missing_reason, unmapped_reason } => {
            let i = col(column, "column")?;
            let at = format!("{path}.table");
            let map = match ctx.memory {
                Some(m) => m.lookup(path_csv, key, value, &at)?,
                None => Arc::new(load_lookup(path_csv, key, value, &at)?),
            };
            let show = policy.may_show(column);
            let mut fields: Vec<Field> = table.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.push(Field::new(into, DataType::Utf8, true));
            let schema = Arc::new(Schema::new(fields));
            let t = Table { schema: schema.clone(), ..table };
            per_batch(t, ctx, |b| {
                let a = text(b, i, column, path)?;
                let mut why: Vec<Option<&String>> = Vec::with_capacity(a.len());
                let mut key_buf = String::new();
                let found: StringArray = (0..a.len())
                    .map(|r| {
                        let k = if a.is_null(r) { "" } else { a.value(r).trim_matches(' ') };
                        if k.is_empty() {
                            why.push(Some(missing_reason));
                            return None;
                        }
                        key_buf.clear();
                        key_buf.extend(k.chars().flat_map(char::to_lowercase));
                        let v = map.get(key_buf.as_str());
                        why.push(if v.is_none() { Some(unmapped_reason) } else { None });
                        v.map(String::as_str)
                    })
                    .collect();
                let mut cols = b.columns().to_vec();
                cols.push(Arc::new(found));
                let nb = rebuild(schema.clone(), cols)?;
                Ok(filter_rows(&nb, ctx, |r| why[r].map(|reason| reject(reason, column, a, r, show))))
            })
        }
        Step::Pseudonymize { column, into } => {
            let i = col(column, "column")?;
            let key = ctx
                .key
                .ok_or_else(|| Error::config(format!("{path}: pseudonymize needs a key, and none was loaded")))?;
            let schema = replace_field(&table.schema, i, into, DataType::Utf8);
            let t = Table { schema: schema.clone(), ..table };
            per_batch(t, ctx, |b| {
                let a = text(b, i, column, path)?;
                let p: StringArray = a.iter().map(|v| v.map(|s| key.pseudonym(s.trim()))).collect();
                let mut cols = b.columns().to_vec();
                cols[i] = Arc::new(p);
                let nb = rebuild(schema.clone(), cols)?;
                Ok(filter_rows(&nb, ctx, |r| {
                    a.is_null(r).then(|| ("id_missing".to_owned(), Some(column.clone()), None))
                }))
            })
        }
        Step::Filter { expr, reason } => {
            let compiled = crate::sql::SqlExpr::compile(expr, &table.schema, path)?;
            per_batch(table, ctx, |b| {
                let v = compiled.eval(b, path)?;
                let mask = v.as_boolean_opt().ok_or_else(|| {
                    Error::config(format!("{path}.expr: must be a boolean expression, it gives {}", v.data_type()))
                })?;
                Ok(filter_rows(b, ctx, |r| {
                    (!(mask.is_valid(r) && mask.value(r))).then(|| (reason.clone(), None, None))
                }))
            })
        }
        Step::Derive { name, expr } => {
            let compiled = crate::sql::SqlExpr::compile(expr, &table.schema, path)?;
            let existing = table.schema.index_of(name).ok();
            let mut out = map_batches(table, |b| {
                let v = compiled.eval(b, path)?;
                let mut fields: Vec<Field> = b.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
                let mut cols = b.columns().to_vec();
                let field = Field::new(name, v.data_type().clone(), true);
                match existing {
                    Some(i) => {
                        fields[i] = field;
                        cols[i] = v;
                    }
                    None => {
                        fields.push(field);
                        cols.push(v);
                    }
                }
                rebuild(Arc::new(Schema::new(fields)), cols)
            })?;
            if out.table.batches.is_empty() {
                // No rows: the schema still needs the new column; plan it on an empty batch.
                let empty = RecordBatch::new_empty(out.table.schema.clone());
                let v = compiled.eval(&empty, path)?;
                let mut fields: Vec<Field> = out.table.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
                let field = Field::new(name, v.data_type().clone(), true);
                match existing {
                    Some(i) => fields[i] = field,
                    None => fields.push(field),
                }
                out.table.schema = Arc::new(Schema::new(fields));
            }
            Ok(out)
        }
        Step::Labels { column, into } => {
            let i = col(column, "column")?;
            let labels: BTreeMap<String, String> = table
                .schema
                .field(i)
                .metadata()
                .get("spss.value_labels")
                .and_then(|j| serde_json::from_str(j).ok())
                .ok_or_else(|| {
                    Error::config(format!("{path}.column: {column:?} carries no value labels (spss.value_labels)"))
                })?;
            let out_name = into.clone().unwrap_or_else(|| column.clone());
            let schema = replace_field(&table.schema, i, &out_name, DataType::Utf8);
            let t = Table { schema: schema.clone(), ..table };
            let out = map_batches(t, |b| {
                let a = b.column(i);
                let texts: StringArray = (0..a.len())
                    .map(|r| {
                        let code = cell_text(a.as_ref(), r)?;
                        Some(labels.get(&code).cloned().unwrap_or(code))
                    })
                    .collect();
                let mut cols = b.columns().to_vec();
                cols[i] = Arc::new(texts);
                rebuild(schema.clone(), cols)
            })?;
            policy.rename(column, &out_name);
            Ok(out)
        }
        Step::Rename { columns } => {
            let mut fields: Vec<Field> = table.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
            for (from, to) in columns {
                let i = col(from, &format!("columns.{from}"))?;
                fields[i] = fields[i].clone().with_name(to);
                policy.rename(from, to);
            }
            let schema = Arc::new(Schema::new(fields));
            let t = Table { schema: schema.clone(), ..table };
            map_batches(t, |b| rebuild(schema.clone(), b.columns().to_vec()))
        }
        Step::Select { columns } => {
            let mut idx = vec![col(LINE_COL, "columns")?];
            for (k, c) in columns.iter().enumerate() {
                idx.push(col(c, &format!("columns[{k}]"))?);
            }
            let schema = Arc::new(table.schema.project(&idx).map_err(|e| Error::internal(e.to_string()))?);
            let t = Table { schema: schema.clone(), ..table };
            map_batches(t, |b| b.project(&idx).map_err(|e| Error::internal(e.to_string())))
        }
        Step::DedupeExact {} => dedupe_exact(table, ctx.memory.map(|m| (m, path))),
        Step::DedupeBy { key, order_by, keep } => {
            let k = col(key, "key")?;
            let o = col(order_by, "order_by")?;
            dedupe_by(table, k, o, *keep, path)
        }
    }
}

fn column_index(table: &Table, name: &str, key: &str, ctx: &CleanContext<'_>) -> Result<usize> {
    table.schema.index_of(name).map_err(|_| {
        let names = table.column_names();
        let hint = did_you_mean(name, names.iter().map(String::as_str))
            .map(|s| format!(" (did you mean {s:?}?)"))
            .unwrap_or_default();
        Error::config(format!(
            "{key}: {} has no column {name:?} at this step{hint}; it has {} columns",
            ctx.location,
            names.len()
        ))
    })
}

fn text<'b>(b: &'b RecordBatch, i: usize, name: &str, path: &str) -> Result<&'b StringArray> {
    b.column(i).as_string_opt::<i32>().ok_or_else(|| {
        Error::config(format!("{path}: column {name:?} is no longer text at this step (it was cast or parsed earlier)"))
    })
}

type RowReject = (String, Option<String>, Option<String>);

fn reject(reason: &str, column: &str, a: &StringArray, r: usize, show: bool) -> RowReject {
    let value = (show && a.is_valid(r)).then(|| redact(a.value(r)));
    (reason.to_owned(), Some(column.to_owned()), value)
}

/// Keeps the rows for which `judge` returns `None`; the others become rejects.
fn filter_rows(
    b: &RecordBatch,
    ctx: &CleanContext<'_>,
    mut judge: impl FnMut(usize) -> Option<RowReject>,
) -> (RecordBatch, Vec<Reject>) {
    let mut lines: Option<Vec<u64>> = None;
    let mut rejects = Vec::new();
    let mask: BooleanArray = (0..b.num_rows())
        .map(|r| match judge(r) {
            None => Some(true),
            Some((reason, column, value)) => {
                let line = lines.get_or_insert_with(|| lines_of(b))[r];
                rejects.push(Reject { source: ctx.source.to_owned(), line, reason, column, value });
                Some(false)
            }
        })
        .collect();
    if rejects.is_empty() {
        return (b.clone(), rejects);
    }
    let kept = arrow_select::filter::filter_record_batch(b, &mask).expect("mask length equals batch length");
    (kept, rejects)
}

fn per_batch(
    table: Table,
    ctx: &CleanContext<'_>,
    f: impl Fn(&RecordBatch) -> Result<(RecordBatch, Vec<Reject>)> + Sync,
) -> Result<StepOutput> {
    let _ = ctx;
    let results: Vec<(RecordBatch, Vec<Reject>)> = table.batches.par_iter().map(&f).collect::<Result<_>>()?;
    let mut batches = Vec::with_capacity(results.len());
    let mut rejects = Vec::new();
    for (b, r) in results {
        if b.num_rows() > 0 {
            batches.push(b);
        }
        rejects.extend(r);
    }
    Ok(StepOutput { table: Table { batches, ..table }, rejects, duplicates: 0 })
}

fn map_batches(table: Table, f: impl Fn(&RecordBatch) -> Result<RecordBatch> + Sync) -> Result<StepOutput> {
    let batches: Vec<RecordBatch> = table.batches.par_iter().map(&f).collect::<Result<_>>()?;
    let schema = batches.first().map(|b| b.schema()).unwrap_or(table.schema.clone());
    Ok(StepOutput { table: Table { schema, batches, meta: table.meta }, rejects: Vec::new(), duplicates: 0 })
}

fn rebuild(schema: SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema, cols).map_err(|e| Error::internal(format!("building a batch: {e}")))
}

fn replace_field(schema: &SchemaRef, i: usize, name: &str, dtype: DataType) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields[i] = Field::new(name, dtype, true);
    Arc::new(Schema::new(fields))
}

fn cast_text(a: &StringArray, to: CastType) -> (ArrayRef, Vec<usize>) {
    let mut bad = Vec::new();
    let arr: ArrayRef = match to {
        CastType::Int32 => {
            let mut b = Int32Builder::with_capacity(a.len());
            cast_each(a, &mut bad, |s| parse_int(s).and_then(|v| i32::try_from(v).ok()), |v| b.append_option(v));
            Arc::new(b.finish())
        }
        CastType::Int64 => {
            let mut b = Int64Builder::with_capacity(a.len());
            cast_each(a, &mut bad, parse_int, |v| b.append_option(v));
            Arc::new(b.finish())
        }
        CastType::Float64 => {
            let mut b = Float64Builder::with_capacity(a.len());
            cast_each(a, &mut bad, |s| s.trim().parse::<f64>().ok().filter(|v| v.is_finite()), |v| b.append_option(v));
            Arc::new(b.finish())
        }
        CastType::Bool => {
            let vals: BooleanArray = (0..a.len())
                .map(|r| {
                    if a.is_null(r) {
                        return None;
                    }
                    match a.value(r).trim().to_lowercase().as_str() {
                        "true" | "1" | "yes" | "y" | "t" => Some(true),
                        "false" | "0" | "no" | "n" | "f" => Some(false),
                        _ => {
                            bad.push(r);
                            None
                        }
                    }
                })
                .collect();
            Arc::new(vals)
        }
    };
    (arr, bad)
}

/// Reads a lookup table: a CSV file with a header naming `key` and `value`. Keys are trimmed of spaces and
/// lower-cased like the cells they are compared with.
fn load_lookup(file: &str, key: &str, value: &str, at: &str) -> Result<LookupMap> {
    let mut rdr = csv::Reader::from_path(file).map_err(|e| Error::data(format!("{at}: cannot read {file}: {e}")))?;
    let headers = rdr.headers().map_err(|e| Error::data(format!("{at}: {file}: {e}")))?.clone();
    let find = |n: &str| {
        headers.iter().position(|h| h == n).ok_or_else(|| Error::config(format!("{at}: {file} has no column {n:?}")))
    };
    let (k, v) = (find(key)?, find(value)?);
    let mut map = LookupMap::default();
    for (n, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::data(format!("{at}: {file}: record {}: {e}", n + 1)))?;
        let kk: String = rec.get(k).unwrap_or("").trim_matches(' ').chars().flat_map(char::to_lowercase).collect();
        map.insert(kk, rec.get(v).unwrap_or("").to_owned());
    }
    Ok(map)
}

/// Parses every cell with `parse`, handing the result (NULL for NULL cells and failures) to `push`; failed rows
/// go to `bad`.
fn cast_each<T>(
    a: &StringArray,
    bad: &mut Vec<usize>,
    parse: impl Fn(&str) -> Option<T>,
    mut push: impl FnMut(Option<T>),
) {
    for r in 0..a.len() {
        if a.is_null(r) {
            push(None);
            continue;
        }
        let v = parse(a.value(r));
        if v.is_none() {
            bad.push(r);
        }
        push(v);
    }
}

/// Integers, also written as `3.0` (some exports do).
fn parse_int(s: &str) -> Option<i64> {
    let s = s.trim();
    s.parse::<i64>().ok().or_else(|| {
        let f: f64 = s.parse().ok()?;
        (f.fract() == 0.0 && f.abs() < 9.0e15).then_some(f as i64)
    })
}

fn numeric_values(a: &dyn Array) -> Option<Vec<Option<f64>>> {
    Some(match a.data_type() {
        DataType::Int32 => a.as_primitive::<Int32Type>().iter().map(|v| v.map(f64::from)).collect(),
        DataType::Int64 => a.as_primitive::<Int64Type>().iter().map(|v| v.map(|x| x as f64)).collect(),
        DataType::Float64 => a.as_primitive::<Float64Type>().iter().collect(),
        _ => return None,
    })
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v}") }
}

fn parse_local(s: &str, tz: &jiff::tz::TimeZone) -> Option<i64> {
    let s = s.trim();
    let dt = match fixed_datetime(s.as_bytes()) {
        Some(dt) => dt,
        None => jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s).ok()?,
    };
    Some(tz.to_ambiguous_timestamp(dt).compatible().ok()?.as_microsecond())
}

/// `YYYY-MM-DD HH:MM:SS` exactly (what exports write), read without a format parser; `None` for anything else,
/// which the general parser then reads. Impossible dates and times are `None` here and there alike.
fn fixed_datetime(b: &[u8]) -> Option<jiff::civil::DateTime> {
    if b.len() != 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<i32> {
        b[from..to].iter().try_fold(0i32, |n, c| c.is_ascii_digit().then(|| n * 10 + i32::from(c - b'0')))
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (h, mi, sec) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    jiff::civil::DateTime::new(y as i16, mo as i8, d as i8, h as i8, mi as i8, sec as i8, 0).ok()
}

/// A cell as the text value labels are keyed by (`1`, `1.5`, `F`); `None` for NULL.
fn cell_text(a: &dyn Array, r: usize) -> Option<String> {
    if a.is_null(r) {
        return None;
    }
    Some(match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().value(r).to_owned(),
        DataType::Int32 => a.as_primitive::<Int32Type>().value(r).to_string(),
        DataType::Int64 => a.as_primitive::<Int64Type>().value(r).to_string(),
        DataType::Float64 => fmt_num(a.as_primitive::<Float64Type>().value(r)),
        other => format!("{other}"),
    })
}

/// 128-bit hashes of each row's cells, the line column `skip` left out. Each cell is hashed on its own (XXH3,
/// 128 bits, seeded by its column's position so equal values in different columns differ; NULL is hashed
/// under a seed of its own), and a row's cell hashes are folded as a polynomial with an odd 128-bit factor: two rows that differ
/// in any cell get different folds unless the cell hashes collide. The fold is mixed once more at the end.
fn row_hashes(b: &RecordBatch, skip: Option<usize>) -> Vec<u128> {
    const FACTOR: u128 = 0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835;
    let n = b.num_rows();
    let mut acc = vec![0u128; n];
    for (i, c) in b.columns().iter().enumerate() {
        if Some(i) == skip {
            continue;
        }
        let a = c.as_ref();
        let seed = i as u64 + 1;
        // NULL under a seed no value is hashed with, so it equals no value's hash (but by chance).
        let null_hash = xxhash_rust::xxh3::xxh3_128_with_seed(b"", seed | (1 << 63));
        let mut fold = |r: usize, h: u128| acc[r] = acc[r].wrapping_mul(FACTOR).wrapping_add(h);
        let hash = |bytes: &[u8]| xxhash_rust::xxh3::xxh3_128_with_seed(bytes, seed);
        match a.data_type() {
            DataType::Utf8 => {
                let s = a.as_string::<i32>();
                (0..n).for_each(|r| fold(r, if s.is_null(r) { null_hash } else { hash(s.value(r).as_bytes()) }));
            }
            DataType::Int32 | DataType::Int64 | DataType::Float64 | DataType::Timestamp(..) => {
                let width = a.data_type().primitive_width().unwrap_or(8);
                let data = a.to_data();
                let buf = &data.buffers()[0].as_slice()[data.offset() * width..];
                (0..n).for_each(|r| {
                    fold(r, if a.is_null(r) { null_hash } else { hash(&buf[r * width..(r + 1) * width]) })
                });
            }
            DataType::Boolean => {
                let v = a.as_boolean();
                (0..n).for_each(|r| fold(r, if v.is_null(r) { null_hash } else { hash(&[u8::from(v.value(r))]) }));
            }
            _ => (0..n).for_each(|r| {
                let h = if a.is_null(r) { null_hash } else { hash(format!("{:?}", a.slice(r, 1)).as_bytes()) };
                fold(r, h)
            }),
        }
    }
    acc.into_iter().map(|h| xxhash_rust::xxh3::xxh3_128(&h.to_le_bytes())).collect()
}

/// The row hashes a dedupe has seen, in 64 shards picked by the hash's top bits: a shard grows (and is copied
/// while it grows) on its own, so memory never spikes to twice the whole set.
struct SeenSet {
    shards: Vec<HashSet<u128, BuildHasherDefault<HashBits>>>,
}

impl Default for SeenSet {
    fn default() -> Self {
        Self { shards: (0..64).map(|_| HashSet::default()).collect() }
    }
}

impl SeenSet {
    /// Whether `h` is new (and remembers it).
    fn insert(&mut self, h: u128) -> bool {
        self.shards[(h >> 122) as usize].insert(h)
    }
}

/// Keeps the first occurrence of each row. With `memory`, rows seen in earlier pieces of the source count too.
fn dedupe_exact(table: Table, memory: Option<(&StepMemory, &str)>) -> Result<StepOutput> {
    let line_idx = table.schema.index_of(LINE_COL).ok();
    // Hash in parallel, decide in input order (the first occurrence is kept).
    let hashes: Vec<Vec<u128>> = table.batches.par_iter().map(|b| row_hashes(b, line_idx)).collect();
    let mut guard;
    let mut local = SeenSet::default();
    let seen: &mut SeenSet = match memory {
        Some((m, path)) => {
            guard = m.seen.lock().expect("dedupe memory");
            guard.entry(path.to_owned()).or_default()
        }
        None => &mut local,
    };
    let mut duplicates = 0u64;
    let mut batches = Vec::with_capacity(table.batches.len());
    for (b, hs) in table.batches.iter().zip(hashes) {
        let mask: BooleanArray = hs.iter().map(|h| Some(seen.insert(*h))).collect();
        let kept = mask.true_count();
        duplicates += (b.num_rows() - kept) as u64;
        if kept == b.num_rows() {
            batches.push(b.clone());
        } else if kept > 0 {
            batches
                .push(arrow_select::filter::filter_record_batch(b, &mask).map_err(|e| Error::internal(e.to_string()))?);
        }
    }
    Ok(StepOutput { table: Table { batches, ..table }, rejects: Vec::new(), duplicates })
}

fn dedupe_by(table: Table, k: usize, o: usize, keep: Keep, path: &str) -> Result<StepOutput> {
    // Pass 1: the winning (order value, position) per key.
    let mut best: HashMap<String, (Option<String>, (usize, usize))> = HashMap::new();
    for (bi, b) in table.batches.iter().enumerate() {
        let keys = text(b, k, "key", path)?;
        let order = text(b, o, "order_by", path)?;
        for r in 0..b.num_rows() {
            if keys.is_null(r) {
                continue;
            }
            let ov = order.is_valid(r).then(|| order.value(r).to_owned());
            let pos = (bi, r);
            match best.get_mut(keys.value(r)) {
                None => {
                    best.insert(keys.value(r).to_owned(), (ov, pos));
                }
                Some(cur) => {
                    // A row without an order value never replaces one that has it.
                    let better = match (&ov, &cur.0, keep) {
                        (None, Some(_), _) => false,
                        (Some(_), None, _) => true,
                        (_, _, Keep::Latest) => ov >= cur.0,
                        (_, _, Keep::First) => ov < cur.0,
                    };
                    if better {
                        *cur = (ov, pos);
                    }
                }
            }
        }
    }
    let winners: HashSet<(usize, usize)> = best.values().map(|(_, p)| *p).collect();
    let mut duplicates = 0u64;
    let mut batches = Vec::new();
    for (bi, b) in table.batches.iter().enumerate() {
        let keys = text(b, k, "key", path)?;
        let mask: BooleanArray =
            (0..b.num_rows()).map(|r| Some(keys.is_null(r) || winners.contains(&(bi, r)))).collect();
        let kept = mask.true_count();
        duplicates += (b.num_rows() - kept) as u64;
        if kept > 0 {
            batches
                .push(arrow_select::filter::filter_record_batch(b, &mask).map_err(|e| Error::internal(e.to_string()))?);
        }
    }
    Ok(StepOutput { table: Table { batches, ..table }, rejects: Vec::new(), duplicates })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_timestamp_reader_agrees_with_the_general_one() {
        let cases = [
            "2022-03-01 12:34:56",
            "2024-02-29 00:00:00",
            "2023-02-29 10:00:00",
            "2022-13-01 00:00:00",
            "2022-03-01 24:00:00",
            "1999-12-31 23:59:60",
            "2022-3-1 1:2:3",
            " 2022-03-01 12:34:56 ",
            "2022-03-01T12:34:56",
            "abcd-ef-gh ij:kl:mn",
            "+022-03-01 12:34:56",
        ];
        let tz = jiff::tz::TimeZone::get("Asia/Tbilisi").unwrap();
        for s in cases {
            let general = jiff::civil::DateTime::strptime("%Y-%m-%d %H:%M:%S", s.trim()).ok();
            if let Some(fast) = fixed_datetime(s.trim().as_bytes()) {
                assert_eq!(Some(fast), general, "{s}");
            }
            let expected =
                general.and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible().ok()).map(|t| t.as_microsecond());
            assert_eq!(parse_local(s, &tz), expected, "{s}");
        }
        assert!(fixed_datetime(b"2022-03-01 12:34:56").is_some());
    }

    #[test]
    fn missing_codes_become_nulls_and_other_values_stay() {
        let schema = diaspora_core::text_schema(&["a".to_owned()]);
        let lines: ArrayRef = Arc::new(arrow_array::UInt64Array::from(vec![1u64, 2, 3, 4]));
        let a: ArrayRef = Arc::new(StringArray::from(vec![Some("-99"), Some("5"), None, Some(" -99 ")]));
        let table = Table::new(schema.clone(), vec![RecordBatch::try_new(schema, vec![lines, a]).unwrap()]);
        let resolver = CountryResolver::new();
        let ctx = CleanContext { source: "s", location: "t", resolver: &resolver, key: None, memory: None };
        let step = Step::MissingCodes { columns: vec!["a".into()], codes: vec!["-99".into()] };
        let mut policy = PrivacyPolicy::default();
        let out = apply_step(table, &step, "steps[0]", &ctx, &mut policy).unwrap();
        let col = out.table.batches[0].column(1).as_string::<i32>().clone();
        assert_eq!(col.iter().collect::<Vec<_>>(), vec![None, Some("5"), None, None]);
    }
}
