//! The daemon: consume events, drive the engines, produce assignments — until told to stop.
//!
//! [`run`] takes its config and its shutdown trigger as arguments, so tests start the real daemon
//! in-process. One task owns the consumer and every partition's state; it serves, in order of
//! precedence: shutdown, config reloads, engine timers, then new records. Offsets are stored only
//! after all of a record's effects are acknowledged (see [`crate::kafka`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::engine::{Output, Policy};
use crate::event::Millis;
use crate::kafka::consumer::{Change, RebalanceContext};
use crate::kafka::producer::{self, Producer, Record, Source, Tracker};
use crate::kafka::{self, dlq};
use crate::metrics;
use crate::partition::{self, Outcome, Partition};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Kafka(#[from] kafka::Error),
    #[error("cannot encode an output: {0}")]
    Encode(#[from] serde_json::Error),
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
    )?);
    // The revoke hand-over must finish well inside the session timeout.
    let flush_at_revoke = config.daemon.shutdown_timeout.min(Duration::from_secs(10));
    let consumer: StreamConsumer<RebalanceContext> = kafka::consumer_settings(&config)?
        .create_with_context(RebalanceContext::new(producer.clone(), flush_at_revoke))
        .map_err(|source| kafka::Error::Create {
            what: "consumer",
            source,
        })?;
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

    let mut d = Daemon {
        policy: Arc::new(config.routing.clone()),
        config,
        producer,
        tracker,
        parts: BTreeMap::new(),
        owned: BTreeSet::new(),
        revoked: BTreeMap::new(),
        topic_names: HashMap::new(),
        out: Vec::new(),
        status: control.status,
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

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    consumed: u64,
    routed: u64,
    ignored: u64,
    dead_lettered: u64,
    produced: u64,
}

struct Daemon {
    config: Config,
    policy: Arc<Policy>,
    producer: Arc<Producer>,
    tracker: producer::SharedTracker,
    /// Routing state per partition number (input topics are co-partitioned: one tenant, one
    /// partition number).
    parts: BTreeMap<i32, Partition>,
    /// (topic, partition) pairs currently owned.
    owned: BTreeSet<(String, i32)>,
    /// Partitions revoked by the last rebalance, kept until the next assignment: an eager
    /// rebalance revokes everything and then hands most of it straight back, and nobody else
    /// can have consumed in between, so their state is still exact.
    revoked: BTreeMap<i32, Partition>,
    /// Interned topic names for delivery tracking.
    topic_names: HashMap<String, Arc<str>>,
    /// Reused output buffer.
    out: Vec<Output>,
    status: watch::Sender<Status>,
    counts: Counts,
    last_housekeeping: Instant,
    last_sla: Instant,
    last_status: Instant,
}

fn now_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn next_reload(rx: &mut Option<mpsc::Receiver<Reload>>) -> Option<Reload> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

impl Daemon {
    async fn main_loop(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
        shutdown: CancellationToken,
        mut reload: Option<mpsc::Receiver<Reload>>,
    ) -> Result<(), DaemonError> {
        let tick_interval = self.config.daemon.tick_interval;
        loop {
            self.apply_changes(consumer);
            if let Some(e) = producer::lock(&self.tracker).failure() {
                return Err(e.into());
            }
            self.store_offsets(consumer);
            self.housekeeping().await?;

            // Backpressure: too much unacknowledged output, stop reading until it drains.
            if self.producer.in_flight() >= self.config.daemon.max_in_flight {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(5)) => continue,
                }
            }

            let now = now_ms();
            let wait = self
                .parts
                .values()
                .filter_map(Partition::next_deadline)
                .min()
                .map_or(tick_interval, |d| {
                    Duration::from_millis(d.saturating_sub(now)).min(tick_interval)
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
                _ = timer => self.tick().await?,
                m = consumer.recv() => match m {
                    Ok(msg) => {
                        // Owned, so the loop's future stays `Send` across the produce awaits.
                        let msg = msg.detach();
                        self.apply_changes(consumer);
                        self.process(&msg).await?;
                    }
                    Err(e) => {
                        let e = kafka::Error::Consume(e);
                        if e.is_fatal() {
                            return Err(e.into());
                        }
                        tracing::warn!(error = %e, "consumer error; retrying");
                        // librdkafka recovers by itself; do not spin on a burst of reports.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
            }
        }
    }

    /// Applies ownership changes recorded by the rebalance callbacks.
    fn apply_changes(&mut self, consumer: &StreamConsumer<RebalanceContext>) {
        for change in consumer.context().take_changes() {
            match change {
                Change::Assigned(list) => {
                    let mut kept = std::mem::take(&mut self.revoked);
                    for (topic, p) in list {
                        self.owned.insert((topic, p));
                        if self.parts.contains_key(&p) {
                            continue;
                        }
                        // The "assigned → build state" step; state comes back only when this
                        // instance owned the partition right up to this assignment.
                        let part = kept.remove(&p).unwrap_or_else(|| {
                            Partition::build(
                                p,
                                self.policy.clone(),
                                self.config.daemon.max_record_bytes,
                            )
                        });
                        self.parts.insert(p, part);
                    }
                    // Partitions that went elsewhere: their state goes with them.
                    drop(kept);
                    let n = self.owned.len();
                    let ids: Vec<i32> = self.parts.keys().copied().collect();
                    metrics::partitions_assigned(n);
                    self.publish_status(|s| {
                        s.ready = true;
                        s.partitions = n;
                        s.partition_ids = ids;
                    });
                }
                Change::Revoked(list) => {
                    for (topic, p) in list {
                        self.owned.remove(&(topic, p));
                        if !self.owned.iter().any(|(_, q)| *q == p) {
                            // Drained in the callback; kept aside until the next assignment.
                            if let Some(part) = self.parts.remove(&p) {
                                self.revoked.insert(p, part);
                            }
                        }
                    }
                    let n = self.owned.len();
                    let ids: Vec<i32> = self.parts.keys().copied().collect();
                    metrics::partitions_assigned(n);
                    self.publish_status(|s| {
                        s.partitions = n;
                        s.partition_ids = ids;
                    });
                }
            }
        }
    }

    fn store_offsets(&mut self, consumer: &StreamConsumer<RebalanceContext>) {
        let ready = producer::lock(&self.tracker).take_committable();
        for (topic, partition, offset) in ready {
            if !self.owned.contains(&(topic.to_string(), partition)) {
                continue;
            }
            if let Err(e) = consumer.store_offset(&topic, partition, offset) {
                tracing::warn!(topic = &*topic, partition, offset, error = %e, "cannot store offset");
            }
        }
    }

    fn source(&mut self, msg: &OwnedMessage) -> Source {
        let topic = msg.topic();
        let name = match self.topic_names.get(topic) {
            Some(t) => t.clone(),
            None => {
                let t: Arc<str> = Arc::from(topic);
                self.topic_names.insert(topic.to_string(), t.clone());
                t
            }
        };
        (name, msg.partition(), msg.offset())
    }

    /// decode → engine → encode → produce; the offset is stored once all of it is delivered.
    async fn process(&mut self, msg: &OwnedMessage) -> Result<(), DaemonError> {
        let src = self.source(msg);
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        metrics::record_consumed(topic);
        self.counts.consumed += 1;
        let policy = self.policy.clone();
        let max = self.config.daemon.max_record_bytes;
        let part = self
            .parts
            .entry(partition)
            .or_insert_with(|| Partition::build(partition, policy, max));
        self.out.clear();
        let outcome = part.process(now_ms(), msg.payload(), &mut self.out);
        match outcome {
            Outcome::DeadLetter(e) => {
                tracing::warn!(topic, partition, offset, reason = e.reason(), error = %e, "record dead-lettered");
                metrics::dead_lettered(e.reason());
                self.counts.dead_lettered += 1;
                producer::lock(&self.tracker).begin(&src, 1);
                let headers = dlq::headers(e.reason(), &e.to_string(), topic, partition, offset);
                self.producer
                    .send(Record {
                        topic: &self.config.kafka.dlq_topic,
                        key: msg.key(),
                        payload: msg.payload(),
                        headers: Some(headers),
                        source: Some(src),
                    })
                    .await?;
                return Ok(());
            }
            Outcome::Ignored { reason } => {
                metrics::ignored(reason);
                self.counts.ignored += 1;
            }
            Outcome::Routed { .. } => self.counts.routed += 1,
        }
        let n = u32::try_from(self.out.len()).unwrap_or(u32::MAX);
        producer::lock(&self.tracker).begin(&src, n);
        self.produce_outputs(Some(src)).await
    }

    /// Produces `self.out` to the assignments topic, keyed by tenant.
    async fn produce_outputs(&mut self, source: Option<Source>) -> Result<(), DaemonError> {
        let outputs = std::mem::take(&mut self.out);
        for o in &outputs {
            let payload = serde_json::to_vec(o)?;
            let tenant = partition::output_tenant(o);
            self.producer
                .send(Record {
                    topic: &self.config.kafka.assignments_topic,
                    key: Some(tenant.as_bytes()),
                    payload: Some(&payload),
                    headers: None,
                    source: source.clone(),
                })
                .await?;
            metrics::produced(partition::output_type(o));
            if let Output::Offer(offer) = o {
                metrics::offer(&offer.tenant, &offer.queue, &offer.channel);
            }
            self.counts.produced += 1;
        }
        self.out = outputs;
        self.out.clear();
        Ok(())
    }

    /// Fires due engine timers (offer timeouts, wrap-up ends, relaxation).
    async fn tick(&mut self) -> Result<(), DaemonError> {
        let now = now_ms();
        self.out.clear();
        for p in self.parts.values_mut() {
            p.tick(now, &mut self.out);
        }
        // Effects of the clock, not of a record: no offset waits for them.
        self.produce_outputs(None).await
    }

    fn reload(&mut self, r: &Reload) {
        match Config::load(&r.path) {
            Ok(c) => {
                let policy = Arc::new(c.routing);
                for p in self.parts.values_mut().chain(self.revoked.values_mut()) {
                    p.set_policy(policy.clone());
                }
                self.policy = policy.clone();
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
    async fn housekeeping(&mut self) -> Result<(), DaemonError> {
        if self.last_status.elapsed() >= Duration::from_millis(100) {
            self.last_status = Instant::now();
            let c = self.counts;
            self.publish_status(|s| {
                s.consumed = c.consumed;
                s.routed = c.routed;
                s.ignored = c.ignored;
                s.dead_lettered = c.dead_lettered;
                s.produced = c.produced;
            });
        }
        if self.last_housekeeping.elapsed() >= Duration::from_secs(1) {
            self.last_housekeeping = Instant::now();
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
        if !every.is_zero() && self.last_sla.elapsed() >= every {
            self.last_sla = Instant::now();
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
                        key: Some(tenant.as_bytes()),
                        payload: Some(&payload),
                        headers: None,
                        source: None,
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

    /// Graceful stop: nothing new is read; flush what was produced, store and commit offsets.
    async fn stop(
        &mut self,
        consumer: &StreamConsumer<RebalanceContext>,
    ) -> Result<(), DaemonError> {
        let timeout = self.config.daemon.shutdown_timeout;
        tracing::info!(timeout = ?timeout, in_flight = self.producer.in_flight(), "stopping: flushing output");
        let p = self.producer.clone();
        let flushed = tokio::task::spawn_blocking(move || p.flush(timeout)).await;
        match flushed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "flush incomplete; unacknowledged records will be consumed again")
            }
            Err(e) => tracing::warn!(error = %e, "flush task failed"),
        }
        self.store_offsets(consumer);
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
