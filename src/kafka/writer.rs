//! The output writer: the daemon's outputs are encoded (JSON payload, recovery headers) and
//! queued to librdkafka on a thread of their own, so that the daemon's loop spends its thread on
//! consuming and routing. On a machine with a spare core the two run side by side.
//!
//! - Order: one thread takes the staged outputs in the order they were staged, so each output
//!   partition receives its outputs in sequence order, as if the loop produced them itself.
//! - Delivery tracking is unchanged: the loop registers every output with the tracker before
//!   staging it, so a record's offset (and the snapshot that holds it) waits for the output
//!   whether it is still staged or already queued.
//! - Hand-over: [`Producer::flush`](super::producer::Producer::flush), at a revoke and at
//!   shutdown, first waits until everything staged is queued, so the next owner of a partition
//!   reads back every output produced for it.
//! - Backpressure: staged outputs count as in flight.
//!
//! The thread sleeps while nothing is staged and is woken only when it sleeps and the loop hands
//! over (once per batch of records, or when [`HAND_OVER_AT`] outputs are waiting): a wake-up is
//! a system call, too dear for every output.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::ThreadedProducer;
use rdkafka::types::RDKafkaErrorCode;

use super::producer::{lock, DeliveryContext, Effect, Record, SharedTracker, Source};
use crate::engine::Output;
use crate::metrics;

/// One output to produce: to output partition `partition`, keyed by tenant, with sequence
/// number `seq`, as an effect of input record `src`.
#[derive(Debug)]
pub struct OutputJob {
    pub partition: i32,
    pub seq: u64,
    pub src: Source,
    pub output: Output,
}

/// A sleeping thread is woken once this many outputs are staged, even mid-batch.
const HAND_OVER_AT: usize = 256;

/// How long the thread waits for room when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);

#[derive(Default)]
struct State {
    staged: Vec<OutputJob>,
    /// The thread waits for work.
    sleeping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Work was handed over, or stop.
    work: Condvar,
    /// Everything taken is queued (`queued` reached 0).
    idle: Condvar,
    /// Stop: the thread ends, and gives up waiting for room in a full queue. Set under the
    /// state lock, so a thread about to sleep cannot miss it.
    stopping: AtomicBool,
    /// Outputs staged or taken by the thread and not yet queued to librdkafka. Counted down
    /// one by one, so that an output is in flight either here or in librdkafka, never in both.
    queued: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds plain counts and a vector; a panic elsewhere leaves them usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes a sleeping thread once `at_least` outputs (at least one) are staged.
    fn wake(&self, s: &State, at_least: usize) {
        if s.sleeping && s.staged.len() >= at_least.max(1) {
            self.work.notify_one();
        }
    }
}

pub(super) struct Writer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Writer {
    /// Starts the thread that queues outputs to `topic` with `producer`.
    pub(super) fn spawn(
        producer: Arc<ThreadedProducer<DeliveryContext>>,
        tracker: SharedTracker,
        topic: String,
    ) -> std::io::Result<Writer> {
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("omniroute-out".into())
            .spawn(move || run(&s, &producer, &tracker, &topic))?;
        Ok(Writer {
            shared,
            thread: Some(thread),
        })
    }

    /// Stages outputs (in order) for the thread.
    pub(super) fn stage(&self, jobs: impl Iterator<Item = OutputJob>) {
        let mut s = self.shared.lock();
        let before = s.staged.len();
        s.staged.extend(jobs);
        let added = s.staged.len() - before;
        self.shared.queued.fetch_add(added, Ordering::Relaxed);
        self.shared.wake(&s, HAND_OVER_AT);
    }

    /// Wakes the thread if outputs are staged and it sleeps.
    pub(super) fn hand_over(&self) {
        self.shared.wake(&self.shared.lock(), 1);
    }

    /// Outputs staged and not yet queued to librdkafka.
    pub(super) fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Relaxed)
    }

    /// Hands over and waits up to `timeout` until everything staged is queued; false when the
    /// time ran out first.
    pub(super) fn drain(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut s = self.shared.lock();
        self.shared.wake(&s, 1);
        // The thread notifies `idle` under the lock once the count is 0, so a count read
        // under the lock cannot miss it.
        while self.shared.queued.load(Ordering::Acquire) > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = match self.shared.idle.wait_timeout(s, left) {
                Ok((s, _)) => s,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

/// Stops the thread: what is still staged is dropped, unacknowledged, so its input records are
/// consumed again by the next owner (the daemon flushes before it lets the producer go).
impl Drop for Writer {
    fn drop(&mut self) {
        {
            let _s = self.shared.lock();
            self.shared.stopping.store(true, Ordering::Relaxed);
        }
        self.shared.work.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("output writer thread panicked");
            }
        }
    }
}

/// Turns a panic of the writer thread into a delivery failure, so that the loop stops (and its
/// supervisor restarts the daemon) instead of waiting for outputs nobody will queue.
struct FailOnPanic<'a> {
    tracker: &'a SharedTracker,
    topic: &'a str,
}

impl Drop for FailOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            lock(self.tracker).fail(self.topic, "the output writer thread panicked".into());
        }
    }
}

fn run(
    shared: &Shared,
    producer: &ThreadedProducer<DeliveryContext>,
    tracker: &SharedTracker,
    topic: &str,
) {
    let _failure = FailOnPanic { tracker, topic };
    let mut batch = Vec::new();
    let mut encoded = Vec::with_capacity(1024);
    loop {
        {
            let mut s = shared.lock();
            let stopping = || shared.stopping.load(Ordering::Relaxed);
            while s.staged.is_empty() && !stopping() {
                s.sleeping = true;
                s = match shared.work.wait(s) {
                    Ok(s) => s,
                    Err(e) => e.into_inner(),
                };
                s.sleeping = false;
            }
            if stopping() {
                return;
            }
            std::mem::swap(&mut s.staged, &mut batch);
        }
        for job in batch.drain(..) {
            if let Err(e) = queue(shared, producer, topic, &mut encoded, job) {
                metrics::produce_error(topic);
                tracing::error!(topic, error = %e, "cannot queue an output");
                lock(tracker).fail(topic, e);
            }
            shared.queued.fetch_sub(1, Ordering::Release);
        }
        let _s = shared.lock();
        if shared.queued.load(Ordering::Acquire) == 0 {
            shared.idle.notify_all();
        }
    }
}

/// Encodes one output and queues it, waiting for room while librdkafka's queue is full.
fn queue(
    shared: &Shared,
    producer: &ThreadedProducer<DeliveryContext>,
    topic: &str,
    encoded: &mut Vec<u8>,
    job: OutputJob,
) -> Result<(), String> {
    encoded.clear();
    serde_json::to_writer(&mut *encoded, &job.output).map_err(|e| e.to_string())?;
    let (src_topic, src_partition, src_offset) = (&job.src.0, job.src.1, job.src.2);
    let headers = crate::recovery::output_headers(job.seq, src_topic, src_partition, src_offset);
    let mut rec = Record {
        topic,
        partition: Some(job.partition),
        key: Some(crate::partition::output_tenant(&job.output).as_bytes()),
        payload: Some(encoded.as_slice()),
        headers: Some(headers),
        effect: Effect::Of(job.src.clone()),
    }
    .into_base();
    loop {
        match producer.send(rec) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                if shared.stopping.load(Ordering::Relaxed) {
                    // Not acknowledged: the record's input is read again by the next owner.
                    return Ok(());
                }
                rec = back;
                std::thread::sleep(QUEUE_FULL_WAIT);
            }
            Err((e, _)) => return Err(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AgentAway;
    use crate::kafka::producer::Producer;

    /// A producer for a broker that is not there: records queue in librdkafka and stay.
    fn producer(queue_messages: &str) -> Producer {
        let mut settings = rdkafka::ClientConfig::new();
        settings
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("queue.buffering.max.messages", queue_messages)
            .set("message.timeout.ms", "60000");
        Producer::new(&settings, SharedTracker::default(), "out").expect("producer")
    }

    fn jobs(n: i64) -> impl Iterator<Item = OutputJob> {
        (0..n).map(|i| OutputJob {
            partition: 0,
            seq: i as u64,
            src: (Arc::from("in"), 0, i),
            output: Output::AgentAway(AgentAway {
                tenant: "shop".into(),
                agent_id: "a1".into(),
                at: 1,
                reason: "missed_offers".into(),
                missed: 3,
            }),
        })
    }

    #[test]
    fn staged_outputs_are_in_flight_until_queued() {
        let p = producer("1000");
        p.stage(jobs(3));
        // librdkafka's own count may also hold internal requests: at least, not exactly.
        assert!(p.in_flight() >= 3, "staged or queued, each counts");
        assert!(p.outputs.drain(Duration::from_secs(5)), "queued in time");
        assert_eq!(p.outputs.queued(), 0);
        assert!(p.in_flight() >= 3, "now in librdkafka's queue");
    }

    #[test]
    fn a_writer_that_panics_fails_the_deliveries() {
        let tracker = SharedTracker::default();
        let t = tracker.clone();
        let joined = std::thread::spawn(move || {
            let _failure = FailOnPanic {
                tracker: &t,
                topic: "out",
            };
            panic!("writer bug");
        })
        .join();
        assert!(joined.is_err());
        assert!(
            lock(&tracker).failure().is_some(),
            "the loop sees a failure"
        );
        // No panic, no failure.
        let quiet = SharedTracker::default();
        drop(FailOnPanic {
            tracker: &quiet,
            topic: "out",
        });
        assert!(lock(&quiet).failure().is_none());
    }

    #[test]
    fn a_full_queue_holds_the_drain_and_not_the_stop() {
        let p = producer("1");
        p.stage(jobs(3));
        p.hand_over();
        // One record fits; the writer waits for room for the second, which never comes.
        assert!(!p.outputs.drain(Duration::from_millis(200)));
        assert_eq!(
            p.outputs.queued(),
            2,
            "the two that do not fit are still counted"
        );
        assert!(
            p.in_flight() >= 3,
            "one queued in librdkafka, two waiting: all in flight"
        );
        assert!(p.flush(Duration::from_millis(50)).is_err());
        let dropped = Instant::now();
        drop(p);
        assert!(
            dropped.elapsed() < Duration::from_secs(5),
            "the writer gave up waiting for room: {:?}",
            dropped.elapsed()
        );
    }
}
