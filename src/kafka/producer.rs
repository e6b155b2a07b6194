//! The producer: one librdkafka producer for assignments, SLA snapshots and dead letters, with
//! delivery tracking per source offset and backpressure when its queue is full.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Message};

use super::writer::{OutputJob, Writer};
use super::Error;
use crate::metrics;

/// An input record: (topic, partition, offset).
pub type Source = (Arc<str>, i32, i64);

/// What a produced record's acknowledgement means to the daemon.
#[derive(Debug, Clone)]
pub enum Effect {
    /// An effect of this input record: its offset waits for the acknowledgement.
    Of(Source),
    /// One chunk of a state snapshot of input partition `partition`.
    Snapshot { partition: i32, id: u64 },
    /// Nothing waits for it (SLA snapshots, clock records).
    Free,
}

/// Tracks, per input partition, which consumed records still wait for deliveries, so that only
/// offsets whose effects are all acknowledged get stored.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Per input partition. A short list, searched without building a key: a key would clone
    /// the topic's `Arc` for every record and every acknowledgement, and its count is shared
    /// by the loop, the writer and the delivery thread.
    parts: Vec<(Arc<str>, i32, PartTrack)>,
    /// First delivery that failed for good; the daemon stops on it (its offset must not pass).
    failed: Option<(String, String)>,
    /// Snapshot chunks still unacknowledged, by (input partition, snapshot id).
    snapshots: HashMap<(i32, u64), u32>,
    /// Snapshots wholly acknowledged since the last [`Tracker::take_snapshots`].
    snapshots_done: Vec<(i32, u64)>,
}

#[derive(Debug, Default)]
struct PartTrack {
    /// Offset → deliveries still outstanding.
    pending: BTreeMap<i64, u32>,
}

impl Tracker {
    fn index(&self, topic: &str, partition: i32) -> Option<usize> {
        self.parts
            .iter()
            .position(|(t, q, _)| *q == partition && &**t == topic)
    }

    fn part(&self, topic: &str, partition: i32) -> Option<&PartTrack> {
        self.index(topic, partition).map(|i| &self.parts[i].2)
    }

    fn part_mut(&mut self, topic: &str, partition: i32) -> Option<&mut PartTrack> {
        self.index(topic, partition).map(|i| &mut self.parts[i].2)
    }

    /// Record `offset` consumed, with `outputs` deliveries to wait for. A record without
    /// outputs waits for nothing and is not tracked, so the daemon skips the call (and the
    /// lock) for it.
    pub fn begin(&mut self, (topic, partition, offset): &Source, outputs: u32) {
        if outputs == 0 {
            return;
        }
        let i = self.index(topic, *partition).unwrap_or_else(|| {
            self.parts
                .push((topic.clone(), *partition, PartTrack::default()));
            self.parts.len() - 1
        });
        *self.parts[i].2.pending.entry(*offset).or_default() += outputs;
    }

    /// One delivery for `source` was acknowledged.
    pub fn ack(&mut self, (topic, partition, offset): &Source) {
        if let Some(p) = self.part_mut(topic, *partition) {
            if let Some(n) = p.pending.get_mut(offset) {
                *n -= 1;
                if *n == 0 {
                    p.pending.remove(offset);
                }
            }
        }
    }

    /// A snapshot of `chunks` records was queued.
    pub fn begin_snapshot(&mut self, partition: i32, id: u64, chunks: u32) {
        self.snapshots.insert((partition, id), chunks);
    }

    fn ack_snapshot(&mut self, partition: i32, id: u64) {
        if let Some(n) = self.snapshots.get_mut(&(partition, id)) {
            *n -= 1;
            if *n == 0 {
                self.snapshots.remove(&(partition, id));
                self.snapshots_done.push((partition, id));
            }
        }
    }

    /// A snapshot chunk failed: that snapshot never completes (the next one will).
    fn fail_snapshot(&mut self, partition: i32, id: u64) {
        self.snapshots.remove(&(partition, id));
    }

    /// Snapshots whose every chunk is acknowledged, since the last call.
    pub fn take_snapshots(&mut self) -> Vec<(i32, u64)> {
        std::mem::take(&mut self.snapshots_done)
    }

    /// True when no record of `topic`/`partition` up to `offset` waits for a delivery.
    pub fn acked_through(&self, topic: &str, partition: i32, offset: i64) -> bool {
        self.part(topic, partition)
            .and_then(|p| p.pending.keys().next())
            .is_none_or(|first_pending| *first_pending > offset)
    }

    pub fn fail(&mut self, topic: &str, message: String) {
        if self.failed.is_none() {
            self.failed = Some((topic.to_string(), message));
        }
    }

    pub fn failure(&self) -> Option<Error> {
        self.failed
            .as_ref()
            .map(|(topic, message)| Error::Delivery {
                topic: topic.clone(),
                message: message.clone(),
            })
    }

    /// Forget a partition (revoked): its pending records will be consumed again by the next
    /// owner.
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.parts
            .retain(|(t, p, _)| !(&**t == topic && *p == partition));
    }

    /// Outstanding deliveries over all partitions.
    pub fn pending(&self) -> usize {
        self.parts
            .iter()
            .map(|(_, _, p)| p.pending.values().map(|n| *n as usize).sum::<usize>())
            .sum()
    }
}

pub type SharedTracker = Arc<Mutex<Tracker>>;

/// Locks the tracker; a poisoned lock still holds consistent counts (every update is a single
/// map operation), so it is used as is.
pub fn lock(t: &SharedTracker) -> MutexGuard<'_, Tracker> {
    t.lock().unwrap_or_else(|e| e.into_inner())
}

/// Receives delivery reports on librdkafka's polling thread.
pub struct DeliveryContext {
    tracker: SharedTracker,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = Box<Effect>;

    fn delivery(&self, result: &DeliveryResult<'_>, effect: Self::DeliveryOpaque) {
        match (result, *effect) {
            (Ok(_), Effect::Of(s)) => lock(&self.tracker).ack(&s),
            (Ok(_), Effect::Snapshot { partition, id }) => {
                lock(&self.tracker).ack_snapshot(partition, id)
            }
            (Ok(_), Effect::Free) => {}
            (Err((e, msg)), effect) => {
                let topic = msg.topic().to_string();
                metrics::produce_error(&topic);
                tracing::error!(topic, error = %e, "delivery failed");
                match effect {
                    Effect::Of(_) => lock(&self.tracker).fail(&topic, e.to_string()),
                    Effect::Snapshot { partition, id } => {
                        lock(&self.tracker).fail_snapshot(partition, id)
                    }
                    Effect::Free => {}
                }
            }
        }
    }
}

/// The daemon's producer. Outputs go through the [output writer](super::writer) thread; state
/// snapshots, clock records, SLA snapshots and dead letters are queued by the caller.
pub struct Producer {
    inner: Arc<ThreadedProducer<DeliveryContext>>,
    tracker: SharedTracker,
    pub(super) outputs: Writer,
}

/// One record to produce.
pub struct Record<'a> {
    pub topic: &'a str,
    /// An explicit partition; `None` lets the partitioner hash the key.
    pub partition: Option<i32>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
    pub headers: Option<OwnedHeaders>,
    /// What waits for its acknowledgement.
    pub effect: Effect,
}

impl<'a> Record<'a> {
    /// The librdkafka record, with the effect as its delivery opaque.
    pub(super) fn into_base(self) -> BaseRecord<'a, [u8], [u8], Box<Effect>> {
        let mut rec = BaseRecord::with_opaque_to(self.topic, Box::new(self.effect));
        if let Some(p) = self.partition {
            rec = rec.partition(p);
        }
        if let Some(k) = self.key {
            rec = rec.key(k);
        }
        if let Some(p) = self.payload {
            rec = rec.payload(p);
        }
        if let Some(h) = self.headers {
            rec = rec.headers(h);
        }
        rec
    }
}

impl Producer {
    /// A producer whose staged outputs go to `outputs_topic`.
    pub fn new(
        settings: &rdkafka::ClientConfig,
        tracker: SharedTracker,
        outputs_topic: &str,
    ) -> Result<Self, Error> {
        let inner: Arc<ThreadedProducer<DeliveryContext>> = Arc::new(
            settings
                .create_with_context(DeliveryContext {
                    tracker: tracker.clone(),
                })
                .map_err(|source| Error::Create {
                    what: "producer",
                    source,
                })?,
        );
        let outputs = Writer::spawn(inner.clone(), tracker.clone(), outputs_topic.to_string())
            .map_err(Error::Writer)?;
        Ok(Producer {
            inner,
            tracker,
            outputs,
        })
    }

    /// Stages outputs for the writer thread, in order. Register each with the tracker first
    /// ([`Tracker::begin`]): the writer only queues them.
    pub fn stage(&self, jobs: impl Iterator<Item = OutputJob>) {
        self.outputs.stage(jobs);
    }

    /// Wakes the writer for what is staged (the end of a batch of records).
    pub fn hand_over(&self) {
        self.outputs.hand_over();
    }

    pub fn tracker(&self) -> &SharedTracker {
        &self.tracker
    }

    /// Queues one record. When librdkafka's queue is full, waits for room (backpressure) instead
    /// of dropping: the consumer does not advance meanwhile.
    pub async fn send(&self, r: Record<'_>) -> Result<(), Error> {
        let topic = r.topic;
        let mut rec = r.into_base();
        loop {
            match self.inner.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err((source, _)) => {
                    return Err(Error::Produce {
                        topic: topic.to_string(),
                        source,
                    })
                }
            }
        }
    }

    /// Records staged, queued or in flight.
    pub fn in_flight(&self) -> usize {
        usize::try_from(self.inner.in_flight_count()).unwrap_or(0) + self.outputs.queued()
    }

    /// Waits (blocking) up to `timeout` for every staged output to be queued and every queued
    /// record to be acknowledged.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        let deadline = std::time::Instant::now() + timeout;
        if !self.outputs.drain(timeout) {
            return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
        }
        self.inner
            .flush(deadline.saturating_duration_since(std::time::Instant::now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(o: i64) -> Source {
        (Arc::from("in"), 0, o)
    }

    #[test]
    fn offsets_are_acknowledged_only_up_to_the_first_pending_record() {
        let mut t = Tracker::default();
        t.begin(&src(10), 2);
        t.begin(&src(11), 0);
        t.begin(&src(12), 1);
        assert!(t.acked_through("in", 0, 9));
        assert!(!t.acked_through("in", 0, 10));
        t.ack(&src(12));
        assert!(!t.acked_through("in", 0, 12), "10 still pending");
        t.ack(&src(10));
        assert!(!t.acked_through("in", 0, 12), "10 has a second output");
        t.ack(&src(10));
        assert!(t.acked_through("in", 0, 12));
        t.begin(&src(13), 1);
        assert!(t.acked_through("in", 0, 12));
        assert!(!t.acked_through("in", 0, 13), "13 pending");
        assert_eq!(t.pending(), 1);
        assert!(t.acked_through("in", 1, 99), "nothing begun there");
    }

    #[test]
    fn a_record_without_outputs_waits_for_nothing() {
        let mut t = Tracker::default();
        t.begin(&src(0), 0);
        assert!(t.acked_through("in", 0, 0));
        assert_eq!(t.pending(), 0);
        t.begin(&src(1), 1);
        t.forget("in", 0);
        assert!(t.acked_through("in", 0, 1), "forgotten with its partition");
        assert_eq!(t.pending(), 0);
    }

    #[test]
    fn a_snapshot_is_done_when_every_chunk_is_acknowledged() {
        let mut t = Tracker::default();
        t.begin_snapshot(3, 7, 2);
        t.ack_snapshot(3, 7);
        assert!(t.take_snapshots().is_empty());
        t.ack_snapshot(3, 7);
        assert_eq!(t.take_snapshots(), vec![(3, 7)]);
        t.begin_snapshot(3, 8, 2);
        t.fail_snapshot(3, 8);
        t.ack_snapshot(3, 8);
        assert!(
            t.take_snapshots().is_empty(),
            "a failed snapshot never completes"
        );
    }
}
