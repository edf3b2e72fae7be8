//! Settings and pipeline specs.
//!
//! *Settings* say where and how fast (data root, profile, threads, keys, endpoints). They are layered with the
//! `config` crate: built-in defaults, then `config/default.toml`, then `config/<profile>.toml`, then an optional
//! `--config` file, then `DIASPORA__…` environment variables (`DIASPORA__DATA_ROOT=/srv/out`).
//!
//! A *pipeline spec* (`pipelines/<name>.toml`) says what: sources, cleaning steps, combine steps and outputs.
//! Parsing never stops at the first problem: [`load_pipeline`] returns every unknown key (with a did-you-mean)
//! and every semantic error at once, each with its key path.

mod settings;
mod spec;
mod validate;

pub use settings::{
    EndpointSettings, HttpSettings, PseudonymSettings, Settings, StreamingSettings, WorldBankSettings, load_settings,
};
pub use spec::*;
pub use validate::{Problem, load_pipeline, parse_pipeline, parse_years};
