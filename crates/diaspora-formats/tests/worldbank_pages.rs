//! Every recorded World Bank indicator-values answer parses: data pages with their meta (numbers or strings) and
//! record counts as the index lists them, error arrays and the XHTML page as clear errors.

use diaspora_formats::parse_worldbank_page;
use std::path::PathBuf;

#[test]
fn every_recorded_indicator_answer_parses_as_the_index_says() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/worldbank-api");
    let index = std::fs::read_to_string(dir.join("INDEX.tsv")).unwrap();
    let mut checked = 0;
    for line in index.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (file, status, records) = (f[0], f[1], f[4]);
        if !file.starts_with("TestIndicatorValuesService_") {
            continue;
        }
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let got = parse_worldbank_page(&bytes, file);
        match records.parse::<usize>() {
            Ok(n) => {
                let page = got.unwrap_or_else(|e| panic!("{file}: {e}"));
                assert_eq!(page.records.len(), n, "{file}");
                assert_eq!(page.lastupdated.as_deref(), Some("2021-05-25"), "{file}");
                assert!(page.records.iter().all(|r| !r.indicator.is_empty()), "{file}");
            }
            Err(_) => {
                let e = got.err().unwrap_or_else(|| panic!("{file} should be an error"));
                let want = if status == "400" { "HTML/XML" } else { "World Bank API error" };
                assert!(e.message.contains(want) && e.message.contains(file), "{file}: {e}");
            }
        }
        checked += 1;
    }
    assert_eq!(checked, 17);
}
