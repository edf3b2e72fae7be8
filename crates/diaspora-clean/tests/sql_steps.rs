//! `filter` and `derive` steps: SQL expressions evaluated with DataFusion on every batch.
#![cfg(feature = "sql")]

use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, Int32Array, RecordBatch, StringArray, UInt64Array};
use arrow_schema::{DataType, Field, Schema};
use diaspora_clean::{CleanContext, CountryResolver, PrivacyPolicy, apply_step};
use diaspora_config::{PrivacySpec, Step};
use diaspora_core::{ErrorKind, Table, line_field};
use std::sync::Arc;

fn table() -> Table {
    let schema = Arc::new(Schema::new(vec![
        line_field().as_ref().clone(),
        Field::new("age", DataType::Int32, true),
        Field::new("Q1", DataType::Utf8, true),
    ]));
    let batches = [(vec![4u64, 5, 6], vec![Some(17), Some(34), None]), (vec![7, 8], vec![Some(70), Some(25)])]
        .into_iter()
        .map(|(lines, ages)| {
            let n = lines.len();
            let cols: Vec<ArrayRef> = vec![
                Arc::new(UInt64Array::from(lines)),
                Arc::new(Int32Array::from(ages)),
                Arc::new(StringArray::from(vec![Some("GEO"); n])),
            ];
            RecordBatch::try_new(schema.clone(), cols).unwrap()
        })
        .collect();
    Table::new(schema, batches)
}

fn run(step: Step) -> diaspora_core::Result<diaspora_clean::StepOutput> {
    let resolver = CountryResolver::new();
    let ctx = CleanContext { source: "s", location: "t.csv", resolver: &resolver, key: None, memory: None };
    let t = table();
    let mut policy = PrivacyPolicy::for_source(&t.column_names(), &t.meta, &PrivacySpec::default(), &[]);
    apply_step(t, &step, "sources[0].steps[0]", &ctx, &mut policy)
}

#[test]
fn filter_keeps_true_rows_and_rejects_false_and_null_with_the_reason() {
    let out =
        run(Step::Filter { expr: "age >= 18 AND \"Q1\" IS NOT NULL".into(), reason: "minor_or_unknown_age".into() })
            .unwrap();
    assert_eq!(out.table.num_rows(), 3);
    let lines: Vec<u64> = out.rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![4, 6]);
    assert!(out.rejects.iter().all(|r| r.reason == "minor_or_unknown_age"));
}

#[test]
fn derive_adds_a_column_from_an_expression() {
    let out = run(Step::Derive {
        name: "age_group".into(),
        expr: "CASE WHEN age < 30 THEN 'under_30' WHEN age IS NULL THEN NULL ELSE '30_plus' END".into(),
    })
    .unwrap();
    let b = &out.table.batches[0];
    let g = b.column_by_name("age_group").unwrap().as_string::<i32>();
    assert_eq!(g.value(0), "under_30");
    assert_eq!(g.value(1), "30_plus");
    assert!(g.is_null(2));
    assert_eq!(out.table.schema.field_with_name("age_group").unwrap().data_type(), &DataType::Utf8);
}

#[test]
fn bad_expressions_are_configuration_errors_naming_the_step() {
    let e = run(Step::Filter { expr: "agee > 3".into(), reason: "x".into() }).err().unwrap();
    assert_eq!(e.kind, ErrorKind::Config);
    assert!(e.message.starts_with("sources[0].steps[0].expr"), "{e}");
    let e = run(Step::Filter { expr: "age + 1".into(), reason: "x".into() }).err().unwrap();
    assert!(e.message.contains("boolean"), "{e}");
}
