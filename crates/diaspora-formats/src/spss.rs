//! SPSS system files: `.sav` (uncompressed or bytecode-compressed) and `.zsav` (ZLIB-compressed data).
//!
//! The layout follows the "System File Format" appendix of the GNU PSPP developers' guide: a 176-byte file
//! header, variable records (type 2), value label records (3 + 4), an optional document record (6), extension
//! records (7), the dictionary termination record (999) and then the cases. Integers and floats use the byte
//! order given by the header's layout code.
//!
//! Every case becomes one row whose hidden line column holds the 1-based case number. Numeric variables with a
//! date print format become naive microsecond timestamps; other numbers (durations included) are `Float64`;
//! strings are decoded with the file's encoding (or the override) and lose their trailing padding. System-missing
//! values are NULL, and so are user-missing values unless [`SavOptions::keep_user_missing`] is set. Variable
//! labels, formats, value labels, user-missing definitions and measurement levels go into each Arrow field's
//! metadata under `spss.*` keys.
//!
//! A string cell whose bytes are not valid in the encoding makes its case a reject (`invalid_encoding`); a UTF-8
//! character cut at the end of a string's width (a common SPSS artefact) is dropped instead. Input that is not
//! a system file, a truncated dictionary or data that ends in the middle of a case are errors naming the file
//! and the case, never cell values.

use crate::ReadOutput;
use arrow_array::builder::{Float64Builder, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use diaspora_core::{Error, LINE_COL, Reject, Result, Table, line_field};
use encoding_rs::Encoding;
use flate2::read::ZlibDecoder;
use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::Arc;

/// Options for [`read_sav`].
#[derive(Debug, Clone)]
pub struct SavOptions {
    /// Source id, used in rejects.
    pub source: String,
    /// Name used in error messages (a path or URL).
    pub name: String,
    /// Rows per batch.
    pub batch_rows: usize,
    /// Overrides the file's character encoding (e.g. `windows-1251`). `None`: the encoding record (extension
    /// subtype 20), else the code page in the machine integer info record (subtype 3), else windows-1252.
    pub encoding: Option<String>,
    /// Keep user-missing values as values (`true`) or turn them into NULL (`false`, the default).
    pub keep_user_missing: bool,
}

/// Length of the file header record.
const HEADER_LEN: usize = 176;
/// Seconds from the SPSS epoch (1582-10-14 00:00:00) to the Unix epoch.
const SPSS_TO_UNIX_SECONDS: f64 = 12_219_379_200.0;
/// 0001-01-01T00:00:00 in Unix microseconds: earlier dates are treated as out of range.
const MIN_MICROS: f64 = -62_135_596_800_000_000.0;
/// 9999-12-31T23:59:59.999999 in Unix microseconds: later dates are treated as out of range.
const MAX_MICROS: f64 = 253_402_300_799_999_999.0;
/// Flush a batch early once its string data reaches this size (Arrow `Utf8` offsets are 32-bit).
const MAX_BATCH_TEXT_BYTES: usize = 1 << 30;

/// Reads an SPSS system file (`.sav` / `.zsav`) from its bytes.
pub fn read_sav(bytes: &[u8], opts: &SavOptions) -> Result<ReadOutput> {
    let name = opts.name.as_str();
    let raw = parse_dictionary(bytes, name)?;
    let enc = choose_encoding(&raw, opts)?;
    let vars = build_vars(&raw, enc, name)?;
    let schema = make_schema(&vars, enc);
    let ctx = DataCtx {
        big: raw.big,
        bias: raw.bias,
        sysmis: raw.sysmis,
        ncases: declared_cases(&raw),
        unit_is_string: raw.vars.iter().map(|v| v.width != 0).collect(),
        enc,
        keep_user_missing: opts.keep_user_missing,
    };
    let mut sink = Sink::new(schema.clone(), &vars, opts.batch_rows.max(1));
    let mut rejects = Vec::new();
    let data = &bytes[raw.data_start..];
    let rows_read = match raw.compression {
        0 => read_cases(data, false, &ctx, &vars, &mut sink, &mut rejects, opts)?,
        1 => read_cases(data, true, &ctx, &vars, &mut sink, &mut rejects, opts)?,
        _ => {
            let stream = zlib_stream(bytes, raw.data_start, raw.big, name)?;
            read_cases(stream, true, &ctx, &vars, &mut sink, &mut rejects, opts)?
        }
    };
    let batches = sink.finish()?;
    Ok(ReadOutput { table: Table::new(schema, batches), rejects, rows_read })
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-level helpers
// ---------------------------------------------------------------------------------------------------------------

/// A read position in a byte slice with the file's byte order.
struct Cur<'a> {
    buf: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Cur<'a> {
    fn new(buf: &'a [u8], pos: usize, big: bool) -> Self {
        Cur { buf, pos, big }
    }

    fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.remaining() {
            return None;
        }
        let buf: &'a [u8] = self.buf;
        let out = &buf[self.pos..self.pos + n];
        self.pos += n;
        Some(out)
    }

    fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(read_i32(b, self.big))
    }

    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        Some(read_i64(b, self.big))
    }

    fn f64(&mut self) -> Option<f64> {
        let b = self.take(8)?;
        Some(read_f64(b, self.big))
    }
}

/// The first 8 bytes of `b` (which must hold at least 8).
fn arr8(b: &[u8]) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    a
}

fn read_i32(b: &[u8], big: bool) -> i32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big { i32::from_be_bytes(a) } else { i32::from_le_bytes(a) }
}

fn read_i64(b: &[u8], big: bool) -> i64 {
    let a = arr8(b);
    if big { i64::from_be_bytes(a) } else { i64::from_le_bytes(a) }
}

fn read_f64(b: &[u8], big: bool) -> f64 {
    let a = arr8(b);
    if big { f64::from_be_bytes(a) } else { f64::from_le_bytes(a) }
}

fn f64_bytes(x: f64, big: bool) -> [u8; 8] {
    if big { x.to_be_bytes() } else { x.to_le_bytes() }
}

/// `b` without trailing spaces and NUL bytes.
fn trim_end_pad(b: &[u8]) -> &[u8] {
    let mut n = b.len();
    while n > 0 && (b[n - 1] == b' ' || b[n - 1] == 0) {
        n -= 1;
    }
    &b[..n]
}

/// `b` without leading or trailing spaces and NUL bytes.
fn trim_pad(b: &[u8]) -> &[u8] {
    let b = trim_end_pad(b);
    let mut s = 0;
    while s < b.len() && (b[s] == b' ' || b[s] == 0) {
        s += 1;
    }
    &b[s..]
}

/// The error for input that ends inside a structure.
fn eof(name: &str, what: &str) -> Error {
    Error::data(format!("{name}: the file ends inside the {what} (truncated or not an SPSS system file)"))
}

// ---------------------------------------------------------------------------------------------------------------
// Dictionary
// ---------------------------------------------------------------------------------------------------------------

/// One variable record (type 2) as stored.
struct RawVar<'a> {
    /// 0 numeric, 1..=255 string width, -1 continuation of a long string.
    width: i32,
    /// Short name without padding.
    name: &'a [u8],
    label: Option<&'a [u8]>,
    /// 0..=3 discrete values, -2 a range, -3 a range plus one value.
    n_missing: i32,
    /// `8 * |n_missing|` bytes.
    missing: &'a [u8],
    print: u32,
}

/// A value label record (3) with its variables record (4).
struct LabelSet<'a> {
    labels: Vec<([u8; 8], &'a [u8])>,
    /// 1-based dictionary indexes.
    vars: Vec<i32>,
}

/// Everything read before the data, still undecoded.
struct RawDict<'a> {
    big: bool,
    compression: i32,
    ncases: i32,
    bias: f64,
    vars: Vec<RawVar<'a>>,
    label_sets: Vec<LabelSet<'a>>,
    character_code: Option<i32>,
    sysmis: f64,
    display: Option<&'a [u8]>,
    long_names: Vec<&'a [u8]>,
    very_long: Vec<&'a [u8]>,
    encoding_name: Option<&'a [u8]>,
    long_labels: Vec<&'a [u8]>,
    long_missing: Vec<&'a [u8]>,
    ncases64: Option<i64>,
    data_start: usize,
}

fn parse_dictionary<'a>(bytes: &'a [u8], name: &str) -> Result<RawDict<'a>> {
    if bytes.get(8..20) == Some(b"ENCRYPTEDSAV".as_slice()) {
        return Err(Error::data(format!(
            "{name}: this is an encrypted SPSS system file; save it without a password and read that copy"
        )));
    }
    if !bytes.starts_with(b"$FL2") && !bytes.starts_with(b"$FL3") {
        return Err(Error::data(format!(
            "{name}: not an SPSS system file (it does not start with the $FL2 or $FL3 signature)"
        )));
    }
    if bytes.len() < HEADER_LEN {
        return Err(Error::data(format!(
            "{name}: the file header is truncated ({} of {HEADER_LEN} bytes)",
            bytes.len()
        )));
    }
    let layout = [bytes[64], bytes[65], bytes[66], bytes[67]];
    let big = match (i32::from_le_bytes(layout), i32::from_be_bytes(layout)) {
        (2 | 3, _) => false,
        (_, 2 | 3) => true,
        _ => {
            return Err(Error::data(format!(
                "{name}: unknown layout code in the file header (damaged file or not an SPSS system file)"
            )));
        }
    };
    let mut c = Cur::new(bytes, 68, big);
    let (compression, ncases, bias) = header_fields(&mut c).ok_or_else(|| eof(name, "file header"))?;
    if !(0..=2).contains(&compression) {
        return Err(Error::data(format!("{name}: unknown compression code {compression} in the file header")));
    }
    let mut d = RawDict {
        big,
        compression,
        ncases,
        bias,
        vars: Vec::new(),
        label_sets: Vec::new(),
        character_code: None,
        sysmis: -f64::MAX,
        display: None,
        long_names: Vec::new(),
        very_long: Vec::new(),
        encoding_name: None,
        long_labels: Vec::new(),
        long_missing: Vec::new(),
        ncases64: None,
        data_start: 0,
    };
    let mut c = Cur::new(bytes, HEADER_LEN, big);
    loop {
        let at = c.pos;
        let rec_type = c.i32().ok_or_else(|| eof(name, "dictionary (no dictionary termination record)"))?;
        match rec_type {
            2 => {
                let index = d.vars.len() + 1;
                let v = parse_var_record(&mut c, name, index)?;
                d.vars.push(v);
            }
            3 => {
                let set = parse_value_labels(&mut c, name, at)?;
                d.label_sets.push(set);
            }
            4 => {
                return Err(Error::data(format!(
                    "{name}: value label variables record at byte {at} without a value label record before it"
                )));
            }
            6 => {
                let n = c.i32().ok_or_else(|| eof(name, "document record"))?;
                let len = usize::try_from(n)
                    .ok()
                    .and_then(|n| n.checked_mul(80))
                    .ok_or_else(|| Error::data(format!("{name}: invalid line count in the document record")))?;
                c.take(len).ok_or_else(|| eof(name, "document record"))?;
            }
            7 => parse_extension(&mut c, name, at, &mut d)?,
            999 => {
                c.i32().ok_or_else(|| eof(name, "dictionary termination record"))?;
                break;
            }
            other => {
                return Err(Error::data(format!("{name}: unknown record type {other} at byte {at}")));
            }
        }
    }
    d.data_start = c.pos;
    Ok(d)
}

/// Compression, case count and bias from the file header (the cursor sits after the layout code).
fn header_fields(c: &mut Cur<'_>) -> Option<(i32, i32, f64)> {
    let _nominal_case_size = c.i32()?;
    let compression = c.i32()?;
    let _weight_index = c.i32()?;
    let ncases = c.i32()?;
    let bias = c.f64()?;
    Some((compression, ncases, bias))
}

fn parse_var_record<'a>(c: &mut Cur<'a>, name: &str, index: usize) -> Result<RawVar<'a>> {
    let what = format!("variable record {index}");
    let width = c.i32().ok_or_else(|| eof(name, &what))?;
    let has_label = c.i32().ok_or_else(|| eof(name, &what))?;
    let n_missing = c.i32().ok_or_else(|| eof(name, &what))?;
    let print = c.i32().ok_or_else(|| eof(name, &what))?;
    let _write = c.i32().ok_or_else(|| eof(name, &what))?;
    let short = c.take(8).ok_or_else(|| eof(name, &what))?;
    if !(-1..=255).contains(&width) {
        return Err(Error::data(format!("{name}: variable record {index} has an invalid type code {width}")));
    }
    let label = match has_label {
        0 => None,
        1 => {
            let len = c.i32().ok_or_else(|| eof(name, &what))?;
            let len = usize::try_from(len)
                .map_err(|_| Error::data(format!("{name}: variable record {index} has a negative label length")))?;
            let text = c.take(len).ok_or_else(|| eof(name, &what))?;
            let pad = (4 - len % 4) % 4;
            c.take(pad).ok_or_else(|| eof(name, &what))?;
            Some(text)
        }
        _ => {
            return Err(Error::data(format!("{name}: variable record {index} has an invalid label flag")));
        }
    };
    let n_abs: usize = match n_missing {
        0..=3 => n_missing as usize,
        -2 => 2,
        -3 => 3,
        _ => {
            return Err(Error::data(format!(
                "{name}: variable record {index} has an invalid missing-value count {n_missing}"
            )));
        }
    };
    let missing = c.take(8 * n_abs).ok_or_else(|| eof(name, &what))?;
    Ok(RawVar { width, name: trim_end_pad(short), label, n_missing, missing, print: print as u32 })
}

fn parse_value_labels<'a>(c: &mut Cur<'a>, name: &str, at: usize) -> Result<LabelSet<'a>> {
    let what = format!("value label record at byte {at}");
    let count = c.i32().ok_or_else(|| eof(name, &what))?;
    let count =
        usize::try_from(count).map_err(|_| Error::data(format!("{name}: negative label count in the {what}")))?;
    // Each label takes at least 16 bytes (8 value bytes, a length byte, padding to a multiple of 8).
    if count > c.remaining() / 16 {
        return Err(eof(name, &what));
    }
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let value = arr8(c.take(8).ok_or_else(|| eof(name, &what))?);
        let len = c.take(1).ok_or_else(|| eof(name, &what))?[0] as usize;
        let text = c.take(len).ok_or_else(|| eof(name, &what))?;
        let pad = (8 - (len + 1) % 8) % 8;
        c.take(pad).ok_or_else(|| eof(name, &what))?;
        labels.push((value, text));
    }
    let rec_type = c.i32().ok_or_else(|| eof(name, &what))?;
    if rec_type != 4 {
        return Err(Error::data(format!(
            "{name}: the {what} is not followed by its value label variables record (type 4)"
        )));
    }
    let n = c.i32().ok_or_else(|| eof(name, &what))?;
    let n = usize::try_from(n).map_err(|_| Error::data(format!("{name}: negative variable count after the {what}")))?;
    if n > c.remaining() / 4 {
        return Err(eof(name, &what));
    }
    let mut vars = Vec::with_capacity(n);
    for _ in 0..n {
        vars.push(c.i32().ok_or_else(|| eof(name, &what))?);
    }
    Ok(LabelSet { labels, vars })
}

fn parse_extension<'a>(c: &mut Cur<'a>, name: &str, at: usize, d: &mut RawDict<'a>) -> Result<()> {
    let what = format!("extension record at byte {at}");
    let subtype = c.i32().ok_or_else(|| eof(name, &what))?;
    let size = c.i32().ok_or_else(|| eof(name, &what))?;
    let count = c.i32().ok_or_else(|| eof(name, &what))?;
    let total = match (usize::try_from(size), usize::try_from(count)) {
        (Ok(s), Ok(n)) => s.checked_mul(n),
        _ => None,
    };
    let Some(total) = total.filter(|t| *t <= c.remaining()) else {
        return Err(Error::data(format!(
            "{name}: the {what} (subtype {subtype}) claims more bytes than the file holds (truncated file?)"
        )));
    };
    let data = c.take(total).ok_or_else(|| eof(name, &what))?;
    match subtype {
        // Machine integer info: the eighth int32 is the character code (code page).
        3 if size == 4 && count == 8 => d.character_code = Some(read_i32(&data[28..32], d.big)),
        // Machine floating-point info: sysmis, highest, lowest.
        4 if size == 8 && count == 3 => d.sysmis = read_f64(&data[0..8], d.big),
        // Variable display parameters: measure, [width,] alignment per variable.
        11 if size == 4 => d.display = Some(data),
        13 => d.long_names.push(data),
        14 => d.very_long.push(data),
        // Extended number of cases: an unknown int64, then the case count.
        16 if size == 8 && count == 2 => d.ncases64 = Some(read_i64(&data[8..16], d.big)),
        20 => d.encoding_name = Some(data),
        21 => d.long_labels.push(data),
        22 => d.long_missing.push(data),
        // 7/19 multiple response sets, 10 product info, 17/18 attributes, 24 XML and anything else: skipped.
        _ => {}
    }
    Ok(())
}

/// The number of cases the file declares, if it declares one.
fn declared_cases(raw: &RawDict<'_>) -> Option<u64> {
    if raw.ncases >= 0 {
        return Some(raw.ncases as u64);
    }
    match raw.ncases64 {
        Some(n) if n >= 0 => Some(n as u64),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------------------------

fn is_utf16(enc: &'static Encoding) -> bool {
    enc == encoding_rs::UTF_16LE || enc == encoding_rs::UTF_16BE
}

fn choose_encoding(raw: &RawDict<'_>, opts: &SavOptions) -> Result<&'static Encoding> {
    if let Some(label) = opts.encoding.as_deref() {
        return match Encoding::for_label_no_replacement(label.trim().as_bytes()) {
            Some(enc) if !is_utf16(enc) => Ok(enc),
            _ => Err(Error::config(format!(
                "{}: unknown or unsupported character encoding {label:?} (use an 8-bit encoding such as \
                 windows-1251, koi8-r or UTF-8)",
                opts.name
            ))),
        };
    }
    if let Some(label) = raw.encoding_name
        && let Some(enc) = Encoding::for_label_no_replacement(trim_pad(label))
        && !is_utf16(enc)
    {
        return Ok(enc);
    }
    if let Some(code) = raw.character_code
        && let Some(enc) = encoding_for_codepage(code)
    {
        return Ok(enc);
    }
    Ok(encoding_rs::WINDOWS_1252)
}

/// The encoding for a Windows code page number as found in the machine integer info record.
fn encoding_for_codepage(code: i32) -> Option<&'static Encoding> {
    let label: String = match code {
        65001 => return Some(encoding_rs::UTF_8),
        // 2 and 3 are (7- and 8-bit) ASCII, 20127 US-ASCII, 28591 ISO-8859-1.
        2 | 3 | 1252 | 20127 | 28591 => return Some(encoding_rs::WINDOWS_1252),
        874 | 1250..=1258 => format!("windows-{code}"),
        28592..=28606 => format!("iso-8859-{}", code - 28590),
        866 => "ibm866".to_owned(),
        20866 => "koi8-r".to_owned(),
        21866 => "koi8-u".to_owned(),
        932 => "shift_jis".to_owned(),
        936 => "gbk".to_owned(),
        949 => "euc-kr".to_owned(),
        950 => "big5".to_owned(),
        20932 | 51932 => "euc-jp".to_owned(),
        54936 => "gb18030".to_owned(),
        10000 => "macintosh".to_owned(),
        10007 => "x-mac-cyrillic".to_owned(),
        _ => return None,
    };
    Encoding::for_label_no_replacement(label.as_bytes())
}

/// `b` without an incomplete UTF-8 sequence at its end (SPSS cuts strings at their byte width).
fn utf8_complete_prefix(b: &[u8]) -> &[u8] {
    match std::str::from_utf8(b) {
        Ok(_) => b,
        Err(e) if e.error_len().is_none() => &b[..e.valid_up_to()],
        Err(_) => b,
    }
}

/// Decodes dictionary text (names, labels); undecodable bytes become U+FFFD.
fn decode_lossy(enc: &'static Encoding, b: &[u8]) -> String {
    let b = if enc == encoding_rs::UTF_8 { utf8_complete_prefix(b) } else { b };
    enc.decode_without_bom_handling(b).0.into_owned()
}

/// Decodes a string cell; `None` if its bytes are not valid in the encoding.
fn decode_cell(enc: &'static Encoding, b: &[u8]) -> Option<String> {
    if enc == encoding_rs::UTF_8 {
        return std::str::from_utf8(utf8_complete_prefix(b)).ok().map(str::to_owned);
    }
    enc.decode_without_bom_handling_and_without_replacement(b).map(|s| s.into_owned())
}

// ---------------------------------------------------------------------------------------------------------------
// Variables
// ---------------------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Number,
    Timestamp,
    Text,
}

/// One output column.
struct Var {
    name: String,
    /// Short name of the first segment, unpadded.
    short: Vec<u8>,
    /// Long name from the long variable names record, undecoded.
    long_raw: Option<Vec<u8>>,
    kind: Kind,
    /// Total string width in bytes (0 for numbers).
    width: usize,
    /// Case unit (8-byte element) of a number.
    unit: usize,
    /// For strings: (byte offset in the case, bytes used) of each segment.
    segments: Vec<(usize, usize)>,
    format: Option<String>,
    label: Option<String>,
    num_missing: Vec<f64>,
    num_range: Option<(f64, f64)>,
    str_missing: Vec<Vec<u8>>,
    value_labels: Vec<(String, String)>,
    measure: Option<&'static str>,
}

impl Var {
    fn is_user_missing_num(&self, x: f64) -> bool {
        if let Some((lo, hi)) = self.num_range
            && lo <= x
            && x <= hi
        {
            return true;
        }
        self.num_missing.contains(&x)
    }
}

/// A variable record that does not continue a long string: one segment of a variable.
struct Seg {
    /// Index of its variable record (= its first case unit).
    raw: usize,
    /// String width, 0 for numbers.
    width: usize,
}

fn build_vars(raw: &RawDict<'_>, enc: &'static Encoding, name: &str) -> Result<Vec<Var>> {
    // Segments: every variable record except the continuation records of long strings, which must follow.
    let mut segs: Vec<Seg> = Vec::new();
    let mut i = 0;
    while i < raw.vars.len() {
        let rv = &raw.vars[i];
        if rv.width < 0 {
            return Err(Error::data(format!(
                "{name}: variable record {} continues a string but follows no string variable",
                i + 1
            )));
        }
        let width = rv.width as usize;
        let units = if width == 0 { 1 } else { width.div_ceil(8) };
        for k in 1..units {
            let ok = raw.vars.get(i + k).is_some_and(|c| c.width == -1);
            if !ok {
                return Err(Error::data(format!(
                    "{name}: string variable at variable record {} (width {width}) lacks its continuation records",
                    i + 1
                )));
            }
        }
        segs.push(Seg { raw: i, width });
        i += units;
    }

    let very_long: Vec<(&[u8], usize)> = raw.very_long.iter().flat_map(|d| parse_very_long(d)).collect();
    let long_names: Vec<(&[u8], &[u8])> = raw.long_names.iter().flat_map(|d| parse_long_names(d)).collect();
    // Display parameters come one set per segment; a few writers may count variables instead.
    let by_segment = display_measures(raw, segs.len());

    let mut vars: Vec<Var> = Vec::new();
    let mut raw_to_var: Vec<Option<usize>> = vec![None; raw.vars.len()];
    let mut s = 0;
    while s < segs.len() {
        let first = &segs[s];
        let rv = &raw.vars[first.raw];
        // A very long string (> 255 bytes) spans several segments.
        let mut nseg = 1;
        let mut width = first.width;
        if first.width > 0
            && let Some(w) = very_long.iter().find(|e| e.0.eq_ignore_ascii_case(rv.name)).map(|e| e.1)
            && w > 255
            && w <= 32767
        {
            let n = w.div_ceil(252);
            if s + n <= segs.len() && segs[s..s + n].iter().all(|g| g.width > 0) {
                nseg = n;
                width = w;
            }
        }
        let mut segments = Vec::new();
        if width > 0 {
            for k in 0..nseg {
                let g = &segs[s + k];
                let allocated = g.width.div_ceil(8) * 8;
                // Data is packed 255 bytes per segment except in the last one.
                let used = if k + 1 < nseg { g.width.min(255) } else { g.width };
                segments.push((g.raw * 8, used.min(allocated)));
            }
        }
        let long_raw = long_names.iter().find(|e| e.0.eq_ignore_ascii_case(rv.name)).map(|e| e.1.to_vec());
        let mut var_name = decode_lossy(enc, long_raw.as_deref().unwrap_or(rv.name));
        if var_name.trim().is_empty() {
            var_name = format!("V{}", vars.len() + 1);
        }
        let fmt_type = (rv.print >> 16) & 0xff;
        let kind = if width > 0 {
            Kind::Text
        } else if is_date_format(fmt_type) {
            Kind::Timestamp
        } else {
            Kind::Number
        };
        let format = if nseg > 1 { Some(format!("A{width}")) } else { format_name(rv.print) };
        let label = rv.label.map(|l| decode_lossy(enc, trim_end_pad(l))).filter(|l| !l.is_empty());
        let mut var = Var {
            name: var_name,
            short: rv.name.to_vec(),
            long_raw,
            kind,
            width,
            unit: first.raw,
            segments,
            format,
            label,
            num_missing: Vec::new(),
            num_range: None,
            str_missing: Vec::new(),
            value_labels: Vec::new(),
            measure: by_segment.as_ref().and_then(|m| m.get(s).copied().flatten()),
        };
        set_missing(&mut var, rv, raw.big);
        raw_to_var[first.raw] = Some(vars.len());
        vars.push(var);
        s += nseg;
    }
    if by_segment.is_none()
        && let Some(by_var) = display_measures(raw, vars.len())
    {
        for (var, measure) in vars.iter_mut().zip(by_var) {
            var.measure = measure;
        }
    }

    // Value labels (records 3 + 4) for numbers and strings up to 8 bytes.
    for set in &raw.label_sets {
        for &index in &set.vars {
            let target = usize::try_from(index)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| raw_to_var.get(i).copied().flatten());
            let Some(vi) = target else { continue };
            let var = &mut vars[vi];
            for (value, text) in &set.labels {
                let key = if var.kind == Kind::Text {
                    // Values are padded to 8 bytes; ReadStat writes labels wider than the variable.
                    let w = var.width.min(8);
                    decode_lossy(enc, trim_end_pad(&value[..w]))
                } else {
                    number_text(read_f64(value, raw.big))
                };
                var.value_labels.push((key, decode_lossy(enc, trim_end_pad(text))));
            }
        }
    }

    // Long string value labels (subtype 21) and missing values (subtype 22), matched by variable name.
    for data in &raw.long_labels {
        let mut c = Cur::new(data, 0, raw.big);
        while c.remaining() > 0 {
            let Some((var_name, labels)) = long_label_entry(&mut c) else { break };
            let Some(vi) = find_var(&vars, var_name) else { continue };
            let var = &mut vars[vi];
            if var.kind != Kind::Text {
                continue;
            }
            for (value, text) in labels {
                let key = decode_lossy(enc, trim_end_pad(value));
                var.value_labels.push((key, decode_lossy(enc, trim_end_pad(text))));
            }
        }
    }
    for data in &raw.long_missing {
        let mut c = Cur::new(data, 0, raw.big);
        while c.remaining() > 0 {
            let Some((var_name, values)) = long_missing_entry(&mut c) else { break };
            let Some(vi) = find_var(&vars, var_name) else { continue };
            let var = &mut vars[vi];
            if var.kind == Kind::Text {
                var.str_missing = values.iter().map(|v| trim_end_pad(v).to_vec()).collect();
            }
        }
    }

    // Column names must be unique and must not clash with the hidden line column.
    let mut used: HashSet<String> = HashSet::new();
    used.insert(LINE_COL.to_owned());
    for var in vars.iter_mut() {
        let base = var.name.clone();
        let mut candidate = base.clone();
        let mut n = 2;
        while used.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        used.insert(candidate.clone());
        var.name = candidate;
    }
    Ok(vars)
}

/// User-missing values from the variable record of the variable's first segment.
fn set_missing(var: &mut Var, rv: &RawVar<'_>, big: bool) {
    let values: Vec<&[u8]> = rv.missing.chunks_exact(8).collect();
    if var.kind == Kind::Text {
        if rv.n_missing > 0 {
            var.str_missing = values.iter().map(|v| trim_end_pad(v).to_vec()).collect();
        }
        return;
    }
    let nums: Vec<f64> = values.iter().map(|v| read_f64(v, big)).collect();
    match rv.n_missing {
        -2 if nums.len() == 2 => var.num_range = Some((nums[0], nums[1])),
        -3 if nums.len() == 3 => {
            var.num_range = Some((nums[0], nums[1]));
            var.num_missing = vec![nums[2]];
        }
        n if n > 0 => var.num_missing = nums,
        _ => {}
    }
}

/// Measurement levels from the variable display record for `n` entries, if its size fits `n` (2 or 3 int32s each).
fn display_measures(raw: &RawDict<'_>, n: usize) -> Option<Vec<Option<&'static str>>> {
    let data = raw.display?;
    let count = data.len() / 4;
    let per = if n > 0 && count == 3 * n {
        3
    } else if n > 0 && count == 2 * n {
        2
    } else {
        return None;
    };
    let mut out: Vec<Option<&'static str>> = vec![None; n];
    for (s, slot) in out.iter_mut().enumerate() {
        let at = s * per * 4;
        let Some(b) = data.get(at..at + 4) else { break };
        *slot = match read_i32(b, raw.big) {
            1 => Some("nominal"),
            2 => Some("ordinal"),
            3 => Some("scale"),
            _ => None,
        };
    }
    Some(out)
}

/// `SHORT=Long` pairs separated by tabs (subtype 13).
fn parse_long_names(data: &[u8]) -> Vec<(&[u8], &[u8])> {
    let mut out = Vec::new();
    for item in data.split(|b| *b == b'\t') {
        let Some(eq) = item.iter().position(|b| *b == b'=') else { continue };
        let key = trim_pad(&item[..eq]);
        let value = trim_pad(&item[eq + 1..]);
        if !key.is_empty() && !value.is_empty() {
            out.push((key, value));
        }
    }
    out
}

/// `SHORT=01234` pairs separated by NUL + tab (subtype 14).
fn parse_very_long(data: &[u8]) -> Vec<(&[u8], usize)> {
    let mut out = Vec::new();
    for item in data.split(|b| *b == b'\t') {
        let Some(eq) = item.iter().position(|b| *b == b'=') else { continue };
        let key = trim_pad(&item[..eq]);
        let Ok(digits) = std::str::from_utf8(trim_pad(&item[eq + 1..])) else { continue };
        let Ok(width) = digits.parse::<usize>() else { continue };
        out.push((key, width));
    }
    out
}

/// One variable's entry in a long string value labels record (subtype 21).
/// One variable's long string value labels: its name and (value, label) pairs.
type LongLabels<'a> = (&'a [u8], Vec<(&'a [u8], &'a [u8])>);

fn long_label_entry<'a>(c: &mut Cur<'a>) -> Option<LongLabels<'a>> {
    let name_len = usize::try_from(c.i32()?).ok()?;
    let var_name = c.take(name_len)?;
    let _width = c.i32()?;
    let n = usize::try_from(c.i32()?).ok()?;
    let mut labels = Vec::new();
    for _ in 0..n {
        let value_len = usize::try_from(c.i32()?).ok()?;
        let value = c.take(value_len)?;
        let label_len = usize::try_from(c.i32()?).ok()?;
        let label = c.take(label_len)?;
        labels.push((value, label));
    }
    Some((var_name, labels))
}

/// One variable's entry in a long string missing values record (subtype 22).
fn long_missing_entry<'a>(c: &mut Cur<'a>) -> Option<(&'a [u8], Vec<&'a [u8]>)> {
    let name_len = usize::try_from(c.i32()?).ok()?;
    let var_name = c.take(name_len)?;
    let n = c.take(1)?[0] as usize;
    if !(1..=3).contains(&n) {
        return None;
    }
    let value_len = usize::try_from(c.i32()?).ok()?;
    let mut values = Vec::new();
    for _ in 0..n {
        values.push(c.take(value_len)?);
    }
    Some((var_name, values))
}

/// The variable with this long (or else short) name, ignoring ASCII case.
fn find_var(vars: &[Var], key: &[u8]) -> Option<usize> {
    let key = trim_pad(key);
    vars.iter()
        .position(|v| v.long_raw.as_deref().is_some_and(|l| l.eq_ignore_ascii_case(key)))
        .or_else(|| vars.iter().position(|v| v.short.eq_ignore_ascii_case(key)))
}

/// Print formats whose values are points in time (seconds since 1582-10-14): DATE, DATETIME, ADATE, JDATE,
/// MOYR, QYR, WKYR, EDATE, SDATE, YMDHMS. TIME, DTIME and MTIME are durations and stay numbers.
fn is_date_format(fmt_type: u32) -> bool {
    matches!(fmt_type, 20 | 22 | 23 | 24 | 28 | 29 | 30 | 38 | 39 | 41)
}

/// A print format as SPSS writes it, e.g. `F8.2`, `A40`, `EDATE10`.
fn format_name(print: u32) -> Option<String> {
    let ty = (print >> 16) & 0xff;
    let width = (print >> 8) & 0xff;
    let decimals = print & 0xff;
    let name = match ty {
        1 => "A",
        2 => "AHEX",
        3 => "COMMA",
        4 => "DOLLAR",
        5 => "F",
        6 => "IB",
        7 => "PIBHEX",
        8 => "P",
        9 => "PIB",
        10 => "PK",
        11 => "RB",
        12 => "RBHEX",
        15 => "Z",
        16 => "N",
        17 => "E",
        20 => "DATE",
        21 => "TIME",
        22 => "DATETIME",
        23 => "ADATE",
        24 => "JDATE",
        25 => "DTIME",
        26 => "WKDAY",
        27 => "MONTH",
        28 => "MOYR",
        29 => "QYR",
        30 => "WKYR",
        31 => "PCT",
        32 => "DOT",
        33 => "CCA",
        34 => "CCB",
        35 => "CCC",
        36 => "CCD",
        37 => "CCE",
        38 => "EDATE",
        39 => "SDATE",
        40 => "MTIME",
        41 => "YMDHMS",
        _ => return None,
    };
    Some(if decimals > 0 || ty == 5 {
        format!("{name}{width}.{decimals}")
    } else if width > 0 {
        format!("{name}{width}")
    } else {
        name.to_owned()
    })
}

/// A number as label-key text: `1`, `1.5`, `-3`.
fn number_text(x: f64) -> String {
    format!("{x}")
}

/// A number as JSON: integers without a fraction, others as floats, non-finite as null.
fn json_number(x: f64) -> serde_json::Value {
    if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15 {
        serde_json::Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// Value labels as a JSON object in file order; a value labelled twice keeps its last label.
fn value_labels_json(labels: &[(String, String)]) -> String {
    let mut entries: Vec<(&str, &str)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (key, text) in labels {
        if let Some(&at) = index.get(key.as_str()) {
            entries[at].1 = text.as_str();
        } else {
            index.insert(key.as_str(), entries.len());
            entries.push((key.as_str(), text.as_str()));
        }
    }
    let mut out = String::from("{");
    for (i, (key, text)) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&serde_json::Value::String((*key).to_owned()).to_string());
        out.push(':');
        out.push_str(&serde_json::Value::String((*text).to_owned()).to_string());
    }
    out.push('}');
    out
}

/// User-missing definition as JSON: `{"values":[9]}`, `{"range":[2000,3000],"values":[-1]}`, `{"values":["Z"]}`.
fn missing_json(var: &Var, enc: &'static Encoding) -> Option<String> {
    let mut m = serde_json::Map::new();
    if let Some((lo, hi)) = var.num_range {
        m.insert("range".to_owned(), serde_json::Value::Array(vec![json_number(lo), json_number(hi)]));
    }
    if !var.num_missing.is_empty() {
        let values: Vec<serde_json::Value> = var.num_missing.iter().map(|x| json_number(*x)).collect();
        m.insert("values".to_owned(), serde_json::Value::Array(values));
    }
    if !var.str_missing.is_empty() {
        let values: Vec<serde_json::Value> =
            var.str_missing.iter().map(|v| serde_json::Value::String(decode_lossy(enc, v))).collect();
        m.insert("values".to_owned(), serde_json::Value::Array(values));
    }
    if m.is_empty() { None } else { Some(serde_json::Value::Object(m).to_string()) }
}

fn make_schema(vars: &[Var], enc: &'static Encoding) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = vec![line_field()];
    for var in vars {
        let data_type = match var.kind {
            Kind::Number => DataType::Float64,
            Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Kind::Text => DataType::Utf8,
        };
        let mut meta: HashMap<String, String> = HashMap::new();
        if let Some(label) = &var.label {
            meta.insert("spss.label".to_owned(), label.clone());
        }
        if let Some(format) = &var.format {
            meta.insert("spss.format".to_owned(), format.clone());
        }
        if !var.value_labels.is_empty() {
            meta.insert("spss.value_labels".to_owned(), value_labels_json(&var.value_labels));
        }
        if let Some(missing) = missing_json(var, enc) {
            meta.insert("spss.missing".to_owned(), missing);
        }
        if let Some(measure) = var.measure {
            meta.insert("spss.measure".to_owned(), measure.to_owned());
        }
        fields.push(Arc::new(Field::new(var.name.clone(), data_type, true).with_metadata(meta)));
    }
    Arc::new(Schema::new(fields))
}

// ---------------------------------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------------------------------

/// What the case decoder needs from the dictionary.
struct DataCtx {
    big: bool,
    bias: f64,
    sysmis: f64,
    ncases: Option<u64>,
    /// Per case unit: whether it belongs to a string.
    unit_is_string: Vec<bool>,
    enc: &'static Encoding,
    keep_user_missing: bool,
}

/// An 8-byte element of the data stream.
enum Unit {
    Full([u8; 8]),
    /// Clean end of the stream.
    End,
    /// The stream ends inside an element.
    Partial,
}

struct UnitReader<R: Read> {
    inner: R,
}

impl<R: Read> UnitReader<R> {
    fn next_unit(&mut self) -> std::io::Result<Unit> {
        let mut buf = [0u8; 8];
        let mut got = 0;
        while got < 8 {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(match got {
            0 => Unit::End,
            8 => Unit::Full(buf),
            _ => Unit::Partial,
        })
    }
}

/// Turns the data stream into cases of 8-byte units, undoing bytecode compression.
struct CaseDecoder {
    compressed: bool,
    cmd: [u8; 8],
    cmd_pos: usize,
    finished: bool,
}

impl CaseDecoder {
    fn new(compressed: bool) -> Self {
        CaseDecoder { compressed, cmd: [0; 8], cmd_pos: 8, finished: false }
    }

    /// Fills `case` with the next case; `false` at a clean end of the data.
    fn read_case<R: Read>(
        &mut self,
        src: &mut UnitReader<R>,
        case: &mut [u8],
        ctx: &DataCtx,
        name: &str,
        case_no: u64,
    ) -> Result<bool> {
        let n_units = case.len() / 8;
        for k in 0..n_units {
            let unit = if self.compressed {
                self.next_compressed(src, ctx, k, name, case_no)?
            } else {
                match next_unit(src, name, case_no)? {
                    Unit::Full(u) => Some(u),
                    Unit::End => None,
                    Unit::Partial => return Err(ends_mid_case(name, case_no)),
                }
            };
            match unit {
                Some(u) => case[k * 8..k * 8 + 8].copy_from_slice(&u),
                None if k == 0 => return Ok(false),
                None => return Err(ends_mid_case(name, case_no)),
            }
        }
        Ok(true)
    }

    /// The next unit of a bytecode-compressed stream; `None` at its end.
    fn next_compressed<R: Read>(
        &mut self,
        src: &mut UnitReader<R>,
        ctx: &DataCtx,
        k: usize,
        name: &str,
        case_no: u64,
    ) -> Result<Option<[u8; 8]>> {
        let is_string = ctx.unit_is_string.get(k).copied().unwrap_or(false);
        loop {
            if self.finished {
                return Ok(None);
            }
            if self.cmd_pos >= 8 {
                match next_unit(src, name, case_no)? {
                    Unit::Full(u) => {
                        self.cmd = u;
                        self.cmd_pos = 0;
                    }
                    Unit::End => {
                        self.finished = true;
                        return Ok(None);
                    }
                    Unit::Partial => return Err(ends_mid_case(name, case_no)),
                }
            }
            let code = self.cmd[self.cmd_pos];
            self.cmd_pos += 1;
            match code {
                0 => continue,
                252 => {
                    self.finished = true;
                    return Ok(None);
                }
                253 => {
                    return match next_unit(src, name, case_no)? {
                        Unit::Full(u) => Ok(Some(u)),
                        _ => Err(ends_mid_case(name, case_no)),
                    };
                }
                254 => {
                    // Eight spaces; in a numeric field treat it as system-missing.
                    return Ok(Some(if is_string { *b"        " } else { f64_bytes(ctx.sysmis, ctx.big) }));
                }
                255 => {
                    return Ok(Some(if is_string { *b"        " } else { f64_bytes(ctx.sysmis, ctx.big) }));
                }
                c => {
                    let x = f64::from(c) - ctx.bias;
                    if is_string {
                        // A compressed number in a string field: zero encodes NUL bytes, anything else is damage.
                        return Ok(Some(if x == 0.0 { [0u8; 8] } else { *b"        " }));
                    }
                    return Ok(Some(f64_bytes(x, ctx.big)));
                }
            }
        }
    }
}

fn next_unit<R: Read>(src: &mut UnitReader<R>, name: &str, case_no: u64) -> Result<Unit> {
    src.next_unit().map_err(|e| Error::data(format!("{name}: case {case_no}: cannot read the compressed data: {e}")))
}

fn ends_mid_case(name: &str, case_no: u64) -> Error {
    Error::data(format!("{name}: the data ends in the middle of case {case_no} (truncated file?)"))
}

/// SPSS seconds since 1582-10-14 to Unix microseconds; `None` if not finite or outside years 1..=9999.
fn spss_to_micros(x: f64) -> Option<i64> {
    if !x.is_finite() {
        return None;
    }
    let micros = ((x - SPSS_TO_UNIX_SECONDS) * 1_000_000.0).round();
    if !(MIN_MICROS..=MAX_MICROS).contains(&micros) {
        return None;
    }
    Some(micros as i64)
}

/// A decoded cell.
enum Cell {
    Null,
    Num(f64),
    Ts(i64),
    Text(String),
}

/// Reads every case from `src` into `sink`; returns the number of cases.
fn read_cases<R: Read>(
    src: R,
    compressed: bool,
    ctx: &DataCtx,
    vars: &[Var],
    sink: &mut Sink,
    rejects: &mut Vec<Reject>,
    opts: &SavOptions,
) -> Result<u64> {
    let name = opts.name.as_str();
    let n_units = ctx.unit_is_string.len();
    if n_units == 0 || vars.is_empty() {
        // A dictionary without variables has no data.
        return Ok(0);
    }
    let mut units = UnitReader { inner: src };
    let mut decoder = CaseDecoder::new(compressed);
    let mut case = vec![0u8; n_units * 8];
    let mut cells: Vec<Cell> = Vec::with_capacity(vars.len());
    let mut text: Vec<u8> = Vec::new();
    let mut n: u64 = 0;
    loop {
        if let Some(limit) = ctx.ncases
            && n >= limit
        {
            break;
        }
        let case_no = n + 1;
        if !decoder.read_case(&mut units, &mut case, ctx, name, case_no)? {
            break;
        }
        n = case_no;
        cells.clear();
        let mut bad_column: Option<usize> = None;
        for (vi, var) in vars.iter().enumerate() {
            let cell = match var.kind {
                Kind::Number | Kind::Timestamp => {
                    let at = var.unit * 8;
                    let x = read_f64(&case[at..at + 8], ctx.big);
                    let system_missing = x.is_nan() || x == ctx.sysmis || x == -f64::MAX;
                    let user_missing = !ctx.keep_user_missing && var.is_user_missing_num(x);
                    if system_missing || user_missing {
                        Cell::Null
                    } else if var.kind == Kind::Timestamp {
                        match spss_to_micros(x) {
                            Some(us) => Cell::Ts(us),
                            None => Cell::Null,
                        }
                    } else {
                        Cell::Num(x)
                    }
                }
                Kind::Text => {
                    text.clear();
                    for &(offset, used) in &var.segments {
                        text.extend_from_slice(&case[offset..offset + used]);
                    }
                    text.truncate(var.width);
                    let value = trim_end_pad(&text);
                    if !ctx.keep_user_missing && var.str_missing.iter().any(|m| m.as_slice() == value) {
                        Cell::Null
                    } else {
                        match decode_cell(ctx.enc, value) {
                            Some(s) => Cell::Text(s),
                            None => {
                                bad_column = Some(vi);
                                break;
                            }
                        }
                    }
                }
            };
            cells.push(cell);
        }
        if let Some(vi) = bad_column {
            rejects.push(Reject {
                source: opts.source.clone(),
                line: case_no,
                reason: "invalid_encoding".into(),
                column: Some(vars[vi].name.clone()),
                value: None,
            });
            continue;
        }
        sink.push(case_no, &mut cells)?;
    }
    if let Some(limit) = ctx.ncases
        && n < limit
    {
        return Err(Error::data(format!(
            "{name}: the header declares {limit} cases but the data ends after {n} (truncated file?)"
        )));
    }
    Ok(n)
}

/// One output column being built.
enum Col {
    Num(Float64Builder),
    Ts(TimestampMicrosecondBuilder),
    Text(StringBuilder),
}

/// Accumulates rows into record batches.
struct Sink {
    schema: SchemaRef,
    lines: UInt64Builder,
    cols: Vec<Col>,
    rows: usize,
    text_bytes: usize,
    batch_rows: usize,
    done: Vec<RecordBatch>,
}

impl Sink {
    fn new(schema: SchemaRef, vars: &[Var], batch_rows: usize) -> Self {
        let cap = batch_rows.min(8192);
        let cols = vars
            .iter()
            .map(|v| match v.kind {
                Kind::Number => Col::Num(Float64Builder::with_capacity(cap)),
                Kind::Timestamp => Col::Ts(TimestampMicrosecondBuilder::with_capacity(cap)),
                Kind::Text => Col::Text(StringBuilder::with_capacity(cap, cap * 8)),
            })
            .collect();
        Sink {
            schema,
            lines: UInt64Builder::with_capacity(cap),
            cols,
            rows: 0,
            text_bytes: 0,
            batch_rows,
            done: Vec::new(),
        }
    }

    /// Appends one row; `cells` holds one cell per column and is emptied.
    fn push(&mut self, line: u64, cells: &mut Vec<Cell>) -> Result<()> {
        self.lines.append_value(line);
        let mut added = 0usize;
        for (col, cell) in self.cols.iter_mut().zip(cells.drain(..)) {
            match col {
                Col::Num(b) => match cell {
                    Cell::Num(x) => b.append_value(x),
                    _ => b.append_null(),
                },
                Col::Ts(b) => match cell {
                    Cell::Ts(x) => b.append_value(x),
                    _ => b.append_null(),
                },
                Col::Text(b) => match cell {
                    Cell::Text(s) => {
                        added += s.len();
                        b.append_value(&s);
                    }
                    _ => b.append_null(),
                },
            }
        }
        self.text_bytes += added;
        self.rows += 1;
        if self.rows >= self.batch_rows || self.text_bytes >= MAX_BATCH_TEXT_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.rows == 0 {
            return Ok(());
        }
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.cols.len() + 1);
        arrays.push(Arc::new(self.lines.finish()));
        for col in self.cols.iter_mut() {
            let array: ArrayRef = match col {
                Col::Num(b) => Arc::new(b.finish()),
                Col::Ts(b) => Arc::new(b.finish()),
                Col::Text(b) => Arc::new(b.finish()),
            };
            arrays.push(array);
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)
            .map_err(|e| Error::internal(format!("SPSS reader built an invalid batch: {e}")))?;
        self.done.push(batch);
        self.rows = 0;
        self.text_bytes = 0;
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<RecordBatch>> {
        self.flush()?;
        Ok(self.done)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// ZLIB-compressed data (.zsav)
// ---------------------------------------------------------------------------------------------------------------

/// One compressed block and the size it must inflate to.
struct ZBlock<'a> {
    data: &'a [u8],
    size: u64,
}

struct ZCurrent<'a> {
    decoder: ZlibDecoder<&'a [u8]>,
    left: u64,
    index: usize,
}

/// The concatenated output of the ZLIB blocks: the bytecode-compressed data stream.
struct ZStream<'a> {
    blocks: Vec<ZBlock<'a>>,
    next: usize,
    current: Option<ZCurrent<'a>>,
}

impl Read for ZStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.current.as_ref().is_some_and(|z| z.left == 0) {
                self.current = None;
            }
            if self.current.is_none() {
                let Some(block) = self.blocks.get(self.next) else { return Ok(0) };
                let decoder = ZlibDecoder::new(block.data);
                let left = block.size;
                self.current = Some(ZCurrent { decoder, left, index: self.next });
                self.next += 1;
                continue;
            }
            if let Some(z) = self.current.as_mut() {
                let want = usize::try_from(z.left).unwrap_or(usize::MAX).min(buf.len());
                let n = z.decoder.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("ZLIB block {} inflates to fewer bytes than the trailer says", z.index + 1),
                    ));
                }
                z.left -= n as u64;
                return Ok(n);
            }
        }
    }
}

/// Reads the ZLIB data header at `start` and the trailer it points to.
fn zlib_stream<'a>(bytes: &'a [u8], start: usize, big: bool, name: &str) -> Result<ZStream<'a>> {
    let bad = |what: &str| Error::data(format!("{name}: ZLIB-compressed data: {what}"));
    let mut c = Cur::new(bytes, start, big);
    let zheader_ofs = c.i64().ok_or_else(|| bad("the data header is truncated"))?;
    let ztrailer_ofs = c.i64().ok_or_else(|| bad("the data header is truncated"))?;
    let ztrailer_len = c.i64().ok_or_else(|| bad("the data header is truncated"))?;
    if usize::try_from(zheader_ofs).ok() != Some(start) {
        return Err(bad("the data header does not give its own position"));
    }
    let data_start = start + 24;
    let t_ofs = usize::try_from(ztrailer_ofs)
        .ok()
        .filter(|o| *o >= data_start)
        .ok_or_else(|| bad("the trailer offset is invalid"))?;
    let t_len =
        usize::try_from(ztrailer_len).ok().filter(|l| *l >= 24).ok_or_else(|| bad("the trailer length is invalid"))?;
    let t_end = t_ofs
        .checked_add(t_len)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(|| bad("the trailer lies beyond the end of the file (truncated file?)"))?;
    let mut t = Cur::new(&bytes[t_ofs..t_end], 0, big);
    let _bias = t.i64().ok_or_else(|| bad("the trailer is truncated"))?;
    let _zero = t.i64().ok_or_else(|| bad("the trailer is truncated"))?;
    let _block_size = t.i32().ok_or_else(|| bad("the trailer is truncated"))?;
    let n_blocks = t.i32().ok_or_else(|| bad("the trailer is truncated"))?;
    let n_blocks = usize::try_from(n_blocks)
        .ok()
        .filter(|n| n.checked_mul(24).is_some_and(|b| b <= t.remaining()))
        .ok_or_else(|| bad("the trailer's block count is invalid"))?;
    let mut blocks = Vec::with_capacity(n_blocks);
    for i in 0..n_blocks {
        let _uncompressed_ofs = t.i64().ok_or_else(|| bad("the trailer is truncated"))?;
        let compressed_ofs = t.i64().ok_or_else(|| bad("the trailer is truncated"))?;
        let uncompressed_size = t.i32().ok_or_else(|| bad("the trailer is truncated"))?;
        let compressed_size = t.i32().ok_or_else(|| bad("the trailer is truncated"))?;
        let offset = usize::try_from(compressed_ofs).ok().filter(|o| *o >= data_start);
        let length = usize::try_from(compressed_size).ok();
        let size = u64::try_from(uncompressed_size).ok();
        match (offset, length, size) {
            (Some(o), Some(l), Some(size)) if o.checked_add(l).is_some_and(|e| e <= t_ofs) => {
                blocks.push(ZBlock { data: &bytes[o..o + l], size });
            }
            _ => return Err(bad(&format!("the descriptor of block {} is invalid", i + 1))),
        }
    }
    Ok(ZStream { blocks, next: 0, current: None })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Float64Array, StringArray, TimestampMicrosecondArray};
    use diaspora_core::ErrorKind;

    const SAMPLE: &[u8] = include_bytes!("../tests/data/spss/sample.sav");
    const SAMPLE_Z: &[u8] = include_bytes!("../tests/data/spss/sample.zsav");
    const SAMPLE_CSV: &str = include_str!("../tests/data/spss/sample.csv");
    const SAMPLE_MISSING: &[u8] = include_bytes!("../tests/data/spss/sample_missing.sav");
    const NUM_NA: &[u8] = include_bytes!("../tests/data/spss/labelled-num-na.sav");
    const STR_LABELS: &[u8] = include_bytes!("../tests/data/spss/labelled-str.sav");
    const UMLAUTS: &[u8] = include_bytes!("../tests/data/spss/umlauts.sav");
    const MISSING_CHAR: &[u8] = include_bytes!("../tests/data/spss/missing_char.sav");
    const HEBREWS: &[u8] = include_bytes!("../tests/data/spss/hebrews.sav");
    const DATETIME: &[u8] = include_bytes!("../tests/data/spss/datetime.sav");

    fn opts(name: &str) -> SavOptions {
        SavOptions { source: "s".into(), name: name.into(), batch_rows: 3, encoding: None, keep_user_missing: false }
    }

    fn read(bytes: &[u8], name: &str) -> ReadOutput {
        read_sav(bytes, &opts(name)).unwrap()
    }

    fn read_keep(bytes: &[u8], name: &str) -> ReadOutput {
        let mut o = opts(name);
        o.keep_user_missing = true;
        read_sav(bytes, &o).unwrap()
    }

    fn floats(t: &Table, col: &str) -> Vec<Option<f64>> {
        let mut out = Vec::new();
        for b in &t.batches {
            let a = b.column_by_name(col).unwrap().as_any().downcast_ref::<Float64Array>().unwrap();
            for i in 0..a.len() {
                out.push(if a.is_null(i) { None } else { Some(a.value(i)) });
            }
        }
        out
    }

    fn texts(t: &Table, col: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in &t.batches {
            let a = b.column_by_name(col).unwrap().as_any().downcast_ref::<StringArray>().unwrap();
            for i in 0..a.len() {
                out.push(if a.is_null(i) { None } else { Some(a.value(i).to_owned()) });
            }
        }
        out
    }

    /// Timestamps as `YYYY-MM-DDTHH:MM:SS`.
    fn stamps(t: &Table, col: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for b in &t.batches {
            let a = b.column_by_name(col).unwrap().as_any().downcast_ref::<TimestampMicrosecondArray>().unwrap();
            for i in 0..a.len() {
                if a.is_null(i) {
                    out.push(None);
                } else {
                    let secs = a.value(i).div_euclid(1_000_000);
                    let text = diaspora_core::rfc3339_from_unix(secs);
                    out.push(Some(text.trim_end_matches('Z').to_owned()));
                }
            }
        }
        out
    }

    fn meta(t: &Table, col: &str, key: &str) -> Option<String> {
        t.schema.field_with_name(col).unwrap().metadata().get(key).cloned()
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    fn some(v: &[f64]) -> Vec<Option<f64>> {
        v.iter().map(|x| Some(*x)).collect()
    }

    /// `H:MM:SS.ffffff` to seconds.
    fn hms(s: &str) -> f64 {
        let parts: Vec<&str> = s.split(':').collect();
        let h: f64 = parts[0].parse().unwrap();
        let m: f64 = parts[1].parse().unwrap();
        let sec: f64 = parts[2].parse().unwrap();
        h * 3600.0 + m * 60.0 + sec
    }

    #[test]
    fn sample_sav_matches_its_csv() {
        let out = read(SAMPLE, "sample.sav");
        assert_eq!(out.rows_read, 5);
        assert_eq!(out.table.num_rows(), 5);
        assert!(out.rejects.is_empty());
        assert_eq!(out.table.batches.len(), 2, "batch_rows = 3");
        let t = &out.table;
        assert_eq!(t.column_names(), vec!["mychar", "mynum", "mydate", "dtime", "mylabl", "myord", "mytime"]);
        assert_eq!(diaspora_core::lines_of(&t.batches[0]), vec![1, 2, 3]);
        assert_eq!(diaspora_core::lines_of(&t.batches[1]), vec![4, 5]);

        let csv = SAMPLE_CSV.trim_start_matches('\u{feff}');
        let mut lines = csv.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        assert_eq!(header, t.column_names());
        let rows: Vec<Vec<&str>> = lines.filter(|l| !l.is_empty()).map(|l| l.split(',').collect()).collect();
        assert_eq!(rows.len(), 5);

        let mychar = texts(t, "mychar");
        let mynum = floats(t, "mynum");
        let mydate = stamps(t, "mydate");
        let dtime = stamps(t, "dtime");
        let mylabl = floats(t, "mylabl");
        let myord = floats(t, "myord");
        let mytime = floats(t, "mytime");
        for (i, r) in rows.iter().enumerate() {
            assert_eq!(mychar[i].as_deref(), Some(r[0]), "row {i}");
            assert!(close(mynum[i], r[1].parse().unwrap()), "row {i}: {:?} vs {}", mynum[i], r[1]);
            if r[2].is_empty() {
                assert_eq!(mydate[i], None, "row {i}");
            } else {
                assert_eq!(mydate[i], Some(format!("{}T00:00:00", r[2])), "row {i}");
            }
            if r[3].is_empty() {
                assert_eq!(dtime[i], None, "row {i}");
            } else {
                assert_eq!(dtime[i].as_deref(), Some(&r[3][..19]), "row {i}");
            }
            assert!(close(mylabl[i], r[4].parse().unwrap()), "row {i}");
            assert!(close(myord[i], r[5].parse().unwrap()), "row {i}");
            if r[6].is_empty() {
                assert_eq!(mytime[i], None, "row {i}");
            } else {
                assert!(close(mytime[i], hms(r[6])), "row {i}");
            }
        }
        // The same values written out, in case the CSV comparison above is ever loosened.
        assert_eq!(mynum, vec![Some(1.1), Some(1.2), Some(-1000.3), Some(-1.4), Some(1000.3)]);
        assert_eq!(mydate[3].as_deref(), Some("1583-01-01T00:00:00"));
        assert_eq!(dtime[0].as_deref(), Some("2018-05-06T10:10:10"));
        assert_eq!(mytime, vec![Some(36610.0), Some(83410.0), Some(0.0), Some(58210.0), None]);
    }

    #[test]
    fn sample_types_and_metadata() {
        let out = read(SAMPLE, "sample.sav");
        let t = &out.table;
        let dt = |c: &str| t.schema.field_with_name(c).unwrap().data_type().clone();
        assert_eq!(dt("mychar"), DataType::Utf8);
        assert_eq!(dt("mynum"), DataType::Float64);
        assert_eq!(dt("mydate"), DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(dt("dtime"), DataType::Timestamp(TimeUnit::Microsecond, None));
        assert_eq!(dt("mytime"), DataType::Float64);
        assert_eq!(t.schema.field(0).name(), LINE_COL);
        assert_eq!(meta(t, "mylabl", "spss.value_labels").as_deref(), Some(r#"{"1":"Male","2":"Female"}"#));
        assert_eq!(meta(t, "myord", "spss.value_labels").as_deref(), Some(r#"{"1":"low","2":"medium","3":"high"}"#));
        assert_eq!(meta(t, "mynum", "spss.value_labels"), None);
        assert_eq!(meta(t, "mychar", "spss.label").as_deref(), Some("character"));
        assert_eq!(meta(t, "dtime", "spss.label").as_deref(), Some("datetime"));
        assert_eq!(meta(t, "mychar", "spss.format").as_deref(), Some("A1"));
        assert_eq!(meta(t, "mynum", "spss.format").as_deref(), Some("F8.2"));
        assert_eq!(meta(t, "mydate", "spss.format").as_deref(), Some("EDATE10"));
        assert_eq!(meta(t, "dtime", "spss.format").as_deref(), Some("DATETIME20"));
        assert_eq!(meta(t, "mytime", "spss.format").as_deref(), Some("TIME8"));
        assert_eq!(meta(t, "mychar", "spss.measure").as_deref(), Some("nominal"));
        assert_eq!(meta(t, "myord", "spss.measure").as_deref(), Some("ordinal"));
        assert_eq!(meta(t, "mynum", "spss.measure").as_deref(), Some("scale"));
        assert_eq!(meta(t, "mynum", "spss.missing"), None);
    }

    #[test]
    fn zsav_reads_the_same_as_sav() {
        let a = read(SAMPLE, "sample.sav");
        let b = read(SAMPLE_Z, "sample.zsav");
        assert_eq!(b.rows_read, 5);
        assert_eq!(a.table.schema, b.table.schema);
        assert_eq!(a.table.batches, b.table.batches);
    }

    #[test]
    fn user_missing_values_are_null_unless_kept() {
        let out = read(SAMPLE_MISSING, "sample_missing.sav");
        assert_eq!(out.rows_read, 7);
        assert_eq!(out.table.num_rows(), 7);
        let t = &out.table;
        let mut mynum = some(&[1.1, 1.2, -1000.3, -1.4, 1000.3]);
        mynum.extend([None, None]);
        assert_eq!(floats(t, "mynum"), mynum);
        let mut mylabl = some(&[1.0, 2.0, 1.0, 2.0, 1.0]);
        mylabl.extend([None, None]);
        assert_eq!(floats(t, "mylabl"), mylabl);
        let mut myord = some(&[1.0, 2.0, 3.0, 1.0, 1.0]);
        myord.extend([None, None]);
        assert_eq!(floats(t, "myord"), myord);
        let chars: Vec<Option<String>> =
            ["a", "b", "c", "d", "e", "Z", ""].iter().map(|s| Some((*s).to_owned())).collect();
        assert_eq!(texts(t, "mychar"), chars, "an all-spaces string is the empty string, not NULL");
        assert_eq!(meta(t, "mynum", "spss.missing").as_deref(), Some(r#"{"range":[2000,3000],"values":[-1]}"#));
        assert_eq!(meta(t, "myord", "spss.missing").as_deref(), Some(r#"{"values":[-1,-2,-3]}"#));
        assert_eq!(meta(t, "mylabl", "spss.missing").as_deref(), Some(r#"{"values":[-1]}"#));
        assert_eq!(
            meta(t, "mylabl", "spss.value_labels").as_deref(),
            Some(r#"{"-1":"undetermined","1":"Male","2":"Female"}"#)
        );

        let kept = read_keep(SAMPLE_MISSING, "sample_missing.sav");
        let t = &kept.table;
        let mut mynum = some(&[1.1, 1.2, -1000.3, -1.4, 1000.3]);
        mynum.extend([Some(-1.0), Some(2500.0)]);
        assert_eq!(floats(t, "mynum"), mynum);
        let mut mylabl = some(&[1.0, 2.0, 1.0, 2.0, 1.0]);
        mylabl.extend([Some(-1.0), None]);
        assert_eq!(floats(t, "mylabl"), mylabl, "system-missing stays NULL");
        let mut myord = some(&[1.0, 2.0, 3.0, 1.0, 1.0]);
        myord.extend([Some(-1.0), Some(-3.0)]);
        assert_eq!(floats(t, "myord"), myord);
    }

    #[test]
    fn haven_labelled_numeric_with_user_missing_nine() {
        let out = read(NUM_NA, "labelled-num-na.sav");
        assert_eq!(out.rows_read, 2);
        let t = &out.table;
        assert_eq!(t.column_names(), vec!["VAR00002"]);
        assert_eq!(floats(t, "VAR00002"), vec![Some(1.0), None]);
        assert_eq!(meta(t, "VAR00002", "spss.label").as_deref(), Some("Only one value"));
        assert_eq!(meta(t, "VAR00002", "spss.value_labels").as_deref(), Some(r#"{"1":"This is one"}"#));
        assert_eq!(meta(t, "VAR00002", "spss.missing").as_deref(), Some(r#"{"values":[9]}"#));
        assert_eq!(meta(t, "VAR00002", "spss.format").as_deref(), Some("F8.0"));
        let kept = read_keep(NUM_NA, "labelled-num-na.sav");
        assert_eq!(floats(&kept.table, "VAR00002"), vec![Some(1.0), Some(9.0)]);
    }

    #[test]
    fn haven_string_value_labels() {
        let out = read(STR_LABELS, "labelled-str.sav");
        let t = &out.table;
        assert_eq!(texts(t, "gender"), vec![Some("M".to_owned()), Some("F".to_owned())]);
        assert_eq!(meta(t, "gender", "spss.value_labels").as_deref(), Some(r#"{"F":"Female","M":"Male"}"#));
        assert_eq!(meta(t, "gender", "spss.format").as_deref(), Some("A1"));
    }

    #[test]
    fn haven_umlauts_in_labels() {
        let out = read(UMLAUTS, "umlauts.sav");
        let t = &out.table;
        assert_eq!(floats(t, "var1"), vec![Some(1.0), Some(2.0), Some(1.0), Some(3.0)]);
        assert_eq!(meta(t, "var1", "spss.label").as_deref(), Some("This is an ä-umlaut"));
        assert_eq!(
            meta(t, "var1", "spss.value_labels").as_deref(),
            Some(r#"{"1":"the ä umlaut","2":"the ü umlaut","3":"the ö umlaut"}"#)
        );
    }

    #[test]
    fn string_user_missing() {
        let out = read(MISSING_CHAR, "missing_char.sav");
        assert_eq!(texts(&out.table, "mychar"), vec![None, Some("a".to_owned())]);
        assert_eq!(meta(&out.table, "mychar", "spss.missing").as_deref(), Some(r#"{"values":["Z"]}"#));
        assert_eq!(meta(&out.table, "mychar", "spss.value_labels").as_deref(), Some(r#"{"a":"labeled"}"#));
        let kept = read_keep(MISSING_CHAR, "missing_char.sav");
        assert_eq!(texts(&kept.table, "mychar"), vec![Some("Z".to_owned()), Some("a".to_owned())]);
    }

    #[test]
    fn hebrew_long_name_from_a_truncated_short_name() {
        let out = read(HEBREWS, "hebrews.sav");
        assert_eq!(out.rows_read, 99);
        assert_eq!(out.table.num_rows(), 99);
        assert_eq!(out.table.column_names(), vec!["ותק_ב"]);
        let v = floats(&out.table, "ותק_ב");
        assert_eq!(&v[..6], &[Some(33.0), Some(34.0), Some(15.0), Some(35.0), Some(28.0), Some(0.0)]);
        assert_eq!(meta(&out.table, "ותק_ב", "spss.measure").as_deref(), Some("nominal"));
    }

    #[test]
    fn out_of_range_dates_are_null_not_a_panic() {
        let out = read(DATETIME, "datetime.sav");
        assert_eq!(out.rows_read, 2);
        let t = &out.table;
        assert_eq!(t.column_names(), vec!["date", "date.posix", "time"]);
        assert_eq!(
            stamps(t, "date"),
            vec![Some("2014-09-22T00:00:00".to_owned()), Some("2014-09-23T00:00:00".to_owned())]
        );
        let posix = stamps(t, "date.posix");
        assert_eq!(posix[0], None, "year ~201000 is out of range");
        assert_eq!(posix[1].as_deref(), Some("2014-09-23T15:59:20"));
        let time = floats(t, "time");
        assert!(close(time[0], 43870.09) && close(time[1], 57560.01));
        assert_eq!(meta(t, "time", "spss.format").as_deref(), Some("TIME11.2"));
    }

    #[test]
    fn truncated_and_foreign_input_is_an_error() {
        let cases: Vec<&[u8]> = vec![
            &SAMPLE[..300],
            &SAMPLE[..SAMPLE.len() - 5],
            &SAMPLE_Z[..SAMPLE_Z.len() - 5],
            &SAMPLE[..100],
            &b""[..],
            &b"not an SPSS file at all, just some text"[..],
        ];
        for bytes in cases {
            let e = read_sav(bytes, &opts("cut.sav")).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Data, "{e}");
            assert!(e.message.contains("cut.sav"), "{e}");
        }
        let e = read_sav(&SAMPLE[..SAMPLE.len() - 5], &opts("cut.sav")).unwrap_err();
        assert!(e.message.contains("case 5"), "{e}");
    }

    #[test]
    fn every_prefix_is_an_error_and_no_damage_panics() {
        for full in [SAMPLE, SAMPLE_Z, SAMPLE_MISSING, HEBREWS, DATETIME] {
            for n in 0..full.len() {
                assert!(read_sav(&full[..n], &opts("p.sav")).is_err(), "prefix of {n} bytes");
            }
            for i in 0..full.len() {
                for v in [0x00u8, 0xff, 0x7f] {
                    let mut damaged = full.to_vec();
                    damaged[i] = v;
                    let _ = read_sav(&damaged, &opts("d.sav"));
                }
            }
        }
    }

    #[test]
    fn encoding_override_and_unknown_encoding() {
        let mut o = opts("umlauts.sav");
        o.encoding = Some("windows-1252".into());
        let out = read_sav(UMLAUTS, &o).unwrap();
        // UTF-8 bytes read as windows-1252 give mojibake, proving the override is used.
        assert_eq!(meta(&out.table, "var1", "spss.label").as_deref(), Some("This is an Ã¤-umlaut"));
        o.encoding = Some("no-such-encoding".into());
        let e = read_sav(UMLAUTS, &o).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Config);
    }

    #[test]
    fn invalid_utf8_in_a_string_cell_is_a_reject() {
        // labelled-str.sav is UTF-8 and bytecode-compressed with the one-byte strings stored raw (code 253):
        // replace the 'M' of case 1 by a lone continuation byte.
        let mut bytes = STR_LABELS.to_vec();
        let data_start = parse_dictionary(&bytes, "x").unwrap().data_start;
        let at = bytes[data_start..].iter().position(|b| *b == b'M').map(|p| p + data_start).unwrap();
        bytes[at] = 0x80;
        let out = read_sav(&bytes, &opts("bad.sav")).unwrap();
        assert_eq!(out.rows_read, 2);
        assert_eq!(out.table.num_rows(), 1);
        assert_eq!(out.rejects.len(), 1);
        assert_eq!(out.rejects[0].line, 1);
        assert_eq!(out.rejects[0].reason, "invalid_encoding");
        assert_eq!(out.rejects[0].column.as_deref(), Some("gender"));
        assert_eq!(diaspora_core::lines_of(&out.table.batches[0]), vec![2]);
    }

    #[test]
    fn helpers() {
        assert_eq!(format_name(0x050802), Some("F8.2".to_owned()));
        assert_eq!(format_name(0x012800), Some("A40".to_owned()));
        assert_eq!(format_name(0x260a00), Some("EDATE10".to_owned()));
        assert_eq!(format_name(0xff0000), None);
        assert_eq!(number_text(1.0), "1");
        assert_eq!(number_text(1.5), "1.5");
        assert_eq!(number_text(-3.0), "-3");
        assert_eq!(spss_to_micros(SPSS_TO_UNIX_SECONDS), Some(0));
        assert_eq!(spss_to_micros(f64::NAN), None);
        assert_eq!(spss_to_micros(1e300), None);
        assert_eq!(utf8_complete_prefix(&"aä".as_bytes()[..2]), b"a");
        assert_eq!(encoding_for_codepage(1251), Some(encoding_rs::WINDOWS_1251));
        assert_eq!(encoding_for_codepage(20866), Some(encoding_rs::KOI8_R));
        assert_eq!(encoding_for_codepage(65001), Some(encoding_rs::UTF_8));
    }
}
