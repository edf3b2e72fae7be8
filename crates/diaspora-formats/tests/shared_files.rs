//! Every survey export and indicator file the project keeps as a fixture is read, with its row count, column
//! count and a few values checked against what the file holds; csv-spectrum conformance; re-encoded copies
//! read the same as the UTF-8 original.

use arrow_array::{Array, StringArray};
use diaspora_formats::{QualtricsOptions, ReadOutput, read_delimited, read_qualtrics_csv};
use std::path::PathBuf;

fn data(rel: &str) -> Vec<u8> {
    std::fs::read(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(rel)).unwrap()
}

fn opts(name: &str) -> QualtricsOptions {
    QualtricsOptions { source: "t".into(), name: name.into(), batch_rows: 1000, encoding: None, delimiter: None }
}

fn text_column(out: &ReadOutput, name: &str) -> Vec<Option<String>> {
    out.table
        .batches
        .iter()
        .flat_map(|b| {
            let a = b.column_by_name(name).unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
            (0..a.len()).map(move |i| a.is_valid(i).then(|| a.value(i).to_owned())).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn qualtrics_exports_read_with_their_row_and_column_counts() {
    // (file, data rows, columns)
    let cases = [
        ("beskar_armor_2020_api_labels.csv", 26, 24),
        ("beskar_armor_2025_api_labels.csv", 44, 24),
        ("beskar_armor_2025_subset_qids.csv", 15, 6),
        ("cats_salami_2020_text_analytics.csv", 15, 20),
        ("in_progress_2022_partial_responses.csv", 15, 636),
        ("sample_german_ui_2017.csv", 1, 20),
        ("test_survey_2022_subset.csv", 15, 6),
        ("sample_legacy_format_2017.csv", 1, 16),
    ];
    for (file, rows, cols) in cases {
        let out = read_qualtrics_csv(&data(&format!("qualtrics/{file}")), &opts(file)).unwrap();
        assert_eq!(out.rows_read, rows, "{file}");
        assert_eq!(out.table.num_rows() as u64, rows, "{file}: no rejects expected");
        assert_eq!(out.table.column_names().len(), cols, "{file}");
    }
    let out = read_qualtrics_csv(&data("qualtrics/beskar_armor_2025_api_labels.csv"), &opts("b")).unwrap();
    assert_eq!(out.table.meta.time_zones["StartDate"], "America/Denver");
    assert_eq!(out.table.meta.import_ids["Q19"], "QID19_TEXT");
    assert!(text_column(&out, "ResponseId").iter().all(|v| v.as_deref().is_some_and(|s| s.starts_with("R_"))));
    let out = read_qualtrics_csv(&data("qualtrics/in_progress_2022_partial_responses.csv"), &opts("p")).unwrap();
    assert!(text_column(&out, "ResponseId").iter().all(|v| v.as_deref().is_some_and(|s| s.starts_with("FS_"))));
    assert!(
        text_column(&out, "RecordedDate").iter().all(Option::is_none),
        "in-progress responses have no RecordedDate"
    );
    let out = read_qualtrics_csv(&data("qualtrics/sample_german_ui_2017.csv"), &opts("g")).unwrap();
    assert_eq!(text_column(&out, "Status"), vec![Some("0".to_owned())]);
}

#[test]
fn limesurvey_csv_export_reads_with_semicolons_and_quotes() {
    let out = read_delimited(&data("limesurvey/unit_test_quality_survey_results.csv"), &opts("ls")).unwrap();
    assert_eq!(out.rows_read, 70);
    assert_eq!(out.table.num_rows(), 70);
    assert_eq!(out.table.column_names().len(), 146);
}

#[test]
fn csv_spectrum_cases_parse_to_their_expected_records() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/csv-spectrum/csvs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name.trim_end_matches(".csv");
        let expected: Vec<serde_json::Map<String, serde_json::Value>> =
            match serde_json::from_slice(&data(&format!("csv-spectrum/json/{stem}.json"))).unwrap() {
                serde_json::Value::Array(a) => a.into_iter().map(|v| v.as_object().unwrap().clone()).collect(),
                serde_json::Value::Object(o) => vec![o],
                other => panic!("{name}: unexpected JSON {other}"),
            };
        let mut o = opts(&name);
        o.delimiter = Some(b',');
        let mut bytes = std::fs::read(entry.path()).unwrap();
        if stem.ends_with("_crlf") && !bytes.contains(&b'\r') {
            // These inputs lost their CRs before the snapshot (see PROVENANCE.md): restore them.
            bytes = String::from_utf8(bytes).unwrap().replace('\n', "\r\n").into_bytes();
        }
        let out = read_delimited(&bytes, &o).unwrap();
        assert_eq!(out.table.num_rows(), expected.len(), "{name}");
        let cols = out.table.column_names();
        if stem == "location_coordinates" {
            // Upstream's case disagrees with itself: the JSON's phone number is not the one in the CSV.
            assert_eq!(text_column(&out, "Contact Phone Number"), vec![Some("2095257564".to_owned())]);
        }
        for (r, want) in expected.iter().enumerate() {
            for c in cols.iter().filter(|c| !(stem == "location_coordinates" && c.as_str() == "Contact Phone Number")) {
                let got = text_column(&out, c)[r].clone().unwrap_or_default();
                assert_eq!(Some(&serde_json::Value::String(got)), want.get(c), "{name} row {r} column {c}");
            }
        }
        checked += 1;
    }
    assert!(checked >= 12, "all csv-spectrum cases: {checked}");
}

#[test]
fn re_encoded_copies_read_the_same_as_utf8() {
    let utf8 = "Страна,Образование,Комментарий\r\nГрузия,Высшее,\"в пути, но \"\"скоро\"\" дома\"\r\nКазахстан,Среднее специальное,\r\n";
    let base = read_delimited(utf8.as_bytes(), &opts("utf8")).unwrap();
    let mut copies: Vec<(&str, Vec<u8>)> = Vec::new();
    for enc in [encoding_rs::WINDOWS_1251, encoding_rs::KOI8_R] {
        copies.push((enc.name(), enc.encode(utf8).0.into_owned()));
    }
    copies.push(("utf-16le", [0xFF, 0xFE].into_iter().chain(utf8.encode_utf16().flat_map(u16::to_le_bytes)).collect()));
    copies.push(("utf-16be", [0xFE, 0xFF].into_iter().chain(utf8.encode_utf16().flat_map(u16::to_be_bytes)).collect()));
    copies.push(("utf-8 bom", [0xEF, 0xBB, 0xBF].into_iter().chain(utf8.bytes()).collect()));
    for (name, bytes) in copies {
        let out = read_delimited(&bytes, &opts(name)).unwrap();
        assert_eq!(out.table.column_names(), base.table.column_names(), "{name}");
        for c in base.table.column_names() {
            assert_eq!(text_column(&out, &c), text_column(&base, &c), "{name}: {c}");
        }
    }
}
