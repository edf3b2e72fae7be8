//! The `diaspora` command: run, validate, inspect and garbage-collect pipelines; check the country resolver.
//!
//! Exit codes (for cron and CI): 0 success (including an up-to-date no-op), 65 input data error, 70 internal
//! error, 75 temporary failure worth retrying (lock held, network), 78 configuration error.

use clap::{Parser, Subcommand, ValueEnum};
use diaspora_core::{Error, Result};
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "diaspora", version, about = "Survey and indicator pipelines for migration research")]
struct Cli {
    /// Settings profile (config/<profile>.toml on top of config/default.toml).
    #[arg(long, global = true)]
    profile: Option<String>,
    /// Extra settings file applied after the profile.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Directory holding default.toml and the profile files.
    #[arg(long, global = true, default_value = "config")]
    config_dir: PathBuf,
    /// Override the data root.
    #[arg(long, global = true)]
    data_root: Option<PathBuf>,
    /// Log format; defaults to text on a terminal and JSON lines otherwise.
    #[arg(long, global = true)]
    log_format: Option<LogFormat>,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// More detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run pipelines and publish their datasets.
    Run { pipelines: Vec<PathBuf> },
    /// Check pipeline files offline; reports every problem at once.
    Validate { pipelines: Vec<PathBuf> },
    /// What a run would fetch and write, from the files and the cache state; fetches and writes nothing.
    Plan { pipeline: PathBuf },
    /// Show a published dataset: version, rows, partitions, files, sources and vintages.
    Inspect { dataset: PathBuf },
    /// Remove staging leftovers and versions beyond the retention count.
    Gc,
    /// Resolve country answers to ISO 3166 alpha-3 (arguments, or one per line on stdin with --batch).
    Country {
        texts: Vec<String>,
        /// Read texts from stdin, one per line; print `input<TAB>status<TAB>iso3`.
        #[arg(long)]
        batch: bool,
    },
}

/// Arrow batches are allocated and freed by the thousand; mimalloc reuses their memory across threads.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with exit 0; a wrong command line is a configuration error (78).
            let code = if e.use_stderr() { 78 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    init_logging(&cli);
    let code = match dispatch(&cli) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("diaspora: error: {e}");
            e.kind.exit_code()
        }
    };
    if std::env::var_os("DIASPORA_FAULT_AT").is_some() || std::env::var_os("DIASPORA_FAULT_IO_AT").is_some() {
        eprintln!("fault points passed: {}", diaspora_sink::fault_points_passed());
    }
    std::process::exit(code);
}

fn init_logging(cli: &Cli) {
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "info",
            1 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("DIASPORA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let json = match cli.log_format {
        Some(LogFormat::Json) => true,
        Some(LogFormat::Text) => false,
        None => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(|| LogWriter);
    if json {
        builder.json().init();
    } else {
        builder.with_target(false).init();
    }
}

/// The spinner shown while a pipeline runs on a terminal; log lines are printed above it.
static SPINNER: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Writes log lines to stderr, around the spinner when there is one.
struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let spinner = SPINNER.lock().ok().and_then(|s| s.clone());
        match spinner {
            Some(pb) => pb.suspend(|| std::io::stderr().write_all(buf))?,
            None => std::io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn settings(cli: &Cli) -> Result<diaspora_config::Settings> {
    let mut s = diaspora_config::load_settings(&cli.config_dir, cli.profile.as_deref(), cli.config.as_deref())?;
    if let Some(root) = &cli.data_root {
        s.data_root = root.clone();
    }
    Ok(s)
}

fn load(path: &Path) -> Result<(diaspora_config::Pipeline, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::config(format!("cannot read pipeline file {}: {e}", path.display())))?;
    let p = diaspora_config::parse_pipeline(&text).map_err(|problems| {
        let list: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
        Error::config(format!("{}: {} problem(s)\n{}", path.display(), problems.len(), list.join("\n")))
    })?;
    Ok((p, text))
}

/// A pipeline with `filter` or `derive` steps needs a build with the `sql` feature.
fn sql_available_for(p: &diaspora_config::Pipeline) -> Result<()> {
    if diaspora_clean::sql::SQL_AVAILABLE {
        return Ok(());
    }
    for (i, s) in p.sources.iter().enumerate() {
        for (j, step) in s.steps.iter().enumerate() {
            if matches!(step, diaspora_config::Step::Filter { .. } | diaspora_config::Step::Derive { .. }) {
                return Err(Error::config(format!(
                    "sources[{i}].steps[{j}]: SQL expressions need a build with the `sql` feature \
                     (cargo build --release --features sql)"
                )));
            }
        }
    }
    Ok(())
}

fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Run { pipelines } => {
            if pipelines.is_empty() {
                return Err(Error::config("run: name at least one pipeline file"));
            }
            let settings = settings(cli)?;
            if settings.threads > 0 {
                let _ = rayon_threads(settings.threads);
            }
            for path in pipelines {
                let (p, text) = load(path)?;
                sql_available_for(&p)?;
                // A spinner only for a person at a terminal; schedulers get JSON lines and nothing else.
                if !cli.quiet && std::io::stderr().is_terminal() {
                    let s = indicatif::ProgressBar::new_spinner().with_message(format!("running {}", p.name));
                    s.enable_steady_tick(std::time::Duration::from_millis(120));
                    *SPINNER.lock().map_err(|_| Error::internal("spinner lock poisoned"))? = Some(s);
                }
                let result = diaspora_pipeline::run(&p, &text, &settings);
                if let Some(s) = SPINNER.lock().ok().and_then(|mut s| s.take()) {
                    s.finish_and_clear();
                }
                let report = result?;
                if !cli.quiet {
                    eprintln!("{}", report.summary_line());
                }
            }
            Ok(())
        }
        Command::Validate { pipelines } => {
            let mut failed = Vec::new();
            for path in pipelines {
                match load(path).and_then(|(p, _)| sql_available_for(&p).map(|()| p)) {
                    Ok(_) => println!("{}: ok", path.display()),
                    Err(e) => {
                        println!("{e}");
                        failed.push(path.display().to_string());
                    }
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(Error::config(format!("{} pipeline file(s) invalid: {}", failed.len(), failed.join(", "))))
            }
        }
        Command::Plan { pipeline } => {
            let settings = settings(cli)?;
            let (p, _) = load(pipeline)?;
            sql_available_for(&p)?;
            for line in diaspora_pipeline::plan(&p, &settings)? {
                println!("{line}");
            }
            Ok(())
        }
        Command::Inspect { dataset } => match inspect(dataset, &mut std::io::stdout().lock()) {
            Err(e) if e.message.contains("Broken pipe") => Ok(()),
            other => other,
        },
        Command::Gc => {
            let s = settings(cli)?;
            let layout = diaspora_sink::Layout::new(&s.data_root);
            // Hold every pipeline's lock while collecting, so no running pipeline loses its staging.
            let _locks = diaspora_sink::Lock::acquire_all(&layout)?;
            let removed = diaspora_sink::gc(&layout, s.retention)?;
            println!("removed {} item(s)", removed.len());
            for r in removed {
                println!("  {}", r.display());
            }
            Ok(())
        }
        Command::Country { texts, batch } => {
            let resolver = diaspora_clean::CountryResolver::new();
            let mut out = std::io::stdout().lock();
            let mut answer = |t: &str| -> Result<()> {
                let (status, code) = match resolver.resolve(t) {
                    diaspora_clean::Resolution::Country(c) => ("country", c),
                    diaspora_clean::Resolution::Region => ("region", String::new()),
                    diaspora_clean::Resolution::Ambiguous => ("ambiguous", String::new()),
                    diaspora_clean::Resolution::Unresolved => ("unresolved", String::new()),
                    diaspora_clean::Resolution::Empty => ("empty", String::new()),
                };
                writeln!(out, "{t}\t{status}\t{code}").map_err(|e| Error::internal(e.to_string()))
            };
            if *batch {
                for line in std::io::stdin().lock().lines() {
                    answer(&line.map_err(|e| Error::data(format!("stdin: {e}")))?)?;
                }
            }
            for t in texts {
                answer(t)?;
            }
            Ok(())
        }
    }
}

fn rayon_threads(n: usize) -> std::result::Result<(), String> {
    rayon::ThreadPoolBuilder::new().num_threads(n).build_global().map_err(|e| e.to_string())
}

fn inspect(dataset: &Path, out: &mut impl Write) -> Result<()> {
    let w = |out: &mut dyn Write, line: String| writeln!(out, "{line}").map_err(|e| Error::internal(e.to_string()));
    let name = dataset
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::config(format!("{}: not a dataset path", dataset.display())))?;
    let root = dataset.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let layout = diaspora_sink::Layout::new(root);
    let m = diaspora_sink::read_manifest(&layout, &name)?;
    w(out, format!("dataset   {}", m.dataset))?;
    w(out, format!("version   {} (written {} by run {})", m.version, m.created_at, m.run_id))?;
    w(out, format!("pipeline  {}", m.pipeline))?;
    w(out, format!("rows      {}", m.rows))?;
    w(
        out,
        format!("partitioned by {}", if m.partition_by.is_empty() { "-".into() } else { m.partition_by.join(", ") }),
    )?;
    w(out, "columns".into())?;
    for (n, t) in &m.schema {
        w(out, format!("  {n}: {t}"))?;
    }
    w(out, format!("files     {}", m.files.len()))?;
    for f in m.files.iter().take(20) {
        w(out, format!("  {}  {} rows  {} bytes  sha256 {}", f.path, f.rows, f.bytes, &f.sha256[..16]))?;
    }
    if m.files.len() > 20 {
        w(out, format!("  … {} more", m.files.len() - 20))?;
    }
    w(out, "sources".into())?;
    for s in &m.sources {
        w(
            out,
            format!(
                "  {}  {}  sha256 {}  vintage {}",
                s.source,
                s.location,
                &s.sha256[..16],
                s.vintage.as_deref().unwrap_or("-")
            ),
        )?;
    }
    Ok(())
}
