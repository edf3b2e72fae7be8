//! Country resolver: free-text or coded answers → ISO 3166-1 alpha-3.
//!
//! Names come from keshvar (ISO short and long names, unofficial names, translations in many locales incl.
//! Russian) plus the project's alias table (`data/aliases.tsv`) for colloquial names; World Bank and IMF
//! aggregate codes and region words (`data/regions.tsv`) are recognised as regions, not countries.
//! Matching ignores case, spacing, punctuation and diacritics; typo tolerance applies only when one country is
//! clearly closest.

use std::collections::HashMap;
use std::sync::Mutex;
use unicode_normalization::UnicodeNormalization;

const ALIASES: &str = include_str!("../data/aliases.tsv");
const REGIONS: &str = include_str!("../data/regions.tsv");
const WB_CODES: &str = include_str!("../data/wb_codes.tsv");

/// Locales whose country names are indexed (languages of host countries common in the émigré panel).
const LOCALES: &[&str] = &[
    "en", "ru", "uk", "be", "de", "fr", "es", "it", "pt", "nl", "pl", "cs", "sk", "fi", "et", "lv", "lt", "sv", "no",
    "da", "tr", "ka", "hy", "az", "kk", "ky", "uz", "sr", "sr_Latn", "hr", "bg", "el", "he", "ro", "hu", "sl", "mk",
];

/// What a text resolves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// An ISO 3166-1 alpha-3 code (or a World Bank economy code without an ISO one, such as XKX).
    Country(String),
    /// A region or aggregate (EU, Europe, WLD …), not a country.
    Region,
    /// Matches several countries equally well.
    Ambiguous,
    /// Nothing matched.
    Unresolved,
    /// Empty or whitespace only.
    Empty,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Country(String),
    Region,
    Ambiguous,
}

/// The resolver. Build once ([`CountryResolver::new`]) and share; lookups are cached.
pub struct CountryResolver {
    /// Lookup tiers, tried in order: codes, curated tables, official names, other locales.
    tiers: [HashMap<String, Target>; 4],
    /// Country names long enough for typo matching.
    fuzzy: Vec<(String, String)>,
    cache: Mutex<HashMap<String, Resolution>>,
}

/// Normalises text for matching: NFKD, combining marks removed, lower case, ё → е, punctuation → space,
/// whitespace collapsed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.nfkd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        let c = if c == 'ё' || c == 'Ё' { 'е' } else { c };
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.extend(c.to_lowercase());
        } else {
            space = true;
        }
    }
    out
}

impl Default for CountryResolver {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds a name to a tier; a name two different targets share within the tier becomes ambiguous.
fn add(tier: &mut HashMap<String, Target>, name: &str, target: Target) {
    let key = normalize(name);
    if key.is_empty() {
        return;
    }
    match tier.get(&key) {
        None => {
            tier.insert(key, target);
        }
        Some(existing) if *existing == target => {}
        Some(_) => {
            tier.insert(key, Target::Ambiguous);
        }
    }
}

impl CountryResolver {
    /// Builds the name index from keshvar and the bundled tables.
    pub fn new() -> Self {
        let [mut codes, mut curated, mut official, mut locales] = std::array::from_fn(|_| HashMap::new());
        for country in keshvar::CountryIterator::new() {
            let iso3 = country.alpha3().to_string();
            let t = Target::Country(iso3.clone());
            add(&mut codes, &iso3, t.clone());
            add(&mut codes, &country.alpha2().to_string(), t.clone());
            add(&mut codes, country.number(), t.clone());
            add(&mut official, country.iso_short_name(), t.clone());
            add(&mut official, country.iso_long_name(), t.clone());
            for n in country.unofficial_name_list() {
                add(&mut official, n, t.clone());
            }
            for (loc, n) in country.translations() {
                let tier = if matches!(*loc, "en" | "ru") { &mut official } else { &mut locales };
                if LOCALES.contains(loc) {
                    add(tier, n, t.clone());
                }
            }
        }
        for (code, iso3) in tsv_pairs(WB_CODES) {
            add(&mut codes, code, Target::Country(iso3.to_owned()));
        }
        for (code, name) in tsv_pairs(REGIONS) {
            if code != "REGION" {
                codes.insert(normalize(code), Target::Region);
            }
            add(&mut curated, name, Target::Region);
        }
        for (alias, iso3) in tsv_pairs(ALIASES) {
            add(&mut curated, alias, Target::Country(iso3.to_owned()));
        }
        let tiers = [codes, curated, official, locales];
        let mut fuzzy: Vec<(String, String)> = tiers[1..]
            .iter()
            .flat_map(|t| t.iter())
            .filter_map(|(k, t)| match t {
                Target::Country(c) if k.chars().count() >= 5 => Some((k.clone(), c.clone())),
                _ => None,
            })
            .collect();
        fuzzy.sort();
        fuzzy.dedup();
        Self { tiers, fuzzy, cache: Mutex::new(HashMap::new()) }
    }

    /// Resolves one answer.
    pub fn resolve(&self, text: &str) -> Resolution {
        if let Some(r) = self.cache.lock().ok().and_then(|c| c.get(text).cloned()) {
            return r;
        }
        let r = self.resolve_uncached(text);
        if let Ok(mut c) = self.cache.lock() {
            c.insert(text.to_owned(), r.clone());
        }
        r
    }

    fn resolve_uncached(&self, text: &str) -> Resolution {
        if text.trim().is_empty() {
            return Resolution::Empty;
        }
        let key = normalize(text);
        if key.is_empty() {
            return Resolution::Unresolved;
        }
        if let Some(r) = self.exact(&key) {
            return r;
        }
        // "City, Country": the part after the last comma; "Country (City)": the part before the bracket.
        // Never the part before a comma ("Korea, Dem. People's Rep." is not Korea).
        let candidates = [text.rsplit(',').next().unwrap_or(text), text.split('(').next().unwrap_or(text)];
        for part in candidates {
            let k = normalize(part);
            if !k.is_empty()
                && k != key
                && let Some(r) = self.exact(&k)
            {
                return r;
            }
        }
        self.typo(&key)
    }

    fn exact(&self, key: &str) -> Option<Resolution> {
        self.tiers.iter().find_map(|t| t.get(key)).map(|t| match t {
            Target::Country(c) => Resolution::Country(c.clone()),
            Target::Region => Resolution::Region,
            Target::Ambiguous => Resolution::Ambiguous,
        })
    }

    /// One edit for names of 5–8 characters, two from 9: accepted only when a single country is that close.
    fn typo(&self, key: &str) -> Resolution {
        let len = key.chars().count();
        if len < 5 {
            return Resolution::Unresolved;
        }
        let max = if len >= 9 { 2 } else { 1 };
        let mut best: Option<(usize, &str)> = None;
        let mut tie = false;
        for (name, iso3) in &self.fuzzy {
            if name.chars().count().abs_diff(len) > max {
                continue;
            }
            let d = osa_distance(key, name);
            if d > max {
                continue;
            }
            match best {
                Some((bd, b)) if d == bd && b != iso3 => tie = true,
                Some((bd, _)) if d >= bd => {}
                _ => {
                    best = Some((d, iso3));
                    tie = false;
                }
            }
        }
        match best {
            Some(_) if tie => Resolution::Ambiguous,
            Some((_, iso3)) => Resolution::Country(iso3.to_owned()),
            None => Resolution::Unresolved,
        }
    }
}

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions ("Germnay").
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

fn tsv_pairs(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().skip(1).filter(|l| !l.trim().is_empty() && !l.starts_with('#')).filter_map(|l| {
        let mut f = l.split('\t');
        Some((f.next()?, f.next()?.trim()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(text: &str) -> Resolution {
        static R: std::sync::OnceLock<CountryResolver> = std::sync::OnceLock::new();
        R.get_or_init(CountryResolver::new).resolve(text)
    }

    fn c(iso3: &str) -> Resolution {
        Resolution::Country(iso3.into())
    }

    #[test]
    fn codes_names_and_languages() {
        assert_eq!(r("KZ"), c("KAZ"));
        assert_eq!(r("deu"), c("DEU"));
        assert_eq!(r("268"), c("GEO"));
        assert_eq!(r("Грузия"), c("GEO"));
        assert_eq!(r("  georgia "), c("GEO"));
        assert_eq!(r("Türkiye"), c("TUR"));
        assert_eq!(r("Turkiye"), c("TUR"));
        assert_eq!(r("Tu\u{0308}rkiye"), c("TUR"));
        assert_eq!(r("США"), c("USA"));
        assert_eq!(r("ОАЭ"), c("ARE"));
        assert_eq!(r("Англия"), c("GBR"));
        assert_eq!(r("Кыргызстан"), c("KGZ"));
        assert_eq!(r("Бали"), c("IDN"));
        assert_eq!(r("Holland"), c("NLD"));
        assert_eq!(r("Sakartvelo"), c("GEO"));
    }

    #[test]
    fn city_country_typos_regions_and_garbage() {
        assert_eq!(r("Tbilisi, Georgia"), c("GEO"));
        assert_eq!(r("Ереван, Армения"), c("ARM"));
        assert_eq!(r("Germnay"), c("DEU"));
        assert_eq!(r("EUU"), Resolution::Region);
        assert_eq!(r("Европа"), Resolution::Region);
        assert_eq!(r("в пути"), Resolution::Unresolved);
        assert_eq!(r("между Грузией и Арменией"), Resolution::Unresolved);
        assert_eq!(r("   "), Resolution::Empty);
        assert_eq!(r("-"), Resolution::Unresolved);
    }

    #[test]
    fn every_sample_spelling_resolves_as_intended() {
        let tsv = include_str!("../../../data/sample/survey/country_spellings.tsv");
        let mut wrong = Vec::new();
        for line in tsv.lines().skip(1) {
            let Some((text, want)) = line.split_once('\t') else { continue };
            let got = r(text);
            let ok = match want {
                "UNRESOLVED" => matches!(got, Resolution::Unresolved | Resolution::Ambiguous),
                "EMPTY" => got == Resolution::Empty,
                "REGION" => got == Resolution::Region,
                iso3 => got == c(iso3),
            };
            if !ok {
                wrong.push(format!("{text:?}: want {want}, got {got:?}"));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }
}
