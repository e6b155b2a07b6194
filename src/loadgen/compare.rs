//! `loadgen compare`: omniroute's sustained throughput as a ratio to the pass-through baseline,
//! both measured in this one run, on the same broker, on the same records.
//!
//! The records are a pre-recorded workload: the generator runs against local engines on a
//! virtual clock, so the stream holds the desktops' answers to the offers those engines made
//! (accepts, rejects, completions, wrap-ups), plus abandons and agent breaks. Each record carries
//! its virtual time as its Kafka timestamp, which is the daemon's engine time, so the daemon sees
//! the clock the answers were recorded on; the few that still do not match its offers are
//! counted as ignored, which still costs a decode and a lookup.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use tokio_util::sync::CancellationToken;

use super::cpu;
use super::workload::Workload;
use super::{client, ensure_topics, run_id, BenchError, ShapeArgs};
use crate::config::Config;
use crate::daemon::{self, Control};
use crate::engine::{Engine, Output};
use crate::event::Millis;
use crate::partition::Stage;
use crate::passthrough::{self, Rate};

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The daemon's config file: brokers, client settings, routing policy, daemon settings.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Input records to write and then read by each contender.
    #[arg(long, default_value_t = 300_000)]
    pub count: u64,
    /// Partitions of the benchmark's input topic.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Contacts per second of the recorded workload's virtual clock.
    #[arg(long, default_value_t = 2_000.0)]
    pub virtual_rate: f64,
    /// Rounds of pass-through then omniroute on the same records. The summary gives each
    /// contender's median rate and the median of the rounds' ratios: on a shared machine one
    /// round can land in a slow or fast spell of the broker.
    #[arg(long, default_value_t = 1)]
    pub rounds: u32,
    /// Which of the daemon's record path to run, in each round after the pass-through:
    /// `consume` (offsets only), `decode`, `route` (outputs dropped), `full` (the daemon). More
    /// than one (`--stages consume,decode,route,full`) shows what each part costs; the ratio is
    /// that of `full`.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "full")]
    pub stages: Vec<Stage>,
    /// Give up on one contender after this long.
    #[arg(long, default_value = "180s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

pub(super) async fn run(a: CompareArgs) -> Result<(), BenchError> {
    let config = Config::load(&a.config)?;
    let run = run_id();
    let input = format!("omniroute.bench.{run}");
    let copy = format!("omniroute.passthrough.{run}");
    let k = &config.kafka;
    // Fresh output and state topics too: a recovering daemon reads them back, and another
    // run's outputs or snapshots there would change what it produces.
    let (outputs, state) = run_topics(&run);
    ensure_topics(
        &config,
        &[&input, &copy, &outputs, &state, &k.sla_topic, &k.dlq_topic],
        a.partitions,
    )
    .await?;

    let filled = Instant::now();
    let written = fill(&config, &input, &a, &run).await?;
    println!(
        "compare {run}: wrote {written} records to {input} in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rounds = a.rounds.max(1);
    // Metrics are recorded as in production (one recorder for the process, installed once); no
    // endpoint needed.
    let metrics = match crate::metrics::install_prometheus() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "metrics recorder not installed");
            None
        }
    };
    let (mut pass_rates, mut omni_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut stage_rates: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut stages = a.stages.clone();
    stages.dedup();
    for round in 1..=rounds {
        // Each round reads the same input with fresh groups, and the daemon writes to topics
        // of its own (the first round's were made with the input): a recovering daemon reads
        // its output and state topics back.
        let tag = if round == 1 {
            run.clone()
        } else {
            format!("{run}-r{round}")
        };
        if round > 1 {
            let (outputs, state) = run_topics(&tag);
            ensure_topics(&config, &[&outputs, &state], a.partitions).await?;
        }
        if rounds > 1 {
            println!("  round {round} of {rounds}");
        }
        let before = cpu::Sample::now();
        let pass = passthrough::measure(
            &config,
            &input,
            &copy,
            written,
            &format!("omniroute-passthrough-{tag}"),
            a.timeout,
        )
        .await?;
        println!(
            "  passthrough: {:.0} records/s ({} records in {:.3} s)",
            pass.per_second(),
            pass.records,
            pass.busy.as_secs_f64()
        );
        let between = cpu::Sample::now();
        print_cpu(before, between, pass.records, cores);
        // The ignored-event counts are shown for the first round (the counters add up).
        let shown = metrics.as_ref().filter(|_| round == 1);
        let mut before = between;
        for &stage in &stages {
            // Every daemon run of the round gets output and state topics of its own.
            let tag = match stage {
                Stage::Full => tag.clone(),
                other => {
                    let tag = format!("{tag}-{}", other.name());
                    let (outputs, state) = run_topics(&tag);
                    ensure_topics(&config, &[&outputs, &state], a.partitions).await?;
                    tag
                }
            };
            let (omni, status) =
                measure_daemon(&config, &input, written, &tag, a.timeout, shown, stage).await?;
            let who = match stage {
                Stage::Full => "omniroute:  ".to_string(),
                other => format!("omniroute, stage {}:", other.name()),
            };
            println!(
                "  {who} {:.0} records/s ({} records in {:.3} s; routed {}, ignored {}, dead-lettered {}, produced {})",
                omni.per_second(),
                omni.records,
                omni.busy.as_secs_f64(),
                status.routed,
                status.ignored,
                status.dead_lettered,
                status.produced
            );
            let after = cpu::Sample::now();
            print_cpu(before, after, omni.records, cores);
            before = after;
            if stage == Stage::Full {
                let ratio = omni.per_second() / pass.per_second().max(1e-9);
                println!("  ratio omniroute / passthrough: {ratio:.3}");
                omni_rates.push(omni.per_second());
                ratios.push(ratio);
            } else {
                stage_rates
                    .entry(stage.name())
                    .or_default()
                    .push(omni.per_second());
            }
        }
        pass_rates.push(pass.per_second());
    }
    if rounds > 1 {
        let show = |v: &[f64], digits: usize| {
            v.iter()
                .map(|x| format!("{x:.digits$}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("  median of {rounds} rounds:");
        println!(
            "  passthrough: {:.0} records/s (rounds: {})",
            median(&pass_rates),
            show(&pass_rates, 0)
        );
        for (name, rates) in &stage_rates {
            println!(
                "  omniroute, stage {name}: {:.0} records/s (rounds: {})",
                median(rates),
                show(rates, 0)
            );
        }
        if !omni_rates.is_empty() {
            println!(
                "  omniroute:   {:.0} records/s (rounds: {})",
                median(&omni_rates),
                show(&omni_rates, 0)
            );
            println!(
                "  ratio omniroute / passthrough: {:.3} (rounds: {})",
                median(&ratios),
                show(&ratios, 3)
            );
        }
    }
    Ok(())
}

/// The median (the mean of the middle two for an even count); 0 for none.
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// CPU per record of one contender: its share of this process and of the machine (the broker),
/// from its consumer's creation to its last delivery, group join included (the idle part).
fn print_cpu(from: Option<cpu::Sample>, to: Option<cpu::Sample>, records: u64, cores: usize) {
    if let (Some(from), Some(to)) = (from, to) {
        println!("    {}", from.until(&to).describe(records, cores));
    }
}

/// Writes about `a.count` records of the workload to `topic`; returns how many.
async fn fill(config: &Config, topic: &str, a: &CompareArgs, run: &str) -> Result<u64, BenchError> {
    let producer: ThreadedProducer<DefaultProducerContext> = client(config)?
        .set("linger.ms", "20")
        .set("batch.num.messages", "10000")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(BenchError::Kafka)?;
    let mut w = Workload::new(a.shape.shape(run), a.shape.seed);
    let policy = Arc::new(config.routing.clone());
    let mut engines: HashMap<String, Engine> = HashMap::new();
    // Near the daemon's clock, which decides when it consumes these records.
    let t0: Millis = super::now_us() / 1000;
    let mut events = w.agents(t0);
    let mut out: Vec<Output> = Vec::new();
    let mut written = 0u64;
    let mut ignored: std::collections::BTreeMap<&'static str, u64> = Default::default();
    let mut i = 0u64;
    while written < a.count {
        let ts = t0 + 1_000 + (i as f64 * 1000.0 / a.virtual_rate.max(1.0)) as Millis;
        i += 1;
        w.due(ts, &mut events);
        w.contact(ts, &mut events);
        for e in events.drain(..) {
            let engine = engines
                .entry(e.tenant.clone())
                .or_insert_with(|| Engine::new(e.tenant.clone(), policy.clone()));
            out.clear();
            if let Err(why) = engine.handle(ts, &e, &mut out) {
                *ignored.entry(why.reason()).or_default() += 1;
            }
            for o in &out {
                let tenant = w.tenant_index(&e.tenant).unwrap_or(0);
                match o {
                    Output::Offer(x) => {
                        w.on_offer(ts, tenant, &x.assignment_id, &x.agent_id, &x.contact_id);
                    }
                    Output::AgentAway(x) => w.on_agent_away(ts, tenant, &x.agent_id),
                    Output::OfferWithdrawn(_) => {}
                }
            }
            let payload = serde_json::to_vec(&e)?;
            // The record's timestamp is the event's virtual time: the daemon's engine time
            // follows record timestamps, so it sees the clock the answers were recorded on.
            let mut rec = BaseRecord::to(topic)
                .key(e.tenant.as_bytes())
                .payload(&payload)
                .timestamp(i64::try_from(ts).unwrap_or(i64::MAX));
            loop {
                match producer.send(rec) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        rec = back;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(BenchError::Kafka(e)),
                }
            }
            written += 1;
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .map_err(BenchError::Kafka)?;
    println!(
        "  recorded workload: {:?}; ignored by the recording engines: {ignored:?}",
        w.mix
    );
    Ok(written)
}

/// The assignments and state topics of one run.
fn run_topics(run: &str) -> (String, String) {
    (
        format!("omniroute.bench-out.{run}"),
        format!("omniroute.bench-state.{run}"),
    )
}

/// Runs the real daemon in this process on `topic` with a fresh group until it has consumed
/// `count` records. The time runs from the first record consumed to the `count`-th, as seen in
/// the daemon's status (refreshed every 100 ms, at both ends alike).
async fn measure_daemon(
    config: &Config,
    topic: &str,
    count: u64,
    run: &str,
    timeout: Duration,
    metrics: Option<&metrics_exporter_prometheus::PrometheusHandle>,
    stage: Stage,
) -> Result<(Rate, daemon::Status), BenchError> {
    let mut config = config.clone();
    config.kafka.input_topics = vec![topic.to_string()];
    (config.kafka.assignments_topic, config.kafka.state_topic) = run_topics(run);
    config.kafka.group_id = format!("omniroute-bench-{run}");
    config.kafka.start_from = crate::config::StartFrom::Earliest;
    let shutdown = CancellationToken::new();
    let (mut control, _reload, mut status) =
        Control::new(shutdown.clone(), Arc::new(config.routing.clone()));
    control.stage = stage;
    let started = Instant::now();
    let task = tokio::spawn(daemon::run_with(config, control));
    let deadline = started + timeout;
    let mut first: Option<Instant> = None;
    let mut last_seen = 0;
    let busy = loop {
        let changed = tokio::time::timeout_at(deadline.into(), status.changed()).await;
        match changed {
            Err(_) => {
                shutdown.cancel();
                return Err(BenchError::Timeout(format!(
                    "omniroute consumed {last_seen} of {count} records"
                )));
            }
            Ok(Err(_)) => break None,
            Ok(Ok(())) => {}
        }
        let consumed = status.borrow_and_update().consumed;
        last_seen = consumed;
        if consumed > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if consumed >= count {
            break first.map(|f| f.elapsed());
        }
    };
    shutdown.cancel();
    let final_status = match task.await {
        Ok(r) => r?,
        Err(e) => return Err(BenchError::Timeout(format!("daemon task failed: {e}"))),
    };
    if let Some(h) = metrics {
        for line in h.render().lines() {
            if line.starts_with(crate::metrics::EVENTS_IGNORED) {
                println!("  daemon {line}");
            }
        }
    }
    let Some(busy) = busy else {
        return Err(BenchError::Timeout(format!(
            "daemon stopped after {last_seen} of {count} records"
        )));
    };
    Ok((
        Rate {
            records: final_status.consumed.min(count),
            busy,
            wall: started.elapsed(),
        },
        final_status,
    ))
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[0.9, 0.2, 0.7]), 0.7);
        assert_eq!(median(&[0.4, 0.8, 0.2, 0.6]), 0.5);
        assert_eq!(median(&[]), 0.0);
    }
}
