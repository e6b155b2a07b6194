//! The consumer's rebalance handling.
//!
//! librdkafka calls the rebalance callbacks on the thread that polls the consumer, which is the
//! daemon's own loop; so the callbacks only record what changed, and the loop applies it after
//! the poll returns. The one thing that must happen inside the callback is handing over a revoked
//! partition cleanly: flush what was produced for it, so that the next owner, which reads the
//! output partition back to learn what was already produced, sees all of it; and commit the
//! offset of the last acknowledged snapshot (stored by the daemon as snapshots complete).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, TopicPartitionList};

use super::producer::{self, Producer};

/// A change of ownership, applied by the daemon loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Partitions assigned. `whole`: the list is the complete new assignment (eager
    /// rebalancing), so anything owned and not in it is gone, revoke seen or not.
    Assigned {
        list: Vec<(String, i32)>,
        whole: bool,
    },
    Revoked(Vec<(String, i32)>),
}

pub struct RebalanceContext {
    producer: Arc<Producer>,
    /// Bound on the flush at revoke, so a rebalance cannot stall past the session timeout.
    flush_timeout: Duration,
    changes: Mutex<Vec<Change>>,
}

impl RebalanceContext {
    pub fn new(producer: Arc<Producer>, flush_timeout: Duration) -> Self {
        RebalanceContext {
            producer,
            flush_timeout,
            changes: Mutex::new(Vec::new()),
        }
    }

    /// Changes recorded since the last call, in order.
    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut *self.changes.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn push(&self, c: Change) {
        self.changes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(c);
    }
}

fn parts(tpl: &TopicPartitionList) -> Vec<(String, i32)> {
    tpl.elements()
        .iter()
        .map(|e| (e.topic().to_string(), e.partition()))
        .collect()
}

impl ClientContext for RebalanceContext {
    /// librdkafka's periodic statistics carry each assigned partition's lag.
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag: std::collections::BTreeMap<i32, i64> = std::collections::BTreeMap::new();
        for topic in statistics.topics.values() {
            for (id, p) in &topic.partitions {
                // -1 is librdkafka's internal partition; lag is -1 until known.
                if *id >= 0 && p.fetch_state == "active" && p.consumer_lag >= 0 {
                    *lag.entry(*id).or_default() += p.consumer_lag;
                }
            }
        }
        for (p, l) in lag {
            crate::metrics::lag(p, l);
        }
    }
}

impl ConsumerContext for RebalanceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let revoked = parts(tpl);
            tracing::info!(partitions = ?revoked, "partitions revoked; handing over");
            if let Err(e) = self.producer.flush(self.flush_timeout) {
                tracing::warn!(error = %e, "flush at revoke incomplete; the next owner replays the rest");
            }
            let tracker = self.producer.tracker().clone();
            let mut t = producer::lock(&tracker);
            for (topic, partition) in &revoked {
                t.forget(topic, *partition);
            }
            drop(t);
            if let Err(e) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
                tracing::debug!(error = %e, "commit at revoke");
            }
            self.push(Change::Revoked(revoked));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let assigned = parts(tpl);
                tracing::info!(partitions = ?assigned, "partitions assigned");
                let whole = !matches!(
                    consumer.rebalance_protocol(),
                    rdkafka::consumer::RebalanceProtocol::Cooperative
                );
                self.push(Change::Assigned {
                    list: assigned,
                    whole,
                });
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
        }
    }
}
