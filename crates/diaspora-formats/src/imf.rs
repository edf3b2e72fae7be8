use diaspora_core::{Error, Result};
use serde_json::Value;

/// One IMF DataMapper observation.
#[derive(Debug, Clone, PartialEq)]
pub struct ImfValue {
    /// ISO3 code.
    pub iso3: String,
    /// Year.
    pub year: i32,
    /// Value; `None` for JSON null.
    pub value: Option<f64>,
}

/// Parses an IMF DataMapper `/api/v1/{indicator}/{countries}` answer (`{"values":{IND:{ISO3:{"year":v}}}}`).
/// The API may return more countries than asked; callers filter. An answer without `values.{indicator}`
/// (only `api`, or the country lists an unknown indicator produces) is a "no data" error naming the indicator.
pub fn parse_imf_datamapper(bytes: &[u8], indicator: &str, what: &str) -> Result<Vec<ImfValue>> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::data(format!("{what}: invalid JSON at line {}, column {}", e.line(), e.column())))?;
    let Some(series) = v.pointer(&format!("/values/{indicator}")).and_then(Value::as_object) else {
        let keys: Vec<&str> = v.as_object().map(|o| o.keys().map(String::as_str).collect()).unwrap_or_default();
        return Err(Error::data(format!(
            "{what}: IMF DataMapper has no data for indicator {indicator} (answer holds only {keys:?})"
        )));
    };
    let mut out = Vec::new();
    for (iso3, years) in series {
        let years = years.as_object().ok_or_else(|| Error::data(format!("{what}: {iso3}: expected year → value")))?;
        for (y, val) in years {
            let year: i32 =
                y.parse().map_err(|_| Error::data(format!("{what}: {iso3}: year key {y:?} is not a year")))?;
            let value = match val {
                Value::Null => None,
                Value::Number(n) => n.as_f64(),
                Value::String(s) if s.trim().is_empty() || s == "n/a" => None,
                Value::String(s) => {
                    Some(s.trim().parse().map_err(|_| Error::data(format!("{what}: {iso3} {y}: not a number")))?)
                }
                _ => return Err(Error::data(format!("{what}: {iso3} {y}: not a number"))),
            };
            out.push(ImfValue { iso3: iso3.clone(), year, value });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_values_and_recognises_no_data() {
        let body = br#"{"values":{"NGDP_RPCH":{"GEO":{"2021":10.5,"2022":"11","2023":null},"SDN":{"1980":2.5}}},"api":{"version":"1"}}"#;
        let v = parse_imf_datamapper(body, "NGDP_RPCH", "imf").unwrap();
        assert_eq!(v.len(), 4);
        assert!(v.contains(&ImfValue { iso3: "GEO".into(), year: 2022, value: Some(11.0) }));
        assert!(v.contains(&ImfValue { iso3: "GEO".into(), year: 2023, value: None }));
        let e =
            parse_imf_datamapper(br#"{"api":{"version":"1","output-method":"json"}}"#, "NGDP_R", "imf").unwrap_err();
        assert!(e.message.contains("no data for indicator NGDP_R"), "{e}");
    }
}
