//! One input partition's routing state: the engines of the tenants (routing domains) keyed to it.
//!
//! A tenant lives on exactly one partition, so the engines of a partition are owned by whoever
//! owns the partition: rebuilt from its latest snapshot when it is assigned, dropped when it is
//! revoked. Kafka I/O stays in the daemon; this module turns one record into the records to
//! produce, deterministically: engine time comes from the records themselves (their timestamps
//! and the clock records, see [`crate::recovery`]), never from the wall clock, so a replay of the
//! partition gives the same outputs with the same sequence numbers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, EngineStats, Output, Policy, SlaSnapshot};
use crate::event::{self, DecodeError, Event, Millis};
use crate::metrics;
use crate::recovery;

/// Snapshot format version; a snapshot of another version is not loaded. 3: the engine's pools
/// keep two lazy idle queues per pool, timers are a heap, SLA books are kept by id, and a
/// contact's rarely set fields sit behind one box. 4: pool stamps are per agent and 32-bit, and
/// the pools keep a hot eligibility record per agent. 5: the de-duplication window holds
/// fingerprints of event ids, not the ids. 6: the pools' idle queues do not count their live
/// entries and carry a compaction mark. 7: the pools record which optional orders they keep.
/// 8: the idle queues no longer count the dead entries searches passed.
const STATE_FORMAT: u32 = 8;

/// One input record as the partition sees it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub topic: &'a str,
    pub offset: i64,
    /// The record's Kafka timestamp (epoch ms), when it has one.
    pub timestamp: Option<Millis>,
    pub key: Option<&'a [u8]>,
    pub payload: Option<&'a [u8]>,
}

/// How much of the record path runs: all of it in the daemon; less of it to measure what each
/// part costs (`omniroute loadgen compare --stages`). Positions, clock records and output
/// sequence numbers are kept at every stage, so the daemon's bookkeeping around the record path
/// runs unchanged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Stage {
    /// Records are consumed and their offsets tracked; nothing is decoded.
    Consume,
    /// Records are decoded too; no engine sees them.
    Decode,
    /// The engines route them too; their outputs are dropped, not produced.
    Route,
    /// Everything, outputs produced: the daemon.
    #[default]
    Full,
}

impl Stage {
    /// The stage's name, as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Consume => "consume",
            Stage::Decode => "decode",
            Stage::Route => "route",
            Stage::Full => "full",
        }
    }
}

/// What one input record became.
#[derive(Debug)]
pub enum Outcome {
    /// The engine applied it; the outputs (possibly none) were appended.
    Routed { event_type: &'static str },
    /// The engine did not apply it (duplicate, unknown contact, …): counted, not dead-lettered.
    Ignored { reason: &'static str },
    /// Unusable: goes to the dead-letter topic unchanged.
    DeadLetter(DecodeError),
}

/// The state of one partition.
pub struct Partition {
    id: i32,
    policy: Arc<Policy>,
    /// The tenants' engines and what the partition keeps beside each: one look-up a record.
    engines: FxHashMap<String, Tenant>,
    max_record_bytes: usize,
    /// Every engine's next timer, ordered by time (then tenant name, so that engines due at
    /// the same time fire in an order a replay repeats), so the daemon's clock finds due
    /// engines and the next wake-up without scanning all tenants. Names are shared with the
    /// tenants, so moving a timer allocates nothing.
    timers: BTreeSet<(Millis, Arc<str>)>,
    /// Engine time: the latest record timestamp or clock value seen on this partition.
    clock: Millis,
    /// Sequence number of the next output of this partition (header `omniroute.seq`).
    out_seq: u64,
    /// Per input topic, the offset of the next record to apply: earlier ones are in the state.
    positions: BTreeMap<String, i64>,
    /// Outputs up to this sequence number were already produced by an earlier owner: a replay
    /// regenerates them but must not produce them again.
    suppress_through: Option<u64>,
    /// Events handed to the engines, for sampling the decision time.
    handled: u64,
    metrics: metrics::Handles,
    stage: Stage,
    /// Decoded events kept for reuse (boxed: it is taken out and put back for each record).
    scratch: Option<Box<event::Scratch>>,
}

/// The decision-time histogram observes one event in this many (the first one included): two
/// clock reads around every engine call cost more than the histogram is worth.
const DECISION_SAMPLE: u64 = 16;

/// What a snapshot holds (bincode). `engines` borrowed when writing, owned when reading.
#[derive(Serialize)]
struct StateRef<'a> {
    format: u32,
    partition: i32,
    clock: Millis,
    out_seq: u64,
    positions: &'a BTreeMap<String, i64>,
    engines: Vec<&'a Engine>,
}

#[derive(Deserialize)]
struct StateOwned {
    format: u32,
    partition: i32,
    clock: Millis,
    out_seq: u64,
    positions: BTreeMap<String, i64>,
    engines: Vec<Engine>,
}

/// Where an input record stands relative to the partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// The next record: apply it.
    Apply,
    /// Already in the state (replayed from before the snapshot): skip it.
    Skip,
    /// Records between the state and this one are missing: the consumer must seek back.
    Gap { expected: i64 },
}

/// One tenant of the partition: its engine, its next timer as filed in [`Partition::timers`],
/// and its offers not yet accepted or withdrawn (for the answered-wait histogram), by the
/// fingerprint of the assignment id (XXH3-128: no key to allocate per offer; a collision
/// among a tenant's open offers, about 2⁻¹²⁸ a pair, would only misplace one wait sample).
/// Bounded by the engine's open offers.
struct Tenant {
    engine: Engine,
    name: Arc<str>,
    next: Option<Millis>,
    open: FxHashMap<u128, OpenOffer>,
}

impl Tenant {
    fn new(engine: Engine) -> Self {
        Tenant {
            name: Arc::from(engine.tenant()),
            engine,
            next: None,
            open: FxHashMap::default(),
        }
    }

    /// Re-reads the engine's next timer into `timers`.
    fn refile(&mut self, timers: &mut BTreeSet<(Millis, Arc<str>)>) {
        let next = self.engine.next_deadline();
        if next == self.next {
            return;
        }
        if let Some(at) = self.next {
            timers.remove(&(at, self.name.clone()));
        }
        if let Some(at) = next {
            timers.insert((at, self.name.clone()));
        }
        self.next = next;
    }

    /// Follows the engine's offers until they are accepted or withdrawn.
    fn track(&mut self, outputs: &[Output]) {
        for o in outputs {
            match o {
                Output::Offer(x) => {
                    self.open.insert(
                        crate::engine::fingerprint(&x.assignment_id),
                        OpenOffer {
                            queue: x.queue.clone(),
                            channel: x.channel.clone(),
                            offered_at: x.offered_at,
                            wait_ms: x.wait_ms,
                        },
                    );
                }
                Output::OfferWithdrawn(x) => {
                    self.open
                        .remove(&crate::engine::fingerprint(&x.assignment_id));
                }
                Output::AgentAway(_) => {}
            }
        }
    }
}

struct OpenOffer {
    queue: crate::engine::Name,
    channel: crate::engine::Name,
    offered_at: Millis,
    wait_ms: u64,
}

impl Partition {
    /// An empty partition state: no snapshot, nothing applied yet.
    pub fn build(id: i32, policy: Arc<Policy>, max_record_bytes: usize) -> Self {
        Partition {
            id,
            policy,
            engines: FxHashMap::default(),
            max_record_bytes,
            timers: BTreeSet::new(),
            clock: 0,
            out_seq: 0,
            positions: BTreeMap::new(),
            suppress_through: None,
            handled: 0,
            stage: Stage::Full,
            scratch: None,
            metrics: metrics::Handles::default(),
        }
    }

    /// The state as snapshot bytes (bincode).
    pub fn encode_state(&self) -> Result<Vec<u8>, String> {
        let state = StateRef {
            format: STATE_FORMAT,
            partition: self.id,
            clock: self.clock,
            out_seq: self.out_seq,
            positions: &self.positions,
            engines: self.engines.values().map(|t| &t.engine).collect(),
        };
        bincode::serde::encode_to_vec(&state, bincode::config::standard())
            .map_err(|e| e.to_string())
    }

    /// A partition rebuilt from snapshot bytes; engines whose policy differs from `policy` (a
    /// reload since) take `policy`.
    pub fn restore(
        bytes: &[u8],
        id: i32,
        policy: Arc<Policy>,
        max_record_bytes: usize,
    ) -> Result<Self, String> {
        let (state, _): (StateOwned, usize) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| e.to_string())?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "snapshot format {} (this build reads {STATE_FORMAT})",
                state.format
            ));
        }
        if state.partition != id {
            return Err(format!(
                "snapshot of partition {}, not {id}",
                state.partition
            ));
        }
        let mut p = Partition::with_engines(id, policy, max_record_bytes, state.engines);
        p.clock = state.clock;
        p.out_seq = state.out_seq;
        p.positions = state.positions;
        Ok(p)
    }

    /// A partition holding `engines` (one per tenant) and nothing applied yet, as a restore
    /// builds it; engines whose policy differs from `policy` take `policy`. Benchmarks start
    /// from an engine warmed directly this way.
    pub fn with_engines(
        id: i32,
        policy: Arc<Policy>,
        max_record_bytes: usize,
        engines: impl IntoIterator<Item = Engine>,
    ) -> Self {
        let mut p = Partition::build(id, policy.clone(), max_record_bytes);
        for mut e in engines {
            // Only a real change re-sets the policy: setting it schedules a sweep of every
            // agent, which the uninterrupted run did not do.
            if **e.policy() != *policy {
                e.set_policy(policy.clone());
            }
            let mut t = Tenant::new(e);
            t.refile(&mut p.timers);
            p.engines.insert(t.engine.tenant().to_string(), t);
        }
        p
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    /// Per input topic, the next offset to apply.
    pub fn positions(&self) -> &BTreeMap<String, i64> {
        &self.positions
    }

    /// Sequence number the next output will get.
    pub fn next_seq(&self) -> u64 {
        self.out_seq
    }

    /// Outputs up to `seq` are already on the output partition: do not produce them again.
    pub fn suppress_through(&mut self, seq: Option<u64>) {
        self.suppress_through = seq;
    }

    /// Hands out sequence numbers for `n` new outputs; returns the first and whether each
    /// must be produced (`false`: an earlier owner already did).
    pub fn sequence(&mut self, n: usize) -> (u64, impl Fn(u64) -> bool) {
        let first = self.out_seq;
        self.out_seq += n as u64;
        let through = self.suppress_through;
        (first, move |seq| through.is_none_or(|t| seq > t))
    }

    /// Where a record stands relative to the state.
    pub fn admit(&self, topic: &str, offset: i64) -> Admit {
        match self.positions.get(topic) {
            None => Admit::Apply,
            Some(&next) if offset == next => Admit::Apply,
            Some(&next) if offset < next => Admit::Skip,
            Some(&next) => Admit::Gap { expected: next },
        }
    }

    /// Accepts a gap (the missing records are gone for good): routing goes on from `offset`.
    pub fn accept_gap(&mut self, topic: &str, offset: i64) {
        self.positions.insert(topic.to_string(), offset);
    }

    /// Applies one record: a clock record fires timers, anything else is decoded and drives
    /// its tenant's engine. The caller has checked [`Partition::admit`].
    pub fn apply(&mut self, input: Input<'_>, out: &mut Vec<Output>) -> Outcome {
        match self.positions.get_mut(input.topic) {
            Some(next) => *next = input.offset + 1,
            None => {
                self.positions
                    .insert(input.topic.to_string(), input.offset + 1);
            }
        }
        if let Some(ts) = input.timestamp {
            self.clock = self.clock.max(ts);
        }
        if input.key == Some(recovery::CLOCK_KEY) {
            return match recovery::clock_value(input.payload) {
                Some(at) => {
                    self.clock = self.clock.max(at);
                    self.tick(self.clock, out);
                    Outcome::Routed {
                        event_type: "omniroute.clock",
                    }
                }
                None => Outcome::DeadLetter(DecodeError::InvalidValue(
                    "clock record without a time".into(),
                )),
            };
        }
        let now = self.clock;
        match self.stage {
            Stage::Full => self.process(now, input.payload, out),
            Stage::Route => {
                let first = out.len();
                let outcome = self.process(now, input.payload, out);
                out.truncate(first);
                outcome
            }
            Stage::Decode => {
                let scratch = self.scratch.get_or_insert_with(Default::default);
                let payload = input.payload.unwrap_or_default();
                match event::decode_reusing(payload, self.max_record_bytes, scratch) {
                    Ok(e) => Outcome::Routed {
                        event_type: e.body.type_name(),
                    },
                    Err(e) => Outcome::DeadLetter(e),
                }
            }
            Stage::Consume => Outcome::Routed {
                event_type: "not decoded",
            },
        }
    }

    /// Adds the counts tallied since the last call to the metrics recorder.
    pub fn flush_metrics(&mut self) {
        self.metrics.flush();
    }

    /// Runs only part of the record path from now on (see [`Stage`]).
    pub fn set_stage(&mut self, stage: Stage) {
        self.stage = stage;
    }

    /// Decodes one record and drives its tenant's engine at `now`.
    pub fn process(
        &mut self,
        now: Millis,
        payload: Option<&[u8]>,
        out: &mut Vec<Output>,
    ) -> Outcome {
        // The scratch is taken out for the call, so that the event borrowed from it can be
        // used beside the partition's other fields.
        let mut scratch = self.scratch.take().unwrap_or_default();
        let outcome = match event::decode_reusing(
            payload.unwrap_or_default(),
            self.max_record_bytes,
            &mut scratch,
        ) {
            Ok(event) => self.route(now, event, out),
            Err(e) => Outcome::DeadLetter(e),
        };
        self.scratch = Some(scratch);
        outcome
    }

    /// Drives the event's tenant's engine at `now`.
    fn route(&mut self, now: Millis, event: &Event, out: &mut Vec<Output>) -> Outcome {
        // Looked up by `&str` first: the tenant's key is allocated only for a new engine.
        let tenant = match self.engines.get_mut(&event.tenant) {
            Some(t) => t,
            None => self.engines.entry(event.tenant.clone()).or_insert_with(|| {
                Tenant::new(Engine::new(event.tenant.clone(), self.policy.clone()))
            }),
        };
        let started = (self.handled % DECISION_SAMPLE == 0).then(Instant::now);
        self.handled += 1;
        let first = out.len();
        let result = tenant.engine.handle(now, event, out);
        if let Some(started) = started {
            self.metrics.decision(started.elapsed().as_secs_f64());
        }
        let event_type = event.body.type_name();
        tenant.refile(&mut self.timers);
        match result {
            Ok(()) => {
                self.metrics.routed(event_type);
                if let event::Body::OfferAccepted(a) = &event.body {
                    if let Some(o) = tenant
                        .open
                        .remove(&crate::engine::fingerprint(&a.assignment_id))
                    {
                        let waited = o.wait_ms + now.saturating_sub(o.offered_at);
                        self.metrics.answered_wait(
                            &event.tenant,
                            &o.queue,
                            &o.channel,
                            waited as f64 / 1000.0,
                        );
                    }
                }
                tenant.track(&out[first..]);
                Outcome::Routed { event_type }
            }
            Err(ignored) => {
                tracing::debug!(
                    partition = self.id,
                    tenant = %event.tenant,
                    id = %event.id,
                    reason = ignored.reason(),
                    error = %ignored,
                    "event ignored"
                );
                Outcome::Ignored {
                    reason: ignored.reason(),
                }
            }
        }
    }

    /// Fires every engine's timers due at `now`.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        let due: Vec<Arc<str>> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, tenant)| tenant.clone())
            .collect();
        for name in due {
            if let Some(t) = self.engines.get_mut(&*name) {
                let first = out.len();
                t.engine.tick(now, out);
                t.refile(&mut self.timers);
                t.track(&out[first..]);
            }
        }
    }

    /// Earliest timer over the partition's engines.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Applies a reloaded policy to every engine, keeping their state.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        for t in self.engines.values_mut() {
            t.engine.set_policy(policy.clone());
            // New timeouts or relaxation steps can move timers.
            t.refile(&mut self.timers);
        }
        self.policy = policy;
    }

    pub fn sla_snapshots(&mut self, now: Millis) -> Vec<SlaSnapshot> {
        self.engines
            .values_mut()
            .flat_map(|t| t.engine.sla_snapshot(now))
            .collect()
    }

    /// Sizes summed over the partition's engines.
    pub fn stats(&self) -> EngineStats {
        self.engines
            .values()
            .map(|t| t.engine.stats())
            .fold(EngineStats::default(), |a, s| EngineStats {
                agents: a.agents + s.agents,
                agents_available: a.agents_available + s.agents_available,
                contacts_waiting: a.contacts_waiting + s.contacts_waiting,
                offers_open: a.offers_open + s.offers_open,
                contacts_in_service: a.contacts_in_service + s.contacts_in_service,
            })
    }

    pub fn tenants(&self) -> usize {
        self.engines.len()
    }
}

/// The `type` tag of an output, for metric labels.
pub fn output_type(o: &Output) -> &'static str {
    match o {
        Output::Offer(_) => "offer",
        Output::OfferWithdrawn(_) => "offer.withdrawn",
        Output::AgentAway(_) => "agent.away",
    }
}

/// The tenant an output belongs to: its Kafka key.
pub fn output_tenant(o: &Output) -> &str {
    match o {
        Output::Offer(x) => &x.tenant,
        Output::OfferWithdrawn(x) => &x.tenant,
        Output::AgentAway(x) => &x.tenant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_records_are_dead_letters_and_engines_are_per_tenant() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 1024);
        let mut out = Vec::new();
        assert!(matches!(
            p.process(1, Some(b"{nope"), &mut out),
            Outcome::DeadLetter(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            p.process(1, None, &mut out),
            Outcome::DeadLetter(DecodeError::Empty)
        ));
        let ev = |t: &str| {
            format!(
                r#"{{"type":"agent.state","id":"e-{t}","tenant":"{t}","ts":1,"agent_id":"a","state":"available"}}"#
            )
        };
        for t in ["shop-mx", "shop-br", "shop-mx"] {
            let o = p.process(1, Some(ev(t).as_bytes()), &mut out);
            assert!(!matches!(o, Outcome::DeadLetter(_)), "{o:?}");
        }
        assert_eq!(p.tenants(), 2);
    }

    /// Each stage runs its part of the record path and no more; positions move at every stage.
    #[test]
    fn stages_run_part_of_the_record_path() {
        let records: [&[u8]; 4] = [
            b"{nope",
            br#"{"type":"agent.profile","id":"1","tenant":"t","ts":1000,"agent_id":"a","languages":["es"]}"#,
            br#"{"type":"agent.state","id":"2","tenant":"t","ts":1000,"agent_id":"a","state":"available"}"#,
            br#"{"type":"contact.created","id":"3","tenant":"t","ts":1000,"contact_id":"c","channel":"chat","customer_id":"k","language":"es-MX"}"#,
        ];
        let run = |stage: Stage| {
            let mut p = Partition::build(0, Arc::new(Policy::default()), 4096);
            p.set_stage(stage);
            let mut out = Vec::new();
            let outcomes: Vec<Outcome> = records
                .iter()
                .enumerate()
                .map(|(offset, payload)| {
                    let input = Input {
                        topic: "in",
                        offset: offset as i64,
                        timestamp: Some(1000),
                        key: Some(b"t"),
                        payload: Some(payload),
                    };
                    p.apply(input, &mut out)
                })
                .collect();
            assert_eq!(p.positions().get("in"), Some(&4), "{stage:?}");
            (outcomes, out.len(), p.tenants())
        };
        let dead = |o: &[Outcome]| {
            o.iter()
                .filter(|o| matches!(o, Outcome::DeadLetter(_)))
                .count()
        };

        let (o, outputs, tenants) = run(Stage::Consume);
        assert_eq!((dead(&o), outputs, tenants), (0, 0, 0), "nothing decoded");
        let (o, outputs, tenants) = run(Stage::Decode);
        assert_eq!(
            (dead(&o), outputs, tenants),
            (1, 0, 0),
            "decoded, not routed"
        );
        let (o, outputs, tenants) = run(Stage::Route);
        assert_eq!(
            (dead(&o), outputs, tenants),
            (1, 0, 1),
            "routed, outputs dropped"
        );
        let (o, outputs, tenants) = run(Stage::Full);
        assert_eq!(dead(&o), 1);
        assert_eq!(tenants, 1);
        assert!(outputs > 0, "the contact is offered");
    }

    #[test]
    fn offers_are_followed_until_accepted() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 4096);
        let mut out = Vec::new();
        for e in [
            r#"{"type":"agent.profile","id":"1","tenant":"t","ts":1000,"agent_id":"a","languages":["es"]}"#,
            r#"{"type":"agent.state","id":"2","tenant":"t","ts":1000,"agent_id":"a","state":"available"}"#,
            r#"{"type":"contact.created","id":"3","tenant":"t","ts":1000,"contact_id":"c","channel":"chat","customer_id":"k","language":"es-MX"}"#,
        ] {
            assert!(matches!(
                p.process(1000, Some(e.as_bytes()), &mut out),
                Outcome::Routed { .. }
            ));
        }
        let Some(Output::Offer(offer)) = out.first() else {
            panic!("expected an offer, got {out:?}")
        };
        let open = |p: &Partition| p.engines.values().map(|t| t.open.len()).sum::<usize>();
        assert_eq!(open(&p), 1);
        let accept = format!(
            r#"{{"type":"offer.accepted","id":"4","tenant":"t","ts":3000,"assignment_id":"{}","agent_id":"a","contact_id":"c"}}"#,
            offer.assignment_id
        );
        out.clear();
        assert!(matches!(
            p.process(3000, Some(accept.as_bytes()), &mut out),
            Outcome::Routed { .. }
        ));
        assert_eq!(open(&p), 0);
    }

    #[test]
    fn timers_are_indexed_across_tenants() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 4096);
        let mut out = Vec::new();
        // Tenant "early" gets its chat offer at t=1000, "late" at t=5000; chat offers time out
        // after 30 s by default.
        for (t, at) in [("early", 1000u64), ("late", 5000)] {
            for e in [
                format!(
                    r#"{{"type":"agent.profile","id":"p","tenant":"{t}","ts":{at},"agent_id":"a","languages":["es"]}}"#
                ),
                format!(
                    r#"{{"type":"agent.state","id":"s","tenant":"{t}","ts":{at},"agent_id":"a","state":"available"}}"#
                ),
                format!(
                    r#"{{"type":"contact.created","id":"c","tenant":"{t}","ts":{at},"contact_id":"c","channel":"chat","customer_id":"k","language":"es"}}"#
                ),
            ] {
                p.process(at, Some(e.as_bytes()), &mut out);
            }
        }
        assert_eq!(p.next_deadline(), Some(31_000));
        out.clear();
        p.tick(30_999, &mut out);
        assert!(out.is_empty(), "nothing due yet: {out:?}");
        p.tick(31_000, &mut out);
        let withdrawn: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::OfferWithdrawn(w) => Some(w.tenant.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(withdrawn, ["early"]);
        assert!(p.next_deadline().is_some_and(|d| d > 31_000));
    }

    /// A small workload as (offset, timestamp, key, payload) records, clock records included.
    fn records() -> Vec<(i64, Millis, Vec<u8>, Vec<u8>)> {
        let mut v: Vec<(Millis, &[u8], String)> = Vec::new();
        for (i, t) in ["a", "b"].iter().enumerate() {
            let at = 1_000 + i as u64;
            v.push((at, t.as_bytes(), format!(r#"{{"type":"agent.profile","id":"p{t}","tenant":"{t}","ts":{at},"agent_id":"x","languages":["es"]}}"#)));
            v.push((at, t.as_bytes(), format!(r#"{{"type":"agent.state","id":"s{t}","tenant":"{t}","ts":{at},"agent_id":"x","state":"available"}}"#)));
        }
        for c in 0..6u64 {
            let t = if c % 2 == 0 { "a" } else { "b" };
            let at = 2_000 + c * 100;
            // Rarely set fields must survive a snapshot too: a bot hand-off, a preferred agent.
            let extra = match c {
                2 => r#","handoff":{"bot":"sofia","intent":"refund"}"#,
                3 => r#","preferred_agent":"x""#,
                _ => "",
            };
            v.push((at, t.as_bytes(), format!(r#"{{"type":"contact.created","id":"c{c}","tenant":"{t}","ts":{at},"contact_id":"c{c}","channel":"voice","customer_id":"k{c}","language":"es"{extra}}}"#)));
        }
        // Clock records far enough on for voice offers (20 s) to time out and be offered again.
        v.push((25_000, recovery::CLOCK_KEY, "25000".into()));
        v.push((50_000, recovery::CLOCK_KEY, "50000".into()));
        v.into_iter()
            .enumerate()
            .map(|(o, (ts, k, p))| (o as i64, ts, k.to_vec(), p.into_bytes()))
            .collect()
    }

    fn run(p: &mut Partition, recs: &[(i64, Millis, Vec<u8>, Vec<u8>)]) -> Vec<(u64, Output)> {
        let mut all = Vec::new();
        for (offset, ts, key, payload) in recs {
            if p.admit("in", *offset) != Admit::Apply {
                continue;
            }
            let mut out = Vec::new();
            p.apply(
                Input {
                    topic: "in",
                    offset: *offset,
                    timestamp: Some(*ts),
                    key: Some(key),
                    payload: Some(payload),
                },
                &mut out,
            );
            let (first, keep) = p.sequence(out.len());
            for (i, o) in out.into_iter().enumerate() {
                let seq = first + i as u64;
                if keep(seq) {
                    all.push((seq, o));
                }
            }
        }
        all
    }

    #[test]
    fn snapshot_and_replay_give_the_uninterrupted_outputs_once() {
        let recs = records();
        let policy = Arc::new(Policy::default());
        let mut whole = Partition::build(0, policy.clone(), 4096);
        let expected = run(&mut whole, &recs);
        let withdrawn = expected
            .iter()
            .filter(|(_, o)| matches!(o, Output::OfferWithdrawn(_)))
            .count();
        assert!(withdrawn >= 2, "clock records fire timeouts: {expected:?}");
        let offers_of = |id: &str| {
            expected
                .iter()
                .filter_map(|(_, o)| match o {
                    Output::Offer(x) if x.contact_id == id => Some(x.clone()),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let c2 = offers_of("c2");
        // c2 is first offered at the 25 s clock record, after the snapshots at 8 and 10.
        assert!(!c2.is_empty(), "c2 is offered: {expected:?}");
        assert!(c2.iter().all(|o| o
            .handoff
            .as_ref()
            .is_some_and(|h| h.intent.as_deref() == Some("refund"))));
        let c3 = offers_of("c3");
        assert!(c3.iter().any(|o| o.why.rule == "preferred_agent"), "{c3:?}");
        assert_eq!(
            expected.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            (0..expected.len() as u64).collect::<Vec<_>>()
        );

        // A crash after record `cut`, with the outputs up to `produced` on the broker and the
        // last snapshot taken after record `snap`.
        for (snap, cut) in [(3usize, 9usize), (0, 12), (8, 8), (10, 12)] {
            let mut first = Partition::build(0, policy.clone(), 4096);
            let mut produced = run(&mut first, &recs[..snap]);
            let bytes = first.encode_state().expect("encode");
            produced.extend(run(&mut first, &recs[snap..cut]));
            let last_seq = produced.last().map(|(s, _)| *s);

            let mut second = Partition::restore(&bytes, 0, policy.clone(), 4096).expect("restore");
            assert_eq!(
                second.positions().get("in"),
                Some(&(snap as i64)).filter(|_| snap > 0)
            );
            second.suppress_through(last_seq);
            // The consumer starts at the committed offset, at or before the snapshot.
            let rest = run(&mut second, &recs);
            let mut seen = produced.clone();
            seen.extend(rest);
            assert_eq!(seen, expected, "snapshot after {snap}, crash after {cut}");
        }
    }

    #[test]
    fn admit_skips_what_the_state_holds_and_reports_gaps() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 4096);
        assert_eq!(p.admit("in", 5), Admit::Apply, "no position yet");
        p.accept_gap("in", 3);
        assert_eq!(p.admit("in", 2), Admit::Skip);
        assert_eq!(p.admit("in", 3), Admit::Apply);
        assert_eq!(p.admit("in", 7), Admit::Gap { expected: 3 });
        assert!(Partition::restore(b"garbage", 0, Arc::new(Policy::default()), 4096).is_err());
        let bytes = p.encode_state().expect("encode");
        assert!(
            Partition::restore(&bytes, 1, Arc::new(Policy::default()), 4096).is_err(),
            "another partition's snapshot"
        );
    }
}
