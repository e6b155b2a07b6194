//! The synthetic omnichannel workload: tenants, agents with skill and language mixes, contacts on
//! every channel, and the agent desktops' answers to offers (accept, reject, complete, wrap-up),
//! abandons and agent state changes.
//!
//! Deterministic for a seed: the same offers fed back give the same events. Time is passed in,
//! so the same generator drives both the live run (offers read back from Kafka) and the
//! pre-recorded stream (offers predicted by a local engine).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use crate::event::{
    AgentProfile, AgentState, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef,
    Event, Millis, OfferAnswer, WrapupDone,
};

/// Every built-in channel, so that all channel policies are exercised.
pub(crate) const CHANNELS: [&str; 8] = [
    "voice",
    "chat",
    "email",
    "whatsapp",
    "messenger",
    "twitter",
    "sms",
    "webform",
];
const SKILLS: [&str; 6] = [
    "billing", "returns", "tech", "sales", "shipping", "warranty",
];
/// Contact languages with their share in percent (Latin-American shops).
const CONTACT_LANGS: [(&str, u64); 4] = [("es-MX", 45), ("es-AR", 15), ("pt-BR", 30), ("en", 10)];

/// A small, fast, seedable generator (SplitMix64); quality is ample for a workload mix.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        let unit = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < p
    }
}

/// The knobs of the workload.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// Prefix of every id, so that runs against one broker never collide.
    pub(crate) run: String,
    pub(crate) tenants: u32,
    pub(crate) agents_per_tenant: u32,
    /// Share of offers accepted; the rest are rejected.
    pub(crate) accept: f64,
    /// Share of contacts the customer abandons after `abandon_after_ms`.
    pub(crate) abandon: f64,
    pub(crate) abandon_after_ms: u64,
    /// Desktop reaction time to an offer.
    pub(crate) answer_ms: u64,
    /// Handle time from accept to `contact.completed`.
    pub(crate) handle_ms: u64,
    /// From completion to `agent.wrapup_done`.
    pub(crate) wrapup_ms: u64,
    /// Agents going away (and back after `away_ms`) per contact created.
    pub(crate) away_per_contact: f64,
    pub(crate) away_ms: u64,
}

/// A follow-up the desktops or customers will send later.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Pending {
    Answer {
        tenant: u32,
        assignment_id: String,
        agent_id: String,
        contact_id: String,
        accept: bool,
    },
    Complete {
        tenant: u32,
        contact_id: String,
        agent_id: String,
    },
    WrapupDone {
        tenant: u32,
        agent_id: String,
        contact_id: String,
    },
    Abandon {
        tenant: u32,
        contact_id: String,
    },
    AgentBack {
        tenant: u32,
        agent_id: String,
    },
}

/// Counts of generated events by kind, for the report.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mix {
    pub(crate) profiles: u64,
    pub(crate) states: u64,
    pub(crate) created: u64,
    pub(crate) accepted: u64,
    pub(crate) rejected: u64,
    pub(crate) completed: u64,
    pub(crate) wrapups: u64,
    pub(crate) abandoned: u64,
}

impl Mix {
    pub(crate) fn total(&self) -> u64 {
        self.profiles
            + self.states
            + self.created
            + self.accepted
            + self.rejected
            + self.completed
            + self.wrapups
            + self.abandoned
    }
}

pub(crate) struct Workload {
    shape: Shape,
    rng: Rng,
    next_event: u64,
    next_contact: u64,
    /// (due, order) → follow-up; `order` keeps equal due times in creation order.
    scheduled: BinaryHeap<Reverse<(Millis, u64, Pending)>>,
    next_order: u64,
    tenant_names: Vec<String>,
    pub(crate) mix: Mix,
}

impl Workload {
    pub(crate) fn new(shape: Shape, seed: u64) -> Self {
        let tenant_names = (0..shape.tenants)
            .map(|i| format!("{}-t{i:03}", shape.run))
            .collect();
        Workload {
            shape,
            rng: Rng::new(seed),
            next_event: 0,
            next_contact: 0,
            scheduled: BinaryHeap::new(),
            next_order: 0,
            tenant_names,
            mix: Mix::default(),
        }
    }

    /// Tenant index of a tenant name of this run.
    pub(crate) fn tenant_index(&self, name: &str) -> Option<u32> {
        let rest = name.strip_prefix(&self.shape.run)?.strip_prefix("-t")?;
        rest.parse().ok().filter(|t| *t < self.shape.tenants)
    }

    /// The contact sequence number inside a contact id of this run.
    pub(crate) fn contact_seq(&self, contact_id: &str) -> Option<u64> {
        contact_id
            .strip_prefix(&self.shape.run)?
            .strip_prefix("-c")?
            .parse()
            .ok()
    }

    pub(crate) fn contacts_created(&self) -> u64 {
        self.next_contact
    }

    fn event(&mut self, tenant: u32, ts: Millis, body: Body) -> Event {
        self.next_event += 1;
        Event {
            id: format!("{}-e{}", self.shape.run, self.next_event),
            tenant: self.tenant_names[tenant as usize].clone(),
            ts,
            body,
        }
    }

    fn schedule(&mut self, due: Millis, p: Pending) {
        self.next_order += 1;
        self.scheduled.push(Reverse((due, self.next_order, p)));
    }

    /// Every agent's profile followed by `agent.state available`.
    pub(crate) fn agents(&mut self, ts: Millis) -> Vec<Event> {
        let mut out = Vec::new();
        for t in 0..self.shape.tenants {
            for a in 0..self.shape.agents_per_tenant {
                let agent_id = format!("a{a}");
                // Three of the six skills at levels 3–10; everyone speaks Spanish, most also
                // Portuguese or English.
                let mut skills = BTreeMap::new();
                while skills.len() < 3 {
                    let s = SKILLS[self.rng.below(SKILLS.len() as u64) as usize];
                    skills.insert(s.to_string(), 3 + self.rng.below(8) as u8);
                }
                let mut languages = vec!["es".to_string()];
                if self.rng.chance(0.6) {
                    languages.push("pt".to_string());
                }
                if self.rng.chance(0.5) {
                    languages.push("en".to_string());
                }
                let profile = Body::AgentProfile(AgentProfile {
                    agent_id: agent_id.clone(),
                    skills,
                    languages,
                    capacity: BTreeMap::new(),
                    queues: Vec::new(),
                });
                out.push(self.event(t, ts, profile));
                let state = Body::AgentState(AgentStateChange {
                    agent_id,
                    state: AgentState::Available,
                    reason: None,
                });
                out.push(self.event(t, ts, state));
                self.mix.profiles += 1;
                self.mix.states += 1;
            }
        }
        out
    }

    /// One new contact (and, now and then, an agent going away). Returns the contact's sequence
    /// number.
    pub(crate) fn contact(&mut self, ts: Millis, out: &mut Vec<Event>) -> u64 {
        let seq = self.next_contact;
        self.next_contact += 1;
        let t = self.rng.below(u64::from(self.shape.tenants)) as u32;
        let contact_id = format!("{}-c{seq}", self.shape.run);
        let channel = CHANNELS[self.rng.below(CHANNELS.len() as u64) as usize];
        let mut pick = self.rng.below(100);
        let mut language = CONTACT_LANGS[0].0;
        for (l, share) in CONTACT_LANGS {
            if pick < share {
                language = l;
                break;
            }
            pick -= share;
        }
        let mut required_skills = BTreeMap::new();
        required_skills.insert(
            SKILLS[self.rng.below(SKILLS.len() as u64) as usize].to_string(),
            1 + self.rng.below(3) as u8,
        );
        let queue = self.rng.chance(0.2).then(|| "sales".to_string());
        let created = Body::ContactCreated(ContactCreated {
            contact_id: contact_id.clone(),
            channel: channel.to_string(),
            customer_id: format!("cu{}", self.rng.below(1_000_000)),
            language: language.to_string(),
            queue,
            required_skills,
            preferred_skills: BTreeMap::new(),
            priority: self.rng.below(3) as i32,
            preferred_agent: None,
            handoff: None,
        });
        let e = self.event(t, ts, created);
        out.push(e);
        self.mix.created += 1;
        if self.rng.chance(self.shape.abandon) {
            self.schedule(
                ts + self.shape.abandon_after_ms,
                Pending::Abandon {
                    tenant: t,
                    contact_id,
                },
            );
        }
        if self.rng.chance(self.shape.away_per_contact) {
            let a = self.rng.below(u64::from(self.shape.agents_per_tenant));
            let agent_id = format!("a{a}");
            let body = Body::AgentState(AgentStateChange {
                agent_id: agent_id.clone(),
                state: AgentState::Away,
                reason: Some("break".into()),
            });
            let e = self.event(t, ts, body);
            out.push(e);
            self.mix.states += 1;
            self.schedule(
                ts + self.shape.away_ms,
                Pending::AgentBack {
                    tenant: t,
                    agent_id,
                },
            );
        }
        seq
    }

    /// An offer came back: the agent's desktop will answer it.
    pub(crate) fn on_offer(
        &mut self,
        now: Millis,
        tenant: u32,
        assignment_id: &str,
        agent_id: &str,
        contact_id: &str,
    ) {
        let accept = self.rng.chance(self.shape.accept);
        self.schedule(
            now + self.shape.answer_ms,
            Pending::Answer {
                tenant,
                assignment_id: assignment_id.to_string(),
                agent_id: agent_id.to_string(),
                contact_id: contact_id.to_string(),
                accept,
            },
        );
    }

    /// The engine set an agent away (missed offers): the agent comes back later.
    pub(crate) fn on_agent_away(&mut self, now: Millis, tenant: u32, agent_id: &str) {
        self.schedule(
            now + self.shape.away_ms,
            Pending::AgentBack {
                tenant,
                agent_id: agent_id.to_string(),
            },
        );
    }

    /// When the next follow-up is due.
    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.scheduled.peek().map(|Reverse((due, _, _))| *due)
    }

    /// Follow-ups due at or before `now`, as events stamped `now`.
    pub(crate) fn due(&mut self, now: Millis, out: &mut Vec<Event>) {
        while let Some(Reverse((due, _, _))) = self.scheduled.peek() {
            if *due > now {
                break;
            }
            let Some(Reverse((_, _, p))) = self.scheduled.pop() else {
                break;
            };
            let e = self.follow_up(now, p);
            out.push(e);
        }
    }

    fn follow_up(&mut self, now: Millis, p: Pending) -> Event {
        match p {
            Pending::Answer {
                tenant,
                assignment_id,
                agent_id,
                contact_id,
                accept,
            } => {
                let answer = OfferAnswer {
                    assignment_id,
                    agent_id: agent_id.clone(),
                    contact_id: contact_id.clone(),
                    reason: None,
                };
                if accept {
                    self.mix.accepted += 1;
                    self.schedule(
                        now + self.shape.handle_ms,
                        Pending::Complete {
                            tenant,
                            contact_id,
                            agent_id,
                        },
                    );
                    self.event(tenant, now, Body::OfferAccepted(answer))
                } else {
                    self.mix.rejected += 1;
                    self.event(tenant, now, Body::OfferRejected(answer))
                }
            }
            Pending::Complete {
                tenant,
                contact_id,
                agent_id,
            } => {
                self.mix.completed += 1;
                self.schedule(
                    now + self.shape.wrapup_ms,
                    Pending::WrapupDone {
                        tenant,
                        agent_id: agent_id.clone(),
                        contact_id: contact_id.clone(),
                    },
                );
                let body = Body::ContactCompleted(ContactCompleted {
                    contact_id,
                    agent_id: Some(agent_id),
                });
                self.event(tenant, now, body)
            }
            Pending::WrapupDone {
                tenant,
                agent_id,
                contact_id,
            } => {
                self.mix.wrapups += 1;
                // Naming the contact ends exactly its wrap-up (an agent may wrap up several).
                let body = Body::AgentWrapupDone(WrapupDone {
                    agent_id,
                    contact_id: Some(contact_id),
                });
                self.event(tenant, now, body)
            }
            Pending::Abandon { tenant, contact_id } => {
                self.mix.abandoned += 1;
                self.event(
                    tenant,
                    now,
                    Body::ContactAbandoned(ContactRef { contact_id }),
                )
            }
            Pending::AgentBack { tenant, agent_id } => {
                self.mix.states += 1;
                let body = Body::AgentState(AgentStateChange {
                    agent_id,
                    state: AgentState::Available,
                    reason: None,
                });
                self.event(tenant, now, body)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            run: "r1".into(),
            tenants: 3,
            agents_per_tenant: 4,
            accept: 0.5,
            abandon: 0.5,
            abandon_after_ms: 1000,
            answer_ms: 10,
            handle_ms: 100,
            wrapup_ms: 5,
            away_per_contact: 0.1,
            away_ms: 50,
        }
    }

    #[test]
    fn generated_events_decode_and_ids_round_trip() {
        let mut w = Workload::new(shape(), 7);
        let mut events = w.agents(1_000);
        assert_eq!(events.len(), 3 * 4 * 2);
        let mut seen_channels = std::collections::BTreeSet::new();
        for i in 0..400 {
            let seq = w.contact(1_000 + i, &mut events);
            assert_eq!(seq, i);
        }
        for e in &events {
            let bytes = serde_json::to_vec(e).unwrap();
            let back = crate::event::decode(&bytes, 64 * 1024).unwrap();
            assert_eq!(&back, e);
            if let Body::ContactCreated(c) = &e.body {
                seen_channels.insert(c.channel.clone());
                assert_eq!(w.contact_seq(&c.contact_id).map(|s| s < 400), Some(true));
                assert!(w.tenant_index(&e.tenant).is_some());
            }
        }
        assert_eq!(seen_channels.len(), CHANNELS.len(), "all channels used");
        assert_eq!(w.contact_seq("other-c5"), None);
        assert_eq!(w.tenant_index("r1-t003"), None, "only 3 tenants");
    }

    #[test]
    fn answers_follow_offers_in_time_order() {
        let mut w = Workload::new(shape(), 1);
        for i in 0..40 {
            w.on_offer(100, 0, &format!("r1-c{i}#1"), "a1", &format!("r1-c{i}"));
        }
        let mut out = Vec::new();
        w.due(109, &mut out);
        assert!(out.is_empty(), "answers come after answer_ms");
        w.due(110, &mut out);
        assert_eq!(out.len(), 40);
        let accepted = out
            .iter()
            .filter(|e| matches!(e.body, Body::OfferAccepted(_)))
            .count() as u64;
        assert_eq!(accepted, w.mix.accepted);
        assert!(accepted > 5 && accepted < 35, "{accepted}");
        out.clear();
        // Accepted offers complete after the handle time, then wrap-up ends.
        w.due(210, &mut out);
        assert_eq!(out.len() as u64, accepted);
        out.clear();
        w.due(215, &mut out);
        assert!(out
            .iter()
            .all(|e| matches!(e.body, Body::AgentWrapupDone(_))));
        assert_eq!(out.len() as u64, accepted);
        assert_eq!(w.next_due(), None);
    }
}
