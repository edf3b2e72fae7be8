//! Row conservation as a property: over generated messy survey rows and any batch size, the cleaning steps of
//! the sample pipeline account for every input row exactly once — passed, rejected with a reason, or counted as
//! a duplicate — and no line is both passed and rejected.

use arrow_array::builder::{StringBuilder, UInt64Builder};
use arrow_array::{ArrayRef, RecordBatch};
use diaspora_clean::{CleanContext, CountryResolver, PrivacyPolicy, PseudonymKey, apply_step};
use diaspora_config::{CastType, Keep, PrivacySpec, Step, Unmapped};
use diaspora_core::{Table, TableMeta, lines_of, text_schema};
use proptest::prelude::*;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

const COLS: [&str; 7] = ["Status", "Finished", "ResponseId", "RecordedDate", "Q1", "Q2", "Q3"];

fn row() -> impl Strategy<Value = Vec<Option<String>>> {
    let status = prop::sample::select(vec!["IP Address", "IP Address", "Survey Preview", "Survey Test", "Spam"]);
    let finished = prop::sample::select(vec!["True", "True", "False", "1", "yes?"]);
    let id = (0u8..40).prop_map(|i| format!("R_{i:03}"));
    let date = (1u8..28, 0u8..24).prop_map(|(d, h)| format!("2023-05-{d:02} {h:02}:00:00"));
    let country = prop::sample::select(vec![
        "Грузия",
        "georgia ",
        "KZ",
        "США",
        "в пути",
        "",
        "Europe",
        "Türkiye",
        "xx",
        "Tbilisi, Georgia",
    ]);
    let age = prop::sample::select(vec!["34", "-99", "abc", "200", "", "19"]);
    let edu = prop::sample::select(vec!["Высшее", "Higher (university degree)", "Среднее", "???", ""]);
    (status, finished, id, date, country, age, edu).prop_map(|(s, f, i, d, c, a, e)| {
        [s.to_owned(), f.to_owned(), i, d, c.to_owned(), a.to_owned(), e.to_owned()]
            .into_iter()
            .map(|v| (!v.is_empty()).then_some(v))
            .collect()
    })
}

fn table(rows: &[Vec<Option<String>>], batch: usize) -> Table {
    let names: Vec<String> = COLS.iter().map(|s| s.to_string()).collect();
    let schema = text_schema(&names);
    let mut batches = Vec::new();
    for (k, chunk) in rows.chunks(batch.max(1)).enumerate() {
        let mut line = UInt64Builder::new();
        let mut cols: Vec<StringBuilder> = COLS.iter().map(|_| StringBuilder::new()).collect();
        for (j, r) in chunk.iter().enumerate() {
            line.append_value((k * batch.max(1) + j + 4) as u64);
            for (b, v) in cols.iter_mut().zip(r) {
                b.append_option(v.as_deref());
            }
        }
        let mut arrays: Vec<ArrayRef> = vec![Arc::new(line.finish())];
        arrays.extend(cols.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef));
        batches.push(RecordBatch::try_new(schema.clone(), arrays).unwrap());
    }
    let mut t = Table::new(schema, batches);
    t.meta = TableMeta::default();
    t.meta.time_zones.insert("RecordedDate".into(), "Europe/Berlin".into());
    t
}

fn steps() -> Vec<Step> {
    vec![
        Step::DropValues {
            column: "Status".into(),
            values: vec!["Survey Preview".into(), "Survey Test".into()],
            reason: "preview".into(),
        },
        Step::KeepValues {
            column: "Finished".into(),
            values: vec!["True".into(), "1".into()],
            reason: "unfinished".into(),
        },
        Step::DedupeExact {},
        Step::DedupeBy { key: "ResponseId".into(), order_by: "RecordedDate".into(), keep: Keep::Latest },
        Step::Country { column: "Q1".into(), into: "iso3".into() },
        Step::MissingCodes { columns: vec!["Q2".into()], codes: vec!["-99".into()] },
        Step::Cast { column: "Q2".into(), to: CastType::Int32, into: Some("age".into()), reason: None },
        Step::Range { column: "age".into(), min: 14.0, max: 110.0, reason: "age_out_of_range".into() },
        Step::ValueMap {
            column: "Q3".into(),
            into: "education".into(),
            map: BTreeMap::from([
                ("Высшее".into(), "degree".into()),
                ("Higher (university degree)".into(), "degree".into()),
                ("Среднее".into(), "secondary".into()),
            ]),
            unmapped: Unmapped::Reject,
            reason: None,
        },
        Step::Timestamps { columns: vec!["RecordedDate".into()], time_zone: None },
        Step::Pseudonymize { column: "ResponseId".into(), into: "respondent_pid".into() },
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_row_is_passed_rejected_or_a_duplicate(
        base in prop::collection::vec(row(), 0..120),
        repeats in prop::collection::vec(0usize..120, 0..20),
        batch in 1usize..50,
    ) {
        // Exact duplicates: some rows repeated later.
        let mut rows = base.clone();
        for r in repeats {
            if let Some(x) = base.get(r) {
                rows.push(x.clone());
            }
        }
        let resolver = CountryResolver::new();
        let key = PseudonymKey::new(vec![7; 32]).unwrap();
        let ctx = CleanContext { source: "s", location: "generated", resolver: &resolver, key: Some(&key), memory: None };
        let mut t = table(&rows, batch);
        let mut policy = PrivacyPolicy::for_source(&t.column_names(), &t.meta, &PrivacySpec::default(), &[]);
        let (mut rejected, mut duplicates) = (Vec::new(), 0u64);
        for (i, s) in steps().iter().enumerate() {
            let out = apply_step(t, s, &format!("steps[{i}]"), &ctx, &mut policy).unwrap();
            rejected.extend(out.rejects);
            duplicates += out.duplicates;
            t = out.table;
        }
        let passed = t.num_rows() as u64;
        prop_assert_eq!(rows.len() as u64, passed + rejected.len() as u64 + duplicates);
        let passed_lines: HashSet<u64> = t.batches.iter().flat_map(lines_of).collect();
        let rejected_lines: HashSet<u64> = rejected.iter().map(|r| r.line).collect();
        prop_assert_eq!(rejected_lines.len(), rejected.len(), "a line rejected twice");
        prop_assert!(passed_lines.is_disjoint(&rejected_lines));
        prop_assert!(rejected.iter().all(|r| !r.reason.is_empty()));
    }
}
