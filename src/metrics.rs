//! Metric names and small helpers. Names are fixed: alerting rules are written against them.
//!
//! Call [`describe`] once at start-up; the helpers keep label sets bounded (reasons and types are
//! short static codes, partitions and topics are few).

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

pub const RECORDS_CONSUMED: &str = "omniroute_records_consumed_total";
pub const DLQ_RECORDS: &str = "omniroute_dlq_records_total";
pub const EVENTS_IGNORED: &str = "omniroute_events_ignored_total";
pub const EVENTS_ROUTED: &str = "omniroute_events_routed_total";
pub const ASSIGNMENTS_PRODUCED: &str = "omniroute_assignments_produced_total";
pub const OFFERS: &str = "omniroute_offers_total";
pub const DECISION_SECONDS: &str = "omniroute_decision_seconds";
pub const CONSUMER_LAG: &str = "omniroute_consumer_lag_records";
pub const PARTITIONS_ASSIGNED: &str = "omniroute_partitions_assigned";
pub const ENGINE_AGENTS: &str = "omniroute_engine_agents";
pub const ENGINE_CONTACTS_WAITING: &str = "omniroute_engine_contacts_waiting";
pub const PRODUCER_QUEUE_DEPTH: &str = "omniroute_producer_queue_depth";
pub const CONFIG_RELOADS: &str = "omniroute_config_reloads_total";
pub const PRODUCE_ERRORS: &str = "omniroute_produce_errors_total";

/// Registers descriptions; harmless to call more than once.
pub fn describe() {
    describe_counter!(RECORDS_CONSUMED, "Input records consumed, by topic.");
    describe_counter!(
        DLQ_RECORDS,
        "Records sent to the dead-letter topic, by reason."
    );
    describe_counter!(
        EVENTS_IGNORED,
        "Decoded events the engine did not apply, by reason."
    );
    describe_counter!(EVENTS_ROUTED, "Events applied by the engine, by type.");
    describe_counter!(
        ASSIGNMENTS_PRODUCED,
        "Records produced to the assignments topic, by type."
    );
    describe_counter!(OFFERS, "Offers made, by tenant, queue and channel.");
    describe_histogram!(
        DECISION_SECONDS,
        metrics::Unit::Seconds,
        "Engine time to handle one event."
    );
    describe_gauge!(
        CONSUMER_LAG,
        "Records behind the partition's high watermark."
    );
    describe_gauge!(
        PARTITIONS_ASSIGNED,
        "Input partitions owned by this instance."
    );
    describe_gauge!(ENGINE_AGENTS, "Agents known to the engines, by state.");
    describe_gauge!(
        ENGINE_CONTACTS_WAITING,
        "Contacts waiting for an agent, over all engines."
    );
    describe_gauge!(
        PRODUCER_QUEUE_DEPTH,
        "Produced records not yet acknowledged by the brokers."
    );
    describe_counter!(CONFIG_RELOADS, "Config reloads, by result (ok or error).");
    describe_counter!(
        PRODUCE_ERRORS,
        "Records the producer failed to deliver, by topic."
    );
}

pub(crate) fn record_consumed(topic: &str) {
    counter!(RECORDS_CONSUMED, "topic" => topic.to_string()).increment(1);
}

pub(crate) fn dead_lettered(reason: &'static str) {
    counter!(DLQ_RECORDS, "reason" => reason).increment(1);
}

pub(crate) fn ignored(reason: &'static str) {
    counter!(EVENTS_IGNORED, "reason" => reason).increment(1);
}

pub(crate) fn routed(event_type: &'static str, seconds: f64) {
    counter!(EVENTS_ROUTED, "type" => event_type).increment(1);
    histogram!(DECISION_SECONDS).record(seconds);
}

pub(crate) fn produced(output_type: &'static str) {
    counter!(ASSIGNMENTS_PRODUCED, "type" => output_type).increment(1);
}

pub(crate) fn offer(tenant: &str, queue: &str, channel: &str) {
    counter!(OFFERS, "tenant" => tenant.to_string(), "queue" => queue.to_string(),
        "channel" => channel.to_string())
    .increment(1);
}

pub(crate) fn lag(partition: i32, records: i64) {
    gauge!(CONSUMER_LAG, "partition" => partition.to_string()).set(records.max(0) as f64);
}

pub(crate) fn partitions_assigned(n: usize) {
    gauge!(PARTITIONS_ASSIGNED).set(n as f64);
}

pub(crate) fn engine_sizes(agents: usize, available: usize, waiting: usize) {
    gauge!(ENGINE_AGENTS, "state" => "known").set(agents as f64);
    gauge!(ENGINE_AGENTS, "state" => "available").set(available as f64);
    gauge!(ENGINE_CONTACTS_WAITING).set(waiting as f64);
}

pub(crate) fn producer_queue(depth: usize) {
    gauge!(PRODUCER_QUEUE_DEPTH).set(depth as f64);
}

pub(crate) fn reload(ok: bool) {
    counter!(CONFIG_RELOADS, "result" => if ok { "ok" } else { "error" }).increment(1);
}

pub(crate) fn produce_error(topic: &str) {
    counter!(PRODUCE_ERRORS, "topic" => topic.to_string()).increment(1);
}

/// Installs the Prometheus recorder (once per process) and returns the handle that renders the
/// exposition text. Decision time gets histogram buckets so alerts can use quantiles.
pub fn install_prometheus(
) -> Result<metrics_exporter_prometheus::PrometheusHandle, metrics_exporter_prometheus::BuildError>
{
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(DECISION_SECONDS.to_string()),
            &[
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
                0.002_5, 0.005, 0.01,
            ],
        )?
        .install_recorder()?;
    describe();
    Ok(handle)
}
