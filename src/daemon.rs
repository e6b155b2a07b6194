//! The daemon: consume events, drive the engines, produce assignments — until told to stop.
//!
//! [`run`] takes its config and its shutdown trigger as arguments, so tests start the real daemon
//! in-process. One task owns the consumer and every partition's state; it serves, in order of
//! precedence: shutdown, config reloads, engine timers, then new records. Partition state is
//! rebuilt on assignment and snapshotted as it goes; offsets are committed at snapshots (see
//! [`crate::recovery`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{Stream, StreamExt};
use rdkafka::consumer::MessageStream;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientConfig, Offset};
use rustc_hash::FxHashMap;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, KafkaConfig, StartFrom};
use crate::engine::{Output, Policy};
use crate::event::Millis;
use crate::kafka::consumer::{Change, RebalanceContext};
use crate::kafka::producer::{self, Effect, Producer, Record, Tracker};
use crate::kafka::writer::OutputJob;
use crate::kafka::{self, dlq};
use crate::metrics;
use crate::partition::{self, Admit, Input, Outcome, Partition, Stage};
use crate::recovery::{self, RecoveryError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
    #[error("cannot encode an output: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot rebuild partition state: {0}")]
    Recovery(#[from] RecoveryError),
    #[error("topics: {0}")]
    Topics(String),
}

/// What the daemon reports while it runs: readiness for health checks and systemd, a heartbeat
/// for the watchdog, counters for status lines, and the outcome of reloads.
#[derive(Debug, Clone)]
pub struct Status {
    /// Partitions assigned and their state built.
    pub ready: bool,
    /// Input partitions owned (counted over all input topics).
    pub partitions: usize,
    /// Their partition numbers.
    pub partition_ids: Vec<i32>,
    /// Last time the loop went round; a stale heartbeat means a stuck loop.
    pub heartbeat: Instant,
    pub consumed: u64,
    pub routed: u64,
    pub ignored: u64,
    pub dead_lettered: u64,
    pub produced: u64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    pub last_reload_error: Option<String>,
    /// The routing policy in force.
    pub policy: Arc<Policy>,
}

impl Status {
    fn new(policy: Arc<Policy>) -> Self {
        Status {
            ready: false,
            partitions: 0,
            partition_ids: Vec::new(),
            heartbeat: Instant::now(),
            consumed: 0,
            routed: 0,
            ignored: 0,
            dead_lettered: 0,
            produced: 0,
            reloads_ok: 0,
            reloads_failed: 0,
            last_reload_error: None,
            policy,
        }
    }
}

/// A request to reread the config file and apply its `[routing]` table.
#[derive(Debug, Clone)]
pub struct Reload {
    pub path: PathBuf,
}

/// How the outside world steers a running daemon.
pub struct Control {
    pub shutdown: CancellationToken,
    pub reload: Option<mpsc::Receiver<Reload>>,
    pub status: watch::Sender<Status>,
    /// How much of the record path runs: [`Stage::Full`] but in `omniroute loadgen compare
    /// --stages`, which measures the parts.
    pub stage: Stage,
}

impl Control {
    /// A control with a reload channel and a status watch; keep the returned ends.
    pub fn new(
        shutdown: CancellationToken,
        policy: Arc<Policy>,
    ) -> (Control, mpsc::Sender<Reload>, watch::Receiver<Status>) {
        let (reload_tx, reload_rx) = mpsc::channel(4);
        let (status_tx, status_rx) = watch::channel(Status::new(policy));
        (
            Control {
                shutdown,
                reload: Some(reload_rx),
                status: status_tx,
                stage: Stage::Full,
            },
            reload_tx,
            status_rx,
        )
    }
}

/// Runs the daemon until `shutdown` is cancelled, then stops gracefully.
pub async fn run(config: Config, shutdown: CancellationToken) -> Result<Status, DaemonError> {
    let policy = Arc::new(config.routing.clone());
    let (control, _reload, _status) = Control::new(shutdown, policy);
    run_with(config, control).await
}

/// Like [`run`], with reloads and status reporting.
pub async fn run_with(config: Config, control: Control) -> Result<Status, DaemonError> {
    config.validate()?;
    metrics::describe();
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let producer = Arc::new(Producer::new(
        &kafka::producer_settings(&config)?,
        tracker.clone(),
        &config.kafka.assignments_topic,
    )?);
    // The revoke hand-over must finish well inside the session timeout.
    let flush_at_revoke = config.daemon.shutdown_timeout.min(Duration::from_secs(10));
    let consumer: StreamConsumer<RebalanceContext> = kafka::consumer_settings(&config)?
        .create_with_context(RebalanceContext::new(producer.clone(), flush_at_revoke))
        .map_err(|source| kafka::Error::Create {
            what: "consumer",
            source,
        })?;
    check_topics(&consumer, &config)?;
    let topics: Vec<&str> = config
        .kafka
        .input_topics
        .iter()
        .map(String::as_str)
        .collect();
    consumer
        .subscribe(&topics)
        .map_err(|source| kafka::Error::Subscribe {
            topics: config.kafka.input_topics.clone(),
            source,
        })?;
    tracing::info!(topics = ?config.kafka.input_topics, group = %config.kafka.group_id, "consuming");

    let (rebuilt_tx, rebuilt_rx) = mpsc::unbounded_channel();
    let mut d = Daemon {
        policy: Arc::new(config.routing.clone()),
        reader_settings: kafka::reader_settings(&config)?,
        config,
        producer,
        tracker,
        parts: BTreeMap::new(),
        owned: BTreeSet::new(),
        snaps: HashMap::new(),
        clock_sent: HashMap::new(),
        seeking: FxHashMap::default(),
        delivered: FxHashMap::default(),
        lows: HashMap::new(),
        rebuilding: HashMap::new(),
        rebuild_generation: 0,
        rebuilt_tx,
        rebuilt_rx,
        next_snapshot_id: u64::try_from(now_us()).unwrap_or(0),
        topics: Vec::new(),
        out: Vec::new(),
        metrics: metrics::Handles::default(),
        status: control.status,
        stage: control.stage,
        counts: Counts::default(),
        last_housekeeping: Instant::now(),
        last_sla: Instant::now(),
        last_status: Instant::now(),
    };
    let result = d
        .main_loop(&consumer, control.shutdown, control.reload)
        .await;
    let stopped = d.stop(&consumer).await;
    d.publish_status(|s| s.ready = false);
    drop(consumer);
    result?;
    stopped?;
    let status = d.status.borrow().clone();
    Ok(status)
}

/// Every input topic, the assignments topic and the state topic must have the same number of
/// partitions: input partition `p` owns output partition `p` and state partition `p`.
fn check_topics(
    consumer: &StreamConsumer<RebalanceContext>,
    config: &Config,
) -> Result<(), DaemonError> {
    let k = &config.kafka;
    let mut counts = Vec::new();
    for topic in k
        .input_topics
        .iter()
        .chain([&k.assignments_topic, &k.state_topic])
    {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .map_err(|e| DaemonError::Topics(format!("cannot read metadata of {topic}: {e}")))?;
        let n = md
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .filter(|t| t.error().is_none())
            .map_or(0, |t| t.partitions().len());
        if n == 0 {
            return Err(DaemonError::Topics(format!(
                "topic {topic} does not exist (omniroute does not create topics)"
            )));
        }
        counts.push((topic.as_str(), n));
    }
    let (first, n) = counts[0];
    if let Some((other, m)) = counts.iter().find(|(_, m)| *m != n) {
        return Err(DaemonError::Topics(format!(
            "{other} has {m} partitions and {first} has {n}: input, assignments and state topics \
             must have the same partition count"
        )));
    }
    Ok(())
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    consumed: u64,
    routed: u64,
    ignored: u64,
    dead_lettered: u64,
    produced: u64,
}

/// Snapshot progress of one partition.
#[derive(Default)]
struct SnapState {
    /// When the last snapshot was taken.
    taken_at: Option<Instant>,
    /// Positions of the last snapshot whose every chunk is acknowledged (what is committed).
    written: BTreeMap<String, i64>,
    /// Taken, waiting for the outputs of the records it holds to be acknowledged.
    waiting: Option<PendingSnapshot>,
    /// Produced, waiting for its chunks' acknowledgements.
    in_flight: Option<(u64, BTreeMap<String, i64>, Instant)>,
}

struct PendingSnapshot {
    id: u64,
    positions: BTreeMap<String, i64>,
    bytes: Vec<u8>,
}

struct Daemon {
    config: Config,
    policy: Arc<Policy>,
    producer: Arc<Producer>,
    tracker: producer::SharedTracker,
    /// Brokers and security for the recovery reader.
    reader_settings: ClientConfig,
    /// Routing state per partition number (input topics are co-partitioned: one tenant, one
    /// partition number).
    parts: BTreeMap<i32, Partition>,
    /// (topic, partition) pairs currently owned.
    owned: BTreeSet<(String, i32)>,
    snaps: HashMap<i32, SnapState>,
    /// When a clock record was last sent to each partition (one at a time is enough).
    clock_sent: HashMap<i32, Instant>,
    /// Input partitions whose consumer was moved back towards the state's position, and to
    /// which offset.
    seeking: FxHashMap<InputKey, i64>,
    /// The offset of the record the consumer handed over last, per input partition, since
    /// the last seek or assignment: two in a row prove there is nothing between them.
    delivered: FxHashMap<InputKey, i64>,
    /// First offset kept, per input partition (how far back a seek may go).
    lows: HashMap<InputKey, i64>,
    /// Partitions whose state is being looked up: (generation, task).
    rebuilding: HashMap<i32, (u64, tokio::task::JoinHandle<()>)>,
    rebuild_generation: u64,
    rebuilt_tx: mpsc::UnboundedSender<Rebuilt>,
    rebuilt_rx: mpsc::UnboundedReceiver<Rebuilt>,
    next_snapshot_id: u64,
    /// Input topic names seen, interned: an [`InputKey`]'s topic is an index into this.
    topics: Vec<Arc<str>>,
    /// Reused output buffer.
    out: Vec<Output>,
    /// The record path's metric handles.
    metrics: metrics::Handles,
    status: watch::Sender<Status>,
    /// How much of the record path runs (see [`Stage`]).
    stage: Stage,
    counts: Counts,
    last_housekeeping: Instant,
    last_sla: Instant,
    last_status: Instant,
}

/// An input partition: (index into the daemon's interned topic names, partition). Plain
/// numbers, so that the per-record look-ups touch no shared reference count.
type InputKey = (u32, i32);

/// Records served per loop turn at most (see [`Daemon::drain`]).
const BATCH: usize = 512;

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_us() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros())
}

async fn next_reload(rx: &mut Option<mpsc::Receiver<Reload>>) -> Option<Reload> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

/// What the recovery reader found for one partition.
struct Found {
    snapshot: Option<Vec<u8>>,
    last_seq: Option<u64>,
    /// First offset still kept on each input topic (where a replay without snapshot starts).
    low: BTreeMap<String, i64>,
}

/// Reads a partition's latest snapshot and its output partition's last sequence number.
/// Blocking: runs on the blocking pool.
fn find_state(k: &KafkaConfig, settings: &ClientConfig, p: i32) -> Result<Found, RecoveryError> {
    let started = Instant::now();
    let reader = recovery::Reader::new(settings, Duration::from_secs(10))?;
    let snapshot = reader.latest_snapshot(&k.state_topic, p)?;
    let snapshot_at = started.elapsed();
    let last_seq = reader.last_seq(&k.assignments_topic, p)?;
    let tail_at = started.elapsed();
    let mut low = BTreeMap::new();
    for t in &k.input_topics {
        low.insert(t.clone(), reader.watermarks(t, p)?.0);
    }
    let total = started.elapsed();
    if total >= SLOW_LOOKUP {
        // Which read was slow tells the broker-side cause (state topic, output tail, metadata).
        tracing::warn!(
            partition = p,
            snapshot_seconds = snapshot_at.as_secs_f64(),
            output_tail_seconds = (tail_at - snapshot_at).as_secs_f64(),
            watermarks_seconds = (total - tail_at).as_secs_f64(),
            snapshot_bytes = snapshot.as_ref().map_or(0, Vec::len),
            "partition state look-up was slow"
        );
    }
    Ok(Found {
        snapshot,
        last_seq,
        low,
    })
}

/// Finds a partition's state off the main loop, retrying until it succeeds (right after a
/// broker restart the first reads can fail); the loop aborts it if the partition goes away.
fn spawn_find_state(
    k: KafkaConfig,
    settings: ClientConfig,
    p: i32,
    generation: u64,
    done: mpsc::UnboundedSender<Rebuilt>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        loop {
            let (k2, s2) = (k.clone(), settings.clone());
            let mut lookup = tokio::task::spawn_blocking(move || find_state(&k2, &s2, p));
            // The partition is not served until the look-up ends: say so when it drags on.
            let result = loop {
                match tokio::time::timeout(SLOW_LOOKUP, &mut lookup).await {
                    Ok(r) => break r,
                    Err(_) => tracing::warn!(
                        partition = p,
                        seconds = started.elapsed().as_secs_f64(),
                        "partition state look-up still running"
                    ),
                }
            };
            match result {
                Ok(Ok(found)) => {
                    let _ = done.send(Rebuilt {
                        partition: p,
                        generation,
                        found,
                        started,
                    });
                    return;
                }
                Ok(Err(e)) => {
                    tracing::warn!(partition = p, error = %e, "cannot read partition state yet; retrying")
                }
                Err(e) => {
                    tracing::warn!(partition = p, error = %e, "state reader task failed; retrying")
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
}

/// How long a partition-state look-up runs before each "still running" warning.
const SLOW_LOOKUP: Duration = Duration::from_secs(5);

/// A finished state look-up, handed to the main loop.
struct Rebuilt {
    partition: i32,
    generation: u64,
    found: Found,
    started: Instant,
}

impl Daemon {
    async fn main_loop(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
        shutdown: CancellationToken,
        mut reload: Option<mpsc::Receiver<Reload>>,
    ) -> Result<(), DaemonError> {
        let tick_interval = self.config.daemon.tick_interval;
        // One stream for the whole run: `recv()` registers and drops a waker slot per record.
        let mut stream = consumer.stream();
        loop {
            // One clock read per turn; a turn serves a whole batch of records.
            let now = Instant::now();
            self.apply_changes(consumer);
            if let Some(e) = producer::lock(&self.tracker).failure() {
                return Err(e.into());
            }
            self.snapshots(consumer, false, now).await?;
            self.housekeeping(now).await?;

            // Backpressure: too much unacknowledged output, stop reading until it drains.
            if self.backpressure() {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
                }
            }

            let wait = self
                .next_clock_at(now)
                .map_or(tick_interval, |at| {
                    at.saturating_duration_since(now).min(tick_interval)
                })
                // At least 1 ms, so that buffered records are served between timer rounds.
                .max(Duration::from_millis(1));
            let timer = tokio::time::sleep(wait);

            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                r = next_reload(&mut reload) => match r {
                    Some(r) => self.reload(&r),
                    None => reload = None,
                },
                Some(r) = self.rebuilt_rx.recv() => self.finish_rebuild(consumer, r),
                _ = timer => self.send_clocks().await?,
                m = stream.next() => match m {
                    Some(Ok(msg)) => {
                        self.apply_changes(consumer);
                        self.process(consumer, &msg).await?;
                        drop(msg);
                        self.drain(consumer, &mut stream).await?;
                        self.flush_metrics();
                        self.producer.hand_over();
                        // A consumer that always has records never makes this task wait; give
                        // the worker to others once per batch. Tasks this one spawned (state
                        // look-ups) sit in this worker's LIFO slot, which others cannot steal.
                        tokio::task::yield_now().await;
                    }
                    Some(Err(e)) => {
                        let e = kafka::Error::Consume(e);
                        if e.is_fatal() {
                            return Err(e.into());
                        }
                        tracing::warn!(error = %e, "consumer error; retrying");
                        // librdkafka recovers by itself; do not spin on a burst of reports.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    // The stream of a consumer never ends.
                    None => return Ok(()),
                },
            }
        }
    }

    /// Serves the records the consumer already holds, up to [`BATCH`], without going back to
    /// the loop's timers, snapshots and housekeeping between them: those run once per batch.
    /// Stops at the first poll that has no record ready (or that served a rebalance, which the
    /// next turn applies), at an error (left to the next turn), and under backpressure.
    async fn drain(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
        stream: &mut MessageStream<'_, RebalanceContext>,
    ) -> Result<(), DaemonError> {
        for n in 1..BATCH {
            if n % 64 == 0 && self.backpressure() {
                break;
            }
            let polled = Pin::new(&mut *stream).poll_next(&mut Context::from_waker(Waker::noop()));
            let msg = match polled {
                Poll::Ready(Some(Ok(msg))) => msg,
                Poll::Ready(Some(Err(e))) => {
                    let e = kafka::Error::Consume(e);
                    if e.is_fatal() {
                        return Err(e.into());
                    }
                    tracing::warn!(error = %e, "consumer error; retrying");
                    break;
                }
                Poll::Ready(None) | Poll::Pending => break,
            };
            self.apply_changes(consumer);
            self.process(consumer, &msg).await?;
        }
        Ok(())
    }

    /// Adds the batch's tallied counts (the loop's and each partition's) to the recorder.
    fn flush_metrics(&mut self) {
        self.metrics.flush();
        for p in self.parts.values_mut() {
            p.flush_metrics();
        }
    }

    fn backpressure(&self) -> bool {
        self.producer.in_flight() >= self.config.daemon.max_in_flight
    }

    /// Applies ownership changes recorded by the rebalance callbacks. A partition this
    /// instance did not own right up to now is rebuilt before any of its records is routed.
    fn apply_changes(&mut self, consumer: &StreamConsumer<RebalanceContext>) {
        for change in consumer.context().take_changes() {
            match change {
                Change::Assigned { list, whole } => {
                    // Fetching restarts from the committed offsets.
                    self.delivered.clear();
                    if whole {
                        // Some coordinators send a new assignment without revoking the old
                        // one first: what is not in it is no longer ours.
                        let gone: Vec<(String, i32)> = self
                            .owned
                            .iter()
                            .filter(|o| !list.contains(o))
                            .cloned()
                            .collect();
                        if !gone.is_empty() {
                            tracing::warn!(partitions = ?gone, "assignment dropped partitions without a revoke");
                            self.revoke(gone);
                        }
                    }
                    for (topic, p) in list {
                        self.owned.insert((topic, p));
                        if !self.parts.contains_key(&p) && !self.rebuilding.contains_key(&p) {
                            self.start_rebuild(p);
                        }
                    }
                    self.publish_ownership();
                }
                Change::Revoked(list) => self.revoke(list),
            }
        }
    }

    /// Partitions no longer ours: their state and everything pending for them goes.
    fn revoke(&mut self, list: Vec<(String, i32)>) {
        for (topic, p) in list {
            producer::lock(&self.tracker).forget(&topic, p);
            self.owned.remove(&(topic, p));
            if !self.owned.iter().any(|(_, q)| *q == p) {
                // Drained in the callback. The state goes: even when the partition comes
                // straight back, another instance may have owned it between (brokers do not
                // all keep rebalances strictly apart), so every assignment rebuilds from the
                // snapshot and the output partition.
                self.parts.remove(&p);
                // The tracker forgot the partition; snapshots restart cleanly.
                if let Some(s) = self.snaps.get_mut(&p) {
                    s.waiting = None;
                    s.in_flight = None;
                }
                self.clock_sent.remove(&p);
                self.seeking.retain(|(_, q), _| *q != p);
                if let Some((_, task)) = self.rebuilding.remove(&p) {
                    task.abort();
                }
            }
        }
        self.publish_ownership();
    }

    /// The "partition assigned → rebuild state" step, started: records of the partition are
    /// dropped until its state is in (they are read again: the consumer seeks back to the
    /// state's position), and the loop keeps polling meanwhile, so the group's rebalances go on.
    fn start_rebuild(&mut self, p: i32) {
        self.rebuild_generation += 1;
        let task = spawn_find_state(
            self.config.kafka.clone(),
            self.reader_settings.clone(),
            p,
            self.rebuild_generation,
            self.rebuilt_tx.clone(),
        );
        if let Some(old) = self.rebuilding.insert(p, (self.rebuild_generation, task)) {
            old.1.abort();
        }
    }

    /// Latest snapshot, and what the output partition already holds, so the replay produces
    /// only what is missing.
    fn finish_rebuild(&mut self, consumer: &StreamConsumer<RebalanceContext>, r: Rebuilt) {
        let p = r.partition;
        match self.rebuilding.get(&p) {
            Some((generation, _)) if *generation == r.generation => {
                self.rebuilding.remove(&p);
            }
            // Revoked or restarted meanwhile.
            _ => return,
        }
        let found = r.found;
        for (t, low) in &found.low {
            let key = (self.topic_id(t), p);
            self.lows.insert(key, *low);
            self.delivered.remove(&key);
        }
        let max = self.config.daemon.max_record_bytes;
        let restored = found.snapshot.as_ref().and_then(|bytes| {
            Partition::restore(bytes, p, self.policy.clone(), max)
                .inspect_err(|e| {
                    tracing::error!(partition = p, error = %e, "snapshot unreadable; replaying the partition from its start")
                })
                .ok()
        });
        let snapshot_bytes = found.snapshot.as_ref().map_or(0, Vec::len);
        let mut part = match restored {
            Some(part) => part,
            None => {
                let mut part = Partition::build(p, self.policy.clone(), max);
                // No snapshot: the state is the whole retained input. A new deployment that
                // asked to start at the end starts there instead.
                if self.config.kafka.start_from == StartFrom::Earliest {
                    for (t, low) in &found.low {
                        part.accept_gap(t, *low);
                    }
                }
                part
            }
        };
        if let Some(last) = found.last_seq {
            if last + 1 < part.next_seq() {
                tracing::error!(
                    partition = p,
                    last_produced = last,
                    snapshot_next = part.next_seq(),
                    "output partition holds fewer outputs than the snapshot implies"
                );
            }
        }
        part.suppress_through(found.last_seq);
        let secs = r.started.elapsed().as_secs_f64();
        metrics::recovered(p, secs);
        self.snaps.insert(
            p,
            SnapState {
                written: part.positions().clone(),
                ..SnapState::default()
            },
        );
        tracing::info!(
            partition = p,
            snapshot_bytes,
            positions = ?part.positions(),
            next_seq = part.next_seq(),
            last_produced = ?found.last_seq,
            seconds = secs,
            "partition state rebuilt"
        );
        // Records that arrived meanwhile were dropped: fetch again from the state's position
        // now, rather than wait for a next record that may never come.
        let positions: Vec<(String, i64)> = part
            .positions()
            .iter()
            .map(|(t, o)| (t.clone(), *o))
            .collect();
        part.set_stage(self.stage);
        self.parts.insert(p, part);
        for (t, at) in positions {
            let key = (self.topic_id(&t), p);
            self.seek(consumer, key, at);
        }
        self.publish_ownership();
    }

    /// Partitions, and readiness: every owned partition's state is in.
    fn publish_ownership(&self) {
        let n = self.owned.len();
        let ids: Vec<i32> = self.parts.keys().copied().collect();
        let ready = self.rebuilding.is_empty();
        metrics::partitions_assigned(n);
        self.publish_status(|s| {
            s.ready = ready;
            s.partitions = n;
            s.partition_ids = ids;
        });
    }

    /// Takes, writes and completes state snapshots. `force`: snapshot now whatever changed
    /// (graceful stop).
    async fn snapshots(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
        force: bool,
        now: Instant,
    ) -> Result<(), DaemonError> {
        // Completed snapshots: their positions become the committed offsets.
        let done = producer::lock(&self.tracker).take_snapshots();
        for (p, id) in done {
            let Some(s) = self.snaps.get_mut(&p) else {
                continue;
            };
            let Some((want, positions, _)) = s.in_flight.take() else {
                continue;
            };
            if want != id {
                s.in_flight = Some((want, positions, now));
                continue;
            }
            for (topic, next) in &positions {
                if *next > 0 && self.owned.contains(&(topic.clone(), p)) {
                    if let Err(e) = consumer.store_offset(topic, p, next - 1) {
                        tracing::warn!(topic, partition = p, offset = next - 1, error = %e, "cannot store offset");
                    }
                }
            }
            s.written = positions;
        }
        let every = self.config.daemon.snapshot_interval;
        let mut ready = Vec::new();
        for (&p, part) in &self.parts {
            let s = self.snaps.entry(p).or_default();
            if let Some((id, _, since)) = &s.in_flight {
                // A chunk that failed leaves it incomplete for good; the next one replaces it.
                if now.saturating_duration_since(*since) > every.max(Duration::from_secs(30)) {
                    tracing::warn!(
                        partition = p,
                        id,
                        "snapshot not acknowledged; taking another"
                    );
                    s.in_flight = None;
                } else {
                    continue;
                }
            }
            if s.waiting.is_none()
                && part.positions() != &s.written
                && (force
                    || s.taken_at
                        .is_none_or(|t| now.saturating_duration_since(t) >= every))
            {
                match part.encode_state() {
                    Ok(bytes) => {
                        self.next_snapshot_id += 1;
                        s.waiting = Some(PendingSnapshot {
                            id: self.next_snapshot_id,
                            positions: part.positions().clone(),
                            bytes,
                        });
                        s.taken_at = Some(now);
                    }
                    Err(e) => tracing::error!(partition = p, error = %e, "cannot encode state"),
                }
            }
            // A snapshot may be written once the outputs of every record it holds are
            // acknowledged: a snapshot must never claim outputs the broker does not have.
            if let Some(w) = &s.waiting {
                let t = producer::lock(&self.tracker);
                let acked = w
                    .positions
                    .iter()
                    .all(|(topic, next)| t.acked_through(topic, p, next - 1));
                drop(t);
                if acked {
                    ready.push(p);
                }
            }
        }
        for p in ready {
            let Some(s) = self.snaps.get_mut(&p) else {
                continue;
            };
            let Some(w) = s.waiting.take() else { continue };
            let chunks = recovery::chunks(&w.bytes, w.id);
            let key = p.to_string();
            producer::lock(&self.tracker).begin_snapshot(p, w.id, chunks.len() as u32);
            s.in_flight = Some((w.id, w.positions, now));
            metrics::snapshot_written(p, w.bytes.len());
            for (payload, headers) in chunks {
                self.producer
                    .send(Record {
                        topic: &self.config.kafka.state_topic,
                        partition: Some(p),
                        key: Some(key.as_bytes()),
                        payload: Some(payload),
                        headers: Some(headers),
                        effect: Effect::Snapshot {
                            partition: p,
                            id: w.id,
                        },
                    })
                    .await?;
            }
        }
        Ok(())
    }

    fn seek(&mut self, consumer: &StreamConsumer<RebalanceContext>, key: InputKey, to: i64) {
        let (topic, partition) = (self.topics[key.0 as usize].clone(), key.1);
        let topic = &*topic;
        // What comes next is the first record after the seek.
        self.delivered.remove(&key);
        match consumer.seek(topic, partition, Offset::Offset(to), Duration::from_secs(5)) {
            Ok(()) => {
                self.seeking.insert(key, to);
            }
            // The next record of the partition tries again.
            Err(e) => tracing::warn!(topic, partition, to, error = %e, "seek failed"),
        }
    }

    /// The index of a topic in [`Daemon::topics`]; a daemon reads a handful of input topics.
    fn topic_id(&mut self, topic: &str) -> u32 {
        let i = match self.topics.iter().position(|t| &**t == topic) {
            Some(i) => i,
            None => {
                self.topics.push(Arc::from(topic));
                self.topics.len() - 1
            }
        };
        i as u32
    }

    /// admit → decode → engine → encode → produce; the snapshot that holds this record is
    /// written once all of it is delivered.
    async fn process(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
        msg: &BorrowedMessage<'_>,
    ) -> Result<(), DaemonError> {
        // Read once: each call asks librdkafka for the name, measures it and checks its UTF-8.
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        let id = self.topic_id(topic);
        let Some(part) = self.parts.get_mut(&partition) else {
            // Its state is being rebuilt: the consumer seeks back to the state's position.
            return Ok(());
        };
        let key = (id, partition);
        let previous = self.delivered.insert(key, offset);
        match part.admit(topic, offset) {
            Admit::Apply => {
                self.seeking.remove(&key);
            }
            Admit::Skip => {
                metrics::replay_skipped();
                return Ok(());
            }
            // After a seek back, the consumer handed over the record before the expected one
            // and then this one: offsets in between hold no record (offsets may have gaps).
            // Only after a seek back: at the tail of the log a consumer can be shown the start
            // of the last batch only (a high watermark at its base offset + 1), and its next
            // fetch, from inside that batch, be answered with the batch after it — so a gap met
            // while following the log is checked by seeking back first (the branch below). A
            // batch behind a later record is wholly visible, so the proof holds after a seek.
            Admit::Gap { expected }
                if self.seeking.contains_key(&key) && previous.is_some_and(|q| q < expected) =>
            {
                tracing::info!(
                    topic,
                    partition,
                    expected,
                    offset,
                    "no records between the state's position and this one"
                );
                self.seeking.remove(&key);
                part.accept_gap(topic, offset);
            }
            Admit::Gap { expected } => {
                // Seek back to the state's position. Where the first record that comes back
                // is still past it, seek further back, doubling the distance: some brokers
                // answer a fetch from inside a record batch with the next batch, so only a
                // seek to a batch's start is sure to return the record wanted.
                let low = self.lows.get(&key).copied().unwrap_or(0);
                let from = match self.seeking.get(&key) {
                    None => expected,
                    Some(&f) => (expected - 2 * (expected - f).max(1)).max(low),
                };
                if self.seeking.get(&key) == Some(&from) {
                    // Already back at the start of the log: what is missing is gone.
                    tracing::error!(
                        topic,
                        partition,
                        expected,
                        offset,
                        "input records missing; continuing without them"
                    );
                    self.seeking.remove(&key);
                    part.accept_gap(topic, offset);
                } else {
                    tracing::info!(
                        topic,
                        partition,
                        at = offset,
                        to = expected,
                        from,
                        "consumer ahead of the partition state; seeking back"
                    );
                    self.seek(consumer, key, from);
                    return Ok(());
                }
            }
        }
        self.metrics.record_consumed(topic);
        self.counts.consumed += 1;
        let Some(part) = self.parts.get_mut(&partition) else {
            return Ok(());
        };
        self.out.clear();
        let outcome = part.apply(
            Input {
                topic,
                offset,
                timestamp: msg
                    .timestamp()
                    .to_millis()
                    .and_then(|t| u64::try_from(t).ok()),
                key: msg.key(),
                payload: msg.payload(),
            },
            &mut self.out,
        );
        match outcome {
            Outcome::DeadLetter(e) => {
                tracing::warn!(topic, partition, offset, reason = e.reason(), error = %e, "record dead-lettered");
                self.metrics.dead_lettered(e.reason());
                self.counts.dead_lettered += 1;
                let src = (self.topics[id as usize].clone(), partition, offset);
                producer::lock(&self.tracker).begin(&src, 1);
                let headers = dlq::headers(e.reason(), &e.to_string(), topic, partition, offset);
                self.producer
                    .send(Record {
                        topic: &self.config.kafka.dlq_topic,
                        partition: None,
                        key: msg.key(),
                        payload: msg.payload(),
                        headers: Some(headers),
                        effect: Effect::Of(src),
                    })
                    .await?;
                return Ok(());
            }
            Outcome::Ignored { reason } => {
                self.metrics.ignored(reason);
                self.counts.ignored += 1;
            }
            Outcome::Routed { .. } => self.counts.routed += 1,
        }
        self.produce_outputs(id, partition, offset);
        Ok(())
    }

    /// Stages `self.out` (the outputs of record `offset` of input `topic`) for output partition
    /// `partition`, each with its sequence number, for the producer's writer thread; outputs an
    /// earlier owner already produced are skipped.
    fn produce_outputs(&mut self, topic: u32, partition: i32, offset: i64) {
        let Some(part) = self.parts.get_mut(&partition) else {
            self.out.clear();
            return;
        };
        let n = self.out.len();
        let (first, keep) = part.sequence(n);
        let seqs = first..first + n as u64;
        let produce = seqs.clone().filter(|seq| keep(*seq)).count();
        let skipped = (n - produce) as u64;
        if skipped > 0 {
            metrics::suppressed(skipped);
        }
        if produce == 0 {
            // Most records: nothing to wait for and nothing to hand to the writer, so neither
            // the tracker's lock nor the writer's is taken.
            self.out.clear();
            return;
        }
        // Registered before staging: the record's offset waits for its outputs from now on.
        let src = (self.topics[topic as usize].clone(), partition, offset);
        producer::lock(&self.tracker).begin(&src, produce as u32);
        self.counts.produced += produce as u64;
        let metrics = &mut self.metrics;
        let jobs = seqs
            .zip(self.out.drain(..))
            .filter(|(seq, _)| keep(*seq))
            .map(|(seq, output)| {
                metrics.produced(partition::output_type(&output));
                if let Output::Offer(offer) = &output {
                    metrics.offer(&offer.tenant, &offer.queue, &offer.channel);
                }
                OutputJob {
                    partition,
                    seq,
                    src: src.clone(),
                    output,
                }
            });
        self.producer.stage(jobs);
    }

    /// When the next clock record is due: the earliest engine timer, but not sooner than
    /// `tick_interval` after the last clock record sent to that partition.
    fn next_clock_at(&self, now: Instant) -> Option<Instant> {
        if self.parts.values().all(|p| p.next_deadline().is_none()) {
            return None;
        }
        let now_wall = now_ms();
        let resend = self.config.daemon.tick_interval;
        self.parts
            .iter()
            .filter_map(|(p, part)| {
                let due = part.next_deadline()?;
                let at = now + Duration::from_millis(due.saturating_sub(now_wall));
                Some(match self.clock_sent.get(p) {
                    Some(sent) => at.max(*sent + resend),
                    None => at,
                })
            })
            .min()
    }

    /// Timers are not fired from the wall clock directly: a clock record goes into the
    /// partition, and the timers fire when it is consumed, at its place in the input, so that
    /// a replay fires them at the same place.
    async fn send_clocks(&mut self) -> Result<(), DaemonError> {
        let now = now_ms();
        let resend = self.config.daemon.tick_interval;
        let due: Vec<i32> = self
            .parts
            .iter()
            .filter(|(p, part)| {
                part.next_deadline().is_some_and(|d| d <= now)
                    && self.clock_sent.get(p).is_none_or(|t| t.elapsed() >= resend)
            })
            .map(|(p, _)| *p)
            .collect();
        let payload = recovery::clock_payload(now);
        for p in due {
            self.clock_sent.insert(p, Instant::now());
            self.producer
                .send(Record {
                    topic: &self.config.kafka.input_topics[0],
                    partition: Some(p),
                    key: Some(recovery::CLOCK_KEY),
                    payload: Some(&payload),
                    headers: None,
                    effect: Effect::Free,
                })
                .await?;
        }
        Ok(())
    }

    fn reload(&mut self, r: &Reload) {
        match Config::load(&r.path) {
            Ok(c) => {
                let policy = Arc::new(c.routing);
                for p in self.parts.values_mut() {
                    p.set_policy(policy.clone());
                }
                self.policy = policy.clone();
                // The reload is not in the input: snapshot soon, so a replay after a crash
                // applies the new policy only to records that came after it.
                for s in self.snaps.values_mut() {
                    s.taken_at = None;
                }
                metrics::reload(true);
                tracing::info!(path = %r.path.display(), "routing policy reloaded");
                self.publish_status(|s| {
                    s.reloads_ok += 1;
                    s.last_reload_error = None;
                    s.policy = policy;
                });
            }
            Err(e) => {
                metrics::reload(false);
                tracing::error!(path = %r.path.display(), error = %e, "config reload rejected; the previous policy stays in force");
                self.publish_status(|s| {
                    s.reloads_failed += 1;
                    s.last_reload_error = Some(e.to_string());
                });
            }
        }
    }

    /// Gauges, SLA snapshots and the heartbeat, each at its own pace.
    async fn housekeeping(&mut self, now: Instant) -> Result<(), DaemonError> {
        if now.saturating_duration_since(self.last_status) >= Duration::from_millis(100) {
            self.last_status = now;
            let c = self.counts;
            self.publish_status(|s| {
                s.consumed = c.consumed;
                s.routed = c.routed;
                s.ignored = c.ignored;
                s.dead_lettered = c.dead_lettered;
                s.produced = c.produced;
            });
        }
        if now.saturating_duration_since(self.last_housekeeping) >= Duration::from_secs(1) {
            self.last_housekeeping = now;
            let (mut agents, mut available, mut waiting) = (0, 0, 0);
            for p in self.parts.values() {
                let s = p.stats();
                agents += s.agents;
                available += s.agents_available;
                waiting += s.contacts_waiting;
            }
            metrics::engine_sizes(agents, available, waiting);
            metrics::producer_queue(self.producer.in_flight());
            // Consumer lag comes from librdkafka's statistics (see the rebalance context).
        }
        let every = self.config.daemon.sla_snapshot_interval;
        if !every.is_zero() && now.saturating_duration_since(self.last_sla) >= every {
            self.last_sla = now;
            let now = now_ms();
            let mut records = Vec::new();
            for p in self.parts.values_mut() {
                for s in p.sla_snapshots(now) {
                    metrics::sla_snapshot(&s);
                    records.push((s.tenant.clone(), serde_json::to_vec(&s)?));
                }
            }
            for (tenant, payload) in records {
                self.producer
                    .send(Record {
                        topic: &self.config.kafka.sla_topic,
                        partition: None,
                        key: Some(tenant.as_bytes()),
                        payload: Some(&payload),
                        headers: None,
                        effect: Effect::Free,
                    })
                    .await?;
            }
        }
        Ok(())
    }

    fn publish_status(&self, f: impl FnOnce(&mut Status)) {
        self.status.send_modify(|s| {
            s.heartbeat = Instant::now();
            f(s);
        });
    }

    /// Graceful stop: nothing new is read; flush what was produced, write a last snapshot of
    /// every partition, commit its offsets. The next owner then starts exactly here.
    async fn stop(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
    ) -> Result<(), DaemonError> {
        let timeout = self.config.daemon.shutdown_timeout;
        let deadline = Instant::now() + timeout;
        tracing::info!(timeout = ?timeout, in_flight = self.producer.in_flight(), "stopping: flushing output");
        self.flush(deadline).await;
        if producer::lock(&self.tracker).failure().is_none() {
            self.snapshots(consumer, true, Instant::now()).await?;
            self.flush(deadline).await;
            self.snapshots(consumer, false, Instant::now()).await?;
        }
        let delivery_failure = producer::lock(&self.tracker).failure();
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => tracing::info!("offsets committed"),
            // Nothing new stored since the last commit.
            Err(e)
                if e.rdkafka_error_code() == Some(rdkafka::types::RDKafkaErrorCode::NoOffset) => {}
            Err(e) => {
                tracing::warn!(error = %e, "final commit failed");
                return Err(kafka::Error::Commit(e).into());
            }
        }
        let c = self.counts;
        self.publish_status(|s| {
            s.consumed = c.consumed;
            s.routed = c.routed;
            s.ignored = c.ignored;
            s.dead_lettered = c.dead_lettered;
            s.produced = c.produced;
        });
        match delivery_failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// Waits until everything produced is acknowledged, or `deadline`.
    async fn flush(&self, deadline: Instant) {
        let p = self.producer.clone();
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::task::spawn_blocking(move || p.flush(left)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "flush incomplete; the next owner replays from the last snapshot")
            }
            Err(e) => tracing::warn!(error = %e, "flush task failed"),
        }
    }
}

/// Mirrors the daemon's [`Status`] to the outside: `/readyz`, systemd readiness, the watchdog
/// (only while the loop's heartbeat is fresh, so a stuck loop gets restarted) and a throughput
/// status line. Runs until `shutdown`.
pub async fn supervise(
    mut status: watch::Receiver<Status>,
    health: Arc<crate::http::Health>,
    notifier: crate::systemd::Notifier,
    stale_after: Duration,
    shutdown: CancellationToken,
) {
    let ping_every = notifier
        .watchdog_interval()
        .unwrap_or(Duration::from_secs(5))
        .min(Duration::from_secs(5));
    let mut ticker = tokio::time::interval(ping_every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_ready = false;
    let mut reloads_seen = 0;
    let mut last = (Instant::now(), 0u64, 0u64);
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let s = status.borrow_and_update().clone();
                if s.ready != was_ready {
                    was_ready = s.ready;
                    health.set_ready(s.ready);
                    if s.ready {
                        notifier.ready();
                    }
                }
                let reloads = s.reloads_ok + s.reloads_failed;
                if reloads != reloads_seen {
                    reloads_seen = reloads;
                    // Reload finished (applied or rejected): the service is ready again.
                    notifier.ready();
                }
            }
            _ = ticker.tick() => {
                let s = status.borrow().clone();
                if s.heartbeat.elapsed() <= stale_after {
                    notifier.watchdog();
                } else {
                    tracing::warn!(stale_for = ?s.heartbeat.elapsed(), "main loop heartbeat is stale; not feeding the watchdog");
                }
                let (t0, c0, p0) = last;
                let secs = t0.elapsed().as_secs_f64().max(0.001);
                notifier.status(&format!(
                    "{} partitions; {:.0} records/s in, {:.0} records/s out; {} dead-lettered",
                    s.partitions,
                    (s.consumed - c0) as f64 / secs,
                    (s.produced - p0) as f64 / secs,
                    s.dead_lettered
                ));
                last = (Instant::now(), s.consumed, s.produced);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn supervise_mirrors_readiness_to_the_health_endpoint() {
        let (tx, rx) = watch::channel(Status::new(Arc::new(Policy::default())));
        let health = Arc::new(crate::http::Health::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(supervise(
            rx,
            health.clone(),
            crate::systemd::Notifier::inactive(),
            Duration::from_secs(5),
            stop.clone(),
        ));
        let wait_until = |want: bool| {
            let health = health.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(2), async {
                    while health.is_ready() != want {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
                .await
                .is_ok()
            }
        };
        assert!(!health.is_ready());
        tx.send_modify(|s| s.ready = true);
        assert!(wait_until(true).await, "ready not mirrored");
        tx.send_modify(|s| s.ready = false);
        assert!(wait_until(false).await, "not-ready not mirrored");
        stop.cancel();
        assert!(tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .is_ok());
    }
}
