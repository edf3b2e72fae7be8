use diaspora_core::{Error, Result};

/// The directory value Hive readers (DuckDB, pyarrow, Polars, Spark) read as NULL.
pub const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// Encodes a partition value for a `col=value` directory name: NULL → [`HIVE_NULL`], every byte outside
/// `A-Z a-z 0-9 - _ .` percent-encoded (so `/`, `=`, `%`, spaces, Cyrillic and control characters can never
/// form a path). Values that cannot round-trip are rejected: the empty string (readers turn it into NULL or
/// ""), the literal NULL marker, and names over 255 bytes.
pub fn encode_partition_value(column: &str, value: Option<&str>) -> Result<String> {
    let Some(v) = value else { return Ok(HIVE_NULL.to_owned()) };
    if v.is_empty() {
        return Err(Error::data(format!("partition column {column:?}: empty value cannot be a partition")));
    }
    if v == HIVE_NULL {
        return Err(Error::data(format!("partition column {column:?}: value equals the NULL marker")));
    }
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out == "." || out == ".." {
        out = out.replace('.', "%2E");
    }
    if column.len() + 1 + out.len() > 255 {
        return Err(Error::data(format!("partition column {column:?}: encoded value longer than a directory name")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_so_no_path_can_escape() {
        assert_eq!(encode_partition_value("iso3", Some("ARM")).unwrap(), "ARM");
        assert_eq!(encode_partition_value("iso3", None).unwrap(), HIVE_NULL);
        assert_eq!(encode_partition_value("c", Some("a/b=c d%")).unwrap(), "a%2Fb%3Dc%20d%25");
        assert_eq!(encode_partition_value("c", Some("..")).unwrap(), "%2E%2E");
        assert_eq!(encode_partition_value("c", Some("Грузия")).unwrap(), "%D0%93%D1%80%D1%83%D0%B7%D0%B8%D1%8F");
        assert!(encode_partition_value("c", Some("")).is_err());
        assert!(encode_partition_value("c", Some(HIVE_NULL)).is_err());
        assert!(encode_partition_value("c", Some(&"x".repeat(300))).is_err());
    }
}
