use diaspora_config::{Format, Settings, SourceKind, SourceSpec, parse_years};
use diaspora_core::{Error, Reject, Result, SourceRecord, Table, line_field};
use diaspora_fetch::{Raw, read_local, worldbank_offline_page};
use diaspora_formats::{QualtricsOptions, ReadOutput, WbPage, parse_worldbank_page, read_qualtrics_csv};
use std::collections::BTreeSet;

/// The bytes of one source (one or more documents) and their provenance.
pub struct Fetched {
    /// Documents, in order (World Bank: per indicator, per page).
    pub docs: Vec<(String, Raw)>,
    /// One provenance record per document.
    pub records: Vec<SourceRecord>,
}

/// Gets the bytes of a source.
pub fn fetch(spec: &SourceSpec, settings: &Settings) -> Result<Fetched> {
    let mut docs = Vec::new();
    match spec.kind {
        SourceKind::File => {
            let loc = spec.location.as_deref().unwrap_or_default();
            docs.push((loc.to_owned(), read_local(&spec.id, loc)?));
        }
        SourceKind::WorldbankApi => {
            if !settings.offline {
                return Err(Error::config(format!(
                    "source {}: live World Bank requests are not part of this build; run with offline = true \
                     (recorded pages in {})",
                    spec.id,
                    settings.worldbank.offline_dir.display()
                )));
            }
            for code in spec.indicators.keys() {
                let mut page = 1;
                loop {
                    let mut raw = worldbank_offline_page(&spec.id, &settings.worldbank.offline_dir, code, page)?;
                    let what = format!("World Bank indicator {code} ({})", raw.record.location);
                    let meta = parse_worldbank_page(&raw.bytes, &what)?;
                    // The publisher's vintage travels with the bytes into the manifest.
                    raw.record.vintage = meta.lastupdated.clone();
                    docs.push((code.clone(), raw));
                    if page >= meta.pages {
                        break;
                    }
                    page += 1;
                }
            }
        }
    }
    let records = docs.iter().map(|(_, r)| r.record.clone()).collect();
    Ok(Fetched { docs, records })
}

/// Decodes the bytes of a source into a table.
pub fn read(spec: &SourceSpec, fetched: &Fetched, settings: &Settings) -> Result<ReadOutput> {
    match (spec.kind, spec.format) {
        (SourceKind::File, Some(Format::QualtricsCsv)) => {
            let (name, raw) = &fetched.docs[0];
            let opts =
                QualtricsOptions { source: spec.id.clone(), name: name.clone(), batch_rows: settings.batch_rows };
            read_qualtrics_csv(&raw.bytes, &opts)
        }
        (SourceKind::WorldbankApi, _) | (SourceKind::File, Some(Format::WorldbankJson)) => {
            read_worldbank(spec, fetched)
        }
        (SourceKind::File, None) => Err(Error::config(format!("source {}: format missing", spec.id))),
    }
}

/// World Bank pages → long table (`iso3`, `year`, `indicator`, `value`), checking page and total consistency.
/// Records for countries or years outside the request are rejected as `outside_request`.
fn read_worldbank(spec: &SourceSpec, fetched: &Fetched) -> Result<ReadOutput> {
    use arrow_array::builder::{Float64Builder, Int32Builder, StringBuilder, UInt64Builder};
    use arrow_array::{ArrayRef, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let countries: BTreeSet<&str> = spec.countries.iter().map(String::as_str).collect();
    let (from, to) = spec.years.as_deref().and_then(parse_years).unwrap_or((i32::MIN, i32::MAX));
    let (mut line, mut iso, mut year, mut ind, mut val) =
        (UInt64Builder::new(), StringBuilder::new(), Int32Builder::new(), StringBuilder::new(), Float64Builder::new());
    let mut rejects = Vec::new();
    let mut rows_read = 0u64;
    let mut vintages = BTreeSet::new();
    let mut per_indicator: std::collections::BTreeMap<&str, (u64, Option<u64>)> = Default::default();
    for (code, raw) in &fetched.docs {
        let column = spec.indicators.get(code).map(String::as_str).unwrap_or(code);
        let what = format!("World Bank indicator {code} ({})", raw.record.location);
        let page: WbPage = parse_worldbank_page(&raw.bytes, &what)?;
        let entry = per_indicator.entry(code.as_str()).or_insert((0, None));
        if let Some(t) = entry.1
            && t != page.total
        {
            return Err(Error::data(format!("{what}: total changed between pages ({t} then {})", page.total)));
        }
        entry.1 = Some(page.total);
        entry.0 += page.records.len() as u64;
        if let Some(v) = &page.lastupdated {
            vintages.insert(v.clone());
        }
        for r in page.records {
            rows_read += 1;
            if r.indicator != *code {
                return Err(Error::data(format!("{what}: record {rows_read} is for indicator {}", r.indicator)));
            }
            if !countries.contains(r.iso3.as_str()) || r.year < from || r.year > to {
                rejects.push(Reject {
                    source: spec.id.clone(),
                    line: rows_read,
                    reason: "outside_request".into(),
                    column: Some("countryiso3code".into()),
                    value: Some(format!("{} {}", r.iso3, r.year)),
                });
                continue;
            }
            line.append_value(rows_read);
            iso.append_value(&r.iso3);
            year.append_value(r.year);
            ind.append_value(column);
            val.append_option(r.value);
        }
    }
    for (code, (seen, total)) in per_indicator {
        if Some(seen) != total {
            return Err(Error::data(format!(
                "World Bank indicator {code}: pages hold {seen} records but meta total says {}",
                total.unwrap_or(0)
            )));
        }
    }
    let schema = Arc::new(Schema::new(vec![
        line_field(),
        Arc::new(Field::new("iso3", DataType::Utf8, false)),
        Arc::new(Field::new("year", DataType::Int32, false)),
        Arc::new(Field::new("indicator", DataType::Utf8, false)),
        Arc::new(Field::new("value", DataType::Float64, true)),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(line.finish()),
        Arc::new(iso.finish()),
        Arc::new(year.finish()),
        Arc::new(ind.finish()),
        Arc::new(val.finish()),
    ];
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::internal(e.to_string()))?;
    let mut table = Table::new(schema, vec![batch]);
    table.meta.vintage = vintages.into_iter().next_back();
    Ok(ReadOutput { table, rejects, rows_read })
}
