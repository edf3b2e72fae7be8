use diaspora_core::{Error, Result};
use serde_json::Value;

/// One page of a World Bank Indicators API v2 answer.
#[derive(Debug, Clone, PartialEq)]
pub struct WbPage {
    /// 1-based page number.
    pub page: u64,
    /// Total pages.
    pub pages: u64,
    /// Records per page.
    pub per_page: u64,
    /// Total records across pages.
    pub total: u64,
    /// Data vintage (`lastupdated`).
    pub lastupdated: Option<String>,
    /// The records of this page.
    pub records: Vec<WbRecord>,
}

/// One observation.
#[derive(Debug, Clone, PartialEq)]
pub struct WbRecord {
    /// Indicator code.
    pub indicator: String,
    /// ISO3 (or World Bank) code; empty for some aggregates.
    pub iso3: String,
    /// Year (annual series only).
    pub year: i32,
    /// Value; `None` when the World Bank has none.
    pub value: Option<f64>,
}

/// Parses one `[meta, records]` page. `what` names the request in errors (indicator and page).
///
/// Recognises the HTTP-200 error array (`[{"message":[…]}]`) and HTML/XML error pages and turns them into data
/// errors naming `what`. Meta fields may be numbers or strings.
pub fn parse_worldbank_page(bytes: &[u8], what: &str) -> Result<WbPage> {
    let text = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = text.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'<') {
        return Err(Error::data(format!("{what}: the World Bank API returned an HTML/XML error page, not JSON")));
    }
    let v: Value = serde_json::from_slice(text)
        .map_err(|e| Error::data(format!("{what}: invalid JSON at line {}, column {}", e.line(), e.column())))?;
    let arr = v.as_array().ok_or_else(|| Error::data(format!("{what}: expected a JSON array [meta, records]")))?;
    let meta = arr.first().ok_or_else(|| Error::data(format!("{what}: empty JSON array")))?;
    if let Some(messages) = meta.get("message").and_then(Value::as_array) {
        let text: Vec<String> = messages
            .iter()
            .map(|m| {
                let field = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                format!("{} {}: {}", field("id"), field("key"), field("value"))
            })
            .collect();
        return Err(Error::data(format!("{what}: World Bank API error: {}", text.join("; "))));
    }
    let num = |k: &str| -> Result<u64> {
        match meta.get(k) {
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        }
        .ok_or_else(|| Error::data(format!("{what}: meta field {k:?} is missing or not a number")))
    };
    let (page, pages, per_page, total) = (num("page")?, num("pages")?, num("per_page")?, num("total")?);
    let lastupdated = meta.get("lastupdated").and_then(Value::as_str).map(str::to_owned);
    let mut records = Vec::new();
    match arr.get(1) {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, r) in items.iter().enumerate() {
                let at = |k: &str| format!("{what}: record {} field {k:?}", i + 1);
                let indicator = r
                    .pointer("/indicator/id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| Error::data(at("indicator.id")))?
                    .to_owned();
                let iso3 = r.get("countryiso3code").and_then(Value::as_str).unwrap_or("").to_owned();
                let date = r.get("date").and_then(Value::as_str).ok_or_else(|| Error::data(at("date")))?;
                let year: i32 = date.parse().map_err(|_| Error::data(format!("{}: not an annual year", at("date"))))?;
                let value = match r.get("value") {
                    None | Some(Value::Null) => None,
                    Some(Value::Number(n)) => n.as_f64(),
                    Some(Value::String(s)) if s.is_empty() => None,
                    Some(Value::String(s)) => {
                        Some(s.parse().map_err(|_| Error::data(format!("{}: not a number", at("value"))))?)
                    }
                    Some(_) => return Err(Error::data(format!("{}: not a number", at("value")))),
                };
                records.push(WbRecord { indicator, iso3, year, value });
            }
        }
        Some(_) => return Err(Error::data(format!("{what}: second element must be an array of records or null"))),
    }
    Ok(WbPage { page, pages, per_page, total, lastupdated, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_page_with_string_meta_and_nulls() {
        let page = br#"[{"page":"1","pages":"2","per_page":2,"total":"4","sourceid":"2","lastupdated":"2021-05-25"},
            [{"indicator":{"id":"NY.GDP.MKTP.CD","value":"GDP"},"country":{"id":"JP","value":"Japan"},
              "countryiso3code":"JPN","date":"2019","value":5081769542379.77,"unit":"","obs_status":"","decimal":0},
             {"indicator":{"id":"NY.GDP.MKTP.CD","value":"GDP"},"country":{"id":"JP","value":"Japan"},
              "countryiso3code":"JPN","date":"2018","value":null,"unit":"","obs_status":"","decimal":0}]]"#;
        let p = parse_worldbank_page(page, "NY.GDP.MKTP.CD page 1").unwrap();
        assert_eq!((p.page, p.pages, p.per_page, p.total), (1, 2, 2, 4));
        assert_eq!(p.lastupdated.as_deref(), Some("2021-05-25"));
        assert_eq!(p.records[0].value, Some(5081769542379.77));
        assert_eq!(p.records[1].value, None);
        assert_eq!(p.records[1].year, 2018);
    }

    #[test]
    fn error_array_and_html_are_clear_errors() {
        let e = parse_worldbank_page(
            br#"[{"message":[{"id":"120","key":"Invalid value","value":"The provided parameter value is not valid"}]}]"#,
            "indicator XX.BAD",
        )
        .unwrap_err();
        assert!(e.message.contains("indicator XX.BAD") && e.message.contains("120 Invalid value"), "{e}");
        let e = parse_worldbank_page(b"\xEF\xBB\xBF<?xml version=\"1.0\"?><html/>", "indicator X").unwrap_err();
        assert!(e.message.contains("HTML"), "{e}");
        let e = parse_worldbank_page(b"[{\"page\":1,", "indicator X page 2").unwrap_err();
        assert!(e.message.contains("page 2") && e.message.contains("invalid JSON"), "{e}");
    }
}
