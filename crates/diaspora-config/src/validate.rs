use crate::spec::{CombineSpec, OutputSpec, PARTITION_COLUMNS, Pipeline, SourceKind, SourceSpec, Step};
use diaspora_core::did_you_mean;
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

/// One problem found in a pipeline file, with the key path it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, e.g. `sources[0].steps[2].column`.
    pub path: String,
    /// What is wrong, including the valid values where there is a fixed set.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Reads and validates a pipeline file; returns every problem found, not just the first.
pub fn load_pipeline(path: &Path) -> Result<Pipeline, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem { path: path.display().to_string(), message: format!("cannot read pipeline file: {e}") }]
    })?;
    parse_pipeline(&text)
}

/// Parses and validates pipeline TOML text; returns every problem found.
pub fn parse_pipeline(text: &str) -> Result<Pipeline, Vec<Problem>> {
    let root: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        let msg = e.to_string().lines().next().unwrap_or("invalid TOML").to_owned();
        vec![Problem { path: "(file)".into(), message: format!("invalid TOML: {msg}") }]
    })?;
    let mut problems = Vec::new();
    let known = ["name", "description", "sources", "combine", "outputs"];
    for key in root.keys() {
        if !known.contains(&key.as_str()) {
            problems.push(unknown_key(key, key, &known));
        }
    }
    let name = match root.get("name") {
        Some(toml::Value::String(s)) if !s.is_empty() => s.clone(),
        Some(_) => {
            problems.push(Problem { path: "name".into(), message: "must be a non-empty string".into() });
            String::new()
        }
        None => {
            problems.push(Problem { path: "name".into(), message: "missing (the pipeline's short name)".into() });
            String::new()
        }
    };
    let description = root.get("description").and_then(|v| v.as_str()).map(str::to_owned);
    let sources: Vec<SourceSpec> = elements(&root, "sources", true, &mut problems);
    let combine: Vec<CombineSpec> = elements(&root, "combine", false, &mut problems);
    let outputs: Vec<OutputSpec> = elements(&root, "outputs", true, &mut problems);
    // Ids of elements that failed to parse still count as defined, so one bad source does not cascade.
    let raw_ids: Vec<String> = ["sources", "combine"]
        .iter()
        .filter_map(|k| root.get(*k).and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned))
        .collect();
    let pipeline = Pipeline { name, description, sources, combine, outputs };
    check_semantics(&pipeline, &raw_ids, &mut problems);
    if problems.is_empty() { Ok(pipeline) } else { Err(problems) }
}

/// Deserialises each element of the array `key` on its own, so one bad element does not hide the others.
fn elements<T: DeserializeOwned>(root: &toml::Table, key: &str, required: bool, problems: &mut Vec<Problem>) -> Vec<T> {
    match root.get(key) {
        None if required => {
            problems.push(Problem { path: key.into(), message: format!("missing: at least one [[{key}]] is needed") });
            Vec::new()
        }
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| deserialize_collecting(v.clone(), &format!("{key}[{i}]"), problems))
            .collect(),
        Some(_) => {
            problems.push(Problem { path: key.into(), message: format!("must be an array of tables ([[{key}]])") });
            Vec::new()
        }
    }
}

/// Deserialises `value`; every unknown key is recorded (with a did-you-mean) and removed, then it tries again,
/// so all unknown keys of an element are reported together.
fn deserialize_collecting<T: DeserializeOwned>(
    mut value: toml::Value,
    path: &str,
    problems: &mut Vec<Problem>,
) -> Option<T> {
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(t) => return Some(t),
            Err(e) => {
                // The path of the failing key, e.g. `steps[1].reason`, relative to this element.
                let at_path = e.path().to_string();
                let msg = e.inner().to_string();
                let msg = msg.lines().next().unwrap_or_default().to_owned();
                if let Some((field, expected)) = parse_unknown(&msg, "unknown field `") {
                    let found =
                        remove_at(&mut value, &at_path, &field, path).or_else(|| remove_key(&mut value, &field, path));
                    let at = found.clone().unwrap_or_else(|| format!("{path}.{field}"));
                    let exp: Vec<&str> = expected.iter().map(String::as_str).collect();
                    problems.push(unknown_key(&at, &field, &exp));
                    found.as_ref()?;
                    continue;
                }
                if let Some((variant, expected)) = parse_unknown(&msg, "unknown variant `") {
                    let exp: Vec<&str> = expected.iter().map(String::as_str).collect();
                    let hint = did_you_mean(&variant, exp.iter().copied())
                        .map(|s| format!(" (did you mean {s:?}?)"))
                        .unwrap_or_default();
                    let at = find_value_path(&value, &variant, path);
                    problems.push(Problem {
                        path: at.clone().unwrap_or_else(|| path.to_owned()),
                        message: format!("unknown value {variant:?}{hint}; valid values: {}", exp.join(", ")),
                    });
                    // Substitute the suggested value and go on, so the rest of the element is still checked;
                    // without a suggestion, further messages would only be echoes of this one.
                    match (at, did_you_mean(&variant, exp.iter().copied())) {
                        (Some(at), Some(s)) if replace_value(&mut value, &at, path, s) => continue,
                        _ => return None,
                    }
                }
                let at =
                    if at_path == "." || at_path.is_empty() { path.to_owned() } else { format!("{path}.{at_path}") };
                problems.push(Problem { path: at, message: msg });
                return None;
            }
        }
    }
    None
}

fn unknown_key(path: &str, key: &str, expected: &[&str]) -> Problem {
    let hint =
        did_you_mean(key, expected.iter().copied()).map(|s| format!(" (did you mean {s:?}?)")).unwrap_or_default();
    let valid = if expected.is_empty() { "none".to_owned() } else { expected.join(", ") };
    Problem { path: path.to_owned(), message: format!("unknown key {key:?}{hint}; valid keys here: {valid}") }
}

/// Parses serde's "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or "there are no fields").
fn parse_unknown(msg: &str, prefix: &str) -> Option<(String, Vec<String>)> {
    let start = msg.find(prefix)? + prefix.len();
    let rest = &msg[start..];
    let end = rest.find('`')?;
    let name = rest[..end].to_owned();
    let tail = &rest[end + 1..];
    let expected = tail.split('`').skip(1).step_by(2).map(str::to_owned).collect();
    Some((name, expected))
}

/// Removes `key` from the table at the serde path `at` (`steps[1].reason` or `steps[1]`) and returns its path.
fn remove_at(value: &mut toml::Value, at: &str, key: &str, path: &str) -> Option<String> {
    let mut cur = value;
    let mut shown = path.to_owned();
    let segments: Vec<&str> = at.split('.').filter(|s| !s.is_empty() && *s != "?").collect();
    // The last segment may be the unknown key itself.
    let segments = match segments.last() {
        Some(last) if *last == key => &segments[..segments.len() - 1],
        _ => &segments[..],
    };
    for seg in segments {
        let (name, index) = match seg.split_once('[') {
            Some((n, rest)) => (n, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*seg, None),
        };
        if !name.is_empty() {
            cur = cur.get_mut(name)?;
            shown.push('.');
            shown.push_str(name);
        }
        if let Some(i) = index {
            cur = cur.get_mut(i)?;
            shown.push_str(&format!("[{i}]"));
        }
    }
    cur.as_table_mut()?.remove(key)?;
    Some(format!("{shown}.{key}"))
}

/// Removes the first occurrence of `key` in nested tables (depth first) and returns its path.
fn remove_key(value: &mut toml::Value, key: &str, path: &str) -> Option<String> {
    match value {
        toml::Value::Table(t) => {
            if t.remove(key).is_some() {
                return Some(format!("{path}.{key}"));
            }
            for (k, v) in t.iter_mut() {
                if let Some(p) = remove_key(v, key, &format!("{path}.{k}")) {
                    return Some(p);
                }
            }
            None
        }
        toml::Value::Array(a) => {
            a.iter_mut().enumerate().find_map(|(i, v)| remove_key(v, key, &format!("{path}[{i}]")))
        }
        _ => None,
    }
}

/// Replaces the string at key path `target` (as built by [`find_value_path`]) with `with`.
fn replace_value(value: &mut toml::Value, target: &str, path: &str, with: &str) -> bool {
    if path == target {
        *value = toml::Value::String(with.to_owned());
        return true;
    }
    match value {
        toml::Value::Table(t) => t.iter_mut().any(|(k, v)| replace_value(v, target, &format!("{path}.{k}"), with)),
        toml::Value::Array(a) => {
            a.iter_mut().enumerate().any(|(i, v)| replace_value(v, target, &format!("{path}[{i}]"), with))
        }
        _ => false,
    }
}

/// Finds the key path holding the string `needle`.
fn find_value_path(value: &toml::Value, needle: &str, path: &str) -> Option<String> {
    match value {
        toml::Value::String(s) if s == needle => Some(path.to_owned()),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| find_value_path(v, needle, &format!("{path}.{k}"))),
        toml::Value::Array(a) => {
            a.iter().enumerate().find_map(|(i, v)| find_value_path(v, needle, &format!("{path}[{i}]")))
        }
        _ => None,
    }
}

const FORMATS: &str = "qualtrics_csv, limesurvey_csv, csv, worldbank_json, wdi_csv, imf_weo, sdmx_csv, xlsx, spss";

fn is_safe_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !s.starts_with('_')
}

fn check_semantics(p: &Pipeline, raw_ids: &[String], problems: &mut Vec<Problem>) {
    let mut push = |path: String, message: String| problems.push(Problem { path, message });
    if !p.name.is_empty() && !is_safe_name(&p.name) {
        push("name".into(), "must be lower-case letters, digits and _ (it names the lock file)".into());
    }
    let mut ids: Vec<String> = Vec::new();
    for (i, s) in p.sources.iter().enumerate() {
        let at = format!("sources[{i}]");
        if !is_safe_name(&s.id) {
            push(format!("{at}.id"), "must be lower-case letters, digits and _".into());
        }
        if ids.contains(&s.id) {
            push(format!("{at}.id"), format!("duplicate id {:?}", s.id));
        }
        ids.push(s.id.clone());
        match s.kind {
            SourceKind::File => {
                if s.location.is_none() {
                    push(format!("{at}.location"), "missing: a path or file:// URL".into());
                }
                if s.format.is_none() {
                    push(format!("{at}.format"), format!("missing; valid values: {FORMATS}"));
                }
            }
            SourceKind::Url => {
                match s.location.as_deref() {
                    Some(l) if l.starts_with("http://") || l.starts_with("https://") => {}
                    _ => push(format!("{at}.location"), "missing or not an http(s) URL".into()),
                }
                if s.format.is_none() {
                    push(format!("{at}.format"), format!("missing; valid values: {FORMATS}"));
                }
            }
            SourceKind::QualtricsApi => {
                if s.survey_id.is_none() {
                    push(format!("{at}.survey_id"), "missing: the Qualtrics survey id (SV_…)".into());
                }
                if s.token_env.is_none() {
                    push(format!("{at}.token_env"), "missing: the environment variable holding the API token".into());
                }
            }
            SourceKind::LimesurveyRc => {
                if s.survey_id.as_deref().is_none_or(|v| v.parse::<u64>().is_err()) {
                    push(format!("{at}.survey_id"), "missing or not numeric: the LimeSurvey survey id".into());
                }
                if s.username.is_none() || s.password_env.is_none() {
                    push(at.clone(), "username and password_env are needed for LimeSurvey".into());
                }
            }
            SourceKind::ImfDatamapper | SourceKind::WorldbankApi => {
                if s.indicators.is_empty() {
                    push(format!("{at}.indicators"), "missing: a table of indicator code = column name".into());
                }
                if s.countries.is_empty() {
                    push(format!("{at}.countries"), "missing: a list of ISO3 codes".into());
                }
                match s.years.as_deref().map(parse_years) {
                    Some(Some(_)) => {}
                    _ => push(
                        format!("{at}.years"),
                        "missing or invalid: expected \"FROM:TO\", e.g. \"2015:2024\"".into(),
                    ),
                }
                for (code, col) in &s.indicators {
                    if !is_safe_name(col) {
                        push(
                            format!("{at}.indicators.{code}"),
                            "column name must be lower-case letters, digits, _".into(),
                        );
                    }
                }
            }
        }
        if s.kind != SourceKind::WorldbankApi
            && s.kind != SourceKind::ImfDatamapper
            && let Some(y) = &s.years
            && parse_years(y).is_none()
        {
            push(format!("{at}.years"), "invalid: expected \"FROM:TO\", e.g. \"2015:2024\"".into());
        }
        if s.delimiter.is_some_and(|d| !d.is_ascii() || d == '"' || d == '\n') {
            push(format!("{at}.delimiter"), "must be one ASCII character other than a quote or newline".into());
        }
        if let Some(share) = s.max_reject_share
            && !(0.0..=1.0).contains(&share)
        {
            push(format!("{at}.max_reject_share"), "must be between 0 and 1".into());
        }
        for (j, step) in s.steps.iter().enumerate() {
            if let Step::Timestamps { time_zone: Some(tz), .. } = step
                && tz.trim().is_empty()
            {
                push(format!("{at}.steps[{j}].time_zone"), "must not be empty".into());
            }
        }
    }
    for (i, c) in p.combine.iter().enumerate() {
        let at = format!("combine[{i}]");
        for input in c.inputs() {
            // An element that failed to parse was already reported; do not report its readers too.
            let unparsed = raw_ids.iter().any(|r| r == input)
                && !p.sources.iter().any(|s| s.id == input)
                && !p.combine.iter().any(|x| x.id() == input);
            if !ids.iter().any(|id| id == input) && !unparsed {
                let hint = did_you_mean(input, ids.iter().map(String::as_str))
                    .map(|s| format!(" (did you mean {s:?}?)"))
                    .unwrap_or_default();
                push(at.clone(), format!("reads {input:?}, which no earlier source or combine step defines{hint}"));
            }
        }
        if !is_safe_name(c.id()) {
            push(format!("{at}.id"), "must be lower-case letters, digits and _".into());
        }
        if ids.iter().any(|id| id == c.id()) {
            push(format!("{at}.id"), format!("duplicate id {:?}", c.id()));
        }
        ids.push(c.id().to_owned());
    }
    let mut datasets = BTreeSet::new();
    for (i, o) in p.outputs.iter().enumerate() {
        let at = format!("outputs[{i}]");
        if !is_safe_name(&o.dataset) || o.dataset == "rejects" {
            push(
                format!("{at}.dataset"),
                "must be lower-case letters, digits and _, not starting with _, and not \"rejects\" (written automatically)"
                    .into(),
            );
        }
        if !datasets.insert(o.dataset.clone()) {
            push(format!("{at}.dataset"), format!("duplicate dataset {:?}", o.dataset));
        }
        if !ids.contains(&o.from) && !raw_ids.contains(&o.from) {
            let hint = did_you_mean(&o.from, ids.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            push(format!("{at}.from"), format!("no source or combine step is called {:?}{hint}", o.from));
        }
        for (j, col) in o.partition_by.iter().enumerate() {
            if !PARTITION_COLUMNS.contains(&col.as_str()) {
                push(
                    format!("{at}.partition_by[{j}]"),
                    format!(
                        "{col:?} may not be a partition key: only coarse codes ({}) are allowed, so that no directory \
                         name can single out a respondent",
                        PARTITION_COLUMNS.join(", ")
                    ),
                );
            }
        }
    }
}

/// Parses `FROM:TO` (or a single year) into an inclusive range.
pub fn parse_years(s: &str) -> Option<(i32, i32)> {
    let (a, b) = s.split_once(':').unwrap_or((s, s));
    let (a, b): (i32, i32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (1900..=2200).contains(&a).then_some(())?;
    (a <= b && b <= 2200).then_some((a, b))
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
[[sources]]
id = "survey"
kind = "file"
location = "x.csv"
format = "qualtrics_csv"
[[sources.steps]]
op = "drop_values"
column = "Status"
values = ["Survey Preview"]
reason = "preview"
[[outputs]]
dataset = "respondents"
from = "survey"
partition_by = ["wave"]
"#;

    #[test]
    fn a_good_pipeline_parses() {
        let p = parse_pipeline(GOOD).unwrap();
        assert_eq!(p.sources[0].steps.len(), 1);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_paths_and_hints() {
        let bad = GOOD
            .replace("reason = \"preview\"", "reason = \"preview\"\ncolumnz = 1")
            .replace("format = \"qualtrics_csv\"", "format = \"qualtrics_csvv\"")
            .replace("partition_by = [\"wave\"]", "partition_by = [\"wave\", \"age\"]\npartiton = 1")
            .replace("from = \"survey\"", "from = \"survy\"");
        let problems = parse_pipeline(&bad).unwrap_err();
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        let all = text.join("\n");
        assert!(all.contains("sources[0].steps[0].columnz: unknown key"), "{all}");
        assert!(all.contains("did you mean \"column\"?"), "{all}");
        assert!(all.contains("sources[0].format: unknown value \"qualtrics_csvv\""), "{all}");
        assert!(all.contains("did you mean \"qualtrics_csv\"?"), "{all}");
        assert!(all.contains("outputs[0].partiton: unknown key"), "{all}");
        assert!(all.contains("outputs[0].from: no source or combine step is called \"survy\""), "{all}");
        assert!(all.contains("outputs[0].partition_by[1]: \"age\" may not be a partition key"), "{all}");
    }

    #[test]
    fn an_unknown_key_is_reported_where_it_is_not_where_a_valid_one_of_that_name_is() {
        let bad = GOOD.replace("[[outputs]]", "[[sources.steps]]\nop = \"dedupe_exact\"\nreason = \"x\"\n[[outputs]]");
        let problems = parse_pipeline(&bad).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].to_string().starts_with("sources[0].steps[1].reason: unknown key"), "{problems:?}");
    }

    #[test]
    fn unknown_step_op_is_named() {
        let bad = GOOD.replace("op = \"drop_values\"", "op = \"drop_valus\"");
        let problems = parse_pipeline(&bad).unwrap_err();
        assert!(problems[0].to_string().contains("did you mean \"drop_values\"?"), "{problems:?}");
    }

    #[test]
    fn years_parse() {
        assert_eq!(parse_years("2015:2024"), Some((2015, 2024)));
        assert_eq!(parse_years("2020"), Some((2020, 2020)));
        assert_eq!(parse_years("2024:2015"), None);
        assert_eq!(parse_years("x"), None);
    }
}
