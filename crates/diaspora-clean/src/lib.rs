//! Cleaning: the country resolver, the declarative cleaning steps of a pipeline file, keyed pseudonyms and the
//! privacy policy that keeps direct identifiers and free text out of every output.
//!
//! Steps run per batch in parallel (rayon) except the two dedupe steps, which need the whole input. A row that a
//! step cannot clean goes to the rejects with a reason code; rows are never dropped silently.

pub mod country;
pub mod privacy;
pub mod pseudonym;
pub mod sql;
mod steps;

pub use country::{CountryResolver, Resolution, normalize};
pub use privacy::{PrivacyPolicy, Restriction, redact};
pub use pseudonym::{PseudonymKey, hmac_sha256};
pub use steps::{CleanContext, StepMemory, StepOutput, apply_step};
