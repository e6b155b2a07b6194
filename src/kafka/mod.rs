//! Kafka at the edge: client settings, the producer with delivery tracking and backpressure, its
//! output writer thread, the consumer's rebalance handling, and dead letters.
//!
//! Offsets: `enable.auto.offset.store=false`. The daemon stores an offset only when a state
//! snapshot holding every record up to it is acknowledged, and a snapshot is written only once
//! every record produced because of the records it holds (outputs or dead letters) is
//! acknowledged ([`producer::Tracker`]). librdkafka commits stored offsets periodically and on
//! revoke; the daemon commits once more on shutdown.

pub mod consumer;
pub mod dlq;
pub mod producer;
pub mod writer;

use rdkafka::error::KafkaError;
use rdkafka::ClientConfig;

use crate::config::{Config, ConfigError};

/// What went wrong talking to Kafka, with where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid Kafka client settings: {0}")]
    Settings(#[from] ConfigError),
    #[error("cannot create the Kafka {what}: {source}")]
    Create {
        what: &'static str,
        source: KafkaError,
    },
    #[error("cannot subscribe to {topics:?}: {source}")]
    Subscribe {
        topics: Vec<String>,
        source: KafkaError,
    },
    #[error("consumer failed: {0}")]
    Consume(KafkaError),
    #[error("delivery to {topic} failed: {message}")]
    Delivery { topic: String, message: String },
    #[error("cannot produce to {topic}: {source}")]
    Produce { topic: String, source: KafkaError },
    #[error("commit failed: {0}")]
    Commit(KafkaError),
    #[error("cannot start the output writer thread: {0}")]
    Writer(std::io::Error),
}

impl Error {
    /// Errors after which the daemon must stop: continuing could lose or reorder effects, or
    /// cannot succeed (credentials, authorisation). Other consumer errors are reports of
    /// conditions librdkafka recovers from by itself (broker restarts, leader moves).
    pub fn is_fatal(&self) -> bool {
        match self {
            Error::Consume(e) => is_fatal_consumer_error(e),
            _ => true,
        }
    }
}

fn is_fatal_consumer_error(e: &KafkaError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    matches!(
        e.rdkafka_error_code(),
        Some(
            C::Fatal
                | C::Authentication
                | C::SaslAuthenticationFailed
                | C::TopicAuthorizationFailed
                | C::GroupAuthorizationFailed
                | C::ClusterAuthorizationFailed
                | C::InvalidConfig
        )
    )
}

/// Settings common to both clients: brokers, security, then the pass-through table (last, so
/// operators can tune anything omniroute does not manage).
fn base_settings(config: &Config, managed: &[(&str, String)]) -> Result<ClientConfig, Error> {
    let mut c = ClientConfig::new();
    c.set_log_level(rdkafka::config::RDKafkaLogLevel::Warning);
    let settings = config.client_settings()?;
    // Security and brokers first, then omniroute's own keys, then the pass-through.
    let (passthrough, managed_by_config): (Vec<_>, Vec<_>) = settings
        .into_iter()
        .partition(|(k, _)| config.kafka.client.contains_key(k));
    for (k, v) in managed_by_config {
        c.set(k, v);
    }
    for (k, v) in managed {
        c.set(*k, v.clone());
    }
    for (k, v) in passthrough {
        c.set(k, v);
    }
    Ok(c)
}

/// Consumer settings: group, manual offset store, auto-commit of stored offsets.
pub fn consumer_settings(config: &Config) -> Result<ClientConfig, Error> {
    let d = &config.daemon;
    base_settings(
        config,
        &[
            ("group.id", config.kafka.group_id.clone()),
            ("enable.auto.commit", "true".into()),
            (
                "auto.commit.interval.ms",
                d.commit_interval.as_millis().to_string(),
            ),
            ("enable.auto.offset.store", "false".into()),
            ("enable.partition.eof", "false".into()),
            // An empty fetch waits at most this long for records. librdkafka's 500 ms default
            // put a 0.5 s floor under routing latency on brokers that do not answer a waiting
            // fetch as soon as records arrive (Tansu); 10 ms costs a few idle fetches per second.
            ("fetch.wait.max.ms", "10".into()),
            // When the local queue holds its maximum (`queued.max.messages.kbytes`), fetching
            // pauses for this long; librdkafka's 1000 ms left a consumer that drains a
            // backlog idle for 0.2–0.5 s each time it emptied the queue.
            ("fetch.queue.backoff.ms", "10".into()),
            // Feeds the consumer-lag gauge; operators may change the pace.
            ("statistics.interval.ms", "5000".into()),
            (
                "auto.offset.reset",
                config.kafka.start_from.as_str().to_string(),
            ),
        ],
    )
}

/// Settings of the recovery reader: brokers, security and the pass-through table; the reader
/// sets its own consumer keys.
pub fn reader_settings(config: &Config) -> Result<ClientConfig, Error> {
    base_settings(config, &[])
}

/// Producer settings: acknowledged by all in-sync replicas, idempotent (no duplicates or
/// reordering on retries: the output stream's order is what recovery reads back), bounded
/// local queue.
pub fn producer_settings(config: &Config) -> Result<ClientConfig, Error> {
    base_settings(
        config,
        &[
            ("acks", "all".into()),
            ("enable.idempotence", "true".into()),
            // A batch that fails for good would leave a hole in the output stream, which
            // recovery reads as "all produced": stop the producer instead (the daemon exits,
            // and the next start replays from the last snapshot).
            ("enable.gapless.guarantee", "true".into()),
            ("linger.ms", "5".into()),
            (
                "queue.buffering.max.messages",
                config.daemon.producer_queue_messages.to_string(),
            ),
        ],
    )
}
