//! Routing engine throughput and decision latency at 1k, 10k and 100k agents.
//!
//! Workload: 50 skills (popular ones more common), 8 languages (Spanish and Portuguese heavy,
//! regional tags), 8 channels in a contact-center mix, 10 queues with all four strategies,
//! relaxation on two queues. A driver reacts to the engine like agent desktops would: accepts
//! offers (3% rejected), completes contacts to hold ~0.6 contacts per agent, ends some wrap-ups
//! early, sends agents away and back, and customers abandon now and then.
//!
//! The driver runs first (warm-up to steady state, then recording); the benches replay the
//! recorded events into a clone of the warmed engine, so only the engine is measured (a clone
//! keeps the room its containers have grown to, so a replay does not pay for growing them once
//! more). Replay is exact because the engine is deterministic. Each workload also prints the
//! replay's CPU time (events per CPU second), which stays meaningful on a busy machine where
//! wall time does not; `replay-hot` is the same replay with each event just copied, as the
//! daemon hands over an event it just decoded, so the engine's own memory traffic is what is
//! counted (see [`replay_hot`]). `OMNIROUTE_BENCH_AGENTS=1000,10000` limits the sizes;
//! `OMNIROUTE_BENCH_EVENTS=20000` records fewer events (default 200,000), e.g. to count
//! instructions of `replay` under `valgrind --tool=callgrind --toggle-collect='*replay*'` in
//! test mode.
//!
//! `records/…` replays the same events as JSON input records through a partition's state
//! (decode, engine, the partition's timer index and open offers): the daemon's record path
//! without Kafka. Its instructions alone: `--toggle-collect='*apply_records*'`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use omniroute::engine::{Engine, Output, Policy};
use omniroute::event::{
    AgentProfile, AgentState, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef,
    Event, OfferAnswer, WrapupDone,
};
use omniroute::partition::{Input, Partition};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const T0: u64 = 1_800_000_000_000;
const SKILLS: usize = 50;
const LANGS: [(&str, u32); 8] = [
    ("es", 30),
    ("es-MX", 20),
    ("pt-BR", 20),
    ("es-AR", 8),
    ("en", 10),
    ("es-CO", 6),
    ("fr", 3),
    ("de", 3),
];
const CHANNELS: [(&str, u32); 8] = [
    ("chat", 30),
    ("whatsapp", 20),
    ("voice", 15),
    ("email", 15),
    ("messenger", 8),
    ("sms", 5),
    ("twitter", 4),
    ("webform", 3),
];
const QUEUES: usize = 10;
const PATIENCE_MS: u64 = 120_000;

fn policy() -> Policy {
    let p: Policy = toml::from_str(
        r#"
        sticky_for = "30m"
        [queues.q0]
        [queues.q1]
        [queues.q2]
        [queues.q3]
        strategy = "least_occupied"
        [queues.q4]
        strategy = "least_occupied"
        [queues.q5]
        [queues.q6]
        [queues.q7]
        strategy = "best_skill_match"
        [queues.q8]
        strategy = "round_robin"
        [queues.q9]
        [[queues.q0.relaxation]]
        after = "30s"
        lower_min_level_by = 2
        [[queues.q0.relaxation]]
        after = "90s"
        fallback_languages = ["en"]
        [[queues.q5.relaxation]]
        after = "60s"
        overflow_to = "q6"
        "#,
    )
    .expect("bench policy parses");
    p.validate().expect("bench policy is valid");
    p
}

fn weighted<'a>(rng: &mut ChaCha8Rng, items: &'a [(&'a str, u32)]) -> &'a str {
    let total: u32 = items.iter().map(|i| i.1).sum();
    let mut x = rng.random_range(0..total);
    for (name, w) in items {
        if x < *w {
            return name;
        }
        x -= w;
    }
    items[0].0
}

/// Each queue has its own group of five skills (queue q: skills 5q..5q+5), as contact
/// centers staff queues with the skills their contacts need.
fn skill_of_queue(rng: &mut ChaCha8Rng, queue: usize) -> String {
    format!(
        "skill{}",
        queue * (SKILLS / QUEUES) + rng.random_range(0..SKILLS / QUEUES)
    )
}

/// Any skill, popular ones first: skill k with weight ~ 1/(k+1).
fn skill(rng: &mut ChaCha8Rng) -> String {
    let u: f64 = rng.random();
    let k = ((SKILLS as f64 + 1.0).powf(u) - 1.0) as usize;
    format!("skill{}", k.min(SKILLS - 1))
}

struct Driver {
    rng: ChaCha8Rng,
    agents: usize,
    now: u64,
    seq: u64,
    next_contact: u64,
    /// Offers to answer: (assignment, agent, contact).
    offers: Vec<(String, String, String)>,
    in_service: Vec<String>,
    /// Contacts not offered yet, oldest first, with their creation time: customers give up
    /// after `PATIENCE_MS` without an offer.
    unoffered: std::collections::VecDeque<(String, u64)>,
    offered: std::collections::HashSet<String>,
    away: Vec<usize>,
    target: usize,
    step_ms: u64,
}

impl Driver {
    fn new(agents: usize) -> Self {
        Driver {
            rng: ChaCha8Rng::seed_from_u64(7),
            agents,
            now: T0,
            seq: 0,
            next_contact: 0,
            offers: Vec::new(),
            in_service: Vec::new(),
            unoffered: Default::default(),
            offered: Default::default(),
            away: Vec::new(),
            target: agents * 6 / 10,
            step_ms: (200_000 / agents as u64).max(1),
        }
    }

    fn event(&mut self, body: Body) -> Event {
        self.seq += 1;
        Event {
            id: format!("ev-{}", self.seq),
            tenant: "shop".into(),
            ts: self.now,
            body,
        }
    }

    fn setup(&mut self) -> Vec<Event> {
        let mut evs = Vec::new();
        for a in 0..self.agents {
            let mut skills = std::collections::BTreeMap::new();
            let groups: Vec<usize> = (0..self.rng.random_range(1..4))
                .map(|_| self.rng.random_range(0..QUEUES))
                .collect();
            for &g in &groups {
                for _ in 0..self.rng.random_range(2..5) {
                    skills.insert(
                        skill_of_queue(&mut self.rng, g),
                        self.rng.random_range(3..=10),
                    );
                }
            }
            skills.insert(skill(&mut self.rng), self.rng.random_range(3..=10));
            let mut languages = vec![weighted(&mut self.rng, &LANGS).to_string()];
            if self.rng.random_bool(0.4) {
                languages.push(weighted(&mut self.rng, &LANGS).to_string());
            }
            let queues = if self.rng.random_bool(0.3) {
                groups.iter().map(|g| format!("q{g}")).collect()
            } else {
                Vec::new()
            };
            let mut capacity = std::collections::BTreeMap::new();
            if self.rng.random_bool(0.5) {
                capacity.insert("voice".to_string(), 0);
            }
            let p = AgentProfile {
                agent_id: format!("agent-{a}"),
                skills,
                languages,
                capacity,
                queues,
            };
            evs.push(self.event(Body::AgentProfile(p)));
            evs.push(self.event(Body::AgentState(AgentStateChange {
                agent_id: format!("agent-{a}"),
                state: AgentState::Available,
                reason: None,
            })));
        }
        evs
    }

    /// Learns from the engine's outputs (offers to answer).
    fn see(&mut self, out: &[Output]) {
        for o in out {
            match o {
                Output::Offer(o) => {
                    self.offered.insert(o.contact_id.to_string());
                    self.offers.push((
                        o.assignment_id.clone(),
                        o.agent_id.to_string(),
                        o.contact_id.to_string(),
                    ))
                }
                Output::OfferWithdrawn(w) => {
                    self.offers.retain(|x| x.0 != w.assignment_id);
                }
                Output::AgentAway(_) => {}
            }
        }
    }

    fn next(&mut self) -> Event {
        self.now += self.step_ms;
        let roll: f64 = self.rng.random();
        if !self.offers.is_empty() && roll < 0.45 {
            let i = self.rng.random_range(0..self.offers.len());
            let (assignment_id, agent_id, contact_id) = self.offers.swap_remove(i);
            let a = OfferAnswer {
                assignment_id,
                agent_id,
                contact_id: contact_id.clone(),
                reason: None,
            };
            return if self.rng.random_bool(0.03) {
                self.event(Body::OfferRejected(a))
            } else {
                self.in_service.push(contact_id);
                self.event(Body::OfferAccepted(a))
            };
        }
        while let Some((contact_id, at)) = self.unoffered.front().cloned() {
            if self.offered.remove(&contact_id) {
                self.unoffered.pop_front();
                continue;
            }
            if self.now - at < PATIENCE_MS {
                break;
            }
            self.unoffered.pop_front();
            return self.event(Body::ContactAbandoned(ContactRef { contact_id }));
        }
        if roll < 0.49 {
            // An agent steps away, or one comes back.
            if !self.away.is_empty()
                && (self.rng.random_bool(0.5) || self.away.len() > self.agents / 20)
            {
                let a = self.away.swap_remove(0);
                return self.event(Body::AgentState(AgentStateChange {
                    agent_id: format!("agent-{a}"),
                    state: AgentState::Available,
                    reason: None,
                }));
            }
            let a = self.rng.random_range(0..self.agents);
            self.away.push(a);
            return self.event(Body::AgentState(AgentStateChange {
                agent_id: format!("agent-{a}"),
                state: AgentState::Away,
                reason: Some("break".into()),
            }));
        }
        if roll < 0.52 {
            let a = self.rng.random_range(0..self.agents);
            return self.event(Body::AgentWrapupDone(WrapupDone {
                agent_id: format!("agent-{a}"),
                contact_id: None,
            }));
        }
        if self.in_service.len() >= self.target || (roll > 0.8 && !self.in_service.is_empty()) {
            let i = self.rng.random_range(0..self.in_service.len());
            let contact_id = self.in_service.swap_remove(i);
            return self.event(Body::ContactCompleted(ContactCompleted {
                contact_id,
                agent_id: None,
            }));
        }
        self.next_contact += 1;
        let contact_id = format!("contact-{}", self.next_contact);
        self.unoffered.push_back((contact_id.clone(), self.now));
        let queue = self.rng.random_range(0..QUEUES);
        let mut required = std::collections::BTreeMap::new();
        for _ in 0..self.rng.random_range(1..3) {
            required.insert(
                skill_of_queue(&mut self.rng, queue),
                self.rng.random_range(1..=6),
            );
        }
        let c = ContactCreated {
            contact_id,
            channel: weighted(&mut self.rng, &CHANNELS).to_string(),
            customer_id: format!("cust-{}", self.rng.random_range(0..self.agents * 20)),
            language: weighted(&mut self.rng, &LANGS).to_string(),
            queue: Some(format!("q{queue}")),
            required_skills: required,
            preferred_skills: if self.rng.random_bool(0.2) {
                [(skill(&mut self.rng), 7)].into_iter().collect()
            } else {
                Default::default()
            },
            priority: self.rng.random_range(0..3),
            preferred_agent: None,
            handoff: None,
        };
        self.event(Body::ContactCreated(c))
    }
}

struct Workload {
    warmed: Engine,
    trace: Vec<Event>,
    /// The trace as the daemon reads it: (record timestamp, JSON payload).
    records: Vec<(u64, Vec<u8>)>,
    /// Index of each `contact.created` in `trace`.
    creates: usize,
}

/// Warms up to the steady state the recording should see: the driver holds its target of
/// contacts in service, and the de-duplication window is full, as in a daemon that has run for
/// a while. A fixed count does neither at every size: three events an agent left 10k and 100k
/// agents with a half and two fifths of their target in service, and 1k agents with a window
/// 3 % full. At least `min_warmup` events, at most twenty an agent beyond it.
fn workload(agents: usize, min_warmup: usize, recorded: usize) -> Workload {
    let mut engine = Engine::new("shop", Arc::new(policy()));
    let mut d = Driver::new(agents);
    let mut out = Vec::new();
    for ev in d.setup() {
        out.clear();
        engine.handle(d.now, &ev, &mut out).expect("setup applies");
        d.see(&out);
    }
    let window = engine.policy().limits.dedup_window;
    let mut warmup = 0;
    while warmup < min_warmup.max(window)
        || (d.in_service.len() < d.target * 95 / 100 && warmup < min_warmup + agents * 20)
    {
        let ev = d.next();
        out.clear();
        let _ = engine.handle(d.now, &ev, &mut out);
        d.see(&out);
        warmup += 1;
    }
    let in_service_at_start = d.in_service.len();
    let warmed = engine.clone();
    let mut trace = Vec::with_capacity(recorded);
    for _ in 0..recorded {
        let ev = d.next();
        out.clear();
        let _ = engine.handle(d.now, &ev, &mut out);
        d.see(&out);
        trace.push(ev);
    }
    // The machine may be shared: next to wall time, report the CPU time this thread spent, which
    // is what "events per second on one core" means.
    timed(
        ("replay", "events", agents, recorded),
        || warmed.clone(),
        |e| (replay(e, &trace, &mut Vec::new()), None),
    );
    timed(
        ("replay-hot", "events", agents, recorded),
        || warmed.clone(),
        |e| {
            let (outputs, wall, cpu) = replay_hot(e, &trace, &mut Vec::new());
            (outputs, Some((wall, cpu)))
        },
    );
    // The same events as input records through a partition's state: decoding, the engine, and
    // the partition's own bookkeeping (timer index, open offers, de-duplication), which is the
    // daemon's record path less Kafka.
    let records: Vec<(u64, Vec<u8>)> = trace
        .iter()
        .map(|ev| (ev.ts, serde_json::to_vec(ev).expect("events serialise")))
        .collect();
    timed(
        ("records", "records", agents, recorded),
        || partition(&warmed),
        |p| (apply_records(p, &records, &mut Vec::new()), None),
    );
    if std::env::var_os("OMNIROUTE_BENCH_DIGEST").is_some() {
        eprintln!("digest {agents} agents: {:016x}", digest(&warmed, &trace));
    }
    let creates = trace
        .iter()
        .filter(|e| matches!(e.body, Body::ContactCreated(_)))
        .count();
    let s = engine.stats();
    eprintln!(
        "workload {agents} agents: {warmup} events of warm-up ({in_service_at_start} in service after it), {recorded} events ({creates} contacts created); at end: {} available, {} waiting, {} offers open, {} in service",
        s.agents_available, s.contacts_waiting, s.offers_open, s.contacts_in_service
    );
    Workload {
        warmed,
        trace,
        records,
        creates,
    }
}

/// Three timed runs of `replay` on a `fresh` state each (built before the clocks start),
/// printing wall and CPU time: `(what, unit, agents, n)` name the line, `n` items replayed.
/// `replay` returns its outputs, and the wall and CPU time of the part to count when not all
/// of it is.
fn timed<S>(
    (what, unit, agents, n): (&str, &str, usize, usize),
    fresh: impl Fn() -> S,
    replay: impl Fn(&mut S) -> (usize, Option<(Duration, u64)>),
) {
    for _ in 0..3 {
        let mut state = fresh();
        let (wall, cpu) = (Instant::now(), thread_cpu_ns());
        let (outputs, counted) = replay(&mut state);
        let (wall, cpu) = counted.unwrap_or((wall.elapsed(), thread_cpu_ns().saturating_sub(cpu)));
        eprintln!(
            "{what} {agents} agents: {n} {unit}, {outputs} outputs in {:.3} s wall, {:.3} s CPU: {:.0} {unit}/s per CPU second",
            wall.as_secs_f64(),
            cpu as f64 / 1e9,
            n as f64 / (cpu as f64 / 1e9)
        );
    }
}

/// CPU time of the current thread in ns, from /proc (Linux); 0 elsewhere.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A fingerprint of everything observable in a replay: every output as JSON, the SLA
/// snapshot and the sizes at the end. Two engine builds that agree on it route alike.
fn digest(warmed: &Engine, trace: &[Event]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut e = warmed.clone();
    let mut out = Vec::new();
    for ev in trace {
        out.clear();
        let r = e.handle(ev.ts, ev, &mut out);
        format!("{r:?}").hash(&mut h);
        serde_json::to_string(&out)
            .expect("outputs serialise")
            .hash(&mut h);
    }
    let end = trace.last().map_or(T0, |ev| ev.ts);
    serde_json::to_string(&e.sla_snapshot(end))
        .expect("snapshot serialises")
        .hash(&mut h);
    format!("{:?}", e.stats()).hash(&mut h);
    h.finish()
}

/// A partition state holding a copy of the warmed engine.
fn partition(warmed: &Engine) -> Partition {
    Partition::with_engines(0, Arc::new(policy()), 65_536, [warmed.clone()])
}

#[inline(never)]
fn apply_records(p: &mut Partition, records: &[(u64, Vec<u8>)], out: &mut Vec<Output>) -> usize {
    let mut n = 0;
    for (offset, (ts, payload)) in records.iter().enumerate() {
        out.clear();
        p.apply(
            Input {
                topic: "omniroute.events",
                offset: offset as i64,
                timestamp: Some(*ts),
                key: Some(b"shop"),
                payload: Some(payload),
            },
            out,
        );
        n += out.len();
    }
    n
}

/// Events per chunk of [`replay_hot`]: a copy of 2,048 events (about 0.6 MB) fits in a core's
/// L2 cache next to what the engine keeps hot.
const HOT_CHUNK: usize = 2_048;

/// `replay` as the daemon feeds the engine: each event was just decoded, so its strings are in
/// cache. The recorded trace is not (200,000 events, about 60 MB, read once): reading it cost
/// 4–17 % of the replay's CPU time at 1k agents and 9–15 % at 100k (three rounds, one run). Each chunk of [`HOT_CHUNK`] events is copied
/// before its clocks start, and only the engine's part is counted: outputs, wall and CPU ns.
/// The clocks cost two /proc reads a chunk (about 10 µs, under 1 % of a chunk at 1k agents).
#[inline(never)]
fn replay_hot(
    engine: &mut Engine,
    trace: &[Event],
    out: &mut Vec<Output>,
) -> (usize, Duration, u64) {
    let (mut n, mut wall, mut cpu) = (0, Duration::ZERO, 0);
    for chunk in trace.chunks(HOT_CHUNK) {
        let fresh = chunk.to_vec();
        let (w, c) = (Instant::now(), thread_cpu_ns());
        n += replay(engine, &fresh, out);
        wall += w.elapsed();
        cpu += thread_cpu_ns().saturating_sub(c);
    }
    (n, wall, cpu)
}

#[inline(never)]
fn replay(engine: &mut Engine, trace: &[Event], out: &mut Vec<Output>) -> usize {
    let mut n = 0;
    for ev in trace {
        out.clear();
        let _ = engine.handle(ev.ts, ev, out);
        n += out.len();
    }
    n
}

fn bench_engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group.sample_size(10);
    // OMNIROUTE_BENCH_AGENTS=1000,10000 limits the sizes (each workload takes a while to build).
    let sizes: Vec<usize> = std::env::var("OMNIROUTE_BENCH_AGENTS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000, 100_000]);
    for agents in sizes {
        let recorded = std::env::var("OMNIROUTE_BENCH_EVENTS")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(200_000);
        let w = workload(agents, agents * 3, recorded);
        group.throughput(Throughput::Elements(w.trace.len() as u64));
        group.bench_function(format!("events/{agents}_agents"), |b| {
            let mut out = Vec::new();
            b.iter_batched(
                || w.warmed.clone(),
                // Hand the engine back: criterion drops routine outputs after timing, and
                // freeing a whole domain is not per-event work.
                |mut e| {
                    replay(&mut e, &w.trace, &mut out);
                    e
                },
                BatchSize::LargeInput,
            )
        });
        group.bench_function(format!("records/{agents}_agents"), |b| {
            let mut out = Vec::new();
            b.iter_batched(
                || partition(&w.warmed),
                |mut p| {
                    apply_records(&mut p, &w.records, &mut out);
                    p
                },
                BatchSize::LargeInput,
            )
        });
        // Per-decision latency: the time of `handle` for each contact.created (route the contact
        // to an agent or put it in line), everything else replayed untimed in between.
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("decision/{agents}_agents"), |b| {
            let mut out = Vec::new();
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut done = 0u64;
                while done < iters {
                    let mut e = w.warmed.clone();
                    for ev in &w.trace {
                        out.clear();
                        if matches!(ev.body, Body::ContactCreated(_)) {
                            let t = Instant::now();
                            let _ = e.handle(ev.ts, ev, &mut out);
                            total += t.elapsed();
                            done += 1;
                            if done >= iters {
                                break;
                            }
                        } else {
                            let _ = e.handle(ev.ts, ev, &mut out);
                        }
                    }
                }
                total
            })
        });
        let _ = w.creates;
    }
    group.finish();
}

criterion_group!(benches, bench_engine);
criterion_main!(benches);
