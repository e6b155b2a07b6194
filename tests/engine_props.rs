//! Property tests over random event sequences: no agent over capacity, no offer to an
//! ineligible agent, no contact offered twice at once, no starvation, byte-identical replay.
//!
//! Eligibility of each offer is checked against this file's own model of profiles, states,
//! contacts and misses, not against the engine's code.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use omniroute::engine::{Engine, Output, Policy};
use omniroute::event::{
    AgentProfile, AgentState, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef,
    ContactUpdated, Event, OfferAnswer, WrapupDone,
};
use proptest::prelude::*;

const T0: u64 = 1_800_000_000_000;
const AGENTS: usize = 6;
const CONTACTS: usize = 24;
const LANGS: [&str; 4] = ["es", "es-MX", "en", "pt-BR"];
const CHANNELS: [&str; 3] = ["voice", "chat", "email"];
const QUEUES: [&str; 2] = ["general", "vip"];
const SKILLS: [&str; 3] = ["billing", "returns", "tech"];

/// The strategies the `general` queue runs with, one per run (and another after a reload).
const STRATEGIES: [&str; 4] = [
    "longest_idle",
    "least_occupied",
    "round_robin",
    "best_skill_match",
];

fn policy(general: &str) -> Policy {
    let p: Policy = toml::from_str(&format!(
        r#"
        sticky_for = "5m"
        max_missed_offers = 2
        [queues.general]
        strategy = "{general}"
        [queues.vip]
        strategy = "best_skill_match"
        service_level_threshold = "20s"
        aging = 2.0
        [[queues.vip.relaxation]]
        after = "20s"
        lower_min_level_by = 2
        [[queues.vip.relaxation]]
        after = "40s"
        fallback_languages = ["en"]
        [[queues.vip.relaxation]]
        after = "60s"
        overflow_to = "general"
        "#
    ))
    .unwrap();
    p.validate().unwrap();
    p
}

/// Per-agent channel capacity, fixed for the whole run (profiles never lower it here).
fn capacity(agent: usize) -> BTreeMap<String, u16> {
    let mut m = BTreeMap::new();
    m.insert("chat".to_string(), 1 + (agent % 3) as u16);
    if agent % 2 == 1 {
        m.insert("voice".to_string(), 0);
    }
    m
}

#[derive(Debug, Clone)]
enum Op {
    Profile {
        agent: usize,
        levels: [u8; 3],
        langs: Vec<usize>,
        vip_only: bool,
    },
    State {
        agent: usize,
        state: u8,
    },
    Create {
        contact: usize,
        channel: usize,
        lang: usize,
        queue: usize,
        need: [u8; 3],
        priority: i32,
        preferred: Option<usize>,
        customer: usize,
        early_ms: u64,
    },
    Accept(usize),
    Reject(usize),
    Abandon(usize),
    Complete(usize),
    WrapupDone(usize),
    Update {
        contact: usize,
        priority: i32,
        queue: Option<usize>,
    },
    Advance(u64),
    StaleAnswer(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..AGENTS, prop::array::uniform3(0u8..=10), prop::collection::vec(0..LANGS.len(), 1..3), any::<bool>())
            .prop_map(|(agent, levels, langs, vip_only)| Op::Profile { agent, levels, langs, vip_only }),
        3 => (0..AGENTS, 0u8..4).prop_map(|(agent, state)| Op::State { agent, state }),
        5 => (0..CONTACTS, 0..CHANNELS.len(), 0..LANGS.len(), 0..QUEUES.len(), prop::array::uniform3(0u8..=8),
              0i32..3, prop::option::weighted(0.2, 0..AGENTS), 0usize..5, 0u64..3000)
            .prop_map(|(contact, channel, lang, queue, need, priority, preferred, customer, early_ms)| Op::Create {
                contact, channel, lang, queue, need, priority, preferred, customer, early_ms }),
        4 => (0usize..8).prop_map(Op::Accept),
        2 => (0usize..8).prop_map(Op::Reject),
        1 => (0..CONTACTS).prop_map(Op::Abandon),
        3 => (0..CONTACTS).prop_map(Op::Complete),
        1 => (0..AGENTS).prop_map(Op::WrapupDone),
        1 => (0..CONTACTS, 0i32..4, prop::option::of(0..QUEUES.len()))
            .prop_map(|(contact, priority, queue)| Op::Update { contact, priority, queue }),
        3 => (0u64..45_000).prop_map(Op::Advance),
        1 => (0usize..8).prop_map(Op::StaleAnswer),
    ]
}

/// What the test knows from the events it sent and the outputs it saw.
#[derive(Default)]
struct Model {
    profiles: BTreeMap<String, AgentProfile>,
    available: BTreeSet<String>,
    contacts: BTreeMap<String, ContactCreated>,
    /// contact → (assignment id, agent) of the open offer.
    open: BTreeMap<String, (String, String)>,
    in_service: BTreeSet<String>,
    missed_by: BTreeMap<String, BTreeSet<String>>,
}

fn primary(tag: &str) -> String {
    tag.split('-').next().unwrap_or(tag).to_ascii_lowercase()
}

fn speaks(agent_tag: &str, wanted: &str) -> bool {
    let (a, w) = (agent_tag.to_ascii_lowercase(), wanted.to_ascii_lowercase());
    a == w || a == primary(&w) || w == primary(&a)
}

impl Model {
    fn check_offer(&self, o: &omniroute::engine::Offer) -> Result<(), String> {
        let c = self
            .contacts
            .get(o.contact_id.as_str())
            .ok_or("offer for unknown contact")?;
        let p = self
            .profiles
            .get(o.agent_id.as_str())
            .ok_or("offer to unknown agent")?;
        if !self.available.contains(o.agent_id.as_str()) {
            return Err(format!(
                "{} offered to unavailable {}",
                o.contact_id, o.agent_id
            ));
        }
        if self.open.contains_key(o.contact_id.as_str())
            || self.in_service.contains(o.contact_id.as_str())
        {
            return Err(format!("{} offered twice at once", o.contact_id));
        }
        if self
            .missed_by
            .get(o.contact_id.as_str())
            .is_some_and(|m| m.contains(o.agent_id.as_str()))
        {
            return Err(format!(
                "{} offered again to {} who missed it",
                o.contact_id, o.agent_id
            ));
        }
        // Steps of the vip queue in force at this wait: 20 s, 40 s, 60 s.
        let steps = if c.queue.as_deref() == Some("vip") {
            [20_000, 40_000, 60_000]
                .iter()
                .filter(|&&t| o.wait_ms >= t)
                .count() as u32
        } else {
            0
        };
        if o.why.relaxation_step != steps {
            return Err(format!(
                "relaxation step {} at wait {}",
                o.why.relaxation_step, o.wait_ms
            ));
        }
        let lower = if steps >= 1 { 2 } else { 0 };
        for (skill, min) in &c.required_skills {
            let have = p.skills.get(skill).copied().unwrap_or(0);
            if have < min.saturating_sub(lower).max(1) {
                return Err(format!(
                    "{} lacks {skill}>={min} for {}",
                    o.agent_id, o.contact_id
                ));
            }
        }
        let lang_ok = p.languages.iter().any(|l| speaks(l, &c.language))
            || (steps >= 2 && p.languages.iter().any(|l| speaks(l, "en")));
        if !lang_ok {
            return Err(format!("{} does not speak {}", o.agent_id, c.language));
        }
        let queue = c.queue.clone().unwrap_or_else(|| "general".into());
        let queue_ok = p.queues.is_empty()
            || p.queues.contains(&queue)
            || (steps >= 3 && p.queues.iter().any(|q| q == "general"));
        if !queue_ok {
            return Err(format!("{} does not serve {queue}", o.agent_id));
        }
        if p.capacity.get(&c.channel) == Some(&0) {
            return Err(format!("{} does not work {}", o.agent_id, c.channel));
        }
        Ok(())
    }

    /// Applies the outputs of one step, checking each offer first.
    fn see(&mut self, out: &[Output]) -> Result<(), String> {
        for o in out {
            match o {
                Output::Offer(o) => {
                    self.check_offer(o)?;
                    self.open.insert(
                        o.contact_id.to_string(),
                        (o.assignment_id.clone(), o.agent_id.to_string()),
                    );
                }
                Output::OfferWithdrawn(w) => {
                    let open = self.open.remove(w.contact_id.as_str());
                    if open.as_ref().map(|o| &o.0) != Some(&w.assignment_id) {
                        return Err(format!("withdrawn {} was not open", w.assignment_id));
                    }
                    if w.reason == "rejected" || w.reason == "timeout" {
                        self.missed_by
                            .entry(w.contact_id.to_string())
                            .or_default()
                            .insert(w.agent_id.to_string());
                    }
                }
                Output::AgentAway(a) => {
                    self.available.remove(a.agent_id.as_str());
                }
            }
        }
        Ok(())
    }
}

fn event(seq: &mut u64, ts: u64, body: Body) -> Event {
    *seq += 1;
    Event {
        id: format!("e{seq}"),
        tenant: "t".into(),
        ts,
        body,
    }
}

/// How a run's policy goes: the `general` queue's strategy at the start, and the one a reload
/// brings before op `at` (the engine's optional pool orders are rebuilt then).
#[derive(Debug, Clone, Copy)]
struct Plan {
    first: usize,
    then: usize,
    at: usize,
}

/// Runs the ops, checking every property after each step; returns the serialised outputs.
fn run(ops: &[Op], clone_at: Option<usize>, plan: Plan) -> Result<String, TestCaseError> {
    let mut engine = Engine::new("t", Arc::new(policy(STRATEGIES[plan.first])));
    let mut m = Model::default();
    let mut now = T0;
    let mut seq = 0;
    let mut log = String::new();
    for (i, op) in ops.iter().enumerate() {
        if clone_at == Some(i) {
            engine = engine.clone();
        }
        if plan.at == i {
            engine.set_policy(Arc::new(policy(STRATEGIES[plan.then])));
        }
        let open: Vec<(String, (String, String))> =
            m.open.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        let body = match op.clone() {
            Op::Profile {
                agent,
                levels,
                langs,
                vip_only,
            } => {
                let p = AgentProfile {
                    agent_id: format!("a{agent}"),
                    skills: SKILLS
                        .iter()
                        .zip(levels)
                        .filter(|(_, l)| *l > 0)
                        .map(|(s, l)| (s.to_string(), l))
                        .collect(),
                    languages: langs.iter().map(|&l| LANGS[l].to_string()).collect(),
                    capacity: capacity(agent),
                    queues: if vip_only { vec!["vip".into()] } else { vec![] },
                };
                Some(Body::AgentProfile(p))
            }
            Op::State { agent, state } => Some(Body::AgentState(AgentStateChange {
                agent_id: format!("a{agent}"),
                state: match state {
                    0 => AgentState::Offline,
                    1 => AgentState::Away,
                    _ => AgentState::Available,
                },
                reason: None,
            })),
            Op::Create {
                contact,
                channel,
                lang,
                queue,
                need,
                priority,
                preferred,
                customer,
                ..
            } => Some(Body::ContactCreated(ContactCreated {
                contact_id: format!("c{contact}"),
                channel: CHANNELS[channel].into(),
                customer_id: format!("cu{customer}"),
                language: LANGS[lang].into(),
                queue: (queue == 1).then(|| QUEUES[queue].to_string()),
                required_skills: SKILLS
                    .iter()
                    .zip(need)
                    .filter(|(_, l)| *l > 0)
                    .map(|(s, l)| (s.to_string(), l))
                    .collect(),
                preferred_skills: BTreeMap::new(),
                priority,
                preferred_agent: preferred.map(|a| format!("a{a}")),
                handoff: None,
            })),
            Op::Accept(k) | Op::Reject(k) if !open.is_empty() => {
                let (contact, (assignment, agent)) = open[k % open.len()].clone();
                let a = OfferAnswer {
                    assignment_id: assignment,
                    agent_id: agent,
                    contact_id: contact,
                    reason: None,
                };
                Some(if matches!(op, Op::Accept(_)) {
                    Body::OfferAccepted(a)
                } else {
                    Body::OfferRejected(a)
                })
            }
            Op::Accept(_) | Op::Reject(_) => None,
            Op::StaleAnswer(k) => Some(Body::OfferAccepted(OfferAnswer {
                assignment_id: format!("c{}#{}", k % CONTACTS, 1 + k % 3),
                agent_id: format!("a{}", k % AGENTS),
                contact_id: format!("c{}", k % CONTACTS),
                reason: None,
            })),
            Op::Abandon(c) => Some(Body::ContactAbandoned(ContactRef {
                contact_id: format!("c{c}"),
            })),
            Op::Complete(c) => Some(Body::ContactCompleted(ContactCompleted {
                contact_id: format!("c{c}"),
                agent_id: None,
            })),
            Op::WrapupDone(a) => Some(Body::AgentWrapupDone(WrapupDone {
                agent_id: format!("a{a}"),
                contact_id: None,
            })),
            Op::Update {
                contact,
                priority,
                queue,
            } => Some(Body::ContactUpdated(ContactUpdated {
                contact_id: format!("c{contact}"),
                priority: Some(priority),
                required_skills: None,
                preferred_skills: None,
                queue: queue.map(|q| QUEUES[q].to_string()),
                language: None,
            })),
            Op::Advance(ms) => {
                now += ms;
                None
            }
        };
        let mut out = Vec::new();
        let result = match &body {
            Some(body) => {
                let ts = match op {
                    Op::Create { early_ms, .. } => now - early_ms,
                    _ => now,
                };
                let ev = event(&mut seq, ts, body.clone());
                // Timers due by `now` fire inside `handle` before the event: see them first.
                engine.tick(now, &mut out);
                m.see(&out).map_err(TestCaseError::fail)?;
                log.push_str(&serde_json::to_string(&out).unwrap());
                out.clear();
                let r = engine.handle(now, &ev, &mut out);
                if let (Ok(()), Some(Body::AgentState(s))) = (&r, Some(body)) {
                    if s.state == AgentState::Available {
                        m.available.insert(s.agent_id.clone());
                    } else {
                        m.available.remove(&s.agent_id);
                    }
                }
                r.map_err(|e| e.reason())
            }
            None => {
                engine.tick(now, &mut out);
                Ok(())
            }
        };
        // The model learns what the event did before checking the offers it caused.
        if let (Ok(()), Some(body)) = (&result, &body) {
            match body {
                Body::AgentProfile(p) => {
                    m.profiles.insert(p.agent_id.clone(), p.clone());
                }
                Body::ContactCreated(c) => {
                    m.contacts.insert(c.contact_id.clone(), c.clone());
                }
                Body::ContactUpdated(u) => {
                    if let Some(c) = m.contacts.get_mut(&u.contact_id) {
                        if let Some(q) = &u.queue {
                            if c.queue.as_deref().unwrap_or("general") != q {
                                m.missed_by.remove(&u.contact_id);
                            }
                            c.queue = Some(q.clone());
                        }
                    }
                }
                Body::OfferAccepted(a) => {
                    m.open.remove(&a.contact_id);
                    m.in_service.insert(a.contact_id.clone());
                }
                Body::ContactAbandoned(c) => {
                    m.contacts.remove(&c.contact_id);
                    m.missed_by.remove(&c.contact_id);
                }
                Body::ContactCompleted(c) => {
                    m.contacts.remove(&c.contact_id);
                    m.in_service.remove(&c.contact_id);
                    m.missed_by.remove(&c.contact_id);
                }
                _ => {}
            }
        }
        m.see(&out).map_err(TestCaseError::fail)?;
        // A withdrawn contact may be offered again within the same step; `see` handles order.
        if let Err(e) = engine.audit() {
            return Err(TestCaseError::fail(format!("after {op:?}: {e}")));
        }
        log.push_str(&format!("{result:?}"));
        log.push_str(&serde_json::to_string(&out).unwrap());
    }
    Ok(log)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    #[test]
    fn random_sequences_keep_every_invariant(
        ops in prop::collection::vec(op(), 1..120),
        first in 0..STRATEGIES.len(),
        then in 0..STRATEGIES.len(),
        at in 0usize..120,
    ) {
        let plan = Plan { first, then, at };
        let once = run(&ops, None, plan)?;
        let again = run(&ops, Some(ops.len() / 2), plan)?;
        prop_assert_eq!(once, again);
    }
}
