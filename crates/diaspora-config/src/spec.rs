use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A whole pipeline file: what to read, how to clean it, how to combine it and what to publish.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pipeline {
    /// Short name, used in reports and the lock file name.
    pub name: String,
    /// What the pipeline is for.
    #[serde(default)]
    pub description: Option<String>,
    /// Inputs, each cleaned on its own.
    pub sources: Vec<SourceSpec>,
    /// Steps that need whole inputs: pivot, join, aggregate.
    #[serde(default)]
    pub combine: Vec<CombineSpec>,
    /// Published datasets.
    pub outputs: Vec<OutputSpec>,
}

/// Where a source's bytes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// A local path or `file://` URL.
    File,
    /// The World Bank Indicators API v2 (recorded pages when offline).
    WorldbankApi,
    /// A plain HTTP(S) URL (conditional GET, raw store).
    Url,
    /// The Qualtrics v3 response export (start, poll, download, unzip).
    QualtricsApi,
    /// LimeSurvey RemoteControl JSON-RPC `export_responses`.
    LimesurveyRc,
    /// The IMF DataMapper API.
    ImfDatamapper,
}

/// How a source's bytes are decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// Qualtrics CSV export with three header rows (names, question text, ImportId JSON).
    QualtricsCsv,
    /// World Bank API v2 JSON pages.
    WorldbankJson,
    /// LimeSurvey CSV export (one header row, `;` or `,`, quoted, BOM).
    LimesurveyCsv,
    /// Delimited text with one header row; the delimiter is sniffed.
    Csv,
    /// World Bank WDI bulk CSV (or the zip it comes in).
    WdiCsv,
    /// IMF World Economic Outlook download (tab-separated text).
    ImfWeo,
    /// SDMX-CSV 1.0 or 2.x.
    SdmxCsv,
    /// An XLSX workbook (one sheet, first row = column names).
    Xlsx,
    /// An SPSS system file (.sav or .zsav), with value labels and user-missing values.
    Spss,
}

/// One input.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Unique id, referenced by combine steps and outputs.
    pub id: String,
    /// Where the bytes come from.
    pub kind: SourceKind,
    /// Path or `file://` URL (`kind = "file"`).
    #[serde(default)]
    pub location: Option<String>,
    /// Decoder (`kind = "file"`).
    #[serde(default)]
    pub format: Option<Format>,
    /// World Bank indicator code → output column name.
    #[serde(default)]
    pub indicators: BTreeMap<String, String>,
    /// World Bank: ISO3 codes of the countries to fetch.
    #[serde(default)]
    pub countries: Vec<String>,
    /// World Bank, IMF: year range `FROM:TO`.
    #[serde(default)]
    pub years: Option<String>,
    /// Qualtrics (`SV_…`) or LimeSurvey (numeric) survey id.
    #[serde(default)]
    pub survey_id: Option<String>,
    /// Environment variable holding the Qualtrics API token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// LimeSurvey user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the LimeSurvey password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Character encoding of a text file (`windows-1251`, `koi8-r`, `utf-16le`, …); detected when absent.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Field delimiter of a text file (one character); sniffed when absent.
    #[serde(default)]
    pub delimiter: Option<char>,
    /// SPSS: keep user-missing values as values instead of NULL.
    #[serde(default)]
    pub keep_user_missing: bool,
    /// XLSX: the sheet to read (default: the first).
    #[serde(default)]
    pub sheet: Option<String>,
    /// SDMX-CSV: the dimension whose value names the indicator (default: the dataflow id).
    #[serde(default)]
    pub indicator_dimension: Option<String>,
    /// Largest share of rows that may be rejected before the run fails with exit 65.
    #[serde(default)]
    pub max_reject_share: Option<f64>,
    /// Privacy declarations beyond the built-in policy.
    #[serde(default)]
    pub privacy: PrivacySpec,
    /// Cleaning steps, in order.
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// Per-source privacy declarations. Built-in identifiers and free-text columns are dropped without them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// More columns to treat as direct identifiers.
    #[serde(default)]
    pub identifiers: Vec<String>,
    /// More columns to treat as free text.
    #[serde(default)]
    pub free_text: Vec<String>,
    /// Named allowances to publish an identifier or free-text column; shown in every run report.
    #[serde(default)]
    pub allow: Vec<Allowance>,
}

/// An explicit, named permission to publish a restricted column.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    /// The column as named in the source.
    pub column: String,
    /// Why it may be published (ethics approval reference, etc.).
    pub reason: String,
}

/// Target types of `cast`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CastType {
    /// 32-bit signed integer.
    Int32,
    /// 64-bit signed integer.
    Int64,
    /// 64-bit float.
    Float64,
    /// Boolean from true/false, 1/0, yes/no.
    Bool,
}

/// What `value_map` does with a value that is not in its map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmapped {
    /// Reject the row (reason from the step).
    #[default]
    Reject,
    /// Write NULL.
    Null,
    /// Keep the original text.
    Keep,
}

/// Which duplicate `dedupe_by` keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Keep {
    /// The row with the greatest `order_by` value (ties: the later line).
    #[default]
    Latest,
    /// The row with the smallest `order_by` value (ties: the earlier line).
    First,
}

/// A cleaning step. All steps are per batch except the two dedupe steps, which are barriers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Reject rows whose `column` is one of `values`.
    DropValues { column: String, values: Vec<String>, reason: String },
    /// Reject rows whose `column` is not one of `values`.
    KeepValues { column: String, values: Vec<String>, reason: String },
    /// Reject rows where any of `columns` is empty or NULL (incomplete responses, e.g. LimeSurvey `submitdate`).
    DropMissing { columns: Vec<String>, reason: String },
    /// Reject rows whose numeric `column` is below `min` (or not a number).
    MinValue { column: String, min: f64, reason: String },
    /// Count and remove rows identical in every source column.
    DedupeExact {},
    /// Keep one row per `key`, by `order_by` (lexical order of the raw text, which is ISO order for timestamps).
    DedupeBy {
        key: String,
        order_by: String,
        #[serde(default)]
        keep: Keep,
    },
    /// Resolve free-text or coded country answers to ISO 3166 alpha-3 in `into`.
    Country { column: String, into: String },
    /// Turn the listed codes into NULL in `columns` (before casting).
    MissingCodes { columns: Vec<String>, codes: Vec<String> },
    /// Parse text into a type; a cell that does not parse rejects its row with `reason` (default `cast_failed`).
    Cast {
        column: String,
        to: CastType,
        #[serde(default)]
        into: Option<String>,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Reject rows whose numeric `column` lies outside `[min, max]`.
    Range { column: String, min: f64, max: f64, reason: String },
    /// Map labels (in any language) to codes.
    ValueMap {
        column: String,
        into: String,
        map: BTreeMap<String, String>,
        #[serde(default)]
        unmapped: Unmapped,
        #[serde(default)]
        reason: Option<String>,
    },
    /// Parse local timestamps (`%Y-%m-%d %H:%M:%S`) in the export's time zone (from the Qualtrics ImportId
    /// header, or `time_zone`) to UTC instants; `time_zone = "naive"` keeps wall-clock times without a zone.
    Timestamps {
        columns: Vec<String>,
        #[serde(default)]
        time_zone: Option<String>,
    },
    /// Look `column` up in a two-column CSV table (`table`, with columns `key` and `value`) and add the value as
    /// `into`. Keys are compared after trimming spaces and lower-casing (full Unicode). A NULL or blank cell is
    /// rejected as `missing_reason`, an unknown one as `unmapped_reason`.
    Lookup {
        column: String,
        into: String,
        table: String,
        key: String,
        value: String,
        #[serde(default = "default_missing_reason")]
        missing_reason: String,
        #[serde(default = "default_unmapped_reason")]
        unmapped_reason: String,
    },
    /// Replace an id with a keyed pseudonym (HMAC-SHA-256) in `into`; the original column is then dropped.
    Pseudonymize { column: String, into: String },
    /// Keep rows for which the SQL boolean expression is TRUE; others (FALSE or NULL) are rejected with
    /// `reason`. Evaluated with DataFusion (build feature `sql`); quote mixed-case names: `"Q1" IS NOT NULL`.
    Filter { expr: String, reason: String },
    /// Add (or replace) column `name` with the value of an SQL expression, e.g.
    /// `CASE WHEN age < 30 THEN 'under_30' ELSE '30_plus' END` (build feature `sql`).
    Derive { name: String, expr: String },
    /// Replace codes by their value labels (SPSS `spss.value_labels` metadata) in `into` (default: in place);
    /// a code without a label keeps its text.
    Labels {
        column: String,
        #[serde(default)]
        into: Option<String>,
    },
    /// Rename columns (`old = "new"`).
    Rename { columns: BTreeMap<String, String> },
    /// Keep only these columns, in this order.
    Select { columns: Vec<String> },
}

/// A step over whole inputs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum CombineSpec {
    /// Long indicators (`iso3, year, indicator, value`) → one row per (iso3, year), a column per indicator;
    /// `names = "lower_snake"` names the columns `lower(replace(indicator, '.', '_'))`.
    Pivot {
        id: String,
        from: String,
        #[serde(default)]
        names: Option<PivotNames>,
    },
    /// `left` ⟕ `right` on `on` and time: exact `left_time = right_time`, else the latest right year
    /// ≤ left time within `max_lag`, per indicator column; records the year used in `<column>_year`.
    AsofJoin {
        id: String,
        left: String,
        right: String,
        on: String,
        left_time: String,
        right_time: String,
        #[serde(default = "default_lag")]
        max_lag: u32,
        /// Add a `<column>_year` column per indicator with the year used (default true).
        #[serde(default = "default_true")]
        year_columns: bool,
    },
    /// Counts and weighted shares per `by` group, with margins, small-cell and complementary suppression.
    Summary {
        id: String,
        from: String,
        by: Vec<String>,
        #[serde(default)]
        weight: Option<String>,
        #[serde(default)]
        shares: Vec<ShareSpec>,
        #[serde(default)]
        carry: Vec<String>,
        #[serde(default)]
        min_cell: Option<u32>,
    },
}

fn default_lag() -> u32 {
    2
}

fn default_true() -> bool {
    true
}

fn default_missing_reason() -> String {
    "lookup_missing".into()
}

fn default_unmapped_reason() -> String {
    "lookup_unmapped".into()
}

/// How `pivot` names its columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PivotNames {
    /// `NY.GDP.MKTP.CD` → `ny_gdp_mktp_cd`.
    LowerSnake,
}

/// A weighted share: the weighted fraction of rows (with a non-null `column`) that match.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShareSpec {
    /// Output column name.
    pub name: String,
    /// Column tested.
    pub column: String,
    /// Matches when the value is one of these (text columns).
    #[serde(default)]
    pub values: Vec<String>,
    /// Matches when the value is at least this (numeric columns).
    #[serde(default)]
    pub min: Option<f64>,
}

/// A published dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    /// Dataset name: the directory under the data root.
    pub dataset: String,
    /// The source or combine id whose table is written.
    pub from: String,
    /// Hive partition columns (only `wave`, `year`, `iso3`).
    #[serde(default)]
    pub partition_by: Vec<String>,
}

impl CombineSpec {
    /// The id this step's result is known by.
    pub fn id(&self) -> &str {
        match self {
            CombineSpec::Pivot { id, .. } | CombineSpec::AsofJoin { id, .. } | CombineSpec::Summary { id, .. } => id,
        }
    }
    /// The ids this step reads.
    pub fn inputs(&self) -> Vec<&str> {
        match self {
            CombineSpec::Pivot { from, .. } | CombineSpec::Summary { from, .. } => vec![from],
            CombineSpec::AsofJoin { left, right, .. } => vec![left, right],
        }
    }
}

/// Columns allowed as partition keys: coarse codes that cannot single out a respondent.
pub const PARTITION_COLUMNS: &[&str] = &["wave", "year", "iso3"];
