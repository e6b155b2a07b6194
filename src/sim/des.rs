//! The discrete-event loop: virtual time, a heap of pending happenings, and the real engine.
//!
//! Customers, agents and shifts are simulated here; every routing decision is the engine's. The
//! loop feeds the engine the same events the daemon would get from Kafka (`contact.created`,
//! `offer.accepted`, `contact.completed`, `contact.abandoned`, `agent.profile`, `agent.state`)
//! and calls `tick` whenever the engine's next deadline comes before the next simulated event.
//!
//! Every arrival stream has its own random sequences (arrival times, and contact attributes such
//! as handle time and patience), so runs of one scenario with different staffing see exactly the
//! same customers: comparisons across a sweep are not blurred by sampling noise.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::sync::Arc;

use super::report::{Row, RunReport};
use super::rng::Rng;
use super::scenario::{Arrival, Scenario};
use super::SimError;
use crate::engine::{Engine, Ignored, Output, Policy, SlaSnapshot};
use crate::event::{
    AgentProfile, AgentState, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef,
    Event, Millis, OfferAnswer,
};

/// Ticks in a row at one instant after which the engine is taken to be stuck (its deadline
/// never moves past `now`); a guard so that an engine bug ends the run with an error, not a hang.
const MAX_TICKS_AT_ONE_INSTANT: u32 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Happening {
    /// The next contact of arrival stream `.0`.
    Arrive(u32),
    /// The agent holding the offer of attempt `attempt` of contact `contact` accepts it.
    Accept {
        contact: u32,
        attempt: u32,
    },
    Complete(u32),
    Abandon(u32),
    /// Agent `agent` logs in (`true`) or out.
    Shift {
        agent: u32,
        on: bool,
    },
    /// An agent set away by the engine comes back (if still on shift).
    Return(u32),
    WarmupEnd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Waiting,
    Offered,
    Answered,
    Gone,
}

#[derive(Debug, Clone)]
struct Contact {
    stage: Stage,
    handle_ms: u64,
    /// The standing offer.
    offer: Option<Standing>,
}

/// An offer made to a contact and not yet answered or withdrawn.
#[derive(Debug, Clone)]
struct Standing {
    attempt: u32,
    /// The ids as the engine wrote them (moved out of its output, not copied).
    assignment_id: String,
    contact_id: crate::engine::Name,
    agent: u32,
}

struct Stream {
    arrivals: Rng,
    attributes: Rng,
    weights: Vec<f64>,
    languages: Vec<String>,
    /// This stream's `contact.created`, filled in per contact (id, language) and reused.
    created: ContactCreated,
}

/// Event bodies reused from one event to the next: ids are written into their buffers in
/// place, so feeding the engine allocates nothing once the buffers have grown.
struct Bodies {
    accepted: OfferAnswer,
    completed: ContactCompleted,
    abandoned: ContactRef,
    state: AgentStateChange,
}

/// One run of a scenario.
pub struct Simulation<'a> {
    scenario: &'a Scenario,
    engine: Engine,
    heap: BinaryHeap<Reverse<(Millis, u64, Happening)>>,
    /// Happenings due at the instant they were scheduled (an accept with no `accept_delay`):
    /// kept in order here rather than going through the heap. Both are read in (time, `seq`)
    /// order, so the order of events is the same as with the heap alone.
    due_now: VecDeque<(Millis, u64, Happening)>,
    seq: u64,
    now: Millis,
    end: Millis,
    streams: Vec<Stream>,
    /// The event handed to the engine: tenant set once, id empty (see [`engine_policy`]),
    /// time and body replaced per event.
    event: Event,
    bodies: Bodies,
    /// `a{n}` for agent `n`.
    agent_ids: Vec<String>,
    accept_delay: Millis,
    away_for: Millis,
    /// Contacts `first_contact..`, by number; finished ones are dropped from the front, so
    /// memory follows the contacts in flight, not the length of the run.
    contacts: VecDeque<Contact>,
    first_contact: u32,
    /// Per agent: on shift now.
    on_shift: Vec<bool>,
    outputs: Vec<Output>,
    warmup: Vec<SlaSnapshot>,
    counters: Counters,
}

/// What happened during a run, beyond the SLA figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    /// Events handed to the engine.
    pub events: u64,
    /// Events the engine did not apply (e.g. an accept racing an abandon).
    pub ignored: u64,
    pub contacts: u64,
    pub offers: u64,
    pub ticks: u64,
}

impl<'a> Simulation<'a> {
    pub fn new(scenario: &'a Scenario) -> Result<Self, SimError> {
        scenario.validate()?;
        let start = scenario.start_ms()?;
        let sim = &scenario.simulation;
        let end = start + duration_ms(sim.duration);
        let policy = Arc::new(engine_policy(&scenario.routing));
        let streams = scenario
            .arrivals
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let i = i as u64;
                let (languages, weights): (Vec<String>, Vec<f64>) = if a.languages.is_empty() {
                    (vec!["es".to_string()], vec![1.0])
                } else {
                    a.languages.iter().map(|(l, w)| (l.clone(), *w)).unzip()
                };
                Stream {
                    arrivals: Rng::new(sim.seed, 2 * i),
                    attributes: Rng::new(sim.seed, 2 * i + 1),
                    weights,
                    languages,
                    created: ContactCreated {
                        contact_id: String::new(),
                        channel: a.channel.clone(),
                        // Every simulated contact is a new customer (see `engine_policy`).
                        customer_id: String::new(),
                        language: String::new(),
                        queue: Some(
                            a.queue
                                .clone()
                                .unwrap_or_else(|| scenario.routing.default_queue.clone()),
                        ),
                        required_skills: a.required_skills.clone(),
                        preferred_skills: a.preferred_skills.clone(),
                        priority: a.priority,
                        preferred_agent: None,
                        handoff: None,
                    },
                }
            })
            .collect();
        let mut s = Simulation {
            scenario,
            engine: Engine::new(sim.tenant.clone(), policy),
            heap: BinaryHeap::new(),
            due_now: VecDeque::new(),
            seq: 0,
            now: start,
            end,
            streams,
            event: Event {
                id: String::new(),
                tenant: sim.tenant.clone(),
                ts: start,
                body: placeholder(),
            },
            bodies: Bodies {
                accepted: OfferAnswer {
                    assignment_id: String::new(),
                    agent_id: String::new(),
                    contact_id: String::new(),
                    reason: None,
                },
                completed: ContactCompleted {
                    contact_id: String::new(),
                    agent_id: Some(String::new()),
                },
                abandoned: ContactRef {
                    contact_id: String::new(),
                },
                state: AgentStateChange {
                    agent_id: String::new(),
                    state: AgentState::Available,
                    reason: None,
                },
            },
            agent_ids: Vec::new(),
            accept_delay: duration_ms(sim.accept_delay),
            away_for: duration_ms(sim.away_for),
            contacts: VecDeque::new(),
            first_contact: 0,
            on_shift: Vec::new(),
            outputs: Vec::new(),
            warmup: Vec::new(),
            counters: Counters::default(),
        };
        s.setup_agents(start)?;
        for i in 0..s.streams.len() {
            s.schedule_arrival(i as u32, start);
        }
        if !sim.warmup.is_zero() {
            s.push(start + duration_ms(sim.warmup), Happening::WarmupEnd);
        }
        Ok(s)
    }

    fn setup_agents(&mut self, start: Millis) -> Result<(), SimError> {
        let groups = &self.scenario.agents;
        let mut n = 0u32;
        for g in groups {
            let spans = Scenario::shift_spans(g, start, self.end);
            for k in 0..g.count {
                let agent_id = agent_id(n);
                self.agent_ids.push(agent_id.clone());
                let profile = AgentProfile {
                    agent_id,
                    skills: g.skills.clone(),
                    languages: if g.languages.is_empty() {
                        vec!["es".to_string()]
                    } else {
                        g.languages.clone()
                    },
                    capacity: g.capacity.clone(),
                    queues: g.queues.clone(),
                };
                self.send(start, Body::AgentProfile(profile))
                    .0
                    .map_err(|e| SimError::Engine(format!("agent {} #{k}: {e}", g.name)))?;
                self.on_shift.push(false);
                for &(on, off) in &spans {
                    self.push(on, Happening::Shift { agent: n, on: true });
                    if off < self.end {
                        self.push(
                            off,
                            Happening::Shift {
                                agent: n,
                                on: false,
                            },
                        );
                    }
                }
                n += 1;
            }
        }
        Ok(())
    }

    fn push(&mut self, at: Millis, h: Happening) {
        self.seq += 1;
        // `now` never goes back, so `due_now` stays sorted by (time, seq).
        if at == self.now {
            self.due_now.push_back((at, self.seq, h));
        } else {
            self.heap.push(Reverse((at, self.seq, h)));
        }
    }

    /// When the next happening is due.
    fn next_due(&self) -> Option<Millis> {
        let heap = self.heap.peek().map(|Reverse((t, _, _))| *t);
        let now = self.due_now.front().map(|(t, _, _)| *t);
        match (heap, now) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Takes the next happening, the earliest by (time, seq).
    fn pop(&mut self) -> Option<(Millis, Happening)> {
        let from_fifo = match (self.heap.peek(), self.due_now.front()) {
            (Some(Reverse((t, s, _))), Some((u, r, _))) => (u, r) < (t, s),
            (None, Some(_)) => true,
            _ => false,
        };
        if from_fifo {
            self.due_now.pop_front().map(|(t, _, h)| (t, h))
        } else {
            self.heap.pop().map(|Reverse((t, _, h))| (t, h))
        }
    }

    /// Hands one event to the engine at `now`, then reacts to its outputs. Gives the body back,
    /// so that its buffers serve the next event of its kind.
    fn send(&mut self, now: Millis, body: Body) -> (Result<(), Ignored>, Body) {
        self.event.ts = now;
        self.event.body = body;
        self.counters.events += 1;
        let mut out = std::mem::take(&mut self.outputs);
        let r = self.engine.handle(now, &self.event, &mut out);
        if r.is_err() {
            self.counters.ignored += 1;
        }
        self.react(now, &mut out);
        self.outputs = out;
        (r, std::mem::replace(&mut self.event.body, placeholder()))
    }

    fn react(&mut self, now: Millis, out: &mut Vec<Output>) {
        for o in out.drain(..) {
            match o {
                Output::Offer(offer) => {
                    self.counters.offers += 1;
                    let (Some(c), Some(agent)) = (
                        contact_index(&offer.contact_id),
                        agent_index(&offer.agent_id),
                    ) else {
                        continue;
                    };
                    let Some(contact) = self.contact_mut(c) else {
                        continue;
                    };
                    if contact.stage == Stage::Gone {
                        continue;
                    }
                    contact.stage = Stage::Offered;
                    let attempt = offer.attempt;
                    contact.offer = Some(Standing {
                        attempt,
                        assignment_id: offer.assignment_id,
                        contact_id: offer.contact_id,
                        agent,
                    });
                    self.push(
                        now + self.accept_delay,
                        Happening::Accept {
                            contact: c,
                            attempt,
                        },
                    );
                }
                Output::OfferWithdrawn(w) => {
                    let Some(contact) =
                        contact_index(&w.contact_id).and_then(|c| self.contact_mut(c))
                    else {
                        continue;
                    };
                    if contact
                        .offer
                        .as_ref()
                        .is_some_and(|o| o.assignment_id == w.assignment_id)
                    {
                        contact.offer = None;
                        if contact.stage == Stage::Offered {
                            contact.stage = Stage::Waiting;
                        }
                    }
                }
                Output::AgentAway(a) => {
                    if let Some(i) = agent_index(&a.agent_id) {
                        self.push(now + self.away_for, Happening::Return(i));
                    }
                }
            }
        }
    }

    /// Schedules the next arrival of stream `i` after `from`: exponential gaps at the rate in
    /// force, restarted at each rate change (exact for piecewise-constant rates, since the
    /// exponential is memoryless).
    fn schedule_arrival(&mut self, i: u32, mut from: Millis) {
        let a: &Arrival = &self.scenario.arrivals[i as usize];
        loop {
            if from >= self.end {
                return;
            }
            let (rate, change) = self.scenario.rate_at(a, from);
            let stream = &mut self.streams[i as usize];
            if rate > 0.0 {
                let gap = stream.arrivals.exponential(1.0 / rate);
                let at = from as f64 + gap;
                if at < change as f64 {
                    let at = (at.round() as Millis).max(from);
                    if at < self.end {
                        self.push(at, Happening::Arrive(i));
                    }
                    return;
                }
            }
            from = change;
        }
    }

    /// Runs to the end and returns the figures since warm-up.
    pub fn run(mut self) -> Result<RunReport, SimError> {
        let wall = std::time::Instant::now();
        let mut ticks_here = 0u32;
        let mut last_tick = 0;
        loop {
            let next = self.next_due();
            let deadline = self.engine.next_deadline().map(|d| d.max(self.now));
            match (deadline, next) {
                (Some(d), n) if d < self.end && n.is_none_or(|n| d <= n) => {
                    if d == last_tick {
                        ticks_here += 1;
                        if ticks_here > MAX_TICKS_AT_ONE_INSTANT {
                            return Err(SimError::Engine(format!(
                                "the engine's next deadline stays at {d} after ticking"
                            )));
                        }
                    } else {
                        ticks_here = 0;
                        last_tick = d;
                    }
                    self.now = d;
                    self.counters.ticks += 1;
                    let mut out = std::mem::take(&mut self.outputs);
                    self.engine.tick(d, &mut out);
                    self.react(d, &mut out);
                    self.outputs = out;
                }
                (_, Some(n)) if n < self.end => {
                    let Some((at, h)) = self.pop() else {
                        break;
                    };
                    self.now = at;
                    self.step(at, h);
                }
                _ => break,
            }
        }
        let end_snapshot = self.engine.sla_snapshot(self.end);
        let sim_seconds = (self.end - self.scenario.start_ms()?) as f64 / 1000.0;
        Ok(self.report(end_snapshot, sim_seconds, wall.elapsed().as_secs_f64()))
    }

    fn step(&mut self, now: Millis, h: Happening) {
        match h {
            Happening::Arrive(i) => self.arrive(now, i),
            Happening::Accept { contact, attempt } => {
                // Field by field, so that the body buffers can be filled from the contact.
                let Some(c) = contact
                    .checked_sub(self.first_contact)
                    .and_then(|i| self.contacts.get(i as usize))
                else {
                    return;
                };
                let Some(o) = &c.offer else {
                    return;
                };
                if o.attempt != attempt || c.stage != Stage::Offered {
                    return;
                }
                let handle = c.handle_ms;
                let mut b = std::mem::replace(&mut self.bodies.accepted, blank_answer());
                b.assignment_id.clear();
                b.assignment_id.push_str(&o.assignment_id);
                b.agent_id.clear();
                b.agent_id.push_str(&self.agent_ids[o.agent as usize]);
                b.contact_id.clear();
                b.contact_id.push_str(&o.contact_id);
                let (r, body) = self.send(now, Body::OfferAccepted(b));
                if let Body::OfferAccepted(b) = body {
                    self.bodies.accepted = b;
                }
                if r.is_ok() {
                    if let Some(c) = self.contact_mut(contact) {
                        c.stage = Stage::Answered;
                    }
                    self.push(now + handle, Happening::Complete(contact));
                }
            }
            Happening::Complete(contact) => {
                let standing = self.contact_mut(contact).and_then(|c| {
                    c.stage = Stage::Gone;
                    c.offer.take()
                });
                let mut b = std::mem::replace(&mut self.bodies.completed, blank_completed());
                match standing {
                    Some(o) => {
                        b.contact_id.clear();
                        b.contact_id.push_str(&o.contact_id);
                        let id = b.agent_id.get_or_insert_with(String::new);
                        id.clear();
                        id.push_str(&self.agent_ids[o.agent as usize]);
                    }
                    None => {
                        write_id(&mut b.contact_id, 'c', contact);
                        b.agent_id = None;
                    }
                }
                let (_, body) = self.send(now, Body::ContactCompleted(b));
                if let Body::ContactCompleted(b) = body {
                    self.bodies.completed = b;
                }
            }
            Happening::Abandon(contact) => {
                let Some(c) = self.contact_mut(contact) else {
                    return;
                };
                if matches!(c.stage, Stage::Waiting | Stage::Offered) {
                    c.stage = Stage::Gone;
                    c.offer = None;
                    let mut b = std::mem::replace(
                        &mut self.bodies.abandoned,
                        ContactRef {
                            contact_id: String::new(),
                        },
                    );
                    write_id(&mut b.contact_id, 'c', contact);
                    let (_, body) = self.send(now, Body::ContactAbandoned(b));
                    if let Body::ContactAbandoned(b) = body {
                        self.bodies.abandoned = b;
                    }
                }
            }
            Happening::Shift { agent, on } => {
                if let Some(s) = self.on_shift.get_mut(agent as usize) {
                    *s = on;
                }
                let state = if on {
                    AgentState::Available
                } else {
                    AgentState::Offline
                };
                self.set_state(now, agent, state);
            }
            Happening::Return(agent) => {
                if self.on_shift.get(agent as usize).copied().unwrap_or(false) {
                    self.set_state(now, agent, AgentState::Available);
                }
            }
            Happening::WarmupEnd => {
                self.warmup = self.engine.sla_snapshot(now);
            }
        }
        self.forget_finished();
    }

    fn contact_mut(&mut self, n: u32) -> Option<&mut Contact> {
        let i = n.checked_sub(self.first_contact)?;
        self.contacts.get_mut(i as usize)
    }

    /// Drops finished contacts from the front.
    fn forget_finished(&mut self) {
        while self
            .contacts
            .front()
            .is_some_and(|c| c.stage == Stage::Gone)
        {
            self.contacts.pop_front();
            self.first_contact += 1;
        }
    }

    fn set_state(&mut self, now: Millis, agent: u32, state: AgentState) {
        let mut b = std::mem::replace(&mut self.bodies.state, blank_state());
        b.agent_id.clear();
        b.agent_id.push_str(&self.agent_ids[agent as usize]);
        b.state = state;
        let (_, body) = self.send(now, Body::AgentState(b));
        if let Body::AgentState(b) = body {
            self.bodies.state = b;
        }
    }

    fn arrive(&mut self, now: Millis, i: u32) {
        let a = &self.scenario.arrivals[i as usize];
        let stream = &mut self.streams[i as usize];
        let lang = stream.attributes.weighted(&stream.weights);
        let handle_ms = a.handle.sample(&mut stream.attributes).unwrap_or(0);
        let patience = a.patience.sample(&mut stream.attributes);
        let n = self.first_contact + self.contacts.len() as u32;
        let mut b = std::mem::replace(&mut stream.created, blank_created());
        b.language.clear();
        b.language.push_str(&stream.languages[lang]);
        write_id(&mut b.contact_id, 'c', n);
        self.contacts.push_back(Contact {
            stage: Stage::Waiting,
            handle_ms,
            offer: None,
        });
        self.counters.contacts += 1;
        if let Some(p) = patience {
            self.push(now + p, Happening::Abandon(n));
        }
        let (r, body) = self.send(now, Body::ContactCreated(b));
        if let Body::ContactCreated(b) = body {
            self.streams[i as usize].created = b;
        }
        if r.is_err() {
            if let Some(c) = self.contact_mut(n) {
                c.stage = Stage::Gone;
            }
        }
        self.schedule_arrival(i, now);
    }

    fn report(&self, end: Vec<SlaSnapshot>, sim_seconds: f64, wall_seconds: f64) -> RunReport {
        let base: BTreeMap<(&str, &str), &SlaSnapshot> = self
            .warmup
            .iter()
            .map(|s| ((s.queue.as_str(), s.channel.as_str()), s))
            .collect();
        let mut rows = Vec::new();
        let (mut logged, mut busy) = (0.0, 0.0);
        for s in &end {
            let formula = self.scenario.routing.queue(&s.queue).service_level_formula;
            let figures = match base.get(&(s.queue.as_str(), s.channel.as_str())) {
                Some(b) => s.since_start.since(&b.since_start, formula),
                None => {
                    let mut f = s.since_start.clone();
                    f.derive(formula);
                    f
                }
            };
            let meets = figures.service_level.map(|sl| sl >= s.service_level_target);
            rows.push(Row {
                queue: s.queue.clone(),
                channel: s.channel.clone(),
                threshold_seconds: s.service_level_threshold_seconds,
                target: s.service_level_target,
                figures,
                meets_target: meets,
                erlang_c_agents: None,
            });
            // Agent time is domain-wide: the same in every record.
            logged = s.since_start.agent_seconds_logged_in;
            busy = s.since_start.agent_seconds_busy;
        }
        if let Some(b) = self.warmup.first() {
            logged -= b.since_start.agent_seconds_logged_in;
            busy -= b.since_start.agent_seconds_busy;
        }
        RunReport {
            agents: self.scenario.total_agents(),
            seed: self.scenario.simulation.seed,
            simulated_hours: sim_seconds / 3600.0,
            warmup_hours: self.scenario.simulation.warmup.as_secs_f64() / 3600.0,
            occupancy: (logged > 0.0).then(|| busy / logged),
            rows,
            counters: self.counters,
            wall_seconds,
        }
    }
}

fn duration_ms(d: std::time::Duration) -> Millis {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The policy as the engine gets it in a simulation. Two settings that cannot change a
/// simulated outcome are turned off, because they cost time on every event:
/// - duplicate detection (`limits.dedup_window = 0`): the simulator never sends an event twice,
///   so its events carry no id;
/// - stickiness (`sticky_for = 0`): every simulated contact is a new customer (the customer id
///   is left empty), so no customer ever has a last agent to stick to.
fn engine_policy(routing: &Policy) -> Policy {
    let mut p = routing.clone();
    p.limits.dedup_window = 0;
    p.sticky_for = std::time::Duration::ZERO;
    p
}

/// Writes `{prefix}{n}` into `buf`, reusing its allocation.
fn write_id(buf: &mut String, prefix: char, n: u32) {
    buf.clear();
    buf.push(prefix);
    buf.push_str(itoa::Buffer::new().format(n));
}

/// A body that owns no allocation, left in [`Simulation::event`] between events.
fn placeholder() -> Body {
    Body::ContactAbandoned(ContactRef {
        contact_id: String::new(),
    })
}

fn blank_created() -> ContactCreated {
    ContactCreated {
        contact_id: String::new(),
        channel: String::new(),
        customer_id: String::new(),
        language: String::new(),
        queue: None,
        required_skills: Default::default(),
        preferred_skills: Default::default(),
        priority: 0,
        preferred_agent: None,
        handoff: None,
    }
}

fn blank_answer() -> OfferAnswer {
    OfferAnswer {
        assignment_id: String::new(),
        agent_id: String::new(),
        contact_id: String::new(),
        reason: None,
    }
}

fn blank_completed() -> ContactCompleted {
    ContactCompleted {
        contact_id: String::new(),
        agent_id: None,
    }
}

fn blank_state() -> AgentStateChange {
    AgentStateChange {
        agent_id: String::new(),
        state: AgentState::Offline,
        reason: None,
    }
}

fn agent_id(n: u32) -> String {
    format!("a{n}")
}

fn contact_index(id: &str) -> Option<u32> {
    id.strip_prefix('c')?.parse().ok()
}

fn agent_index(id: &str) -> Option<u32> {
    id.strip_prefix('a')?.parse().ok()
}
