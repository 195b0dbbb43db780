//! The command line: `strata serve` (the default) and the client subcommands of
//! DESIGN.md, which talk to a running server over REST.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod output;
mod progress;

use output::{Output, Table, prediction_line};

use crate::causes;
use crate::client::Client;
use crate::config::{Config, ConfigError};
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
        /// A rules file (YAML or JSON, as RULES_FILE): every policy is replayed again
        /// keeping to them (reported as POLICY+rules), to show what they cost.
        #[arg(long, value_name = "FILE")]
        rules: Option<PathBuf>,
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
        /// Only moves for this reason (manual, rule, reactive_access_spike, proactive_prediction, capacity_rebalance).
        #[arg(long)]
        reason: Option<String>,
        /// Moves per page.
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Move an object to another tier now (reason `manual`), or every object under a
    /// key prefix as one batch (--prefix; --dry-run shows what that would do).
    Migrate {
        /// Object id.
        #[arg(required_unless_present = "prefix", conflicts_with = "prefix")]
        id: Option<String>,
        /// Destination tier.
        #[arg(long)]
        to: String,
        /// Move every object whose key starts with this, as one batch.
        #[arg(long)]
        prefix: Option<String>,
        /// With --prefix: only show the objects, bytes, duration, room and cost.
        #[arg(long, requires = "prefix")]
        dry_run: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Show a bulk move's progress, or cancel what of it has not started.
    Batch {
        /// Batch id (as `migrate --prefix` printed it).
        id: String,
        /// Cancel the moves that have not started.
        #[arg(long)]
        cancel: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Operator rules: list, set, delete.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
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

/// `strata rules …`.
#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// List the rules, most specific first.
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Store a rule (replacing one of the same id), or every rule of a file.
    Set {
        /// Rule id; not with --file, whose rules name their ids.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        id: Option<String>,
        /// pin, floor, ceiling, transition or expire.
        #[arg(long, required_unless_present = "file")]
        action: Option<String>,
        /// The tier (pin, floor, ceiling, transition).
        #[arg(long)]
        tier: Option<String>,
        /// Days (transition, expire).
        #[arg(long)]
        after_days: Option<f64>,
        /// For transition: last_access (default) or creation.
        #[arg(long)]
        since: Option<String>,
        /// Objects whose key starts with this.
        #[arg(long)]
        prefix: Option<String>,
        /// Objects of this content type.
        #[arg(long)]
        content_type: Option<String>,
        /// Objects of at least this many bytes.
        #[arg(long)]
        min_size: Option<u64>,
        /// Objects of at most this many bytes.
        #[arg(long)]
        max_size: Option<u64>,
        /// Every object (when no other filter is given).
        #[arg(long)]
        all: bool,
        /// A YAML or JSON file of rules with their ids (as RULES_FILE).
        #[arg(long)]
        file: Option<PathBuf>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Delete a rule.
    Delete {
        /// Rule id.
        id: String,
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
    /// horizon instead of the forecast, and of the coming day instead of the last.
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
    /// PEM file of the certificate authority that signed an https:// server's
    /// certificate, when it is not one the system trusts.
    #[arg(long, env = "STRATA_CA_CERT")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// File holding the bearer token (as Docker and Kubernetes mount secrets), instead
    /// of --token.
    #[arg(long, env = "API_TOKEN_FILE")]
    pub token_file: Option<std::path::PathBuf>,
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
/// printed as one line. `dotenv` is how loading `.env` went, before the command line
/// was parsed.
pub fn run(cli: Cli, dotenv: Result<(), ConfigError>) -> ExitCode {
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
    crate::tls::install_provider();
    if let Err(err) = dotenv {
        eprintln!("strata: {}", causes::one_line(&err.into()));
        return ExitCode::FAILURE;
    }
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
            rules,
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
                    rules,
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
            eprintln!("strata: {}", causes::one_line(&err));
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
        print!("{}", report.summary());
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

/// `strata train-model`: trains, reports against the baselines, writes the model file
/// (and the report) and registers the model.
async fn train_model(args: &TrainArgs) -> anyhow::Result<()> {
    use anyhow::Context;
    let (name, horizon_hours, eval_fraction) = (
        args.name.as_str(),
        usize::from(args.horizon_hours),
        args.eval_fraction,
    );
    if !crate::forecast::EVAL_FRACTIONS.contains(&eval_fraction) {
        let (low, high) = crate::forecast::EVAL_FRACTIONS.into_inner();
        anyhow::bail!("--eval-fraction must be from {low} to {high}, got {eval_fraction}");
    }
    if let Err(expected) = crate::forecast::check_model_name(name) {
        anyhow::bail!("--name must be {expected}, got {name:?}");
    }
    let config = Config::from_env()?;
    let catalogue = service::open_catalogue(&config).await?;
    let now = crate::timestamp::now_ms();
    let examples = read_examples(args, &catalogue, now).await?;
    let progress = progress::spinner(&format!("fitting on {} examples", examples.len()));
    let model = crate::forecast::Model::train(name, &examples, horizon_hours, eval_fraction, now);
    progress.finish_and_clear();
    let model = model?;
    print_evaluation(&model);
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

/// The training examples `train-model` was pointed at: a trace file, or the catalogue's
/// access history.
async fn read_examples(
    args: &TrainArgs,
    catalogue: &crate::db::Catalogue,
    now: i64,
) -> anyhow::Result<Vec<crate::forecast::Example>> {
    use anyhow::Context;
    let horizon_hours = usize::from(args.horizon_hours);
    match &args.trace {
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
            examples
        }
        None => {
            let progress = progress::spinner("reading the access history from the catalogue");
            let examples =
                crate::forecast::examples_from_catalogue(catalogue, horizon_hours, now).await;
            progress.finish_and_clear();
            examples.context("reading the access history")
        }
    }
}

/// Prints a trained model's scores against the baselines, and its capture table.
fn print_evaluation(model: &crate::forecast::Model) {
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
        Command::Migrate {
            id: None,
            to,
            prefix,
            dry_run,
            server,
        } => {
            let request = serde_json::json!({
                "filter": {"prefix": prefix},
                "to_tier": to,
                "dry_run": dry_run,
            });
            let answer = connect(&server)?.batch(&request).await?;
            let line = if dry_run {
                output::batch_plan_line(&answer)
            } else {
                output::batch_line(&answer)
            };
            (server, Output::Line(answer, line))
        }
        Command::Batch { id, cancel, server } => {
            let answer = connect(&server)?.batch_status(&id, cancel).await?;
            let line = output::batch_line(&answer);
            (server, Output::Line(answer, line))
        }
        Command::Rules { command } => rules_command(command).await?,
        Command::Migrate {
            id: Some(id),
            to,
            server,
            ..
        } => {
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
            let line = prediction_line(&id, &answer);
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

/// Runs `strata rules …`.
async fn rules_command(command: RulesCommand) -> anyhow::Result<(ServerArgs, Output)> {
    Ok(match command {
        RulesCommand::List { server } => {
            let answer = connect(&server)?.rules().await?;
            (server, Output::Page(answer, Table::Rules))
        }
        RulesCommand::Set {
            file: Some(file),
            server,
            ..
        } => {
            let rules = crate::policy::rules::read_rules_file(&file).map_err(anyhow::Error::msg)?;
            let client = connect(&server)?;
            let mut stored = Vec::new();
            for (n, rule) in rules.iter().enumerate() {
                let id = rule.id.clone().ok_or_else(|| {
                    anyhow::anyhow!("rule {} of {} has no id", n + 1, file.display())
                })?;
                stored.push(client.put_rule(&id, &serde_json::to_value(rule)?).await?);
            }
            let line = format!("stored {} rules from {}", stored.len(), file.display());
            (server, Output::Line(serde_json::Value::from(stored), line))
        }
        RulesCommand::Set {
            id,
            action,
            tier,
            after_days,
            since,
            prefix,
            content_type,
            min_size,
            max_size,
            all,
            file: None,
            server,
        } => {
            let id = id.unwrap_or_default();
            let mut filter = serde_json::Map::new();
            for (name, value) in [
                ("prefix", prefix.map(serde_json::Value::from)),
                ("content_type", content_type.map(serde_json::Value::from)),
                ("min_size", min_size.map(serde_json::Value::from)),
                ("max_size", max_size.map(serde_json::Value::from)),
                ("all", all.then_some(serde_json::Value::Bool(true))),
            ] {
                if let Some(value) = value {
                    filter.insert(name.into(), value);
                }
            }
            let mut rule = serde_json::json!({"filter": filter, "action": action});
            for (name, value) in [
                ("tier", tier.map(serde_json::Value::from)),
                ("after_days", after_days.map(serde_json::Value::from)),
                ("since", since.map(serde_json::Value::from)),
            ] {
                if let Some(value) = value {
                    rule[name] = value;
                }
            }
            let answer = connect(&server)?.put_rule(&id, &rule).await?;
            let line = format!("stored rule {id}");
            (server, Output::Line(answer, line))
        }
        RulesCommand::Delete { id, server } => {
            connect(&server)?.delete_rule(&id).await?;
            let line = format!("deleted rule {id}");
            (server, Output::Line(serde_json::Value::Null, line))
        }
    })
}

fn connect(server: &ServerArgs) -> anyhow::Result<Client> {
    use anyhow::Context;
    // An empty API_TOKEN means no token, as it does for the server.
    let token = match (
        server.token.clone().filter(|t| !t.is_empty()),
        &server.token_file,
    ) {
        (Some(_), Some(_)) => anyhow::bail!(
            "API_TOKEN (--token) and API_TOKEN_FILE (--token-file) are both set; give the token one way"
        ),
        (token, None) => token,
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .with_context(|| {
                    format!(
                        "cannot read the token file {} (API_TOKEN_FILE)",
                        path.display()
                    )
                })?
                .trim()
                .to_string(),
        )
        .filter(|t| !t.is_empty()),
    };
    Ok(Client::new(&server.url, token, server.ca_cert.as_deref())?)
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
