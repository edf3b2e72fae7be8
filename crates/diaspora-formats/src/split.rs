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
}

/// Bytes read to find the header rows and judge the encoding.
const HEAD_BYTES: usize = 1 << 20;

impl<R: Read> CsvSplitter<R> {
    /// Reads the header rows. Returns the splitter and what the header rows gave (the schema and column facts,
    /// and the first data row for the legacy two-row Qualtrics form), or `None` when the input is not UTF-8.
    pub fn open(mut reader: R, opts: &QualtricsOptions, qualtrics: bool) -> Result<Option<(Self, ReadOutput)>> {
        if opts.encoding.as_deref().is_some_and(|e| !matches!(e.trim().to_lowercase().as_str(), "utf-8" | "utf8")) {
            return Ok(None);
        }
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
        if bad > 0 && good <= bad {
            return Ok(None);
        }
        let delimiter = opts.delimiter.unwrap_or_else(|| sniff_delimiter(&pending));
        let header_rows = if qualtrics { 3 } else { 1 };
        let mut split = Self { reader, name: opts.name.clone(), pending, line: 1, eof, delimiter };
        let head = loop {
            if let Some(end) = nth_record_end(&split.pending, header_rows) {
                break split.take(end);
            }
            if split.eof {
                break split.take(split.pending.len());
            }
            split.fill(split.pending.len() + HEAD_BYTES)?;
        };
        let out = read_table_head(&head.bytes, opts, qualtrics, delimiter)?;
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
            match last_record_end(&self.pending) {
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
        Piece { bytes, first_line }
    }
}

/// The offset just past the `n`-th newline outside quotes, if there is one.
fn nth_record_end(bytes: &[u8], n: usize) -> Option<usize> {
    let mut quoted = false;
    let mut seen = 0;
    for i in memchr_iter(bytes) {
        if bytes[i] == b'"' {
            quoted = !quoted;
        } else if !quoted {
            seen += 1;
            if seen == n {
                return Some(i + 1);
            }
        }
    }
    None
}

/// The offset just past the last newline outside quotes, if there is one. The piece starts outside quotes, so a
/// newline is outside quotes when an even number of quotes precede it: counted once, then walked back newline by
/// newline (quotes are rare in exports, so this reads the piece about once, at memchr speed).
fn last_record_end(bytes: &[u8]) -> Option<usize> {
    let mut end = memchr::memrchr(b'\n', bytes)?;
    let mut quotes = memchr::memchr_iter(b'"', &bytes[..end]).count();
    loop {
        if quotes.is_multiple_of(2) {
            return Some(end + 1);
        }
        let prev = memchr::memrchr(b'\n', &bytes[..end])?;
        quotes -= memchr::memchr_iter(b'"', &bytes[prev..end]).count();
        end = prev;
    }
}

/// Positions of `"` and `\n`.
fn memchr_iter(bytes: &[u8]) -> impl Iterator<Item = usize> + '_ {
    memchr::memchr2_iter(b'"', b'\n', bytes)
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
        let text = "\u{feff}id;note;n\r\n1;\"multi\r\nline; quoted \"\"x\"\"\";3\r\n2;plain;4\r\n3;ragged\r\n\r\n4;\"a\nb\nc\";5\r\n5;last;6";
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
        assert_eq!(last_record_end(b"a,b\nc,d"), Some(4));
        assert_eq!(last_record_end(b"a,b\n\"c\nd\",e"), Some(4));
        assert_eq!(last_record_end(b"a,\"b\nc\"\nd"), Some(8));
        assert_eq!(last_record_end(b"\"x\ny\nz"), None);
        assert_eq!(last_record_end(b"abc"), None);
        assert_eq!(nth_record_end(b"a\n\"b\nc\"\nd\n", 2), Some(8));
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
