//! `omniroute loadgen`: the workload generator and the benchmarks of docs/PERFORMANCE.md.
//!
//! - `live`: produces a realistic omnichannel workload at a given rate and acts as the agent
//!   desktops (reads the assignments, answers offers, completes contacts); measures the
//!   end-to-end latency from `contact.created` produced to its first offer.
//! - `compare`: writes one pre-recorded workload to a topic, then measures, in the same run, the
//!   pass-through baseline and the real daemon on those same records; prints the ratio.
//! - `memory`: RSS per agent and per waiting contact (engine only).
//! - `plot`: the latency-vs-load SVG from the CSV rows `live` appends.

mod compare;
mod cpu;
mod live;
mod plot;
pub(crate) mod workload;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;

use crate::config::{Config, ConfigError};

/// What can stop a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Settings(#[from] crate::kafka::Error),
    #[error("Kafka: {0}")]
    Kafka(KafkaError),
    #[error("cannot create topic {topic}: {message}")]
    Topic { topic: String, message: String },
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    #[error("cannot encode an event: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot set up logging: {0}")]
    Logging(String),
}

#[derive(Debug, clap::Args)]
pub struct LoadgenArgs {
    #[command(subcommand)]
    pub command: LoadgenCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum LoadgenCommand {
    /// Drive a running daemon at a given rate and measure end-to-end latency.
    Live(live::LiveArgs),
    /// Pass-through baseline and the daemon on the same pre-recorded records; print the ratio.
    Compare(compare::CompareArgs),
    /// Resident memory per agent and per waiting contact (engine only).
    Memory(MemoryArgs),
    /// Draw latency vs. offered load (SVG) from the CSV written by `live --csv`.
    Plot(plot::PlotArgs),
    /// Create the config's topics (input, assignments, SLA, dead letters) if missing.
    Topics(TopicsArgs),
}

#[derive(Debug, clap::Args)]
pub struct TopicsArgs {
    #[arg(long, short)]
    pub config: PathBuf,
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
}

#[derive(Debug, clap::Args)]
pub struct MemoryArgs {
    #[arg(long, default_value_t = 100_000)]
    pub agents: usize,
    #[arg(long, default_value_t = 1_000_000)]
    pub contacts: usize,
}

/// Workload knobs shared by `live` and `compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShapeArgs {
    /// Routing domains (tenants).
    #[arg(long, default_value_t = 50)]
    pub tenants: u32,
    /// Agents per tenant.
    #[arg(long, default_value_t = 100)]
    pub agents_per_tenant: u32,
    /// Share of offers accepted (the rest are rejected).
    #[arg(long, default_value_t = 0.9)]
    pub accept: f64,
    /// Share of contacts abandoned by the customer.
    #[arg(long, default_value_t = 0.03)]
    pub abandon: f64,
    /// Handle time from accept to completion.
    #[arg(long, default_value = "500ms", value_parser = humantime::parse_duration)]
    pub handle: Duration,
    /// Seed of the workload.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl ShapeArgs {
    pub(crate) fn shape(&self, run: &str) -> workload::Shape {
        workload::Shape {
            run: run.to_string(),
            tenants: self.tenants.max(1),
            agents_per_tenant: self.agents_per_tenant.max(1),
            accept: self.accept,
            abandon: self.abandon,
            abandon_after_ms: 2_000,
            answer_ms: 20,
            handle_ms: u64::try_from(self.handle.as_millis()).unwrap_or(u64::MAX),
            wrapup_ms: 50,
            away_per_contact: 0.002,
            away_ms: 1_000,
        }
    }
}

pub async fn run(args: LoadgenArgs) -> Result<(), BenchError> {
    let quiet = crate::telemetry::LogSettings {
        level: "warn".into(),
        ..Default::default()
    };
    crate::telemetry::init(&quiet).map_err(|e| BenchError::Logging(e.to_string()))?;
    match args.command {
        LoadgenCommand::Live(a) => live::run(a).await,
        LoadgenCommand::Compare(a) => compare::run(a).await,
        LoadgenCommand::Plot(a) => plot::run(&a),
        LoadgenCommand::Topics(a) => {
            let config = Config::load(&a.config)?;
            let k = &config.kafka;
            let mut topics: Vec<&str> = k.input_topics.iter().map(String::as_str).collect();
            topics.extend([
                k.assignments_topic.as_str(),
                k.state_topic.as_str(),
                k.sla_topic.as_str(),
                k.dlq_topic.as_str(),
            ]);
            ensure_topics(&config, &topics, a.partitions).await?;
            println!("topics ready: {topics:?}");
            Ok(())
        }
        LoadgenCommand::Memory(a) => {
            // The agents' engine lives on while the contacts are measured: the memory it would
            // free would be reused by the contacts and hide part of their cost.
            let (agents, _kept) = crate::memprobe::agents(a.agents);
            println!(
                "memory: {} agents: {} bytes RSS, {:.0} bytes/agent",
                agents.items,
                agents.bytes,
                agents.per_item()
            );
            let contacts = crate::memprobe::waiting_contacts(a.contacts);
            println!(
                "memory: {} waiting contacts: {} bytes RSS, {:.0} bytes/contact",
                contacts.items,
                contacts.bytes,
                contacts.per_item()
            );
            Ok(())
        }
    }
}

/// A short id unique per run, so that ids and consumer groups never collide across runs.
pub(crate) fn run_id() -> String {
    let us = now_us();
    format!("r{:x}", us % (1 << 40))
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Brokers, security and the pass-through table of the config, for the benchmark's own clients.
pub(crate) fn client(config: &Config) -> Result<ClientConfig, BenchError> {
    let mut c = ClientConfig::new();
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    for (k, v) in config.client_settings()? {
        c.set(k, v);
    }
    Ok(c)
}

/// Creates the topics that do not exist yet, with `partitions` partitions.
pub(crate) async fn ensure_topics(
    config: &Config,
    topics: &[&str],
    partitions: i32,
) -> Result<(), BenchError> {
    let admin: AdminClient<DefaultClientContext> =
        client(config)?.create().map_err(BenchError::Kafka)?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, partitions, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new, &opts)
        .await
        .map_err(BenchError::Kafka)?;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(BenchError::Topic {
                    topic,
                    message: code.to_string(),
                })
            }
        }
    }
    Ok(())
}

/// p50/p90/p99/max of a histogram of microseconds, in milliseconds.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Quantiles {
    pub(crate) count: u64,
    pub(crate) p50: f64,
    pub(crate) p90: f64,
    pub(crate) p99: f64,
    pub(crate) max: f64,
}

impl Quantiles {
    pub(crate) fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        Quantiles {
            count: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
        }
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} p50={:.2} ms p90={:.2} ms p99={:.2} ms max={:.2} ms",
            self.count, self.p50, self.p90, self.p99, self.max
        )
    }
}
