//! XLSX workbooks (calamine): one sheet becomes a text table, the first non-empty row naming the columns.
//! Numbers are written as their shortest text (`3`, `2.5`), dates and times as `YYYY-MM-DD HH:MM:SS` so the
//! `timestamps` and `cast` steps treat them like CSV cells; error cells (`#N/A`) are rejects with their row.

use crate::ReadOutput;
use crate::qualtrics::QualtricsOptions;
use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use calamine::{Data, Reader, Xlsx};
use diaspora_core::{Error, Reject, Result, Table, text_schema};
use std::sync::Arc;

/// Reads sheet `sheet` (or the first) of an XLSX workbook.
pub fn read_xlsx(bytes: &[u8], opts: &QualtricsOptions, sheet: Option<&str>) -> Result<ReadOutput> {
    let mut wb: Xlsx<_> = calamine::open_workbook_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| Error::data(format!("{}: not a readable XLSX workbook: {e}", opts.name)))?;
    let range = match sheet {
        Some(name) => {
            wb.worksheet_range(name).map_err(|e| Error::data(format!("{}: sheet {name:?}: {e}", opts.name)))?
        }
        None => wb
            .worksheet_range_at(0)
            .ok_or_else(|| Error::data(format!("{}: the workbook has no sheet", opts.name)))?
            .map_err(|e| Error::data(format!("{}: first sheet: {e}", opts.name)))?,
    };
    let first_row = range.start().map_or(0, |(r, _)| r);
    let mut rows = range.rows().enumerate();
    let header = loop {
        match rows.next() {
            Some((i, r)) if r.iter().any(|c| !matches!(c, Data::Empty)) => break (i, r),
            Some(_) => continue,
            None => return Err(Error::data(format!("{}: the sheet is empty", opts.name))),
        }
    };
    let mut names: Vec<String> = Vec::new();
    for (j, c) in header.1.iter().enumerate() {
        let base = match cell_text(c) {
            Ok(Some(t)) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => format!("column_{}", j + 1),
        };
        let mut name = base.clone();
        let mut n = 2;
        while names.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        names.push(name);
    }
    let schema = text_schema(&names);
    let mut batches = Vec::new();
    let mut rejects = Vec::new();
    let mut rows_read = 0u64;
    let mut line = UInt64Builder::new();
    let mut cols: Vec<StringBuilder> = names.iter().map(|_| StringBuilder::new()).collect();
    let mut in_batch = 0;
    for (i, r) in rows {
        if r.iter().all(|c| matches!(c, Data::Empty)) {
            continue;
        }
        rows_read += 1;
        let sheet_row = first_row as u64 + i as u64 + 1;
        let texts: Vec<std::result::Result<Option<String>, ()>> = r.iter().map(cell_text).collect();
        if let Some(bad) = texts.iter().position(std::result::Result::is_err) {
            rejects.push(Reject {
                source: opts.source.clone(),
                line: sheet_row,
                reason: "cell_error".into(),
                column: names.get(bad).cloned(),
                value: None,
            });
            continue;
        }
        line.append_value(sheet_row);
        for (b, t) in cols.iter_mut().zip(texts) {
            b.append_option(t.ok().flatten());
        }
        in_batch += 1;
        if in_batch == opts.batch_rows.max(1) {
            batches.push(finish(&schema, &mut line, &mut cols)?);
            in_batch = 0;
        }
    }
    if in_batch > 0 {
        batches.push(finish(&schema, &mut line, &mut cols)?);
    }
    Ok(ReadOutput { table: Table::new(schema, batches), rejects, rows_read })
}

fn finish(
    schema: &arrow_schema::SchemaRef,
    line: &mut UInt64Builder,
    cols: &mut [StringBuilder],
) -> Result<RecordBatch> {
    let mut arrays: Vec<ArrayRef> = vec![Arc::new(line.finish())];
    arrays.extend(cols.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
    RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::internal(e.to_string()))
}

/// A cell as text; `Err` for an error cell.
fn cell_text(c: &Data) -> std::result::Result<Option<String>, ()> {
    Ok(match c {
        Data::Empty => None,
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => Some(s.clone()),
        Data::Int(i) => Some(i.to_string()),
        Data::Float(f) => Some(if f.fract() == 0.0 && f.abs() < 1e15 { format!("{f:.0}") } else { f.to_string() }),
        Data::Bool(b) => Some(b.to_string()),
        Data::DateTime(d) => Some(excel_serial_to_text(d.as_f64())),
        Data::Error(_) => return Err(()),
    })
}

/// Excel serial date (days since 1899-12-30, fraction = time of day) → `YYYY-MM-DD HH:MM:SS`.
fn excel_serial_to_text(serial: f64) -> String {
    let secs = ((serial - 25_569.0) * 86_400.0).round() as i64;
    diaspora_core::rfc3339_from_unix(secs).replace('T', " ").trim_end_matches('Z').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> QualtricsOptions {
        QualtricsOptions {
            source: "x".into(),
            name: "survey.xlsx".into(),
            batch_rows: 2,
            encoding: None,
            delimiter: None,
        }
    }

    #[test]
    fn reads_a_workbook_with_numbers_dates_errors_and_gaps() {
        let bytes = include_bytes!("../tests/data/xlsx/survey.xlsx");
        let out = read_xlsx(bytes, &opts(), None).unwrap();
        assert_eq!(out.table.column_names(), vec!["ResponseId", "Country", "Age", "Weight", "Submitted"]);
        assert_eq!(out.rows_read, 4);
        assert_eq!(out.table.num_rows(), 3);
        assert_eq!(out.rejects[0].reason, "cell_error");
        assert_eq!(out.rejects[0].line, 4);
        let b = &out.table.batches[0];
        let col =
            |n: &str| b.column_by_name(n).unwrap().as_any().downcast_ref::<arrow_array::StringArray>().unwrap().clone();
        assert_eq!(col("Country").value(0), "Грузия");
        assert_eq!(col("Age").value(0), "34");
        assert_eq!(col("Weight").value(0), "1.25");
        assert_eq!(col("Submitted").value(0), "2023-05-04 12:30:00");
        assert!(read_xlsx(b"not a zip", &opts(), None).is_err());
    }

    #[test]
    fn serial_dates_convert() {
        assert_eq!(excel_serial_to_text(45050.520833333336), "2023-05-04 12:30:00");
        assert_eq!(excel_serial_to_text(25569.0), "1970-01-01 00:00:00");
    }
}
