//! `loadgen live`: a running daemon driven at a given contact rate, with the agent desktops'
//! answers, and the end-to-end latency of every contact's first offer.
//!
//! Latency is measured two ways, both from the moment `contact.created` is handed to the
//! producer (recorded in microseconds, also carried in the record's `produced_at_us` header):
//! - **received**: until the offer record is received here, on the desktops' side (what an
//!   agent experiences; includes the desktops' fetch);
//! - **offer produced**: until the offer record's Kafka `CreateTime`, stamped by omniroute's
//!   producer when it produced the offer (millisecond resolution).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::workload::Workload;
use super::{client, ensure_topics, now_us, run_id, BenchError, Quantiles, ShapeArgs};
use crate::config::Config;
use crate::event::{Event, Millis};

#[derive(Debug, clap::Args)]
pub struct LiveArgs {
    /// The daemon's config file (brokers, topics).
    #[arg(long, short)]
    pub config: PathBuf,
    /// New contacts per second; each brings ~4 input records (created, answer, completed,
    /// wrap-up done).
    #[arg(long)]
    pub rate: f64,
    /// How long contacts are created.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Contacts created in this first stretch are not measured (connections, caches).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// After the last contact, how long to wait for outstanding offers.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain: Duration,
    /// Partitions for topics this run has to create.
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Append one CSV row of results to this file (for `loadgen plot`).
    #[arg(long)]
    pub csv: Option<PathBuf>,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// The fields of an output record the desktops need.
#[derive(Deserialize)]
struct OutputRecord {
    #[serde(rename = "type")]
    kind: String,
    tenant: String,
    #[serde(default)]
    assignment_id: Option<String>,
    #[serde(default)]
    contact_id: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
    #[serde(default)]
    attempt: Option<u32>,
}

/// What the reading task hands to the main loop.
struct Received {
    record: OutputRecord,
    received_us: u64,
    create_time_ms: Option<i64>,
}

pub(super) async fn run(a: LiveArgs) -> Result<(), BenchError> {
    let config = Config::load(&a.config)?;
    let run = run_id();
    let k = &config.kafka;
    let mut topics: Vec<&str> = k.input_topics.iter().map(String::as_str).collect();
    topics.extend([
        k.assignments_topic.as_str(),
        k.state_topic.as_str(),
        k.sla_topic.as_str(),
        k.dlq_topic.as_str(),
    ]);
    ensure_topics(&config, &topics, a.partitions).await?;
    let input = k.input_topics.first().cloned().unwrap_or_default();

    let producer: ThreadedProducer<DefaultProducerContext> = client(&config)?
        // The generator's own batching delay would count as omniroute latency: keep it tiny.
        .set("linger.ms", "1")
        .set("queue.buffering.max.messages", "1000000")
        .create()
        .map_err(BenchError::Kafka)?;
    let consumer: StreamConsumer = client(&config)?
        .set("group.id", format!("omniroute-loadgen-{run}"))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .map_err(BenchError::Kafka)?;
    // Read the assignments from their current end: only this run's offers matter.
    let md = consumer
        .fetch_metadata(Some(&k.assignments_topic), Duration::from_secs(10))
        .map_err(BenchError::Kafka)?;
    let mut tpl = TopicPartitionList::new();
    for t in md.topics() {
        for p in t.partitions() {
            tpl.add_partition_offset(t.name(), p.id(), Offset::End)
                .map_err(BenchError::Kafka)?;
        }
    }
    consumer.assign(&tpl).map_err(BenchError::Kafka)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Received>();
    let reader = tokio::spawn(async move {
        loop {
            match consumer.recv().await {
                Ok(m) => {
                    let received_us = now_us();
                    let Some(Ok(record)) = m.payload().map(serde_json::from_slice::<OutputRecord>)
                    else {
                        continue;
                    };
                    let r = Received {
                        record,
                        received_us,
                        create_time_ms: m.timestamp().to_millis(),
                    };
                    if tx.send(r).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "assignments consumer error"),
            }
        }
    });
    // Let the reader resolve its end offsets before anything is produced.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut w = Workload::new(a.shape.shape(&run), a.shape.seed);
    let mut events = w.agents(now_ms());
    let startup = w.mix.total();
    for e in events.drain(..) {
        send(&producer, &input, &e, None).await?;
    }
    producer
        .flush(Duration::from_secs(30))
        .map_err(BenchError::Kafka)?;
    // The profiles are ahead of the contacts in every partition; a short pause lets the daemon
    // take them in so the first contacts do not measure that.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut received = Histogram::<u64>::new_with_bounds(1, 120_000_000, 3)
        .map_err(|e| BenchError::Plot(e.to_string()))?;
    let mut to_offer = received.clone();
    // Produce time per contact sequence number; 0 = not measured (warm-up) or already measured.
    let mut produced_at: HashMap<u64, u64> = HashMap::new();
    let mut measured_created = 0u64;
    let start = Instant::now();
    let mut offers = 0u64;
    let mut withdrawn = 0u64;
    let mut away = 0u64;
    let mut inbox: Vec<Received> = Vec::new();
    let mut first_offers_creating = 0u64;
    loop {
        let elapsed = start.elapsed();
        let creating = elapsed < a.duration;
        let now = now_ms();
        if creating {
            // Bounded per round so that a flood (`--rate` far above capacity) still reads offers.
            let target =
                ((a.rate * elapsed.as_secs_f64()) as u64).min(w.contacts_created() + 2_000);
            while w.contacts_created() < target {
                // `events` is empty here: the contact is pushed first, an agent break may follow.
                let seq = w.contact(now, &mut events);
                for (i, e) in events.drain(..).enumerate() {
                    let t = now_us();
                    if i == 0 && is_created(&e) && elapsed >= a.warmup {
                        produced_at.insert(seq, t);
                        measured_created += 1;
                    }
                    send(&producer, &input, &e, Some(t)).await?;
                }
            }
        }
        w.due(now, &mut events);
        for e in events.drain(..) {
            send(&producer, &input, &e, None).await?;
        }
        while let Ok(r) = rx.try_recv() {
            inbox.push(r);
        }
        for r in inbox.drain(..) {
            let Some(tenant) = w.tenant_index(&r.record.tenant) else {
                continue;
            };
            match r.record.kind.as_str() {
                "offer" => {
                    offers += 1;
                    let (Some(aid), Some(cid), Some(agent)) = (
                        r.record.assignment_id.as_deref(),
                        r.record.contact_id.as_deref(),
                        r.record.agent_id.as_deref(),
                    ) else {
                        continue;
                    };
                    if r.record.attempt.unwrap_or(1) == 1 {
                        if creating {
                            first_offers_creating += 1;
                        }
                        if let Some(t0) = w.contact_seq(cid).and_then(|s| produced_at.remove(&s)) {
                            let _ = received.record(r.received_us.saturating_sub(t0).max(1));
                            if let Some(ct) = r.create_time_ms.and_then(|c| u64::try_from(c).ok()) {
                                let _ = to_offer.record((ct * 1000).saturating_sub(t0).max(1));
                            }
                        }
                    }
                    w.on_offer(now, tenant, aid, agent, cid);
                }
                "offer.withdrawn" => withdrawn += 1,
                "agent.away" => {
                    away += 1;
                    if let Some(agent) = r.record.agent_id.as_deref() {
                        w.on_agent_away(now, tenant, agent);
                    }
                }
                _ => {}
            }
        }
        if !creating && (produced_at.is_empty() || elapsed >= a.duration + a.drain) {
            break;
        }
        // Wake for the next contact, the next follow-up or a received offer, whichever first.
        let next_contact =
            Duration::from_secs_f64((w.contacts_created() + 1) as f64 / a.rate.max(1e-6));
        let mut wait = next_contact
            .saturating_sub(start.elapsed())
            .min(Duration::from_millis(5));
        if let Some(d) = w.next_due() {
            wait = wait.min(Duration::from_millis(d.saturating_sub(now)));
        }
        if !creating {
            wait = Duration::from_millis(5);
        }
        tokio::select! {
            // Handled in the next round, with the others.
            Some(r) = rx.recv() => inbox.push(r),
            _ = tokio::time::sleep(wait) => {}
        }
    }
    let secs = start.elapsed().as_secs_f64();
    reader.abort();
    producer
        .flush(Duration::from_secs(10))
        .map_err(BenchError::Kafka)?;

    let rq = Quantiles::of(&received);
    let oq = Quantiles::of(&to_offer);
    let mix = w.mix;
    // The agents' start-up records went out before the clock started.
    let in_rate = (mix.total() - startup) as f64 / secs;
    println!(
        "live run {run}: {:.0} contacts/s offered for {:?} ({} tenants x {} agents)",
        a.rate, a.duration, a.shape.tenants, a.shape.agents_per_tenant
    );
    println!(
        "  input: {} records in {:.1} s = {:.0} records/s (created {}, accepted {}, rejected {}, completed {}, wrap-ups {}, abandoned {}, agent states {}; before: {} profiles)",
        mix.total() - startup, secs, in_rate, mix.created, mix.accepted, mix.rejected, mix.completed,
        mix.wrapups, mix.abandoned, mix.states - mix.profiles, mix.profiles
    );
    println!("  output: {offers} offers, {withdrawn} withdrawn, {away} agents set away");
    // First offers per second while contacts were being created: the routed rate the whole
    // setup sustains; under a flood, its capacity.
    println!(
        "  routed: {:.0} contacts/s (first offers received while creating)",
        first_offers_creating as f64 / a.duration.as_secs_f64().max(1e-3)
    );
    println!(
        "  measured contacts: {measured_created}; without a first offer by the end: {}",
        produced_at.len()
    );
    println!("  latency created -> offer received: {rq}");
    println!("  latency created -> offer produced (CreateTime): {oq}");
    if let Some(path) = &a.csv {
        use std::io::Write;
        let new = !path.exists();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| BenchError::Io {
                path: path.clone(),
                source,
            })?;
        let mut text = String::new();
        if new {
            text.push_str("contacts_per_s,input_records_per_s,measured,p50_ms,p90_ms,p99_ms,max_ms,offer_p50_ms,offer_p99_ms\n");
        }
        text.push_str(&format!(
            "{:.0},{:.0},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}\n",
            a.rate, in_rate, rq.count, rq.p50, rq.p90, rq.p99, rq.max, oq.p50, oq.p99
        ));
        f.write_all(text.as_bytes())
            .map_err(|source| BenchError::Io {
                path: path.clone(),
                source,
            })?;
    }
    Ok(())
}

fn is_created(e: &Event) -> bool {
    matches!(e.body, crate::event::Body::ContactCreated(_))
}

fn now_ms() -> Millis {
    now_us() / 1000
}

/// Produces one event keyed by tenant, waiting for room when the local queue is full.
async fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    e: &Event,
    produced_at_us: Option<u64>,
) -> Result<(), BenchError> {
    let payload = serde_json::to_vec(e)?;
    let stamp = produced_at_us.unwrap_or_else(now_us).to_string();
    let headers = OwnedHeaders::new().insert(Header {
        key: "produced_at_us",
        value: Some(stamp.as_bytes()),
    });
    let mut rec = BaseRecord::to(topic)
        .key(e.tenant.as_bytes())
        .payload(&payload)
        .headers(headers);
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                rec = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => return Err(BenchError::Kafka(e)),
        }
    }
}
