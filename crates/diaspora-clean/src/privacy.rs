//! The privacy policy: which columns are direct identifiers, respondent ids or free text, and therefore never
//! leave a source unless the pipeline names an allowance for them.

use diaspora_config::PrivacySpec;
use diaspora_core::TableMeta;
use std::collections::BTreeMap;

/// Why a column is restricted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restriction {
    /// A direct identifier (IP address, location, name, e-mail, external reference, token …).
    Identifier,
    /// A respondent id: must be pseudonymised to be published.
    RespondentId,
    /// A free-text answer.
    FreeText,
}

/// Built-in direct identifiers of Qualtrics and LimeSurvey exports (compared case-insensitively).
pub const BUILTIN_IDENTIFIERS: &[&str] = &[
    "IPAddress",
    "LocationLatitude",
    "LocationLongitude",
    "LocationAccuracy",
    "RecipientFirstName",
    "RecipientLastName",
    "RecipientEmail",
    "ExternalReference",
    "ExternalDataReference",
    "EmailAddress",
    "Name",
    "token",
    "ipaddr",
    "refurl",
];

/// Built-in respondent id columns (compared case-insensitively).
pub const BUILTIN_RESPONDENT_IDS: &[&str] = &["ResponseId"];

/// The restricted columns of one source, tracked through renames.
#[derive(Debug, Clone, Default)]
pub struct PrivacyPolicy {
    restricted: BTreeMap<String, Restriction>,
    allowed: BTreeMap<String, String>,
}

impl PrivacyPolicy {
    /// Classifies the columns of a freshly read source. `respondent_ids` names the format's own respondent id
    /// columns beyond the built-in ones (LimeSurvey's `id`).
    pub fn for_source(columns: &[String], meta: &TableMeta, spec: &PrivacySpec, respondent_ids: &[&str]) -> Self {
        let mut restricted = BTreeMap::new();
        for c in columns {
            let lower = c.to_lowercase();
            let import = meta.import_ids.get(c).map(String::as_str).unwrap_or("");
            // A column is known by its name and by its Qualtrics ImportId (or, in legacy exports, by what the
            // second header row says it is: V6 is "IPAddress").
            let known_as = |list: &[&str]| {
                let id = import.to_lowercase();
                list.iter().any(|b| b.to_lowercase() == lower || b.to_lowercase() == id)
            };
            let r = if known_as(BUILTIN_IDENTIFIERS)
                || spec.identifiers.iter().any(|i| i.to_lowercase() == lower)
                || import.starts_with("recipient")
            {
                Some(Restriction::Identifier)
            } else if known_as(BUILTIN_RESPONDENT_IDS) || known_as(respondent_ids) || import == "_recordId" {
                Some(Restriction::RespondentId)
            } else if import.ends_with("_TEXT")
                || import.contains("_TEXT_")
                || spec.free_text.iter().any(|f| f.to_lowercase() == lower)
            {
                Some(Restriction::FreeText)
            } else {
                None
            };
            if let Some(r) = r {
                restricted.insert(c.clone(), r);
            }
        }
        let allowed = spec.allow.iter().map(|a| (a.column.clone(), a.reason.clone())).collect();
        Self { restricted, allowed }
    }

    /// Every restricted column, as currently named.
    pub fn restricted(&self) -> impl Iterator<Item = (&str, Restriction)> {
        self.restricted.iter().map(|(c, r)| (c.as_str(), *r))
    }

    /// The restriction on a column, if any.
    pub fn restriction(&self, column: &str) -> Option<Restriction> {
        self.restricted.get(column).copied()
    }

    /// Whether a cell of this column may appear in a reject record (only unrestricted columns may).
    pub fn may_show(&self, column: &str) -> bool {
        !self.restricted.contains_key(column)
    }

    /// A step replaced the column's content with something that is not the respondent's own words or id (a
    /// pseudonym, a country code, a mapped code): it is no longer restricted.
    pub fn release(&mut self, column: &str) {
        self.restricted.remove(column);
    }

    /// Marks a column as restricted (a value derived from a restricted one).
    pub fn restrict(&mut self, column: &str, r: Restriction) {
        self.restricted.insert(column.to_owned(), r);
    }

    /// Follows a rename.
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(r) = self.restricted.remove(from) {
            self.restricted.insert(to.to_owned(), r);
        }
        if let Some(a) = self.allowed.remove(from) {
            self.allowed.insert(to.to_owned(), a);
        }
    }

    /// The restricted columns among `columns` that must be dropped (restricted and not allowed).
    pub fn to_drop(&self, columns: &[String]) -> Vec<(String, Restriction)> {
        columns
            .iter()
            .filter_map(|c| self.restricted.get(c).map(|r| (c.clone(), *r)))
            .filter(|(c, _)| !self.allowed.contains_key(c))
            .collect()
    }

    /// The allowances in force for `columns`: (column, restriction, reason).
    pub fn allowances(&self, columns: &[String]) -> Vec<(String, Restriction, String)> {
        columns
            .iter()
            .filter_map(|c| Some((c.clone(), *self.restricted.get(c)?, self.allowed.get(c)?.clone())))
            .collect()
    }
}

/// Redacts what looks like contact data or an identifier in a short text kept for a reject record: e-mail
/// addresses, URLs, IP addresses, phone or id numbers (5+ digits), and anything after 80 characters.
pub fn redact(text: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for token in text.split_whitespace() {
        let digits = token.chars().filter(char::is_ascii_digit).count();
        let sensitive = token.contains('@')
            || token.contains("://")
            || token.to_lowercase().starts_with("www.")
            || digits >= 5
            || (token.matches('.').count() >= 3 && digits >= 4)
            || token.matches(':').count() >= 2
            || token.starts_with("R_")
            || token.starts_with("FS_");
        out.push(if sensitive { "[redacted]" } else { token });
    }
    let joined = out.join(" ");
    if joined.chars().count() > 80 { joined.chars().take(80).chain("…".chars()).collect() } else { joined }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_builtin_and_declared_columns() {
        let cols: Vec<String> =
            ["IPAddress", "ResponseId", "Q1", "Q2", "Q9", "LocationLatitude"].iter().map(|s| s.to_string()).collect();
        let mut meta = TableMeta::default();
        meta.import_ids.insert("Q1".into(), "QID1_TEXT".into());
        let spec = PrivacySpec {
            identifiers: vec!["Q9".into()],
            free_text: vec![],
            allow: vec![diaspora_config::Allowance { column: "LocationLatitude".into(), reason: "irb-42".into() }],
        };
        let mut p = PrivacyPolicy::for_source(&cols, &meta, &spec, &[]);
        assert_eq!(p.restriction("IPAddress"), Some(Restriction::Identifier));
        assert_eq!(p.restriction("ResponseId"), Some(Restriction::RespondentId));
        assert_eq!(p.restriction("Q1"), Some(Restriction::FreeText));
        assert_eq!(p.restriction("Q9"), Some(Restriction::Identifier));
        assert_eq!(p.restriction("Q2"), None);
        p.rename("IPAddress", "ip");
        let drop: Vec<String> = p
            .to_drop(&cols.iter().map(|c| c.replace("IPAddress", "ip")).collect::<Vec<_>>())
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        assert_eq!(drop, vec!["ip", "ResponseId", "Q1", "Q9"]);
        assert_eq!(p.allowances(&cols).len(), 1);
    }

    #[test]
    fn redaction_removes_contact_data() {
        let r = redact("ivan.petrov@example.org 203.0.113.7 +7 916 1234567 https://x.example R_abc Georgia");
        assert_eq!(r, "[redacted] [redacted] +7 916 [redacted] [redacted] [redacted] Georgia");
        assert!(redact(&"a ".repeat(100)).chars().count() <= 81);
    }
}
