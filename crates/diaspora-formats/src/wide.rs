//! Indicator files: the World Bank WDI bulk CSV, the IMF WEO "xls" (tab-separated text) and SDMX-CSV 1.0/2.x.
//! Each becomes observations `(iso3, year, indicator, value)`; a cell that is not a number is a reject with its
//! line and column, never a silent zero.

use crate::text::decode_with;
use diaspora_core::{Error, Reject, Result};

/// One observation of an indicator file.
#[derive(Debug, Clone, PartialEq)]
pub struct LongObservation {
    /// Physical line of the observation's row.
    pub line: u64,
    /// Country (or aggregate) code as the file has it.
    pub iso3: String,
    /// Year.
    pub year: i32,
    /// Indicator code.
    pub indicator: String,
    /// Value; `None` where the file has none.
    pub value: Option<f64>,
    /// Whether the value is a projection (IMF WEO: after "Estimates Start After").
    pub forecast: Option<bool>,
}

/// What an indicator reader returns.
pub type Observations = (Vec<LongObservation>, Vec<Reject>);

fn records(text: &[u8], delimiter: u8) -> csv::ByteRecordsIntoIter<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text)
        .into_byte_records()
}

fn field(rec: &csv::ByteRecord, i: usize) -> &str {
    rec.get(i).and_then(|f| std::str::from_utf8(f).ok()).unwrap_or("").trim()
}

/// Parses a number written with thousands separators (`9,555.404`) or a decimal comma (`12,4` when
/// `decimal_comma`); `n/a`, `..`, `:` and empty are missing.
fn number(text: &str, decimal_comma: bool) -> std::result::Result<Option<f64>, ()> {
    let t = text.trim();
    if t.is_empty() || matches!(t, "n/a" | "NA" | ".." | ":" | "--") {
        return Ok(None);
    }
    let cleaned = if decimal_comma { t.replace('.', "").replace(',', ".") } else { t.replace(',', "") };
    cleaned.parse::<f64>().map(Some).map_err(|_| ())
}

fn reject(source: &str, line: u64, reason: &str, column: &str, value: &str) -> Reject {
    Reject {
        source: source.into(),
        line,
        reason: reason.into(),
        column: Some(column.into()),
        value: Some(value.chars().take(40).collect()),
    }
}

/// World Bank WDI bulk CSV (`API_<IND>_DS2_…csv`): UTF-8 BOM, a 4-line preamble, then `Country Name, Country Code,
/// Indicator Name, Indicator Code, 1960, …` with a trailing empty column; empty cells are missing.
pub fn read_wdi_csv(bytes: &[u8], source: &str, name: &str) -> Result<Observations> {
    let (text, _) = decode_with(bytes, None, name)?;
    let mut header: Option<(u64, Vec<(usize, i32)>)> = None;
    let mut out = Vec::new();
    let mut rejects = Vec::new();
    for rec in records(&text, b',') {
        let rec = rec.map_err(|e| Error::data(format!("{name}: unreadable CSV: {e}")))?;
        let line = rec.position().map_or(0, |p| p.line());
        match &header {
            None => {
                if field(&rec, 0) == "Country Name" && field(&rec, 3) == "Indicator Code" {
                    let years =
                        (4..rec.len()).filter_map(|i| field(&rec, i).parse::<i32>().ok().map(|y| (i, y))).collect();
                    header = Some((line, years));
                }
            }
            Some((_, years)) => {
                let (iso3, code) = (field(&rec, 1), field(&rec, 3));
                if iso3.is_empty() {
                    continue;
                }
                for &(i, year) in years {
                    match number(field(&rec, i), false) {
                        Ok(value) => out.push(LongObservation {
                            line,
                            iso3: iso3.into(),
                            year,
                            indicator: code.into(),
                            value,
                            forecast: None,
                        }),
                        Err(()) => {
                            rejects.push(reject(source, line, "value_invalid", &year.to_string(), field(&rec, i)))
                        }
                    }
                }
            }
        }
    }
    if header.is_none() {
        return Err(Error::data(format!(
            "{name}: no \"Country Name\",…,\"Indicator Code\" header line: not a WDI bulk CSV"
        )));
    }
    Ok((out, rejects))
}

/// IMF World Economic Outlook download (`WEO…all.xls`, tab-separated UTF-8 text): one row per country × subject,
/// year columns, `n/a` for missing, thousands separators, projections after "Estimates Start After".
pub fn read_imf_weo(bytes: &[u8], source: &str, name: &str) -> Result<Observations> {
    let (text, _) = decode_with(bytes, None, name)?;
    let mut it = records(&text, b'\t');
    let head = it
        .next()
        .ok_or_else(|| Error::data(format!("{name}: empty file")))?
        .map_err(|e| Error::data(format!("{name}: unreadable header: {e}")))?;
    let col = |n: &str| (0..head.len()).find(|&i| field(&head, i) == n);
    let (iso, subject) = match (col("ISO"), col("WEO Subject Code")) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(Error::data(format!("{name}: no ISO / WEO Subject Code columns: not a WEO file"))),
    };
    let est = col("Estimates Start After");
    let years: Vec<(usize, i32)> =
        (0..head.len()).filter_map(|i| field(&head, i).parse::<i32>().ok().map(|y| (i, y))).collect();
    let mut out = Vec::new();
    let mut rejects = Vec::new();
    for rec in it {
        let rec = rec.map_err(|e| Error::data(format!("{name}: unreadable row: {e}")))?;
        let line = rec.position().map_or(0, |p| p.line());
        let iso3 = field(&rec, iso);
        if iso3.is_empty() {
            // The WEO file ends with a source note row.
            continue;
        }
        let after: Option<i32> = est.and_then(|e| field(&rec, e).parse().ok());
        for &(i, year) in &years {
            match number(field(&rec, i), false) {
                Ok(value) => out.push(LongObservation {
                    line,
                    iso3: iso3.into(),
                    year,
                    indicator: field(&rec, subject).into(),
                    value,
                    forecast: after.map(|a| year > a),
                }),
                Err(()) => rejects.push(reject(source, line, "value_invalid", &year.to_string(), field(&rec, i))),
            }
        }
    }
    Ok((out, rejects))
}

/// SDMX-CSV 1.0 (`DATAFLOW,…`) and 2.x (`STRUCTURE,STRUCTURE_ID,…`). The separator is the character after the first
/// header word; a `;` separator implies a decimal comma. The country is `REF_AREA` (or `geo`), the year the first four
/// digits of an annual `TIME_PERIOD`, the indicator the value of `indicator_dim` (default: the dataflow id).
/// Non-annual periods are rejected as `not_annual`.
pub fn read_sdmx_csv(bytes: &[u8], source: &str, name: &str, indicator_dim: Option<&str>) -> Result<Observations> {
    let (text, _) = decode_with(bytes, None, name)?;
    let first = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let word_len = first
        .iter()
        .position(|b| !(b.is_ascii_alphanumeric() || *b == b'_' || *b == b'[' || *b == b']'))
        .unwrap_or(first.len());
    let word = String::from_utf8_lossy(&first[..word_len]).to_string();
    if !(word.starts_with("DATAFLOW") || word.starts_with("STRUCTURE")) {
        return Err(Error::data(format!("{name}: first header is {word:?}, not DATAFLOW or STRUCTURE: not SDMX-CSV")));
    }
    let sep = first.get(word_len).copied().unwrap_or(b',');
    let decimal_comma = sep == b';';
    let mut it = records(&text, sep);
    let head = it
        .next()
        .ok_or_else(|| Error::data(format!("{name}: empty")))?
        .map_err(|e| Error::data(format!("{name}: {e}")))?;
    // With labels=both, headers read "REF_AREA: Reference area"; keep the id part.
    let names: Vec<String> =
        (0..head.len()).map(|i| field(&head, i).split(": ").next().unwrap_or("").trim().to_owned()).collect();
    let find = |n: &str| names.iter().position(|x| x.eq_ignore_ascii_case(n));
    let area = find("REF_AREA")
        .or_else(|| find("geo"))
        .ok_or_else(|| Error::data(format!("{name}: no REF_AREA or geo column")))?;
    let time = find("TIME_PERIOD").ok_or_else(|| Error::data(format!("{name}: no TIME_PERIOD column")))?;
    let value = find("OBS_VALUE").ok_or_else(|| Error::data(format!("{name}: no OBS_VALUE column")))?;
    let ind = match indicator_dim {
        Some(d) => Some(find(d).ok_or_else(|| Error::config(format!("{name}: no column {d:?} for the indicator")))?),
        None => None,
    };
    let flow = if word.starts_with("DATAFLOW") { 0 } else { find("STRUCTURE_ID").unwrap_or(1) };
    let mut out = Vec::new();
    let mut rejects = Vec::new();
    for rec in it {
        let rec = rec.map_err(|e| Error::data(format!("{name}: unreadable row: {e}")))?;
        let line = rec.position().map_or(0, |p| p.line());
        let period = field(&rec, time);
        // With labels=both a cell reads "DE: Germany"; keep the code.
        let code = |i: usize| field(&rec, i).split(": ").next().unwrap_or("").trim().to_owned();
        let year = match (period.len() == 4, period.get(..4).and_then(|y| y.parse::<i32>().ok())) {
            (true, Some(y)) => y,
            _ => {
                rejects.push(reject(source, line, "not_annual", "TIME_PERIOD", period));
                continue;
            }
        };
        match number(field(&rec, value), decimal_comma) {
            Ok(v) => out.push(LongObservation {
                line,
                iso3: code(area),
                year,
                indicator: ind.map_or_else(|| code(flow), code),
                value: v,
                forecast: None,
            }),
            Err(()) => rejects.push(reject(source, line, "value_invalid", "OBS_VALUE", field(&rec, value))),
        }
    }
    Ok((out, rejects))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wdi_bulk_csv_keeps_every_year_and_armenia_2022() {
        let bytes = include_bytes!("../../../data/reference/wdi-csv/API_NY.GDP.MKTP.KD.ZG_DS2_en_csv_v2_2788350.csv");
        let (obs, rejects) = read_wdi_csv(bytes, "wdi", "API_NY.GDP.MKTP.KD.ZG.csv").unwrap();
        assert!(rejects.is_empty());
        // 266 economies and aggregates × 64 years (1960–2023).
        assert_eq!(obs.len(), 266 * 64);
        let arm = obs.iter().find(|o| o.iso3 == "ARM" && o.year == 2022).unwrap();
        assert_eq!(format!("{:.1}", arm.value.unwrap()), "12.6");
        assert_eq!(arm.indicator, "NY.GDP.MKTP.KD.ZG");
        assert!(obs.iter().any(|o| o.iso3 == "ARM" && o.year == 1960 && o.value.is_none()), "empty cells are missing");
    }

    #[test]
    fn imf_weo_text_marks_projections_and_missing_values() {
        let bytes = include_bytes!("../tests/data/imf-weo/WEOApr2024all_.xls");
        let (obs, rejects) = read_imf_weo(bytes, "weo", "WEOApr2024all_.xls").unwrap();
        assert!(rejects.is_empty(), "{rejects:?}");
        assert!(obs.iter().all(|o| o.iso3 == "AFG"));
        let series: std::collections::BTreeSet<&str> = obs.iter().map(|o| o.indicator.as_str()).collect();
        assert_eq!(obs.len(), series.len() * 50, "50 year columns 1980–2029 per series");
        assert!(series.contains("NGDP_R"));
        assert!(obs.iter().any(|o| o.value.is_none()), "n/a cells are missing");
        let f: Vec<_> = obs.iter().filter(|o| o.indicator == "NGDP_R").collect();
        assert!(f.iter().any(|o| o.forecast == Some(true)) && f.iter().any(|o| o.forecast == Some(false)));
    }

    #[test]
    fn sdmx_csv_1_and_2_with_decimal_commas() {
        let v1 = b"DATAFLOW,REF_AREA,INDICATOR,TIME_PERIOD,OBS_VALUE,OBS_STATUS\nIMF:WEO(1.0),GEO,NGDP_RPCH,2022,10.4,A\nIMF:WEO(1.0),ARM,NGDP_RPCH,2022-Q1,8.1,A\n";
        let (obs, rej) = read_sdmx_csv(v1, "s", "v1.csv", Some("INDICATOR")).unwrap();
        assert_eq!(obs.len(), 1);
        assert_eq!(
            (obs[0].iso3.as_str(), obs[0].year, obs[0].indicator.as_str(), obs[0].value),
            ("GEO", 2022, "NGDP_RPCH", Some(10.4))
        );
        assert_eq!(rej[0].reason, "not_annual");
        let v2 = "STRUCTURE;STRUCTURE_ID;ACTION;REF_AREA: Reference area;TIME_PERIOD;OBS_VALUE\ndataflow;ESTAT:NA_MAIN(1.6.0);M;DE: Germany;2014;12,4\ndataflow;ESTAT:NA_MAIN(1.6.0);M;FR;2015;abc\n";
        let (obs, rej) = read_sdmx_csv(v2.as_bytes(), "s", "v2.csv", None).unwrap();
        assert_eq!(
            (obs[0].iso3.as_str(), obs[0].value, obs[0].indicator.as_str()),
            ("DE", Some(12.4), "ESTAT:NA_MAIN(1.6.0)")
        );
        assert_eq!(rej[0].reason, "value_invalid");
        assert!(read_sdmx_csv(b"a,b\n1,2\n", "s", "x.csv", None).is_err());
    }
}
