//! The `omniroute` binary: CLI, config, logging, metrics endpoint and signals. The work is done
//! by the library ([`omniroute::daemon::run_with`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use omniroute::config::Config;
use omniroute::daemon::{self, Control, Reload};
use omniroute::http::Health;
use omniroute::systemd::Notifier;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "Routes omnichannel contact-center contacts from Kafka to agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Run {
        /// The TOML config file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a config file and print the effective config (secrets redacted).
    CheckConfig {
        /// The TOML config file.
        file: PathBuf,
    },
    /// Zero-setup demo: an in-process Kafka, a synthetic workload and the real daemon path.
    Demo(omniroute::demo::DemoOptions),
    /// Run a what-if scenario against the routing engine in virtual time (no Kafka).
    Simulate(omniroute::sim::cli::SimulateArgs),
    /// Workload generator and benchmarks (docs/PERFORMANCE.md).
    Loadgen(omniroute::loadgen::LoadgenArgs),
    /// Throughput baseline: copy records with omniroute's client settings, nothing else.
    Passthrough(omniroute::passthrough::PassthroughArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run { config } => {
            let rt = runtime()?;
            let result = rt.block_on(run(config));
            // A partition-state look-up still running on the blocking pool (its partition was
            // revoked, or the broker stopped answering) must not hold the exit: everything it
            // could deliver is already moot once the daemon has stopped.
            rt.shutdown_timeout(Duration::from_secs(1));
            result
        }
        Command::Simulate(args) => omniroute::sim::cli::run(&args),
        Command::Demo(opts) => runtime()?.block_on(async move {
            omniroute::telemetry::init(&opts.log_settings()).context("cannot set up logging")?;
            omniroute::demo::run(opts).await?;
            Ok(())
        }),
        Command::Loadgen(a) => Ok(runtime()?.block_on(omniroute::loadgen::run(a))?),
        Command::Passthrough(a) => Ok(runtime()?.block_on(omniroute::passthrough::run(a))?),
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn check_config(file: &std::path::Path) -> anyhow::Result<()> {
    match Config::load(file) {
        Ok(c) => {
            print!("{}", c.to_toml_redacted());
            eprintln!("{}: ok", file.display());
            Ok(())
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let config =
        Config::load(&path).with_context(|| format!("invalid config {}", path.display()))?;
    omniroute::telemetry::init(&config.log).context("cannot set up logging")?;
    let notifier = Notifier::from_env();
    let health = Arc::new(Health::new());
    let shutdown = CancellationToken::new();

    if !config.metrics.listen.is_empty() {
        let handle = omniroute::metrics::install_prometheus()
            .context("cannot install the metrics recorder")?;
        let listener = tokio::net::TcpListener::bind(&config.metrics.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.metrics.listen))?;
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || handle.render());
        tokio::spawn(omniroute::http::serve(
            listener,
            render,
            health.clone(),
            shutdown.clone(),
        ));
    }

    let (control, reload_tx, status_rx) =
        Control::new(shutdown.clone(), Arc::new(config.routing.clone()));
    let stale_after = (config.daemon.tick_interval * 4).max(Duration::from_secs(5));
    tokio::spawn(daemon::supervise(
        status_rx,
        health.clone(),
        notifier.clone(),
        stale_after,
        shutdown.clone(),
    ));

    let stop_deadline = config.daemon.shutdown_timeout + Duration::from_secs(5);
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let signals = {
        let shutdown = shutdown.clone();
        let notifier = notifier.clone();
        let health = health.clone();
        async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = hup.recv() => {
                        notifier.reloading();
                        if reload_tx.send(Reload { path: path.clone() }).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
                if shutdown.is_cancelled() {
                    tracing::warn!("second stop signal: exiting at once");
                    std::process::exit(130);
                }
                tracing::info!("stop signal: shutting down gracefully");
                notifier.stopping();
                health.set_ready(false);
                shutdown.cancel();
                // The graceful stop is bounded even if Kafka hangs.
                tokio::spawn(async move {
                    tokio::time::sleep(stop_deadline).await;
                    tracing::error!(deadline = ?stop_deadline, "graceful stop overran its deadline: exiting");
                    std::process::exit(1);
                });
            }
        }
    };
    tokio::spawn(signals);

    let result = daemon::run_with(config, control).await;
    shutdown.cancel();
    let status = result.context("daemon failed")?;
    tracing::info!(
        consumed = status.consumed,
        produced = status.produced,
        dead_lettered = status.dead_lettered,
        "stopped"
    );
    Ok(())
}
