use diaspora_config::{Format, Settings, SourceKind, SourceSpec, parse_years};
use diaspora_core::{Error, Reject, Result, SourceRecord, Table, line_field};
use diaspora_fetch::api::{Polling, limesurvey_export, qualtrics_export, unzip_single_table};
use diaspora_fetch::http::{HttpClient, Request, Response};
use diaspora_fetch::store::{FetchRecord, Fetched as StoreFetched, RawStore};
use diaspora_fetch::{Raw, read_local, worldbank_offline_page};
use diaspora_formats::wide::{LongObservation, Observations};
use diaspora_formats::{
    QualtricsOptions, ReadOutput, SavOptions, WbPage, parse_imf_datamapper, parse_worldbank_page, read_delimited,
    read_imf_weo, read_qualtrics_csv, read_sav, read_sdmx_csv, read_wdi_csv, read_xlsx,
};
use std::collections::BTreeSet;

/// The bytes of one source (one or more documents) and their provenance.
pub struct Fetched {
    /// Documents, in order (World Bank: per indicator, per page).
    pub docs: Vec<(String, Raw)>,
    /// One provenance record per document.
    pub records: Vec<SourceRecord>,
    /// Documents the server said were unchanged (HTTP 304), served from the raw store.
    pub not_modified: u64,
}

/// Network access for one run: the HTTP client is built on first use and shared by all sources.
pub struct Net<'a> {
    settings: &'a Settings,
    client: std::sync::OnceLock<HttpClient>,
}

impl<'a> Net<'a> {
    /// Network access with these settings.
    pub fn new(settings: &'a Settings) -> Self {
        Self { settings, client: std::sync::OnceLock::new() }
    }

    fn client(&self) -> Result<&HttpClient> {
        if let Some(c) = self.client.get() {
            return Ok(c);
        }
        let c = HttpClient::new(self.settings.http.clone())?;
        Ok(self.client.get_or_init(|| c))
    }
}

fn raw_of(source: &str, f: StoreFetched) -> Raw {
    Raw { record: f.source_record(source), bytes: f.bytes }
}

/// Checks a body before it may enter the raw store: it must decode as the declared format.
fn format_check(format: Option<Format>, bytes: &[u8], what: &str) -> Result<Option<String>> {
    let head = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let first = head.iter().find(|b| !b.is_ascii_whitespace()).copied();
    match format {
        Some(Format::WorldbankJson) => Ok(parse_worldbank_page(bytes, what)?.lastupdated),
        _ if bytes.starts_with(b"PK\x03\x04") => Ok(None),
        Some(Format::Spss) => {
            if bytes.starts_with(b"$FL2") || bytes.starts_with(b"$FL3") {
                Ok(None)
            } else {
                Err(Error::data(format!("{what}: not an SPSS system file")))
            }
        }
        Some(
            Format::QualtricsCsv
            | Format::LimesurveyCsv
            | Format::Csv
            | Format::WdiCsv
            | Format::ImfWeo
            | Format::SdmxCsv
            | Format::Xlsx,
        )
        | None => {
            if first == Some(b'<') {
                return Err(Error::data(format!("{what}: the server returned an HTML/XML page, not CSV")));
            }
            if bytes.is_empty() {
                return Err(Error::data(format!("{what}: empty body")));
            }
            Ok(None)
        }
    }
}

/// Stores an export that came from an API flow (not a plain GET) after its format check.
fn store_export(store: &RawStore, source: &str, key: &str, bytes: Vec<u8>, format: Format, what: &str) -> Result<Raw> {
    let resp = Response {
        status: 200,
        bytes,
        etag: None,
        last_modified: None,
        content_type: None,
        attempts: 1,
        final_url: key.to_owned(),
    };
    let f = store.finish(key, None, resp, |b| format_check(Some(format), b, what))?;
    Ok(raw_of(source, f))
}

fn env_secret(var: &str, source: &str) -> Result<String> {
    std::env::var(var).map_err(|_| Error::config(format!("source {source}: environment variable {var} is not set")))
}

fn endpoint(e: &diaspora_config::EndpointSettings, name: &str, source: &str) -> Result<String> {
    e.base_url.clone().ok_or_else(|| Error::config(format!("source {source}: settings {name}.base_url is not set")))
}

/// Offline replay of the last good body stored for `key`, or a configuration error.
fn replay(store: &RawStore, key: &str, spec: &SourceSpec) -> Result<Raw> {
    let rec = store.lookup(key).ok_or_else(|| {
        Error::config(format!(
            "source {}: this profile is offline and no earlier fetch of it is stored; run once online",
            spec.id
        ))
    })?;
    Ok(Raw {
        bytes: store.blob(&rec)?,
        record: StoreFetched { bytes: Vec::new(), record: rec, from_cache: true }.source_record(&spec.id),
    })
}

/// The provenance of a source that will be streamed from a local file, read later in pieces. With `hash_now`
/// the file is hashed here; otherwise the record's hash is left empty and filled in by the stream.
pub fn fetch_streamed(spec: &SourceSpec, hash_now: bool) -> Result<Fetched> {
    let loc = spec.location.as_deref().unwrap_or_default();
    let record = if hash_now {
        diaspora_fetch::local_record(&spec.id, loc)?
    } else {
        let path = diaspora_fetch::local_path(loc)?;
        let md = std::fs::metadata(&path).map_err(|e| Error::input_io(&path, &e))?;
        let mut rec = diaspora_fetch::record(&spec.id, loc, &[], None);
        rec.sha256.clear();
        rec.bytes = md.len();
        rec
    };
    Ok(Fetched {
        docs: vec![(loc.to_owned(), Raw { bytes: Vec::new(), record: record.clone() })],
        records: vec![record],
        not_modified: 0,
    })
}

/// Gets the bytes of a source.
pub fn fetch(spec: &SourceSpec, settings: &Settings, net: &Net<'_>) -> Result<Fetched> {
    let mut docs = Vec::new();
    let mut not_modified = 0;
    let store = RawStore::open(&settings.data_root, &spec.id);
    match spec.kind {
        SourceKind::File => {
            let loc = spec.location.as_deref().unwrap_or_default();
            docs.push((loc.to_owned(), read_local(&spec.id, loc)?));
        }
        SourceKind::WorldbankApi if settings.offline => {
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
        SourceKind::WorldbankApi => {
            let client = net.client()?;
            let (from, to) = spec.years.as_deref().and_then(parse_years).unwrap_or((1960, 2100));
            let base = settings.worldbank.base_url.trim_end_matches('/');
            let countries = spec.countries.join(";");
            let url = |code: &str, page: u64| {
                format!(
                    "{base}/v2/country/{countries}/indicator/{code}?format=json&date={from}:{to}&per_page=1000&page={page}"
                )
            };
            // First pages of every indicator concurrently, then every further page concurrently.
            let mut wanted: Vec<(String, u64)> = spec.indicators.keys().map(|c| (c.clone(), 1)).collect();
            while !wanted.is_empty() {
                let reqs: Vec<(Request, Option<FetchRecord>)> = wanted
                    .iter()
                    .map(|(code, page)| {
                        store.conditional(Request::get(
                            url(code, *page),
                            format!("World Bank indicator {code} page {page}"),
                        ))
                    })
                    .collect();
                let (reqs, known): (Vec<Request>, Vec<Option<FetchRecord>>) = reqs.into_iter().unzip();
                let urls: Vec<String> = reqs.iter().map(|r| r.url.clone()).collect();
                let results = client.fetch_all(reqs);
                let mut next = Vec::new();
                for (((code, page), res), (u, k)) in wanted.iter().zip(results).zip(urls.iter().zip(known)) {
                    let what = format!("World Bank indicator {code} page {page}");
                    let f = store.finish(u, k, res?, |b| format_check(Some(Format::WorldbankJson), b, &what))?;
                    not_modified += u64::from(f.from_cache);
                    let meta = parse_worldbank_page(&f.bytes, &what)?;
                    if *page == 1 {
                        next.extend((2..=meta.pages).map(|p| (code.clone(), p)));
                    }
                    docs.push((code.clone(), raw_of(&spec.id, f)));
                }
                wanted = next;
            }
            // Keep pages in (indicator, page) order whatever order they arrived in.
            docs.sort_by(|a, b| {
                a.0.cmp(&b.0)
                    .then(a.1.record.location.len().cmp(&b.1.record.location.len()))
                    .then(a.1.record.location.cmp(&b.1.record.location))
            });
        }
        SourceKind::Url => {
            let url = spec.location.clone().unwrap_or_default();
            let what = format!("source {} ({url})", spec.id);
            if settings.offline {
                docs.push((url.clone(), replay(&store, &url, spec)?));
            } else {
                let f = store.get(net.client()?, Request::get(url.clone(), what.clone()), |b| {
                    format_check(spec.format, b, &what)
                })?;
                not_modified += u64::from(f.from_cache);
                docs.push((url, raw_of(&spec.id, f)));
            }
        }
        SourceKind::QualtricsApi => {
            let base = endpoint(&settings.qualtrics, "qualtrics", &spec.id)?;
            let sid = spec.survey_id.clone().unwrap_or_default();
            let key = format!("{}/API/v3/surveys/{sid}/export-responses", base.trim_end_matches('/'));
            if settings.offline {
                docs.push((key.clone(), replay(&store, &key, spec)?));
            } else {
                let token = env_secret(spec.token_env.as_deref().unwrap_or("QUALTRICS_API_TOKEN"), &spec.id)?;
                let mut polling = Polling::default();
                if let Some(ms) = settings.qualtrics.poll_first_ms {
                    polling.first = std::time::Duration::from_millis(ms);
                    polling.max = polling.max.max(polling.first);
                }
                let csv = qualtrics_export(net.client()?, &base, &sid, &token, polling, settings.http.max_body_bytes)?;
                let raw = store_export(
                    &store,
                    &spec.id,
                    &key,
                    csv,
                    Format::QualtricsCsv,
                    &format!("Qualtrics export of survey {sid}"),
                )?;
                docs.push((key, raw));
            }
        }
        SourceKind::LimesurveyRc => {
            let url = endpoint(&settings.limesurvey, "limesurvey", &spec.id)?;
            let sid = spec.survey_id.clone().unwrap_or_default();
            let key = format!("{url}#survey={sid}");
            if settings.offline {
                docs.push((key.clone(), replay(&store, &key, spec)?));
            } else {
                let password = env_secret(spec.password_env.as_deref().unwrap_or("LIMESURVEY_PASSWORD"), &spec.id)?;
                let user = spec.username.clone().unwrap_or_default();
                let csv = limesurvey_export(net.client()?, &url, &sid, &user, &password)?;
                let raw = store_export(
                    &store,
                    &spec.id,
                    &key,
                    csv,
                    Format::LimesurveyCsv,
                    &format!("LimeSurvey export of survey {sid}"),
                )?;
                docs.push((key, raw));
            }
        }
        SourceKind::ImfDatamapper => {
            let base = endpoint(&settings.imf, "imf", &spec.id)?;
            let base = base.trim_end_matches('/');
            let countries = spec.countries.join("/");
            let urls: Vec<(String, String)> =
                spec.indicators.keys().map(|c| (c.clone(), format!("{base}/api/v1/{c}/{countries}"))).collect();
            if settings.offline {
                for (code, u) in &urls {
                    docs.push((code.clone(), replay(&store, u, spec)?));
                }
            } else {
                let reqs: Vec<(Request, Option<FetchRecord>)> = urls
                    .iter()
                    .map(|(c, u)| store.conditional(Request::get(u.clone(), format!("IMF DataMapper indicator {c}"))))
                    .collect();
                let (reqs, known): (Vec<Request>, Vec<Option<FetchRecord>>) = reqs.into_iter().unzip();
                for (((code, u), res), k) in urls.iter().zip(net.client()?.fetch_all(reqs)).zip(known) {
                    let what = format!("IMF DataMapper indicator {code}");
                    let f = store.finish(u, k, res?, |b| parse_imf_datamapper(b, code, &what).map(|_| None))?;
                    not_modified += u64::from(f.from_cache);
                    docs.push((code.clone(), raw_of(&spec.id, f)));
                }
            }
        }
    }
    let records = docs.iter().map(|(_, r)| r.record.clone()).collect();
    Ok(Fetched { docs, records, not_modified })
}

/// Decodes the bytes of a source into a table.
pub fn read(spec: &SourceSpec, fetched: &Fetched, settings: &Settings) -> Result<ReadOutput> {
    let opts = |name: &str| QualtricsOptions {
        source: spec.id.clone(),
        name: name.to_owned(),
        batch_rows: settings.batch_rows,
        encoding: spec.encoding.clone(),
        delimiter: spec.delimiter.and_then(|c| u8::try_from(c).ok()),
    };
    let format = match spec.kind {
        SourceKind::WorldbankApi => Some(Format::WorldbankJson),
        SourceKind::QualtricsApi => Some(Format::QualtricsCsv),
        SourceKind::LimesurveyRc => Some(Format::LimesurveyCsv),
        SourceKind::ImfDatamapper => return read_imf(spec, fetched),
        SourceKind::File | SourceKind::Url => spec.format,
    };
    let Some((name, raw)) = fetched.docs.first() else {
        return Err(Error::data(format!("source {}: nothing was fetched", spec.id)));
    };
    // A zip (the World Bank bulk download, an export archive) holds the table.
    let unzipped;
    let bytes: &[u8] = if raw.bytes.starts_with(b"PK\x03\x04") && format != Some(Format::Xlsx) {
        unzipped = unzip_single_table(&raw.bytes, settings.http.max_body_bytes, name)?;
        &unzipped
    } else {
        &raw.bytes
    };
    match format {
        Some(Format::QualtricsCsv) => read_qualtrics_csv(bytes, &opts(name)),
        Some(Format::LimesurveyCsv | Format::Csv) => read_delimited(bytes, &opts(name)),
        Some(Format::WorldbankJson) => read_worldbank(spec, fetched),
        Some(Format::Xlsx) => read_xlsx(bytes, &opts(name), spec.sheet.as_deref()),
        Some(Format::Spss) => read_sav(
            bytes,
            &SavOptions {
                source: spec.id.clone(),
                name: name.clone(),
                batch_rows: settings.batch_rows,
                encoding: spec.encoding.clone(),
                keep_user_missing: spec.keep_user_missing,
            },
        ),
        Some(Format::WdiCsv) => observations_table(spec, read_wdi_csv(bytes, &spec.id, name)?),
        Some(Format::ImfWeo) => observations_table(spec, read_imf_weo(bytes, &spec.id, name)?),
        Some(Format::SdmxCsv) => {
            observations_table(spec, read_sdmx_csv(bytes, &spec.id, name, spec.indicator_dimension.as_deref())?)
        }
        None => Err(Error::config(format!("source {}: format missing", spec.id))),
    }
}

/// Observations (indicator files, World Bank pages, IMF answers) → long table (`iso3`, `year`, `indicator`,
/// `value`, and `forecast` when the source marks projections), indicators renamed by the source's `indicators`
/// table. Observations outside the declared countries, years or indicators are `outside_request` rejects.
fn observations_table(spec: &SourceSpec, (obs, mut rejects): Observations) -> Result<ReadOutput> {
    use arrow_array::builder::{BooleanBuilder, Float64Builder, Int32Builder, StringBuilder, UInt64Builder};
    use arrow_array::{ArrayRef, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let countries: BTreeSet<&str> = spec.countries.iter().map(String::as_str).collect();
    let (from, to) = spec.years.as_deref().and_then(parse_years).unwrap_or((i32::MIN, i32::MAX));
    let with_forecast = obs.iter().any(|o| o.forecast.is_some());
    let (mut line, mut iso, mut year, mut ind, mut val, mut fc) = (
        UInt64Builder::new(),
        StringBuilder::new(),
        Int32Builder::new(),
        StringBuilder::new(),
        Float64Builder::new(),
        BooleanBuilder::new(),
    );
    let rows_read = (obs.len() + rejects.len()) as u64;
    for o in obs {
        let column = if spec.indicators.is_empty() {
            Some(o.indicator.as_str())
        } else {
            spec.indicators.get(&o.indicator).map(String::as_str)
        };
        let wanted = (countries.is_empty() || countries.contains(o.iso3.as_str())) && o.year >= from && o.year <= to;
        let Some(column) = column.filter(|_| wanted) else {
            rejects.push(Reject {
                source: spec.id.clone(),
                line: o.line,
                reason: "outside_request".into(),
                column: None,
                value: Some(format!("{} {} {}", o.indicator, o.iso3, o.year)),
            });
            continue;
        };
        line.append_value(o.line);
        iso.append_value(&o.iso3);
        year.append_value(o.year);
        ind.append_value(column);
        val.append_option(o.value);
        fc.append_value(o.forecast.unwrap_or(false));
    }
    let mut fields = vec![
        line_field(),
        Arc::new(Field::new("iso3", DataType::Utf8, false)),
        Arc::new(Field::new("year", DataType::Int32, false)),
        Arc::new(Field::new("indicator", DataType::Utf8, false)),
        Arc::new(Field::new("value", DataType::Float64, true)),
    ];
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(line.finish()),
        Arc::new(iso.finish()),
        Arc::new(year.finish()),
        Arc::new(ind.finish()),
        Arc::new(val.finish()),
    ];
    if with_forecast {
        fields.push(Arc::new(Field::new("forecast", DataType::Boolean, false)));
        cols.push(Arc::new(fc.finish()));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), cols).map_err(|e| Error::internal(e.to_string()))?;
    Ok(ReadOutput { table: Table::new(schema, vec![batch]), rejects, rows_read })
}

/// IMF DataMapper answers → observations → long table (see [`observations_table`]). The API returns more
/// countries than asked; the others become `outside_request` rejects there. `forecast` marks years from the
/// current calendar year on, which the WEO publishes as projections.
fn read_imf(spec: &SourceSpec, fetched: &Fetched) -> Result<ReadOutput> {
    let this_year = diaspora_core::now_rfc3339()[..4].parse::<i32>().unwrap_or(i32::MAX);
    let mut obs = Vec::new();
    for (code, raw) in &fetched.docs {
        let mut values = parse_imf_datamapper(&raw.bytes, code, &format!("IMF DataMapper indicator {code}"))?;
        values.sort_by(|a, b| (&a.iso3, a.year).cmp(&(&b.iso3, b.year)));
        for v in values {
            obs.push(LongObservation {
                line: obs.len() as u64 + 1,
                iso3: v.iso3,
                year: v.year,
                indicator: code.clone(),
                value: v.value,
                forecast: Some(v.year >= this_year),
            });
        }
    }
    observations_table(spec, (obs, Vec::new()))
}

/// World Bank pages → observations → long table (see [`observations_table`]), checking that each page is for its
/// indicator and that the pages hold the records their meta `total` announces.
fn read_worldbank(spec: &SourceSpec, fetched: &Fetched) -> Result<ReadOutput> {
    let mut obs = Vec::new();
    let mut vintages = BTreeSet::new();
    let mut per_indicator: std::collections::BTreeMap<&str, (u64, Option<u64>)> = Default::default();
    // From the API each document is one indicator's page; a file may hold any indicator, named per record.
    let per_indicator_docs = spec.kind == SourceKind::WorldbankApi;
    for (code, raw) in &fetched.docs {
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
            if per_indicator_docs && r.indicator != *code {
                return Err(Error::data(format!("{what}: record {} is for indicator {}", obs.len() + 1, r.indicator)));
            }
            obs.push(LongObservation {
                line: obs.len() as u64 + 1,
                iso3: r.iso3,
                year: r.year,
                indicator: r.indicator,
                value: r.value,
                forecast: None,
            });
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
    let mut out = observations_table(spec, (obs, Vec::new()))?;
    out.table.meta.vintage = vintages.into_iter().next_back();
    Ok(out)
}
