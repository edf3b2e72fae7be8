//! Combine steps over whole inputs: pivot long indicators to wide, the as-of join of respondents to their host
//! country's indicators, and published aggregates with small-cell and complementary suppression.

mod suppress;

pub use suppress::{Cell, suppress};

use arrow_array::builder::{Float64Builder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use diaspora_config::ShareSpec;
use diaspora_core::{Error, Result, Table};
use rayon::prelude::*;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

fn idx(t: &Table, name: &str, what: &str) -> Result<usize> {
    t.schema.index_of(name).map_err(|_| Error::config(format!("{what}: input has no column {name:?}")))
}

fn strings<'a>(b: &'a RecordBatch, i: usize, what: &str) -> Result<&'a arrow_array::StringArray> {
    b.column(i).as_string_opt::<i32>().ok_or_else(|| {
        Error::config(format!(
            "{what}: column {:?} must be text, it is {}",
            b.schema().field(i).name(),
            b.column(i).data_type()
        ))
    })
}

fn int32s<'a>(b: &'a RecordBatch, i: usize, what: &str) -> Result<&'a arrow_array::Int32Array> {
    b.column(i).as_primitive_opt::<Int32Type>().ok_or_else(|| {
        Error::config(format!(
            "{what}: column {:?} must be int32, it is {}",
            b.schema().field(i).name(),
            b.column(i).data_type()
        ))
    })
}

fn float64s<'a>(b: &'a RecordBatch, i: usize, what: &str) -> Result<&'a arrow_array::Float64Array> {
    b.column(i).as_primitive_opt::<Float64Type>().ok_or_else(|| {
        Error::config(format!(
            "{what}: column {:?} must be float64, it is {}",
            b.schema().field(i).name(),
            b.column(i).data_type()
        ))
    })
}

/// A numeric cell as f64 (int32, int64 or float64 columns); `Ok(None)` for NULL.
fn number(b: &RecordBatch, i: usize, r: usize, what: &str) -> Result<Option<f64>> {
    let a = b.column(i);
    if a.is_null(r) {
        return Ok(None);
    }
    Ok(Some(match a.data_type() {
        DataType::Int32 => f64::from(a.as_primitive::<Int32Type>().value(r)),
        DataType::Int64 => a.as_primitive::<arrow_array::types::Int64Type>().value(r) as f64,
        DataType::Float64 => a.as_primitive::<Float64Type>().value(r),
        other => {
            return Err(Error::config(format!(
                "{what}: column {:?} must be numeric, it is {other}",
                b.schema().field(i).name()
            )));
        }
    }))
}

fn batch(schema: &SchemaRef, cols: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::internal(e.to_string()))
}

/// Long indicators (`iso3`, `year`, `indicator`, `value`) → one row per (iso3, year), one Float64 column per
/// indicator name (sorted), rows sorted by iso3 then year. A repeated (iso3, year, indicator) is an error.
pub fn pivot(long: &Table, naming: Option<diaspora_config::PivotNames>, what: &str) -> Result<Table> {
    let (ci, yi, ii, vi) =
        (idx(long, "iso3", what)?, idx(long, "year", what)?, idx(long, "indicator", what)?, idx(long, "value", what)?);
    let mut names = BTreeSet::new();
    let mut cells: BTreeMap<(String, i32), BTreeMap<String, Option<f64>>> = BTreeMap::new();
    for b in &long.batches {
        let (c, y, i, v) = (strings(b, ci, what)?, int32s(b, yi, what)?, strings(b, ii, what)?, float64s(b, vi, what)?);
        for r in 0..b.num_rows() {
            let ind = match naming {
                Some(diaspora_config::PivotNames::LowerSnake) => i.value(r).to_lowercase().replace('.', "_"),
                None => i.value(r).to_owned(),
            };
            names.insert(ind.clone());
            let val = v.is_valid(r).then(|| v.value(r));
            let row = cells.entry((c.value(r).to_owned(), y.value(r))).or_default();
            if row.insert(ind.clone(), val).is_some() {
                return Err(Error::data(format!(
                    "{what}: indicator {ind} has two values for {} {}",
                    c.value(r),
                    y.value(r)
                )));
            }
        }
    }
    let mut fields = vec![Field::new("iso3", DataType::Utf8, false), Field::new("year", DataType::Int32, false)];
    fields.extend(names.iter().map(|n| Field::new(n, DataType::Float64, true)));
    let schema = Arc::new(Schema::new(fields));
    let mut iso = StringBuilder::new();
    let mut year = Int32Builder::new();
    let mut vals: Vec<Float64Builder> = names.iter().map(|_| Float64Builder::new()).collect();
    for ((c, y), row) in &cells {
        iso.append_value(c);
        year.append_value(*y);
        for (b, n) in vals.iter_mut().zip(&names) {
            b.append_option(row.get(n).copied().flatten());
        }
    }
    let mut cols: Vec<ArrayRef> = vec![Arc::new(iso.finish()), Arc::new(year.finish())];
    cols.extend(vals.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    let b = batch(&schema, cols)?;
    Ok(Table::new(schema, vec![b]))
}

/// `left` ⟕ `right` on `on` and time. For every value column of `right` (all but `on` and `right_time`), the
/// value of year `left_time` is used, or else the latest non-null year ≤ it within `max_lag` years; the year used
/// goes in `<column>_year` (NULL when none was found). Runs per batch in parallel; row order is kept.
#[allow(clippy::too_many_arguments)]
pub fn asof_join(
    left: &Table,
    right: &Table,
    on: &str,
    left_time: &str,
    right_time: &str,
    max_lag: u32,
    year_columns: bool,
    what: &str,
) -> Result<Table> {
    let (lk, lt) = (idx(left, on, what)?, idx(left, left_time, what)?);
    let (rk, rt) = (idx(right, on, what)?, idx(right, right_time, what)?);
    let value_cols: Vec<usize> = (0..right.schema.fields().len()).filter(|i| *i != rk && *i != rt).collect();
    // key → year → per value column Option<f64>
    type Fast = xxhash_rust::xxh3::Xxh3DefaultBuilder;
    let mut lookup: HashMap<String, HashMap<i32, Vec<Option<f64>>, Fast>, Fast> = HashMap::default();
    for b in &right.batches {
        let k = strings(b, rk, what)?;
        let t = int32s(b, rt, what)?;
        let cols: Vec<&arrow_array::Float64Array> =
            value_cols.iter().map(|&c| float64s(b, c, what)).collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            let vals = cols.iter().map(|a| a.is_valid(r).then(|| a.value(r))).collect();
            lookup.entry(k.value(r).to_owned()).or_default().insert(t.value(r), vals);
        }
    }
    let mut fields: Vec<Field> = left.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for &c in &value_cols {
        let name = right.schema.field(c).name();
        fields.push(Field::new(name, DataType::Float64, true));
        if year_columns {
            fields.push(Field::new(format!("{name}_year"), DataType::Int32, true));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    if left.schema.field(lt).data_type() != &DataType::Int32 {
        return Err(Error::config(format!("{what}: {left_time:?} must be cast to int32 before the join")));
    }
    if left.schema.field(lk).data_type() != &DataType::Utf8 {
        return Err(Error::config(format!("{what}: {on:?} must be text on the left side")));
    }
    let batches: Vec<RecordBatch> = left
        .batches
        .par_iter()
        .map(|b| {
            let k = b.column(lk).as_string::<i32>();
            let t = b.column(lt).as_primitive::<Int32Type>();
            let mut vals: Vec<Float64Builder> = value_cols.iter().map(|_| Float64Builder::new()).collect();
            let mut years: Vec<Int32Builder> = value_cols.iter().map(|_| Int32Builder::new()).collect();
            // The rows of the right side for this row's key, year and each earlier year within the lag.
            let mut candidates: Vec<(i32, &Vec<Option<f64>>)> = Vec::with_capacity(max_lag as usize + 1);
            for r in 0..b.num_rows() {
                candidates.clear();
                if k.is_valid(r)
                    && t.is_valid(r)
                    && let Some(by_year) = lookup.get(k.value(r))
                {
                    for lag in 0..=max_lag as i32 {
                        let y = t.value(r) - lag;
                        if let Some(v) = by_year.get(&y) {
                            candidates.push((y, v));
                        }
                    }
                }
                for j in 0..value_cols.len() {
                    let found = candidates.iter().find_map(|(y, v)| v[j].map(|x| (x, *y)));
                    vals[j].append_option(found.map(|f| f.0));
                    years[j].append_option(found.map(|f| f.1));
                }
            }
            let mut cols = b.columns().to_vec();
            for (v, y) in vals.iter_mut().zip(years.iter_mut()) {
                cols.push(Arc::new(v.finish()));
                if year_columns {
                    cols.push(Arc::new(y.finish()));
                }
            }
            batch(&schema, cols)
        })
        .collect::<Result<_>>()?;
    Ok(Table { schema, batches, meta: left.meta.clone() })
}

/// A group key part: a value, NULL, or the margin over all values. Kept apart so no value can pose as a margin.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Part {
    All,
    Null,
    Val(String),
}

impl Part {
    fn label(&self) -> String {
        match self {
            Part::All => "*".into(),
            Part::Null => "\u{0}null".into(),
            Part::Val(v) => format!("={v}"),
        }
    }
}

/// Counts and weighted shares per group of `by` (one or two columns: time, then place), with margins, then
/// suppression of cells below `min_cell` and complementary suppression. Returns the table and the number of
/// cells suppressed (primary, complementary). Hidden cells carry `cell_status = "suppressed"` whatever the
/// reason, so the published table does not tell small cells from their protectors.
pub fn summary(
    input: &Table,
    by: &[String],
    weight: Option<&str>,
    shares: &[ShareSpec],
    carry: &[String],
    min_cell: u32,
    what: &str,
) -> Result<(Table, usize, usize)> {
    if by.is_empty() || by.len() > 2 {
        return Err(Error::config(format!("{what}: by must name one or two columns")));
    }
    let by_idx: Vec<usize> = by.iter().map(|b| idx(input, b, what)).collect::<Result<_>>()?;
    for &i in &by_idx {
        let dt = input.schema.field(i).data_type();
        if !matches!(dt, DataType::Int32 | DataType::Utf8) {
            return Err(Error::config(format!(
                "{what}: by column {:?} must be int32 or text, it is {dt}",
                input.schema.field(i).name()
            )));
        }
    }
    let w_idx = weight.map(|w| idx(input, w, what)).transpose()?;
    let share_idx: Vec<usize> = shares.iter().map(|s| idx(input, &s.column, what)).collect::<Result<_>>()?;
    let carry_idx: Vec<usize> = carry.iter().map(|c| idx(input, c, what)).collect::<Result<_>>()?;
    struct Acc {
        n: u64,
        num: Vec<f64>,
        den: Vec<f64>,
        carry: Vec<Option<f64>>,
    }
    let mut groups: BTreeMap<Vec<Part>, Acc> = BTreeMap::new();
    for b in &input.batches {
        let carry_cols: Vec<&arrow_array::Float64Array> =
            carry_idx.iter().map(|&c| float64s(b, c, what)).collect::<Result<_>>()?;
        for r in 0..b.num_rows() {
            let mut key = Vec::with_capacity(by.len());
            for &c in &by_idx {
                let a = b.column(c);
                key.push(if a.is_null(r) {
                    Part::Null
                } else if let Some(s) = a.as_string_opt::<i32>() {
                    Part::Val(s.value(r).to_owned())
                } else {
                    Part::Val(a.as_primitive::<Int32Type>().value(r).to_string())
                });
            }
            let w = match w_idx {
                Some(wi) => number(b, wi, r, what)?.unwrap_or(0.0),
                None => 1.0,
            };
            let mut contributions = Vec::with_capacity(shares.len());
            for (s, &si) in shares.iter().zip(&share_idx) {
                contributions.push(if b.column(si).is_null(r) {
                    None
                } else if let Some(min) = s.min {
                    number(b, si, r, what)?.map(|v| v >= min)
                } else {
                    let v = strings(b, si, what)?.value(r);
                    Some(s.values.iter().any(|x| x == v))
                });
            }
            let carry_vals: Vec<Option<f64>> = carry_cols.iter().map(|a| a.is_valid(r).then(|| a.value(r))).collect();
            let mut keys = vec![key.clone()];
            // Margins: per time (place = all), per place (time = all), grand total.
            if by.len() == 2 {
                keys.push(vec![key[0].clone(), Part::All]);
                keys.push(vec![Part::All, key[1].clone()]);
            }
            keys.push(vec![Part::All; by.len()]);
            for (n, k) in keys.into_iter().enumerate() {
                let acc = groups.entry(k).or_insert_with(|| Acc {
                    n: 0,
                    num: vec![0.0; shares.len()],
                    den: vec![0.0; shares.len()],
                    carry: vec![None; carry.len()],
                });
                acc.n += 1;
                for (j, c) in contributions.iter().enumerate() {
                    if let Some(hit) = c {
                        acc.den[j] += w;
                        if *hit {
                            acc.num[j] += w;
                        }
                    }
                }
                if n == 0 {
                    for (j, v) in carry_vals.iter().enumerate() {
                        acc.carry[j] = acc.carry[j].or(*v);
                    }
                }
            }
        }
    }
    // Suppression works on the grid of counts.
    let cells: Vec<Cell> = groups
        .iter()
        .map(|(k, a)| Cell { row: k[0].label(), col: k.get(1).map_or_else(|| "*".into(), Part::label), count: a.n })
        .collect();
    let (hidden, primary, complementary) = suppress(&cells, u64::from(min_cell));
    let mut level = StringBuilder::new();
    let mut keys: Vec<Vec<Option<String>>> = vec![Vec::new(); by.len()];
    let mut count = Int64Builder::new();
    let mut share_b: Vec<Float64Builder> = shares.iter().map(|_| Float64Builder::new()).collect();
    let mut carry_b: Vec<Float64Builder> = carry.iter().map(|_| Float64Builder::new()).collect();
    let mut status = StringBuilder::new();
    for (i, (k, a)) in groups.iter().enumerate() {
        let all: Vec<bool> = k.iter().map(|p| *p == Part::All).collect();
        let lvl = match all.as_slice() {
            [false] | [false, false] => "cell",
            [true] | [true, true] => "total",
            [false, true] => "row_total",
            _ => "column_total",
        };
        level.append_value(lvl);
        for (j, p) in k.iter().enumerate() {
            keys[j].push(match p {
                Part::Val(v) => Some(v.clone()),
                Part::Null | Part::All => None,
            });
        }
        let hide = hidden[i].is_some();
        status.append_value(if hide { "suppressed" } else { "published" });
        count.append_option((!hide).then_some(a.n as i64));
        for (j, b) in share_b.iter_mut().enumerate() {
            b.append_option((!hide && a.den[j] > 0.0).then(|| a.num[j] / a.den[j]));
        }
        for (j, b) in carry_b.iter_mut().enumerate() {
            b.append_option(if lvl == "cell" { a.carry[j] } else { None });
        }
    }
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    for ((name, &bi), vals) in by.iter().zip(&by_idx).zip(keys) {
        let dt = input.schema.field(bi).data_type().clone();
        cols.push(match dt {
            DataType::Int32 => Arc::new(
                vals.iter()
                    .map(|v| v.as_ref().and_then(|s| s.parse::<i32>().ok()))
                    .collect::<arrow_array::Int32Array>(),
            ),
            _ => Arc::new(vals.iter().map(|v| v.as_deref()).collect::<arrow_array::StringArray>()),
        });
        fields.push(Field::new(name, dt, true));
    }
    fields.push(Field::new("level", DataType::Utf8, false));
    cols.push(Arc::new(level.finish()));
    fields.push(Field::new("respondents", DataType::Int64, true));
    cols.push(Arc::new(count.finish()));
    for (s, b) in shares.iter().zip(share_b.iter_mut()) {
        fields.push(Field::new(&s.name, DataType::Float64, true));
        cols.push(Arc::new(b.finish()));
    }
    for (c, b) in carry.iter().zip(carry_b.iter_mut()) {
        fields.push(Field::new(c, DataType::Float64, true));
        cols.push(Arc::new(b.finish()));
    }
    fields.push(Field::new("cell_status", DataType::Utf8, false));
    cols.push(Arc::new(status.finish()));
    let schema = Arc::new(Schema::new(fields));
    let b = batch(&schema, cols)?;
    Ok((Table::new(schema, vec![b]), primary, complementary))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_keys_do_not_pose_as_margins_and_small_cells_stay_hidden() {
        // wave × education with a NULL education; the 8 "phd" of 2023 must not be recoverable.
        let waves = [2022, 2022, 2022, 2023, 2023, 2023];
        let edu = [Some("degree"), Some("phd"), None, Some("degree"), Some("phd"), None];
        let counts = [30, 25, 12, 40, 8, 15];
        let (mut w, mut e) = (Vec::new(), Vec::new());
        for i in 0..6 {
            for _ in 0..counts[i] {
                w.push(waves[i]);
                e.push(edu[i]);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("wave", DataType::Int32, false),
            Field::new("education", DataType::Utf8, true),
        ]));
        let cols: Vec<ArrayRef> =
            vec![Arc::new(arrow_array::Int32Array::from(w)), Arc::new(arrow_array::StringArray::from(e))];
        let t = Table::new(schema.clone(), vec![RecordBatch::try_new(schema, cols).unwrap()]);
        let by = vec!["wave".to_owned(), "education".to_owned()];
        let (out, primary, complementary) = summary(&t, &by, None, &[], &[], 10, "t").unwrap();
        assert_eq!(primary, 1);
        assert!(complementary >= 3, "row and column of the small cell need partners, got {complementary}");
        let b = &out.batches[0];
        let level = b.column_by_name("level").unwrap().as_string::<i32>();
        let status = b.column_by_name("cell_status").unwrap().as_string::<i32>();
        let n = b.column_by_name("respondents").unwrap().as_primitive::<arrow_array::types::Int64Type>();
        // 6 cells + 2 row totals + 3 column totals (degree, phd, NULL) + 1 total.
        assert_eq!(b.num_rows(), 12);
        let published: i64 =
            (0..b.num_rows()).filter(|&r| level.value(r) == "cell" && n.is_valid(r)).map(|r| n.value(r)).sum();
        let hidden_cells =
            (0..b.num_rows()).filter(|&r| level.value(r) == "cell" && status.value(r) == "suppressed").count();
        assert!(hidden_cells >= 2 && published < 130);
        assert!((0..b.num_rows()).all(|r| status.value(r) == "published" || status.value(r) == "suppressed"));
    }

    #[test]
    fn pivot_names_and_an_exact_join_without_year_columns() {
        let long_schema = Arc::new(Schema::new(vec![
            Field::new("iso3", DataType::Utf8, false),
            Field::new("year", DataType::Int32, false),
            Field::new("indicator", DataType::Utf8, false),
            Field::new("value", DataType::Float64, true),
        ]));
        let cols: Vec<ArrayRef> = vec![
            Arc::new(arrow_array::StringArray::from(vec!["GEO", "GEO", "ARM"])),
            Arc::new(arrow_array::Int32Array::from(vec![2022, 2022, 2021])),
            Arc::new(arrow_array::StringArray::from(vec!["NY.GDP.PCAP.CD", "SP.POP.TOTL", "SP.POP.TOTL"])),
            Arc::new(arrow_array::Float64Array::from(vec![Some(1.5), None, Some(3.0)])),
        ];
        let long = Table::new(long_schema.clone(), vec![RecordBatch::try_new(long_schema, cols).unwrap()]);
        let wide = pivot(&long, Some(diaspora_config::PivotNames::LowerSnake), "p").unwrap();
        assert_eq!(wide.column_names(), vec!["iso3", "year", "ny_gdp_pcap_cd", "sp_pop_totl"]);
        let left_schema = Arc::new(Schema::new(vec![
            Field::new("iso3", DataType::Utf8, true),
            Field::new("wave", DataType::Int32, true),
        ]));
        let left_cols: Vec<ArrayRef> = vec![
            Arc::new(arrow_array::StringArray::from(vec!["GEO", "ARM"])),
            Arc::new(arrow_array::Int32Array::from(vec![2022, 2022])),
        ];
        let left = Table::new(left_schema.clone(), vec![RecordBatch::try_new(left_schema, left_cols).unwrap()]);
        let joined = asof_join(&left, &wide, "iso3", "wave", "year", 0, false, "j").unwrap();
        assert_eq!(joined.column_names(), vec!["iso3", "wave", "ny_gdp_pcap_cd", "sp_pop_totl"]);
        let pop = joined.batches[0].column_by_name("sp_pop_totl").unwrap().as_primitive::<Float64Type>().clone();
        assert!(pop.is_null(0) && pop.is_null(1), "GEO 2022 has no value; ARM has only 2021 and the lag is 0");
    }

    #[test]
    fn wrong_column_types_are_configuration_errors_not_panics() {
        let schema = Arc::new(Schema::new(vec![Field::new("iso3", DataType::Int32, false)]));
        let t = Table::new(
            schema.clone(),
            vec![RecordBatch::try_new(schema, vec![Arc::new(arrow_array::Int32Array::from(vec![1]))]).unwrap()],
        );
        let e = summary(&t, &["iso3".into()], Some("iso3"), &[], &["iso3".into()], 10, "combine[2]").unwrap_err();
        assert_eq!(e.kind, diaspora_core::ErrorKind::Config);
        assert!(e.message.contains("float64"), "{e}");
    }
}
