//! The baseline for omniroute's throughput: the least a Kafka consume → produce program can do.
//!
//! It uses exactly omniroute's client settings ([`kafka::consumer_settings`] and
//! [`kafka::producer_settings`] of the same config: group handling, manual offset store, acks,
//! linger, queue sizes, pass-through table) and copies every input record to an output topic,
//! unchanged, with no decoding, no routing and no delivery tracking. Its offsets are stored as
//! soon as the copy is queued, which is cheaper than omniroute's store-after-delivery, so the
//! ratio omniroute / pass-through is a conservative figure.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::Config;
use crate::kafka;
use crate::loadgen::BenchError;

/// `omniroute passthrough`: copy records from one topic to another and report the rate.
#[derive(Debug, clap::Args)]
pub struct PassthroughArgs {
    /// omniroute's config file: its brokers and client settings are used as they are.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Topic to read (from the beginning, with a fresh consumer group).
    #[arg(long)]
    pub input: String,
    /// Topic to write the copies to.
    #[arg(long, default_value = "omniroute.passthrough")]
    pub output: String,
    /// Stop after this many records.
    #[arg(long)]
    pub count: u64,
    /// Give up after this long.
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// A measured rate: records handled between the first and the last record consumed.
#[derive(Debug, Clone, Copy)]
pub struct Rate {
    pub records: u64,
    /// From the first record received to the `records`-th one handled.
    pub busy: Duration,
    /// Including the wait for the group join and the final flush.
    pub wall: Duration,
}

impl Rate {
    pub fn per_second(&self) -> f64 {
        self.records.saturating_sub(1) as f64 / self.busy.as_secs_f64().max(1e-9)
    }
}

pub async fn run(args: PassthroughArgs) -> Result<(), BenchError> {
    let config = Config::load(&args.config)?;
    let group = format!("omniroute-passthrough-{}", crate::loadgen::run_id());
    let rate = measure(
        &config,
        &args.input,
        &args.output,
        args.count,
        &group,
        args.timeout,
    )
    .await?;
    println!(
        "passthrough: {} records in {:.3} s busy ({:.3} s wall): {:.0} records/s",
        rate.records,
        rate.busy.as_secs_f64(),
        rate.wall.as_secs_f64(),
        rate.per_second()
    );
    Ok(())
}

/// Copies `count` records from `input` to `output` with a fresh consumer group `group`.
pub async fn measure(
    config: &Config,
    input: &str,
    output: &str,
    count: u64,
    group: &str,
    timeout: Duration,
) -> Result<Rate, BenchError> {
    let mut config = config.clone();
    config.kafka.group_id = group.to_string();
    config.kafka.start_from = crate::config::StartFrom::Earliest;
    let consumer: StreamConsumer = kafka::consumer_settings(&config)?
        .create()
        .map_err(BenchError::Kafka)?;
    let producer: ThreadedProducer<DefaultProducerContext> = kafka::producer_settings(&config)?
        .create()
        .map_err(BenchError::Kafka)?;
    consumer.subscribe(&[input]).map_err(BenchError::Kafka)?;

    let started = Instant::now();
    let deadline = started + timeout;
    let mut first: Option<Instant> = None;
    let mut done = 0u64;
    while done < count {
        let msg = match tokio::time::timeout_at(deadline.into(), consumer.recv()).await {
            Err(_) => {
                return Err(BenchError::Timeout(format!(
                    "passthrough copied {done} of {count} records"
                )))
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "consumer error; retrying");
                continue;
            }
            Ok(Ok(m)) => m,
        };
        first.get_or_insert_with(Instant::now);
        let mut rec = BaseRecord::to(output);
        if let Some(k) = msg.key() {
            rec = rec.key(k);
        }
        if let Some(p) = msg.payload() {
            rec = rec.payload(p);
        }
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
        consumer
            .store_offset_from_message(&msg)
            .map_err(BenchError::Kafka)?;
        done += 1;
    }
    let busy = first.map_or(Duration::ZERO, |f| f.elapsed());
    producer
        .flush(deadline.saturating_duration_since(Instant::now()))
        .map_err(BenchError::Kafka)?;
    Ok(Rate {
        records: done,
        busy,
        wall: started.elapsed(),
    })
}
