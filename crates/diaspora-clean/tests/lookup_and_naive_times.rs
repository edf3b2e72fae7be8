//! The `lookup` step (a CSV alias table, keys trimmed and lower-cased) and naive timestamps.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMicrosecondType;
use arrow_array::{Array, ArrayRef, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, TimeUnit};
use diaspora_clean::{CleanContext, CountryResolver, PrivacyPolicy, apply_step};
use diaspora_config::{PrivacySpec, Step};
use diaspora_core::{Table, text_schema};
use std::sync::Arc;

fn table(country: Vec<Option<&str>>, when: Vec<Option<&str>>) -> Table {
    let schema = text_schema(&["country".to_owned(), "StartDate".to_owned()]);
    let n = country.len() as u64;
    let cols: Vec<ArrayRef> = vec![
        Arc::new(UInt64Array::from_iter_values(2..2 + n)),
        Arc::new(StringArray::from(country)),
        Arc::new(StringArray::from(when)),
    ];
    Table::new(schema.clone(), vec![RecordBatch::try_new(schema, cols).unwrap()])
}

#[test]
fn lookup_maps_trimmed_lowercase_keys_and_rejects_missing_and_unmapped() {
    let dir = tempfile::tempdir().unwrap();
    let alias = dir.path().join("alias.csv");
    std::fs::write(&alias, "alias,iso3\ngeorgia,GEO\nгрузия,GEO\ntürkiye,TUR\n").unwrap();
    let resolver = CountryResolver::new();
    let ctx = CleanContext { source: "s", location: "t.csv", resolver: &resolver, key: None, memory: None };
    let t =
        table(vec![Some("  Georgia "), Some("ГРУЗИЯ"), Some("TÜRKIYE"), Some(" "), None, Some("Mars")], vec![None; 6]);
    let mut policy = PrivacyPolicy::for_source(&t.column_names(), &t.meta, &PrivacySpec::default(), &[]);
    let step = Step::Lookup {
        column: "country".into(),
        into: "iso3".into(),
        table: alias.display().to_string(),
        key: "alias".into(),
        value: "iso3".into(),
        missing_reason: "country_missing".into(),
        unmapped_reason: "country_unmapped".into(),
    };
    let out = apply_step(t, &step, "steps[0]", &ctx, &mut policy).unwrap();
    let iso = out.table.batches[0].column_by_name("iso3").unwrap().as_string::<i32>().clone();
    assert_eq!((0..iso.len()).map(|i| iso.value(i)).collect::<Vec<_>>(), vec!["GEO", "GEO", "TUR"]);
    assert!(out.table.has_column("country"), "the looked-up column is kept");
    let reasons: Vec<(&str, u64)> = out.rejects.iter().map(|r| (r.reason.as_str(), r.line)).collect();
    assert_eq!(reasons, vec![("country_missing", 5), ("country_missing", 6), ("country_unmapped", 7)]);
}

#[test]
fn naive_timestamps_keep_wall_clock_time_without_a_zone() {
    let resolver = CountryResolver::new();
    let ctx = CleanContext { source: "s", location: "t.csv", resolver: &resolver, key: None, memory: None };
    let t = table(vec![Some("x")], vec![Some("2024-03-31 02:30:00")]);
    let mut policy = PrivacyPolicy::for_source(&t.column_names(), &t.meta, &PrivacySpec::default(), &[]);
    let step = Step::Timestamps { columns: vec!["StartDate".into()], time_zone: Some("naive".into()) };
    let out = apply_step(t, &step, "steps[0]", &ctx, &mut policy).unwrap();
    let f = out.table.schema.field_with_name("StartDate").unwrap();
    assert_eq!(f.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, None));
    let v =
        out.table.batches[0].column_by_name("StartDate").unwrap().as_primitive::<TimestampMicrosecondType>().value(0);
    // 2024-03-31 02:30:00 as wall-clock time (a time that does not exist in Europe/Berlin that night).
    assert_eq!(v, 1_711_852_200_000_000);
}
