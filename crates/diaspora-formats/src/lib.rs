//! Sans-IO readers: bytes in, Arrow batches and rejects out.
//!
//! Readers never touch the file system or the network; the fetch stage hands them bytes and a name to put in
//! error messages. Every input row ends up in a batch or in the rejects with its line number: a ragged row or
//! undecodable bytes are rejects, never a crash and never a silent drop.

mod imf;
mod qualtrics;
mod split;
mod spss;
mod text;
pub mod wide;
mod worldbank;
mod xlsx;

pub use imf::{ImfValue, parse_imf_datamapper};
pub use qualtrics::{QualtricsOptions, read_delimited, read_piece, read_qualtrics_csv};
pub use split::{CsvSplitter, Piece};
pub use spss::{SavOptions, read_sav};
pub use text::{decode_text, decode_with};
pub use wide::{LongObservation, read_imf_weo, read_sdmx_csv, read_wdi_csv};
pub use worldbank::{WbPage, WbRecord, parse_worldbank_page};
pub use xlsx::read_xlsx;

use diaspora_core::{Reject, Table};

/// What a reader produced: the good rows, and the rows it could not read.
#[derive(Debug)]
pub struct ReadOutput {
    /// Rows that were read, as text columns plus the hidden line column.
    pub table: Table,
    /// Rows that could not be read, with reasons.
    pub rejects: Vec<Reject>,
    /// Data rows seen in the input (= table rows + rejects).
    pub rows_read: u64,
}
