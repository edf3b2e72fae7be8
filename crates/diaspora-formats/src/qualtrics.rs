use crate::ReadOutput;
use crate::text::decode_with;
use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use diaspora_core::{Error, Reject, Result, Table, TableMeta, text_schema};
use std::sync::Arc;

/// Options for [`read_qualtrics_csv`].
#[derive(Debug, Clone)]
pub struct QualtricsOptions {
    /// Source id, used in rejects.
    pub source: String,
    /// Name used in error messages (a path or URL).
    pub name: String,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Declared encoding (WHATWG label); detected when absent.
    pub encoding: Option<String>,
    /// Declared delimiter; sniffed when absent.
    pub delimiter: Option<u8>,
}

/// Reads a Qualtrics CSV/TSV export: three header rows (export tags, question text, ImportId JSON) or the
/// legacy two-row form. Delimiter is `,` unless the first line has more tabs than commas (the TSV export).
///
/// Columns are text; the ImportId and `timeZone` of each column go into the table's meta. Duplicate export tags
/// are made unique by appending `_2`, `_3`, … . Ragged rows and fields that are not valid UTF-8 are rejected
/// with their line numbers.
pub fn read_qualtrics_csv(bytes: &[u8], opts: &QualtricsOptions) -> Result<ReadOutput> {
    read_table(bytes, opts, true, opts.delimiter)
}

/// Reads a delimited file with one header row (LimeSurvey CSV exports, generic CSV): UTF-8 with or without BOM
/// or UTF-16 by BOM; the delimiter is sniffed from the header line (`,` `;` tab `|`) unless given.
pub fn read_delimited(bytes: &[u8], opts: &QualtricsOptions) -> Result<ReadOutput> {
    read_table(bytes, opts, false, opts.delimiter)
}

/// The delimiter that occurs most often outside quotes in the first line.
pub(crate) fn sniff_delimiter(text: &[u8]) -> u8 {
    let mut counts = [0usize; 4];
    let cands = [b',', b';', b'\t', b'|'];
    let mut quoted = false;
    for &b in text.iter().take_while(|b| **b != b'\n') {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(i) = cands.iter().position(|c| *c == b) {
            counts[i] += 1;
        }
    }
    let best = (0..4).max_by_key(|&i| (counts[i], usize::from(i == 0))).unwrap_or(0);
    cands[best]
}

fn read_table(bytes: &[u8], opts: &QualtricsOptions, qualtrics: bool, delimiter: Option<u8>) -> Result<ReadOutput> {
    let (text, _) = decode_with(bytes, opts.encoding.as_deref(), &opts.name)?;
    let delimiter = delimiter.unwrap_or_else(|| sniff_delimiter(&text));
    read_table_head(&text, opts, qualtrics, delimiter)
}

/// Reads UTF-8 text with a known delimiter: the header rows, then every record. Given only the header rows
/// (see [`crate::CsvSplitter`]), it gives the schema and column facts.
pub(crate) fn read_table_head(
    text: &[u8],
    opts: &QualtricsOptions,
    qualtrics: bool,
    delimiter: u8,
) -> Result<ReadOutput> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text);
    let mut records = rdr.byte_records();
    let mut next_header = |what: &str| -> Result<csv::ByteRecord> {
        match records.next() {
            Some(Ok(r)) => Ok(r),
            Some(Err(e)) => Err(Error::data(format!("{}: {what} header row: {e}", opts.name))),
            None => Err(Error::data(format!("{}: file ends before the {what} header row", opts.name))),
        }
    };
    let names_row = next_header("first (column names)")?;
    let questions = if qualtrics { Some(next_header("second (question text)")?) } else { None };
    let mut names = Vec::with_capacity(names_row.len());
    for (i, raw) in names_row.iter().enumerate() {
        let name = std::str::from_utf8(raw)
            .map_err(|_| Error::data(format!("{}: line 1, column {}: header is not valid UTF-8", opts.name, i + 1)))?
            .trim()
            .to_owned();
        // An unnamed column (a trailing delimiter, as in legacy Qualtrics and WDI files) gets a positional name.
        let name = if name.is_empty() { format!("column_{}", i + 1) } else { name };
        let mut unique = name.clone();
        let mut n = 2;
        while names.contains(&unique) {
            unique = format!("{name}_{n}");
            n += 1;
        }
        names.push(unique);
    }
    let mut meta = TableMeta::default();
    // Third header row: ImportId JSON. In the legacy two-row form it is the first data row.
    let mut pending: Option<csv::ByteRecord> = None;
    if qualtrics && let Some(row) = records.next() {
        let row = row.map_err(|e| Error::data(format!("{}: third header row: {e}", opts.name)))?;
        let is_import_ids = row.get(0).is_some_and(|f| f.starts_with(b"{\"ImportId\""));
        if is_import_ids {
            for (i, raw) in row.iter().enumerate() {
                let Some(name) = names.get(i) else { break };
                let v: serde_json::Value = serde_json::from_slice(raw).map_err(|_| {
                    Error::data(format!("{}: line 3, column {name}: ImportId cell is not JSON", opts.name))
                })?;
                if let Some(id) = v.get("ImportId").and_then(|x| x.as_str()) {
                    meta.import_ids.insert(name.clone(), id.to_owned());
                }
                if let Some(tz) = v.get("timeZone").and_then(|x| x.as_str()) {
                    meta.time_zones.insert(name.clone(), tz.to_owned());
                }
            }
        } else {
            // The legacy two-row form names metadata V1…V10 and says what they are in the second row
            // (ResponseID, Name, EmailAddress, IPAddress, …): keep that as the column's id.
            if let Some(q) = &questions {
                for (i, raw) in q.iter().enumerate() {
                    if let (Some(name), Ok(text)) = (names.get(i), std::str::from_utf8(raw)) {
                        meta.import_ids.insert(name.clone(), text.trim().to_owned());
                    }
                }
            }
            pending = Some(row);
        }
    }
    let schema = text_schema(&names);
    let mut body = Body::new(text, 1, &schema, opts);
    if let Some(rec) = pending.take() {
        body.handle(&rec)?;
    }
    for rec in records {
        body.record(rec)?;
    }
    let mut out = body.finish()?;
    out.table.meta = meta;
    Ok(out)
}

/// Reads a piece of a delimited file's body: whole records only, starting at physical line `first_line`,
/// with the columns of `schema` (from [`text_schema`]). The pieces of a file can be read in parallel; their
/// rows, rejects and line numbers are those the whole file would give.
pub fn read_piece(
    text: &[u8],
    first_line: u64,
    schema: &arrow_schema::SchemaRef,
    delimiter: u8,
    opts: &QualtricsOptions,
) -> Result<ReadOutput> {
    let mut rdr = csv::ReaderBuilder::new().has_headers(false).flexible(true).delimiter(delimiter).from_reader(text);
    let mut body = Body::new(text, first_line, schema, opts);
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) => body.handle(&rec)?,
            Ok(false) => break,
            Err(e) => body.record(Err(e))?,
        }
    }
    body.finish()
}

/// Turns data records into text batches and rejects, with physical line numbers.
struct Body<'a> {
    text: &'a [u8],
    opts: &'a QualtricsOptions,
    schema: arrow_schema::SchemaRef,
    ncols: usize,
    out: BatchWriter,
    rejects: Vec<Reject>,
    rows_read: u64,
    seen_byte: usize,
    seen_line: u64,
}

impl<'a> Body<'a> {
    fn new(text: &'a [u8], first_line: u64, schema: &arrow_schema::SchemaRef, opts: &'a QualtricsOptions) -> Self {
        let ncols = schema.fields().len() - 1;
        Self {
            text,
            opts,
            schema: schema.clone(),
            ncols,
            out: BatchWriter::new(ncols, opts.batch_rows.max(1)),
            rejects: Vec::new(),
            rows_read: 0,
            seen_byte: 0,
            seen_line: first_line,
        }
    }

    /// Physical line of a byte offset (the csv crate's own count skips newlines inside quoted fields).
    fn line_at(&mut self, byte: usize) -> u64 {
        let text = self.text;
        // A record's reported offset can sit on the previous record's line terminator (CRLF): skip past it.
        let mut byte = byte.min(text.len());
        while byte < text.len() && matches!(text[byte], b'\r' | b'\n') {
            byte += 1;
        }
        if byte > self.seen_byte {
            self.seen_line += memchr::memchr_iter(b'\n', &text[self.seen_byte..byte]).count() as u64;
            self.seen_byte = byte;
        }
        self.seen_line
    }

    fn record(&mut self, rec: csv::Result<csv::ByteRecord>) -> Result<()> {
        match rec {
            Ok(rec) => self.handle(&rec),
            Err(e) => {
                let line = e.position().map_or(0, |p| self.line_at(p.byte() as usize));
                Err(Error::data(format!("{}: line {line}: unreadable CSV: {}", self.opts.name, e.kind_summary())))
            }
        }
    }

    fn handle(&mut self, rec: &csv::ByteRecord) -> Result<()> {
        self.rows_read += 1;
        let line = self.line_at(rec.position().map_or(0, |p| p.byte() as usize));
        if rec.len() != self.ncols {
            self.rejects.push(Reject {
                source: self.opts.source.clone(),
                line,
                reason: "ragged_row".into(),
                column: None,
                value: Some(format!("{} fields, header has {}", rec.len(), self.ncols)),
            });
            return Ok(());
        }
        // One UTF-8 check for the whole record; then each field is valid if its bounds are character boundaries.
        let whole = std::str::from_utf8(rec.as_slice()).ok();
        let fields_ok = whole.is_some_and(|s| {
            (0..rec.len())
                .all(|i| rec.range(i).is_some_and(|r| s.is_char_boundary(r.start) && s.is_char_boundary(r.end)))
        });
        let Some(text) = whole.filter(|_| fields_ok) else {
            let bad = rec.iter().position(|f| std::str::from_utf8(f).is_err()).unwrap_or(0);
            self.rejects.push(Reject {
                source: self.opts.source.clone(),
                line,
                reason: "invalid_encoding".into(),
                column: Some(self.schema.field(bad + 1).name().clone()),
                value: None,
            });
            return Ok(());
        };
        self.out.push(line, rec, text, &self.schema)
    }

    fn finish(self) -> Result<ReadOutput> {
        let batches = self.out.finish(&self.schema)?;
        Ok(ReadOutput { table: Table::new(self.schema, batches), rejects: self.rejects, rows_read: self.rows_read })
    }
}

trait KindSummary {
    fn kind_summary(&self) -> String;
}

impl KindSummary for csv::Error {
    /// The csv error without any field content.
    fn kind_summary(&self) -> String {
        match self.kind() {
            csv::ErrorKind::Io(e) => format!("I/O error: {e}"),
            csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".into(),
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("{len} fields where {expected_len} were expected")
            }
            _ => "malformed record".into(),
        }
    }
}

/// Accumulates text rows into batches.
struct BatchWriter {
    lines: UInt64Builder,
    cols: Vec<StringBuilder>,
    rows: usize,
    batch_rows: usize,
    done: Vec<RecordBatch>,
}

impl BatchWriter {
    fn new(ncols: usize, batch_rows: usize) -> Self {
        Self {
            lines: UInt64Builder::with_capacity(batch_rows),
            cols: (0..ncols).map(|_| StringBuilder::with_capacity(batch_rows, batch_rows * 16)).collect(),
            rows: 0,
            batch_rows,
            done: Vec::new(),
        }
    }

    /// Appends a record whose field bytes, `text`, the caller has checked as UTF-8 (field bounds included).
    fn push(&mut self, line: u64, rec: &csv::ByteRecord, text: &str, schema: &arrow_schema::SchemaRef) -> Result<()> {
        self.lines.append_value(line);
        for (i, b) in self.cols.iter_mut().enumerate() {
            match rec.range(i) {
                Some(r) if !r.is_empty() => b.append_value(&text[r]),
                _ => b.append_null(),
            }
        }
        self.rows += 1;
        if self.rows == self.batch_rows {
            self.flush(schema)?;
        }
        Ok(())
    }

    fn flush(&mut self, schema: &arrow_schema::SchemaRef) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(self.lines.finish())];
        arrays.extend(self.cols.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| Error::internal(e.to_string()))?;
        self.done.push(batch);
        self.rows = 0;
        Ok(())
    }

    fn finish(mut self, schema: &arrow_schema::SchemaRef) -> Result<Vec<RecordBatch>> {
        self.flush(schema)?;
        Ok(self.done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, StringArray};

    fn opts() -> QualtricsOptions {
        QualtricsOptions { source: "s".into(), name: "test.csv".into(), batch_rows: 2, encoding: None, delimiter: None }
    }

    const THREE: &str = concat!(
        "StartDate,ResponseId,Q1,Q5\r\n",
        "Start Date,Response ID,Country?,Comments\r\n",
        r#""{""ImportId"":""startDate"",""timeZone"":""Europe/Berlin""}","{""ImportId"":""_recordId""}","#,
        r#""{""ImportId"":""QID1_TEXT""}","{""ImportId"":""QID5_TEXT""}""#,
        "\r\n",
        "2022-05-01 10:00:00,R_1,Грузия,\"line one\nline two 🙂\"\r\n",
        "2022-05-01 11:00:00,R_2,,\r\n",
        "2022-05-01 12:00:00,R_3\r\n",
        "2022-05-01 13:00:00,R_4,KZ,ok\r\n",
    );

    #[test]
    fn reads_three_header_rows_and_keeps_every_row_accounted() {
        let out = read_qualtrics_csv(THREE.as_bytes(), &opts()).unwrap();
        assert_eq!(out.rows_read, 4);
        assert_eq!(out.table.num_rows(), 3);
        assert_eq!(out.table.batches.len(), 2);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].reason, "ragged_row");
        assert_eq!(out.rejects[0].line, 7);
        assert_eq!(out.table.meta.time_zones["StartDate"], "Europe/Berlin");
        assert_eq!(out.table.meta.import_ids["Q5"], "QID5_TEXT");
        let b = &out.table.batches[0];
        let q5 = b.column_by_name("Q5").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(q5.value(0), "line one\nline two 🙂");
        assert!(q5.is_null(1));
        assert_eq!(diaspora_core::lines_of(b), vec![4, 6]);
        assert_eq!(diaspora_core::lines_of(&out.table.batches[1]), vec![8]);
    }

    #[test]
    fn legacy_two_row_form_and_duplicate_tags() {
        let csv = "\u{feff}V1,Q1,Q1\r\nResponseID,A,B\r\nR_1,x,y\r\n";
        let out = read_qualtrics_csv(csv.as_bytes(), &opts()).unwrap();
        assert_eq!(out.rows_read, 1);
        assert_eq!(out.table.column_names(), vec!["V1", "Q1", "Q1_2"]);
        assert_eq!(out.table.meta.import_ids["V1"], "ResponseID");
    }

    #[test]
    fn utf16_tsv_reads_like_the_csv() {
        let tsv = "StartDate\tQ1\r\nStart Date\tCountry?\r\n\"{\"\"ImportId\"\":\"\"startDate\"\",\"\"timeZone\"\":\"\"UTC\"\"}\"\t\
            \"{\"\"ImportId\"\":\"\"QID1_TEXT\"\"}\"\r\n2022-01-01 00:00:00\tГрузия\r\n2022-01-01 00:00:01\tKZ\r\n2022-01-01 00:00:02\tСША\r\n";
        let bytes: Vec<u8> = [0xFF, 0xFE].into_iter().chain(tsv.encode_utf16().flat_map(u16::to_le_bytes)).collect();
        let out = read_qualtrics_csv(&bytes, &opts()).unwrap();
        assert_eq!(out.table.num_rows(), 3);
    }

    #[test]
    fn invalid_utf8_is_a_reject_with_its_column() {
        let mut bytes = "A,B\r\nГрузия,Армения и Турция\r\n1,".as_bytes().to_vec();
        bytes.extend_from_slice(b"\xff\xfe\xfa\r\n2,ok\r\n");
        let out = read_qualtrics_csv(&bytes, &opts()).unwrap();
        assert_eq!(out.rows_read, 2);
        assert_eq!(out.rejects[0].reason, "invalid_encoding");
        assert_eq!(out.rejects[0].column.as_deref(), Some("B"));
    }

    #[test]
    fn limesurvey_style_semicolons_quotes_bom_and_crlf() {
        let csv =
            "\u{feff}\"id\";\"submitdate\";\"Q1\"\r\n\"1\";\"1980-01-01 00:00:00\";\"a; b\"\r\n\"2\";\"\";\"c\"\r\n";
        let out = read_delimited(csv.as_bytes(), &opts()).unwrap();
        assert_eq!(out.rows_read, 2);
        assert_eq!(out.table.column_names(), vec!["id", "submitdate", "Q1"]);
        let q1 = out.table.batches[0].column_by_name("Q1").unwrap().as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(q1.value(0), "a; b");
        assert_eq!(diaspora_core::lines_of(&out.table.batches[0]), vec![2, 3]);
    }

    #[test]
    fn truncated_header_is_a_clear_error() {
        let e = read_qualtrics_csv(b"A,B\r\n", &opts()).unwrap_err();
        assert!(e.message.contains("test.csv"), "{e}");
    }
}
