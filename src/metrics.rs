//! Metric names and small helpers. Names are fixed: alerting rules are written against them.
//!
//! Call [`describe`] once at start-up; the helpers keep label sets bounded (reasons and types are
//! short static codes, partitions and topics are few).

use metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Histogram,
};
use rustc_hash::FxHashMap;

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
pub const SLA_SERVICE_LEVEL: &str = "omniroute_sla_service_level";
pub const SLA_SERVICE_LEVEL_TARGET: &str = "omniroute_sla_service_level_target";
pub const SLA_QUEUE_DEPTH: &str = "omniroute_sla_queue_depth";
pub const SLA_LONGEST_WAIT: &str = "omniroute_sla_longest_wait_seconds";
pub const SLA_ASA: &str = "omniroute_sla_asa_seconds";
pub const SLA_ABANDONMENT: &str = "omniroute_sla_abandonment_ratio";
pub const SLA_OCCUPANCY: &str = "omniroute_sla_occupancy_ratio";
pub const SLA_OFFERED: &str = "omniroute_sla_contacts_offered_total";
pub const SLA_ANSWERED: &str = "omniroute_sla_contacts_answered_total";
pub const SLA_ANSWERED_WITHIN: &str = "omniroute_sla_contacts_answered_within_total";
pub const SLA_ABANDONED: &str = "omniroute_sla_contacts_abandoned_total";
pub const SLA_WAIT: &str = "omniroute_sla_wait_seconds";
pub const RECOVERY_SECONDS: &str = "omniroute_partition_recovery_seconds";
pub const OUTPUTS_SUPPRESSED: &str = "omniroute_outputs_suppressed_total";
pub const REPLAY_SKIPPED: &str = "omniroute_replay_skipped_records_total";
pub const SNAPSHOTS: &str = "omniroute_state_snapshots_total";
pub const SNAPSHOT_BYTES: &str = "omniroute_state_snapshot_bytes";

/// Buckets of the answered-wait histogram: voice seconds up to email days.
const SLA_WAIT_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0,
    28800.0, 86400.0, 172800.0,
];

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
        "Engine time to handle one event (one event in 16 is timed)."
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
    describe_gauge!(
        SLA_SERVICE_LEVEL,
        "Service level over the rolling window (0-1), per the queue's formula."
    );
    describe_gauge!(
        SLA_SERVICE_LEVEL_TARGET,
        "The queue's service-level target (0-1)."
    );
    describe_gauge!(SLA_QUEUE_DEPTH, "Contacts waiting now.");
    describe_gauge!(SLA_LONGEST_WAIT, "Wait of the oldest waiting contact.");
    describe_gauge!(SLA_ASA, "Average speed of answer over the rolling window.");
    describe_gauge!(
        SLA_ABANDONMENT,
        "Abandoned / (answered + abandoned) over the window."
    );
    describe_gauge!(
        SLA_OCCUPANCY,
        "Busy time / logged-in time over the window, per tenant."
    );
    describe_counter!(SLA_OFFERED, "Contacts that entered the queue.");
    describe_counter!(SLA_ANSWERED, "Contacts answered (offer accepted).");
    describe_counter!(
        SLA_ANSWERED_WITHIN,
        "Contacts answered within the threshold."
    );
    describe_counter!(SLA_ABANDONED, "Contacts abandoned while waiting.");
    describe_gauge!(
        RECOVERY_SECONDS,
        metrics::Unit::Seconds,
        "Time the last rebuild of a partition's state took (snapshot load and read-back), by partition."
    );
    describe_counter!(
        OUTPUTS_SUPPRESSED,
        "Outputs regenerated by a replay that an earlier owner had already produced."
    );
    describe_counter!(
        REPLAY_SKIPPED,
        "Input records skipped because the loaded snapshot already holds them."
    );
    describe_counter!(
        SNAPSHOTS,
        "State snapshots written to the state topic (all chunks acknowledged)."
    );
    describe_gauge!(
        SNAPSHOT_BYTES,
        metrics::Unit::Bytes,
        "Size of the last state snapshot, by partition."
    );
    describe_histogram!(
        SLA_WAIT,
        metrics::Unit::Seconds,
        "Wait from arrival to answer of answered contacts."
    );
}

/// Exports one SLA snapshot (taken every `daemon.sla_snapshot_interval`) as gauges, and its
/// since-start counts as counters. Public so that tests export exactly what the daemon exports.
pub fn sla_snapshot(s: &crate::engine::SlaSnapshot) {
    let labels = [
        ("tenant", s.tenant.clone()),
        ("queue", s.queue.clone()),
        ("channel", s.channel.clone()),
    ];
    if let Some(v) = s.window.service_level {
        gauge!(SLA_SERVICE_LEVEL, &labels).set(v);
    }
    gauge!(SLA_SERVICE_LEVEL_TARGET, &labels).set(s.service_level_target);
    gauge!(SLA_QUEUE_DEPTH, &labels).set(s.queue_depth as f64);
    gauge!(SLA_LONGEST_WAIT, &labels).set(s.longest_wait_seconds);
    if let Some(v) = s.window.asa_seconds {
        gauge!(SLA_ASA, &labels).set(v);
    }
    if let Some(v) = s.window.abandonment_rate {
        gauge!(SLA_ABANDONMENT, &labels).set(v);
    }
    if let Some(v) = s.occupancy {
        gauge!(SLA_OCCUPANCY, "tenant" => s.tenant.clone()).set(v);
    }
    let total = &s.since_start;
    counter!(SLA_OFFERED, &labels).absolute(total.offered);
    counter!(SLA_ANSWERED, &labels).absolute(total.answered);
    counter!(SLA_ANSWERED_WITHIN, &labels).absolute(total.answered_within);
    counter!(SLA_ABANDONED, &labels).absolute(total.abandoned);
}

/// Handles of the metrics the record path updates, each registered once on first use and kept:
/// registering resolves the name and labels in the recorder's registry (hashing, comparing,
/// allocating label strings), which per record cost more than the update itself.
///
/// Counters are tallied here and added to the recorder by [`Handles::flush`] (the daemon calls
/// it after each batch of records, and dropping the handles flushes them): an update of the
/// recorder's counter is two atomic additions, a tally one plain one, and the record path makes
/// two to four a record.
///
/// Handles belong to the recorder installed when they are first used, so the daemon creates
/// them after [`install_prometheus`]. Label sets stay as bounded as before: static codes, the
/// input topics, and (tenant, queue, channel) of the offers made.
#[derive(Default)]
pub struct Handles {
    consumed: Vec<(String, Tally)>,
    routed: Vec<(&'static str, Tally)>,
    ignored: Vec<(&'static str, Tally)>,
    dead_lettered: Vec<(&'static str, Tally)>,
    produced: Vec<(&'static str, Tally)>,
    decision: Option<Histogram>,
    offers: ByQueue<Tally>,
    answered_wait: ByQueue<Histogram>,
}

/// A counter and what was counted since it was last flushed.
struct Tally {
    counter: Counter,
    pending: u64,
}

impl Tally {
    fn new(counter: Counter) -> Self {
        Tally {
            counter,
            pending: 0,
        }
    }

    fn add(&mut self, n: u64) {
        self.pending += n;
    }

    fn flush(&mut self) {
        if self.pending > 0 {
            self.counter.increment(std::mem::take(&mut self.pending));
        }
    }
}

/// A handle per static label value; the few values are scanned, not hashed.
fn by_code<'c, H>(
    cache: &'c mut Vec<(&'static str, H)>,
    code: &'static str,
    make: impl FnOnce() -> H,
) -> &'c mut H {
    // The codes are string literals: the same literal is the same pointer, so pointers are
    // compared first and the text only for a code not found that way.
    let found = cache
        .iter()
        .position(|(c, _)| std::ptr::eq(*c, code))
        .or_else(|| cache.iter().position(|(c, _)| *c == code));
    let i = match found {
        Some(i) => i,
        None => {
            cache.push((code, make()));
            cache.len() - 1
        }
    };
    &mut cache[i].1
}

/// Handles by (tenant, queue, channel), looked up without building the key: one hash of the
/// three names and one probe, the names compared only within the (nearly always single) entry
/// of that hash.
struct ByQueue<H>(FxHashMap<u64, Vec<Labelled<H>>>);

/// A handle with its (tenant, queue, channel).
type Labelled<H> = (Box<str>, Box<str>, Box<str>, H);

impl<H> Default for ByQueue<H> {
    fn default() -> Self {
        ByQueue(FxHashMap::default())
    }
}

impl<H> ByQueue<H> {
    fn get(
        &mut self,
        tenant: &str,
        queue: &str,
        channel: &str,
        make: impl FnOnce() -> H,
    ) -> &mut H {
        use std::hash::{Hash, Hasher};
        let mut hasher = rustc_hash::FxHasher::default();
        (tenant, queue, channel).hash(&mut hasher);
        let entries = self.0.entry(hasher.finish()).or_default();
        let i = match entries
            .iter()
            .position(|(t, q, c, _)| **t == *tenant && **q == *queue && **c == *channel)
        {
            Some(i) => i,
            None => {
                entries.push((tenant.into(), queue.into(), channel.into(), make()));
                entries.len() - 1
            }
        };
        &mut entries[i].3
    }

    fn values_mut(&mut self) -> impl Iterator<Item = &mut H> {
        self.0.values_mut().flatten().map(|e| &mut e.3)
    }
}

impl Handles {
    pub(crate) fn record_consumed(&mut self, topic: &str) {
        let i = match self.consumed.iter().position(|(t, _)| t == topic) {
            Some(i) => i,
            None => {
                let c = counter!(RECORDS_CONSUMED, "topic" => topic.to_string());
                self.consumed.push((topic.to_string(), Tally::new(c)));
                self.consumed.len() - 1
            }
        };
        self.consumed[i].1.add(1);
    }

    pub(crate) fn dead_lettered(&mut self, reason: &'static str) {
        by_code(&mut self.dead_lettered, reason, || {
            Tally::new(counter!(DLQ_RECORDS, "reason" => reason))
        })
        .add(1);
    }

    pub(crate) fn ignored(&mut self, reason: &'static str) {
        by_code(&mut self.ignored, reason, || {
            Tally::new(counter!(EVENTS_IGNORED, "reason" => reason))
        })
        .add(1);
    }

    pub(crate) fn routed(&mut self, event_type: &'static str) {
        by_code(&mut self.routed, event_type, || {
            Tally::new(counter!(EVENTS_ROUTED, "type" => event_type))
        })
        .add(1);
    }

    /// Engine time of one event.
    pub(crate) fn decision(&mut self, seconds: f64) {
        self.decision
            .get_or_insert_with(|| histogram!(DECISION_SECONDS))
            .record(seconds);
    }

    pub(crate) fn produced(&mut self, output_type: &'static str) {
        by_code(&mut self.produced, output_type, || {
            Tally::new(counter!(ASSIGNMENTS_PRODUCED, "type" => output_type))
        })
        .add(1);
    }

    pub(crate) fn offer(&mut self, tenant: &str, queue: &str, channel: &str) {
        self.offers
            .get(tenant, queue, channel, || {
                Tally::new(counter!(OFFERS, "tenant" => tenant.to_string(),
                    "queue" => queue.to_string(), "channel" => channel.to_string()))
            })
            .add(1);
    }

    /// One answered contact's wait.
    pub(crate) fn answered_wait(&mut self, tenant: &str, queue: &str, channel: &str, seconds: f64) {
        self.answered_wait
            .get(tenant, queue, channel, || {
                histogram!(SLA_WAIT, "tenant" => tenant.to_string(), "queue" => queue.to_string(),
                    "channel" => channel.to_string())
            })
            .record(seconds);
    }

    /// Adds the counts tallied since the last flush to the recorder.
    pub(crate) fn flush(&mut self) {
        let by_code = [
            &mut self.routed,
            &mut self.ignored,
            &mut self.dead_lettered,
            &mut self.produced,
        ];
        for (_, t) in by_code.into_iter().flatten() {
            t.flush();
        }
        for (_, t) in &mut self.consumed {
            t.flush();
        }
        for t in self.offers.values_mut() {
            t.flush();
        }
    }
}

/// Counts tallied and not yet flushed are not lost with the handles (a partition revoked, the
/// daemon stopping).
impl Drop for Handles {
    fn drop(&mut self) {
        self.flush();
    }
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

pub(crate) fn recovered(partition: i32, seconds: f64) {
    gauge!(RECOVERY_SECONDS, "partition" => partition.to_string()).set(seconds);
}

pub(crate) fn suppressed(n: u64) {
    counter!(OUTPUTS_SUPPRESSED).increment(n);
}

pub(crate) fn replay_skipped() {
    counter!(REPLAY_SKIPPED).increment(1);
}

pub(crate) fn snapshot_written(partition: i32, bytes: usize) {
    counter!(SNAPSHOTS).increment(1);
    gauge!(SNAPSHOT_BYTES, "partition" => partition.to_string()).set(bytes as f64);
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
        .set_buckets_for_metric(Matcher::Full(SLA_WAIT.to_string()), SLA_WAIT_BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{SlaFigures, SlaSnapshot};

    #[test]
    fn sla_snapshots_become_labelled_gauges_and_counters() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let snap = SlaSnapshot {
            tenant: "shop-mx".into(),
            queue: "sales".into(),
            channel: "chat".into(),
            at: 1,
            window_start: 0,
            window_end: 1,
            window: SlaFigures {
                service_level: Some(0.75),
                ..SlaFigures::default()
            },
            since_start: SlaFigures {
                offered: 12,
                answered: 9,
                ..SlaFigures::default()
            },
            service_level_threshold_seconds: 30.0,
            service_level_target: 0.8,
            queue_depth: 3,
            longest_wait_seconds: 41.5,
            agents_logged_in: 4,
            agents_available: 1,
            agents_busy: 3,
            occupancy: Some(0.6),
        };
        metrics::with_local_recorder(&recorder, || sla_snapshot(&snap));
        let text = handle.render();
        let l = r#"{tenant="shop-mx",queue="sales",channel="chat"}"#;
        for line in [
            format!("omniroute_sla_service_level{l} 0.75"),
            format!("omniroute_sla_queue_depth{l} 3"),
            format!("omniroute_sla_longest_wait_seconds{l} 41.5"),
            format!("omniroute_sla_contacts_offered_total{l} 12"),
            format!("omniroute_sla_contacts_answered_total{l} 9"),
            r#"omniroute_sla_occupancy_ratio{tenant="shop-mx"} 0.6"#.to_string(),
        ] {
            assert!(text.contains(&line), "{line} missing:\n{text}");
        }
        assert!(
            !text.contains("omniroute_sla_asa_seconds{"),
            "no ASA before any answer"
        );
    }

    /// Each (tenant, queue, channel) keeps its own handle, also when the names run together
    /// alike ("ab" + "c" and "a" + "bc").
    #[test]
    fn offers_are_counted_per_tenant_queue_and_channel() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut h = Handles::default();
        metrics::with_local_recorder(&recorder, || {
            for (tenant, queue, channel, n) in [
                ("ab", "c", "chat", 3),
                ("a", "bc", "chat", 2),
                ("ab", "c", "voice", 1),
            ] {
                for _ in 0..n {
                    h.offer(tenant, queue, channel);
                }
            }
            h.answered_wait("ab", "c", "chat", 1.5);
        });
        let before = handle.render();
        assert!(
            before.contains(r#"omniroute_offers_total{tenant="ab",queue="c",channel="chat"} 0"#),
            "registered, tallied, not yet added:\n{before}"
        );
        h.flush();
        let text = handle.render();
        for line in [
            r#"omniroute_offers_total{tenant="ab",queue="c",channel="chat"} 3"#,
            r#"omniroute_offers_total{tenant="a",queue="bc",channel="chat"} 2"#,
            r#"omniroute_offers_total{tenant="ab",queue="c",channel="voice"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
        assert!(text.contains("omniroute_sla_wait_seconds"), "{text}");
        // A second flush adds only what was counted since.
        h.offer("ab", "c", "chat");
        h.flush();
        h.flush();
        let text = handle.render();
        assert!(
            text.contains(r#"omniroute_offers_total{tenant="ab",queue="c",channel="chat"} 4"#),
            "{text}"
        );
    }

    /// Dropped handles (a revoked partition, a stopping daemon) add what they tallied.
    #[test]
    fn dropping_the_handles_flushes_their_tallies() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let mut h = Handles::default();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..5 {
                h.record_consumed("omniroute.events");
                h.routed("contact.created");
            }
            h.ignored("duplicate");
            h.produced("offer");
        });
        drop(h);
        let text = handle.render();
        for line in [
            r#"omniroute_records_consumed_total{topic="omniroute.events"} 5"#,
            r#"omniroute_events_routed_total{type="contact.created"} 5"#,
            r#"omniroute_events_ignored_total{reason="duplicate"} 1"#,
            r#"omniroute_assignments_produced_total{type="offer"} 1"#,
        ] {
            assert!(text.contains(line), "{line} missing:\n{text}");
        }
    }
}
