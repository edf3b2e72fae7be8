//! SQL expressions in cleaning steps (`filter`, `derive`), compiled once per step with DataFusion and evaluated
//! on each batch in parallel. Only in builds with the `sql` feature; without it those steps are configuration
//! errors that say how to build with it.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::Schema;
use diaspora_core::{Error, Result};

/// Whether this build can evaluate SQL expressions.
pub const SQL_AVAILABLE: bool = cfg!(feature = "sql");

/// A compiled expression.
pub struct SqlExpr {
    #[cfg(feature = "sql")]
    phys: std::sync::Arc<dyn datafusion::physical_plan::PhysicalExpr>,
}

impl SqlExpr {
    /// Parses and plans `sql` against `schema`; errors name the step's key path.
    #[cfg(feature = "sql")]
    pub fn compile(sql: &str, schema: &Schema, path: &str) -> Result<Self> {
        use datafusion::common::DFSchema;
        use datafusion::prelude::SessionContext;
        let ctx = SessionContext::new();
        let df_schema = DFSchema::try_from(schema.clone()).map_err(|e| Error::internal(format!("{path}: {e}")))?;
        let expr = ctx
            .parse_sql_expr(sql, &df_schema)
            .map_err(|e| Error::config(format!("{path}.expr: {}", first_line(&e.to_string()))))?;
        let phys = ctx
            .create_physical_expr(expr, &df_schema)
            .map_err(|e| Error::config(format!("{path}.expr: {}", first_line(&e.to_string()))))?;
        Ok(Self { phys })
    }

    /// Without the `sql` feature: a configuration error saying how to get it.
    #[cfg(not(feature = "sql"))]
    pub fn compile(_sql: &str, _schema: &Schema, path: &str) -> Result<Self> {
        Err(Error::config(format!(
            "{path}: SQL expressions need a build with the `sql` feature (cargo build --release --features sql)"
        )))
    }

    /// Evaluates on one batch; the result has one value per row.
    #[cfg(feature = "sql")]
    pub fn eval(&self, batch: &RecordBatch, path: &str) -> Result<ArrayRef> {
        self.phys
            .evaluate(batch)
            .and_then(|v| v.into_array(batch.num_rows()))
            .map_err(|e| Error::data(format!("{path}: evaluating the expression: {}", without_values(&e.to_string()))))
    }

    /// Never called: without the feature no expression compiles.
    #[cfg(not(feature = "sql"))]
    pub fn eval(&self, _batch: &RecordBatch, path: &str) -> Result<ArrayRef> {
        Err(Error::config(format!("{path}: SQL expressions need the `sql` feature")))
    }
}

/// The first line of an evaluation error with quoted parts (which may be cell values) blanked.
#[cfg(feature = "sql")]
fn without_values(s: &str) -> String {
    let line = first_line(s);
    let mut out = String::with_capacity(line.len());
    let mut quoted = false;
    for c in line.chars() {
        if c == '\'' {
            quoted = !quoted;
            out.push_str(if quoted { "'…" } else { "'" });
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

#[cfg(feature = "sql")]
fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}
