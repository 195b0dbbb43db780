//! The command line: `strata serve` (the default) and the client subcommands of
//! DESIGN.md, which talk to a running server over REST.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use serde_json::Value;
use tracing_subscriber::EnvFilter;

use crate::client::Client;
use crate::config::Config;
use crate::forecast::capture::{CAPTURE_SHARES, Captured};
use crate::service;
use crate::simulate::{Options, PolicyKind};

/// Strata keeps every object on the right storage tier, automatically.
///
/// Configuration comes from environment variables and a `.env` file; see `.env.example`.
#[derive(Debug, Parser)]
#[command(name = "strata", version)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service (API, event consumer, detector, mover) until interrupted.
    Serve,
    /// Train the forecaster on the catalogue's access history (or a trace file), write
    /// models/<name>-<version>.json and register it in the catalogue (DATABASE_URL).
    TrainModel(TrainArgs),
    /// Replay an access trace in virtual time through the detector, forecaster and
    /// policy that `serve` runs, on the tiers, thresholds and costs of the environment,
    /// and report hit ratios, moves and costs per policy against reference placements.
    Simulate {
        /// The access trace (CSV: ts_ms,object_id,size_bytes[,op], time-ordered).
        #[arg(long)]
        trace: PathBuf,
        /// Which policy to replay.
        #[arg(long, value_enum, default_value_t = PolicyArg::All)]
        policy: PolicyArg,
        /// Forecast with this model file instead of training one on the first part of
        /// the trace; the whole trace is then scored.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Share of the trace's time span to train the model on; only the rest is
        /// scored.
        #[arg(long, default_value_t = crate::simulate::DEFAULT_TRAIN_FRACTION)]
        train_fraction: f64,
        /// Bytes per second a move copies at (a move takes size / bandwidth); default
        /// MOVER_BANDWIDTH_BYTES_PER_SEC, else 100000000.
        #[arg(long)]
        bandwidth: Option<u64>,
        /// Write every move the policies queue to this CSV file.
        #[arg(long)]
        moves_out: Option<PathBuf>,
        /// A .env-format file of tier settings (TIERS, DEFAULT_TIER,
        /// TIER_<NAME>_CAPACITY_BYTES, costs, PREDICT_ABOVE, ...) that take precedence
        /// over the environment, to try other tiers without changing the service's.
        #[arg(long, value_name = "FILE")]
        tiers: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare the catalogue with the tiers (DATABASE_URL, TIER_*): objects whose bytes
    /// are missing or of the wrong size, a sample of them hashed against their checksum,
    /// bytes no object or move refers to (orphans). Exits non-zero when something is
    /// wrong and not repaired. The command to run after an incident.
    Check {
        /// Hash every object, not a sample.
        #[arg(long)]
        full: bool,
        /// Objects hashed when not --full.
        #[arg(long, default_value_t = 100)]
        sample: u64,
        /// Remove orphans; restore a damaged object from another copy of its bytes, or
        /// record the damage in the catalogue when there is none.
        #[arg(long)]
        repair: bool,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Upload a file; it lands on the default tier.
    Ingest {
        /// The file.
        file: PathBuf,
        /// Catalogue key; default: the file name.
        #[arg(long)]
        key: Option<String>,
        /// Replace the content of an existing object with the same key.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List objects.
    Objects {
        /// Only objects on this tier.
        #[arg(long)]
        tier: Option<String>,
        /// Only keys starting with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Objects per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Continue after this cursor (the `next` of the previous page).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Simulate reads of an object (publishes access events).
    Access {
        /// Object id.
        id: String,
        /// How many reads.
        #[arg(long, default_value_t = 1)]
        count: u64,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tier moves, newest first.
    Migrations {
        /// Only moves of this object.
        #[arg(long)]
        object: Option<String>,
        /// Only moves in this status (pending, copying, verifying, completed, failed, cancelled).
        #[arg(long)]
        status: Option<String>,
        /// Only moves for this reason (manual, reactive_access_spike, proactive_prediction, capacity_rebalance).
        #[arg(long)]
        reason: Option<String>,
        /// Moves per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Move an object to another tier now (reason `manual`).
    Migrate {
        /// Object id.
        id: String,
        /// Destination tier.
        #[arg(long)]
        to: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Predict an object's accesses with the server's active model.
    Predict {
        /// Object id.
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show the server's metrics.
    Metrics {
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `--policy` of `strata simulate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArg {
    /// Nothing moves.
    Static,
    /// The spike detector only.
    Reactive,
    /// The forecaster only.
    Proactive,
    /// Both, as `serve` runs them.
    Combined,
    /// A diagnostic: the forecaster's placement fed the true accesses of the coming
    /// horizon instead of the forecast.
    TrueCounts,
    /// Each of the above.
    All,
}

impl PolicyArg {
    fn kinds(self) -> Vec<PolicyKind> {
        match self {
            PolicyArg::Static => vec![PolicyKind::Static],
            PolicyArg::Reactive => vec![PolicyKind::Reactive],
            PolicyArg::Proactive => vec![PolicyKind::Proactive],
            PolicyArg::Combined => vec![PolicyKind::Combined],
            PolicyArg::TrueCounts => vec![PolicyKind::TrueCounts],
            PolicyArg::All => PolicyKind::ALL.to_vec(),
        }
    }
}

/// Which server a client subcommand talks to, and how it prints.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Base URL of the Strata server.
    #[arg(
        long = "server",
        env = "STRATA_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Bearer token for servers that set API_TOKEN.
    #[arg(long, env = "API_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Options of `strata train-model`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Train on this access trace (CSV: ts_ms,object_id,size_bytes[,op]) instead of
    /// the catalogue's history.
    #[arg(long, conflicts_with = "from_db")]
    pub trace: Option<PathBuf>,
    /// Train on the catalogue's access history (the default).
    #[arg(long)]
    pub from_db: bool,
    /// Make the new model the active one: every running server picks it up at its
    /// next forecast interval.
    #[arg(long)]
    pub activate: bool,
    /// Directory the model file is written to.
    #[arg(long, default_value = "models")]
    pub out: PathBuf,
    /// Model name.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Hours ahead the model predicts.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=168))]
    pub horizon_hours: u16,
    /// Most recent share of the hours held out for evaluation.
    #[arg(long, default_value_t = 0.2)]
    pub eval_fraction: f64,
    /// Also write a plot of predicted against actual accesses on the evaluation split
    /// (predicted-vs-actual.svg) and a summary (summary.md) into this directory.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs the parsed command line and turns the outcome into an exit code; errors are
/// printed as one line.
pub fn run(cli: Cli) -> ExitCode {
    tracing_subscriber::fmt()
        // Logs go to stderr so that client subcommands can print results on stdout.
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            // An empty RUST_LOG means the default, like every other empty variable.
            std::env::var("RUST_LOG")
                .ok()
                .filter(|v| !v.trim().is_empty())
                .and_then(|v| EnvFilter::try_new(v).ok())
                .unwrap_or_else(|| EnvFilter::new("info")),
        )
        .init();
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => Config::from_env()
            .map_err(anyhow::Error::from)
            .and_then(|config| runtime()?.block_on(service::serve(config, shutdown_signal()))),
        Command::TrainModel(args) => runtime().and_then(|rt| rt.block_on(train_model(&args))),
        Command::Simulate {
            trace,
            policy,
            model,
            train_fraction,
            bandwidth,
            moves_out,
            tiers,
            json,
        } => tiers
            .as_deref()
            .map_or_else(Config::from_env, Config::from_env_overridden_by)
            .map_err(anyhow::Error::from)
            .and_then(|config| {
                let options = Options {
                    trace,
                    policies: policy.kinds(),
                    model,
                    train_fraction,
                    bandwidth: bandwidth
                        .or(config.mover.bandwidth)
                        .unwrap_or(crate::simulate::DEFAULT_BANDWIDTH),
                    moves_out,
                    progress: true,
                };
                simulate(&config, &options, json)
            }),
        Command::Check {
            full,
            sample,
            repair,
            json,
        } => runtime().and_then(|rt| rt.block_on(check_tiers(full, sample, repair, json))),
        client_command => runtime().and_then(|rt| rt.block_on(run_client(client_command))),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `strata check`: checks (and repairs) the tiers against the catalogue, prints what it
/// found and fails when something is left wrong.
async fn check_tiers(full: bool, sample: u64, repair: bool, json: bool) -> anyhow::Result<()> {
    use anyhow::Context;
    let config = Config::from_env()?;
    let options = crate::check::CheckOptions {
        full,
        sample,
        repair,
        // Bytes younger than a move's lease may belong to a write still under way.
        grace: config.mover.lease,
    };
    let catalogue = service::open_catalogue(&config).await?;
    let tiers = crate::storage::Tiers::open(&config.tiers, config.transfer)
        .await
        .context("opening the tiers")?;
    let report = crate::check::check(&catalogue, &tiers, options).await;
    catalogue.close().await;
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", check_summary(&report));
    }
    match report.unresolved() {
        0 => Ok(()),
        n => anyhow::bail!(
            "{n} of {} problems remain{}",
            report.findings.len(),
            if options.repair {
                ""
            } else {
                " (--repair fixes what it can)"
            }
        ),
    }
}

/// The human-readable report of `strata check`.
fn check_summary(report: &crate::check::CheckReport) -> String {
    use crate::check::{Problem, Repair};
    let mut out = format!(
        "checked {} objects ({} hashed) against {} stored keys: {} problems\n",
        report.objects,
        report.hashed,
        report.stored_keys,
        report.findings.len()
    );
    for f in &report.findings {
        let what = match &f.problem {
            Problem::Missing => "missing: no bytes at the catalogued location".to_string(),
            Problem::WrongSize { stored, expected } => {
                format!("wrong size: {stored} bytes stored, {expected} catalogued")
            }
            Problem::WrongChecksum { stored } => {
                format!("wrong checksum: the bytes hash to {stored}")
            }
            Problem::Orphan { size } => format!("orphan: {size} bytes no object or move refers to"),
        };
        let object = f
            .object_id
            .as_deref()
            .map_or(String::new(), |id| format!(" (object {id})"));
        let done = match &f.repair {
            None => String::new(),
            Some(Repair::Removed) => " -> removed".into(),
            Some(Repair::Restored {
                from_tier,
                from_location,
            }) => format!(" -> restored from {from_tier}/{from_location}"),
            Some(Repair::MarkedDamaged) => {
                " -> no good copy anywhere; marked damaged in the catalogue".into()
            }
            Some(Repair::Failed { error }) => format!(" -> repair failed: {error}"),
        };
        out.push_str(&format!(
            "  {}/{}{object}: {what}{done}\n",
            f.tier, f.location
        ));
    }
    out
}

/// `strata train-model`: trains, reports against the baselines, writes the model file
/// (and the report) and registers the model.
async fn train_model(args: &TrainArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let (name, horizon_hours, eval_fraction) = (
        args.name.as_str(),
        usize::from(args.horizon_hours),
        args.eval_fraction,
    );
    if !(eval_fraction > 0.0 && eval_fraction < 1.0) {
        anyhow::bail!("--eval-fraction must be between 0 and 1, got {eval_fraction}");
    }
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        anyhow::bail!("--name must be letters, digits, `_` or `-`, got {name:?}");
    }
    let config = Config::from_env()?;
    let catalogue = service::open_catalogue(&config).await?;
    let now = crate::db::now_ms();
    let examples = match &args.trace {
        Some(trace) => {
            let file = std::fs::File::open(trace)
                .with_context(|| format!("opening {}", trace.display()))?;
            let progress = progress::bytes(file.metadata().map_or(0, |m| m.len()), "reading");
            let examples = crate::forecast::examples_from_trace(
                std::io::BufReader::new(progress.wrap_read(file)),
                horizon_hours,
            )
            .with_context(|| trace.display().to_string());
            progress.finish_and_clear();
            examples?
        }
        None => {
            let progress = progress::spinner("reading the access history from the catalogue");
            let examples =
                crate::forecast::examples_from_catalogue(&catalogue, horizon_hours, now).await;
            progress.finish_and_clear();
            examples.context("reading the access history")?
        }
    };
    let progress = progress::spinner(&format!("fitting on {} examples", examples.len()));
    let model = crate::forecast::Model::train(name, &examples, horizon_hours, eval_fraction, now);
    progress.finish_and_clear();
    let model = model?;
    let e = &model.evaluation;
    println!(
        "trained on {} examples, evaluated on the latest {} (horizon {} h)",
        model.training.train_rows, model.training.eval_rows, model.horizon_hours
    );
    for (label, s) in [
        ("model", e.model),
        ("persistence", e.persistence),
        ("moving average", e.moving_average),
    ] {
        println!(
            "{label:<15} MAE {:>9.3}  RMSE {:>9.3}  R2 {:>7.3}",
            s.mae, s.rmse, s.r2
        );
    }
    if let Some(c) = &e.capture {
        let shares = |c: Captured| c.map(|v| format!("{v:>6.3}")).join(" ");
        let header = CAPTURE_SHARES.map(|s| format!("{:>5.0}%", s * 100.0));
        println!(
            "capture (share of the accesses that followed drawn by the densest-ranked bytes):"
        );
        println!("{:<20} {}", "", header.join(" "));
        let mut rows = vec![(format!("model: {}", model.kind.as_str()), c.model)];
        rows.extend(model.alternatives.iter().filter_map(|a| {
            let captured = a.evaluation.capture?.model;
            Some((format!("not chosen: {}", a.kind.as_str()), captured))
        }));
        rows.extend([
            ("persistence".to_string(), c.persistence),
            ("moving average".to_string(), c.moving_average),
            ("best reachable".to_string(), c.best),
            ("model / best".to_string(), c.ratio()),
        ]);
        for (label, captured) in rows {
            println!("{label:<20} {}", shares(captured));
        }
        if !c.beats_baselines() {
            println!("WARNING: the model does not capture as much as the better baseline");
        }
    }
    if !e.beats_baselines() {
        println!("WARNING: the model does not beat both naive baselines on the evaluation split");
    }
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let path = args.out.join(model.file_name());
    std::fs::write(&path, serde_json::to_string_pretty(&model)? + "\n")
        .with_context(|| format!("writing {}", path.display()))?;
    println!("wrote {}", path.display());
    if let Some(dir) = &args.report {
        let pairs = model.evaluation_pairs(&examples, eval_fraction);
        let [plot, summary] = crate::forecast::report::write(dir, &model, &pairs)
            .with_context(|| format!("writing the report into {}", dir.display()))?;
        println!("wrote {} and {}", plot.display(), summary.display());
    }
    let record = crate::forecast::register(&catalogue, &model, args.activate).await?;
    println!(
        "registered as {}{}",
        record.id,
        if args.activate { " (active)" } else { "" }
    );
    catalogue.close().await;
    Ok(())
}

/// `strata simulate`: replays the trace and prints the report.
fn simulate(config: &Config, options: &Options, json: bool) -> anyhow::Result<()> {
    let report = crate::simulate::run(config, options)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_table());
    }
    Ok(())
}

/// Progress shown on stderr while a long step runs; nothing is drawn when stderr is not
/// a terminal (scripts and CI logs stay clean).
mod progress {
    use indicatif::{ProgressBar, ProgressStyle};
    use std::time::Duration;

    /// A bar over `total` bytes.
    pub fn bytes(total: u64, what: &str) -> ProgressBar {
        let bar = ProgressBar::new(total).with_message(what.to_string());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        ) {
            bar.set_style(style);
        }
        bar
    }

    /// A spinner for a step of unknown length.
    pub fn spinner(what: &str) -> ProgressBar {
        let spinner = ProgressBar::new_spinner().with_message(what.to_string());
        spinner.enable_steady_tick(Duration::from_millis(120));
        spinner
    }
}

/// Runs one client subcommand and prints its answer on stdout.
async fn run_client(command: Command) -> anyhow::Result<()> {
    let (server, output) = match command {
        Command::Serve
        | Command::TrainModel(_)
        | Command::Simulate { .. }
        | Command::Check { .. } => {
            unreachable!("not a client subcommand")
        }
        Command::Ingest {
            file,
            key,
            overwrite,
            server,
        } => {
            let answer = connect(&server)?
                .ingest(&file, key.as_deref(), overwrite)
                .await?;
            (server, Output::Objects(vec![answer]))
        }
        Command::Objects {
            tier,
            prefix,
            limit,
            after,
            server,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(tier.map(|t| ("tier", t)));
            query.extend(prefix.map(|p| ("key_prefix", p)));
            query.extend(after.map(|a| ("after", a)));
            let page = connect(&server)?.objects(&query).await?;
            (server, Output::Page(page, Table::Objects))
        }
        Command::Access { id, count, server } => {
            let answer = connect(&server)?.access(&id, count).await?;
            (
                server,
                Output::Line(answer, format!("published {count} access events for {id}")),
            )
        }
        Command::Migrations {
            object,
            status,
            reason,
            limit,
            server,
        } => {
            let mut query = vec![("limit", limit.to_string())];
            query.extend(object.map(|o| ("object_id", o)));
            query.extend(status.map(|s| ("status", s)));
            query.extend(reason.map(|r| ("reason", r)));
            let page = connect(&server)?.migrations(&query).await?;
            (server, Output::Page(page, Table::Migrations))
        }
        Command::Migrate { id, to, server } => {
            let answer = connect(&server)?.migrate(&id, &to).await?;
            let line = format!(
                "queued migration {} of {id}: {} -> {to}",
                answer["id"].as_str().unwrap_or("?"),
                answer["from_tier"].as_str().unwrap_or("?"),
            );
            (server, Output::Line(answer, line))
        }
        Command::Predict { id, server } => {
            let answer = connect(&server)?.predict(&id).await?;
            let features: Vec<String> = answer["top_features"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| {
                    format!(
                        "{} {:+.2}",
                        f["name"].as_str().unwrap_or("?"),
                        f["contribution"].as_f64().unwrap_or_default()
                    )
                })
                .collect();
            let line = format!(
                "{id}: {:.1} accesses predicted over the next {} h -> {} (now on {}{}); model {} v{}; top features: {}",
                answer["predicted_accesses"].as_f64().unwrap_or_default(),
                answer["horizon_hours"],
                answer["predicted_tier"].as_str().unwrap_or("?"),
                answer["tier"].as_str().unwrap_or("?"),
                answer["proactive_move"]
                    .as_str()
                    .map(|t| format!(", would move to {t}"))
                    .unwrap_or_default(),
                answer["model"]["name"].as_str().unwrap_or("?"),
                answer["model"]["version"],
                features.join(", "),
            );
            (server, Output::Line(answer, line))
        }
        Command::Metrics { server } => {
            let text = connect(&server)?.metrics().await?;
            (server, Output::Metrics(text))
        }
    };
    print!("{}", output.render(server.json));
    Ok(())
}

fn connect(server: &ServerArgs) -> anyhow::Result<Client> {
    // An empty API_TOKEN means no token, as it does for the server.
    let token = server.token.clone().filter(|t| !t.is_empty());
    Ok(Client::new(&server.url, token)?)
}

/// What a client subcommand prints.
enum Output {
    /// Objects, one table row each.
    Objects(Vec<Value>),
    /// A list page with its cursor.
    Page(Value, Table),
    /// One answer summed up in a sentence.
    Line(Value, String),
    /// Prometheus text.
    Metrics(String),
}

/// Which columns a page has.
#[derive(Clone, Copy)]
enum Table {
    Objects,
    Migrations,
}

impl Output {
    fn render(self, json: bool) -> String {
        match self {
            Output::Objects(items) if json => json_lines(&items),
            Output::Page(page, _) | Output::Line(page, _) if json => json_lines(&[page]),
            Output::Metrics(text) if json => json_lines(&[metrics_json(&text)]),
            Output::Objects(items) => table(Table::Objects, &items),
            Output::Page(page, kind) => {
                let items = page["items"].as_array().cloned().unwrap_or_default();
                let mut out = table(kind, &items);
                if let Some(next) = page["next"].as_str() {
                    out.push_str(&format!("more: --after {next}\n"));
                }
                out
            }
            Output::Line(_, line) => format!("{line}\n"),
            Output::Metrics(text) => text
                .lines()
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(|l| format!("{l}\n"))
                .collect(),
        }
    }
}

fn json_lines(values: &[Value]) -> String {
    values.iter().map(|v| format!("{v}\n")).collect()
}

/// Prometheus samples as `{"name{labels}": value}`.
fn metrics_json(text: &str) -> Value {
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(name, value)| Some((name.to_string(), value.parse::<f64>().ok()?.into())))
        .collect::<serde_json::Map<_, _>>();
    Value::Object(samples)
}

/// Rows under a header, columns padded to their widest cell.
fn table(kind: Table, items: &[Value]) -> String {
    let columns: &[&str] = match kind {
        Table::Objects => &[
            "id",
            "key",
            "tier",
            "size",
            "version",
            "access.total",
            "access.last_hour",
        ],
        Table::Migrations => &[
            "id",
            "object_id",
            "from_tier",
            "to_tier",
            "reason",
            "status",
            "bytes_copied",
            "created_at",
        ],
    };
    let cell = |item: &Value, column: &str| {
        let value = column.split('.').fold(item, |v, part| &v[part]);
        match value {
            Value::String(s) => s.clone(),
            Value::Null => "-".into(),
            other => other.to_string(),
        }
    };
    let mut rows = vec![columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>()];
    rows.extend(
        items
            .iter()
            .map(|item| columns.iter().map(|c| cell(item, c)).collect()),
    );
    let widths: Vec<usize> = (0..columns.len())
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let line = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ");
            format!("{}\n", line.trim_end())
        })
        .collect()
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Resolves on Ctrl-C or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sig) => {
                sig.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
