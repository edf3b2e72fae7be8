//! Splits a large delimited export into pieces of whole records, so the pieces can be decoded in parallel and
//! the file never has to be in memory at once.

use crate::qualtrics::{read_table_head, sniff_delimiter};
use crate::{QualtricsOptions, ReadOutput};
use diaspora_core::{Error, Result};
use std::io::Read;

/// A piece of a file's body: whole records, and the physical line its first byte is on.
#[derive(Debug)]
pub struct Piece {
    /// The bytes (UTF-8 expected; invalid fields become rejects when the piece is read).
    pub bytes: Vec<u8>,
    /// Line number of the piece's first byte.
    pub first_line: u64,
}

/// Reads a delimited file (one header row, or Qualtrics's three) from a reader, a piece at a time.
///
/// Record boundaries are found by tracking double quotes (RFC 4180): a newline outside quotes ends a record.
/// Only UTF-8 input (with or without a BOM) can be split; [`CsvSplitter::open`] says `None` for anything else,
/// and the caller reads the file whole instead.
pub struct CsvSplitter<R> {
    reader: R,
    name: String,
    /// Bytes read but not yet handed out; they start at a record boundary.
    pending: Vec<u8>,
    /// Line number of `pending[0]`.
    line: u64,
    eof: bool,
    delimiter: u8,
    /// UTF-8 was declared: pieces are decoded with replacement characters, as a whole-file read would.
    lossy: bool,
    /// Over every byte handed out: characters that decode as multi-byte UTF-8, and bytes that do not.
    utf8_chars: u64,
    bad_bytes: u64,
}

/// Bytes read to find the header rows and judge the encoding.
const HEAD_BYTES: usize = 1 << 20;

impl<R: Read> CsvSplitter<R> {
    /// Reads the header rows. Returns the splitter and what the header rows gave (the schema and column facts,
    /// and the first data row for the legacy two-row Qualtrics form), or `None` when the input is not UTF-8.
    pub fn open(mut reader: R, opts: &QualtricsOptions, qualtrics: bool) -> Result<Option<(Self, ReadOutput)>> {
        let lossy = match opts.encoding.as_deref().map(|e| e.trim().to_lowercase()) {
            None => false,
            Some(e) if e == "utf-8" || e == "utf8" => true,
            Some(_) => return Ok(None),
        };
        let mut pending = Vec::new();
        (&mut reader)
            .take(HEAD_BYTES as u64)
            .read_to_end(&mut pending)
            .map_err(|e| Error::data(format!("{}: cannot read: {e}", opts.name)))?;
        let eof = pending.len() < HEAD_BYTES;
        if pending.starts_with(b"\xFF\xFE") || pending.starts_with(b"\xFE\xFF") {
            return Ok(None);
        }
        if pending.starts_with(b"\xEF\xBB\xBF") {
            pending.drain(..3);
        }
        // The reader's own test: UTF-8 when it decodes, or when mostly UTF-8 with a few damaged bytes.
        let (mut good, mut bad) = (0usize, 0usize);
        for chunk in pending.utf8_chunks() {
            good += chunk.valid().chars().filter(|c| !c.is_ascii()).count();
            bad += chunk.invalid().len();
        }
        // A multi-byte character cut at the end of the block is not damage.
        if !eof
            && bad > 0
            && bad <= 3
            && pending.len() > 3
            && std::str::from_utf8(&pending[..pending.len() - 3]).is_ok()
        {
            bad = 0;
        }
        if !lossy && bad > 0 && good <= bad {
            return Ok(None);
        }
        let delimiter = opts.delimiter.unwrap_or_else(|| sniff_delimiter(&pending));
        let header_rows = if qualtrics { 3 } else { 1 };
        let mut split = Self {
            reader,
            name: opts.name.clone(),
            pending,
            line: 1,
            eof,
            delimiter,
            lossy,
            utf8_chars: 0,
            bad_bytes: 0,
        };
        let head = loop {
            if let Some(end) = nth_record_end(&split.pending, header_rows, delimiter) {
                break split.take(end);
            }
            if split.eof {
                break split.take(split.pending.len());
            }
            split.fill(split.pending.len() + HEAD_BYTES)?;
        };
        let head = split.decoded(&head.bytes);
        let out = read_table_head(&head, opts, qualtrics, delimiter)?;
        Ok(Some((split, out)))
    }

    /// The delimiter in use (given, or sniffed from the header line).
    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// The reader, once the pieces are read.
    pub fn into_inner(self) -> R {
        self.reader
    }

    /// A piece's bytes as its reader should see them: as they are, or with undecodable bytes replaced when
    /// UTF-8 was declared (pieces end at line ends, so this equals decoding the whole file).
    pub fn decoded<'b>(&self, bytes: &'b [u8]) -> std::borrow::Cow<'b, [u8]> {
        if self.lossy {
            match String::from_utf8_lossy(bytes) {
                std::borrow::Cow::Borrowed(s) => std::borrow::Cow::Borrowed(s.as_bytes()),
                std::borrow::Cow::Owned(s) => std::borrow::Cow::Owned(s.into_bytes()),
            }
        } else {
            std::borrow::Cow::Borrowed(bytes)
        }
    }

    /// Whether the whole input, judged as the whole-file reader judges it, is UTF-8: no undecodable bytes, or
    /// more UTF-8 characters than undecodable bytes. When it is not, the file should have been decoded as a
    /// single-byte Russian encoding, which only a whole-file read (or a declared encoding) does.
    pub fn looks_utf8(&self) -> (bool, u64, u64) {
        (self.lossy || self.bad_bytes == 0 || self.utf8_chars > self.bad_bytes, self.utf8_chars, self.bad_bytes)
    }

    /// The next piece of about `target` bytes (longer if one record is longer), or `None` at the end.
    pub fn next_piece(&mut self, target: usize) -> Result<Option<Piece>> {
        loop {
            if self.pending.is_empty() && self.eof {
                return Ok(None);
            }
            if self.pending.len() < target && !self.eof {
                self.fill(target)?;
                continue;
            }
            if self.eof {
                return Ok(Some(self.take(self.pending.len())));
            }
            match last_record_end(&self.pending, self.delimiter) {
                Some(end) => return Ok(Some(self.take(end))),
                // One record longer than the piece: read on.
                None => self.fill(self.pending.len() * 2)?,
            }
        }
    }

    /// Reads until `pending` holds `want` bytes or the input ends.
    fn fill(&mut self, want: usize) -> Result<()> {
        let need = want.saturating_sub(self.pending.len()) as u64;
        let got = (&mut self.reader)
            .take(need)
            .read_to_end(&mut self.pending)
            .map_err(|e| Error::data(format!("{}: cannot read: {e}", self.name)))?;
        if (got as u64) < need {
            self.eof = true;
        }
        Ok(())
    }

    /// Hands out `pending[..end]` as a piece.
    fn take(&mut self, end: usize) -> Piece {
        let rest = self.pending.split_off(end);
        let bytes = std::mem::replace(&mut self.pending, rest);
        let first_line = self.line;
        self.line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
        for chunk in bytes.utf8_chunks() {
            self.utf8_chars += chunk.valid().bytes().filter(|b| *b >= 0xC0).count() as u64;
            self.bad_bytes += chunk.invalid().len() as u64;
        }
        Piece { bytes, first_line }
    }
}

/// The stretches of `bytes` that lie outside quoted fields, as the csv parser reads them: a quote opens a quoted
/// field only at the start of a field (after a delimiter, a line end, or at the start); anywhere else it is
/// text. `bytes` starts at a record boundary. Every newline in a stretch ends a record. The last stretch stops
/// where the bytes end, or where a quoted field is still open.
fn unquoted_stretches(bytes: &[u8], delimiter: u8) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        // Outside quotes: up to the next quote that opens a field.
        let mut from = pos;
        let open = loop {
            match memchr::memchr(b'"', &bytes[from..]) {
                None => break None,
                Some(i) => {
                    let q = from + i;
                    if q == 0 || matches!(bytes[q - 1], b'\n' | b'\r') || bytes[q - 1] == delimiter {
                        break Some(q);
                    }
                    from = q + 1;
                }
            }
        };
        let Some(q) = open else {
            out.push(pos..bytes.len());
            return out;
        };
        out.push(pos..q);
        // Inside quotes: to the closing quote (a doubled quote is a quote in the text).
        let mut from = q + 1;
        loop {
            match memchr::memchr(b'"', &bytes[from..]) {
                None => return out,
                Some(i) => {
                    let c = from + i;
                    match bytes.get(c + 1) {
                        Some(b'"') => from = c + 2,
                        // A quote at the very end could be half of a doubled one: undecided.
                        None => return out,
                        Some(_) => {
                            pos = c + 1;
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// The offset just past the `n`-th record end, if there is one.
fn nth_record_end(bytes: &[u8], n: usize, delimiter: u8) -> Option<usize> {
    let mut seen = 0;
    for r in unquoted_stretches(bytes, delimiter) {
        for i in memchr::memchr_iter(b'\n', &bytes[r.clone()]) {
            seen += 1;
            if seen == n {
                return Some(r.start + i + 1);
            }
        }
    }
    None
}

/// The offset just past the last record end, if there is one. Quotes are rare in exports, so this costs about
/// one `memchr` pass over the piece.
fn last_record_end(bytes: &[u8], delimiter: u8) -> Option<usize> {
    unquoted_stretches(bytes, delimiter)
        .iter()
        .rev()
        .find_map(|r| memchr::memrchr(b'\n', &bytes[r.clone()]).map(|i| r.start + i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::read_delimited;
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    fn opts() -> QualtricsOptions {
        QualtricsOptions { source: "s".into(), name: "t.csv".into(), batch_rows: 3, encoding: None, delimiter: None }
    }

    /// Every row's (line, cells) from a read.
    fn rows(out: &ReadOutput) -> Vec<(u64, Vec<Option<String>>)> {
        let mut v = Vec::new();
        for b in &out.table.batches {
            let lines = diaspora_core::lines_of(b);
            for (r, line) in lines.iter().enumerate() {
                let cells = (1..b.num_columns())
                    .map(|c| {
                        let a = b.column(c).as_string::<i32>();
                        a.is_valid(r).then(|| a.value(r).to_owned())
                    })
                    .collect();
                v.push((*line, cells));
            }
        }
        v
    }

    #[test]
    fn pieces_read_like_the_whole_file() {
        let text = "\u{feff}id;note;n\r\n1;\"multi\r\nline; quoted \"\"x\"\"\";3\r\n2;plain;4\r\n3;ragged\r\n\r\n4;\"a\nb\nc\";5\r\n6;5\" screen;7\n7;\"two\nlines\";8\n8;\"ab\"c\";9\n5;last;6";
        let whole = read_delimited(text.as_bytes(), &opts()).unwrap();
        for target in [1, 2, 5, 8, 13, 64, 4096] {
            let (mut split, head) = CsvSplitter::open(text.as_bytes(), &opts(), false).unwrap().unwrap();
            assert_eq!(split.delimiter(), b';');
            assert_eq!(head.rows_read, 0);
            let mut all = Vec::new();
            let mut rejects = Vec::new();
            let mut read = 0;
            while let Some(p) = split.next_piece(target).unwrap() {
                let out =
                    crate::read_piece(&p.bytes, p.first_line, &head.table.schema, split.delimiter(), &opts()).unwrap();
                read += out.rows_read;
                all.extend(rows(&out));
                rejects.extend(out.rejects.iter().map(|r| (r.line, r.reason.clone())));
            }
            assert_eq!(all, rows(&whole), "piece size {target}");
            assert_eq!(read, whole.rows_read);
            let whole_rejects: Vec<_> = whole.rejects.iter().map(|r| (r.line, r.reason.clone())).collect();
            assert_eq!(rejects, whole_rejects);
        }
    }

    #[test]
    fn record_ends_skip_newlines_inside_quotes() {
        let end = |b: &[u8]| last_record_end(b, b',');
        assert_eq!(end(b"a,b\nc,d"), Some(4));
        assert_eq!(end(b"a,b\n\"c\nd\",e"), Some(4));
        assert_eq!(end(b"a,\"b\nc\"\nd"), Some(8));
        assert_eq!(end(b"\"x\ny\nz"), None);
        assert_eq!(end(b"abc"), None);
        assert_eq!(end(b"a,\"x\"\"\ny\",b\nc"), Some(12));
        // A quote inside an unquoted field is text, as the csv parser reads it.
        assert_eq!(end(b"1,5\" screen,ok\n2,\"two\nlines\",x\n3"), Some(31));
        assert_eq!(end(b"1,5\" screen,ok\n2,\"two\n"), Some(15));
        assert_eq!(end(b"a,\"ab\"c\"d,e\nf"), Some(12));
        // A closing quote at the very end may be half of a doubled quote: the record is not known to end.
        assert_eq!(end(b"a\n\"x\ny\""), Some(2));
        assert_eq!(last_record_end(b"a;\"b\nc\"\nd", b';'), Some(8));
        assert_eq!(nth_record_end(b"a\n\"b\nc\"\nd\n", 2, b','), Some(8));
    }

    #[test]
    fn declared_utf8_replaces_bad_bytes_like_the_whole_file_read() {
        let mut text = b"id,note\n1,ok\n2,bad \xFF byte\n3,\"quoted \xFE\nline\"\n".to_vec();
        text.extend_from_slice(b"4,end\n");
        let declared = QualtricsOptions { encoding: Some("UTF-8".into()), ..opts() };
        let whole = read_delimited(&text, &declared).unwrap();
        let (mut split, head) = CsvSplitter::open(&text[..], &declared, false).unwrap().unwrap();
        let mut all = Vec::new();
        while let Some(p) = split.next_piece(6).unwrap() {
            let bytes = split.decoded(&p.bytes).into_owned();
            let out = crate::read_piece(&bytes, p.first_line, &head.table.schema, b',', &declared).unwrap();
            assert!(out.rejects.is_empty());
            all.extend(rows(&out));
        }
        assert_eq!(all, rows(&whole));
        assert!(all.iter().any(|(_, cells)| cells[1].as_deref() == Some("bad \u{FFFD} byte")));
    }

    #[test]
    fn a_file_that_turns_out_not_to_be_utf8_is_noticed() {
        // The first MiB is plain ASCII; Windows-1251 text follows.
        let mut text = b"id,city\n".to_vec();
        while text.len() < (1 << 20) + 1000 {
            text.extend_from_slice(b"1,Tbilisi\n");
        }
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("2,\u{422}\u{431}\u{438}\u{43b}\u{438}\u{441}\u{438}\n");
        for _ in 0..100 {
            text.extend_from_slice(&cp1251);
        }
        let (mut split, _) = CsvSplitter::open(&text[..], &opts(), false).unwrap().unwrap();
        while split.next_piece(1 << 16).unwrap().is_some() {}
        let (utf8, chars, bad) = split.looks_utf8();
        assert!(!utf8 && chars == 0 && bad == 700, "{chars} {bad}");
        let plain = b"id,city\n1,\xD0\xA2\xD0\xB1\n";
        let (mut split, _) = CsvSplitter::open(&plain[..], &opts(), false).unwrap().unwrap();
        while split.next_piece(4).unwrap().is_some() {}
        assert!(split.looks_utf8().0);
    }

    #[test]
    fn qualtrics_header_rows_and_non_utf8_input() {
        let text = "a,b\nQuestion A,\"Question\nB\"\n{\"ImportId\":\"QID1\"},{\"ImportId\":\"QID2\"}\n1,2\n3,4\n";
        let (mut split, head) = CsvSplitter::open(text.as_bytes(), &opts(), true).unwrap().unwrap();
        assert_eq!(head.table.meta.import_ids.get("a").map(String::as_str), Some("QID1"));
        let p = split.next_piece(1 << 20).unwrap().unwrap();
        assert_eq!(p.first_line, 5);
        assert!(split.next_piece(1 << 20).unwrap().is_none());
        let (cp1251, _, _) = encoding_rs::WINDOWS_1251.encode("страна,город\nГрузия,Тбилиси\n");
        assert!(CsvSplitter::open(&cp1251[..], &opts(), false).unwrap().is_none());
        let utf16: Vec<u8> =
            [0xFF, 0xFE].into_iter().chain("a,b\n".encode_utf16().flat_map(u16::to_le_bytes)).collect();
        assert!(CsvSplitter::open(&utf16[..], &opts(), false).unwrap().is_none());
    }
}
