//! The routing engine: one routing domain (tenant) as a deterministic state machine.
//!
//! No I/O, no clock, no async: time comes in as `now` (epoch ms), so the same events at the same
//! times give byte-identical outputs. The daemon, the tests, the benches and the simulator all
//! drive this one engine through [`Engine::handle`] and [`Engine::tick`].
//!
//! API contract (stable; the rest of the crate builds on it):
//! - `Engine::new(tenant, policy)`; `set_policy` swaps policy on reload, keeping state.
//! - `handle(now, &event, &mut out)` applies one event, appends outputs, and returns
//!   `Err(Ignored)` when the event was not applied (duplicate, unknown contact, …) — never panics.
//! - `tick(now, &mut out)` fires timers due at or before `now` (offer timeouts, wrap-up ends,
//!   relaxation steps); `next_deadline()` says when the next one is due.
//! - `sla_snapshot(now)` returns per-queue/channel SLA figures; `stats()` gives sizes.

mod agents;
mod audit;
mod contacts;
mod dedup;
mod lifecycle;
mod names;
pub mod policy;
mod room;
mod routing;
pub mod sla;
mod tables;
mod timers;

use std::collections::VecDeque;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::event::{Event, Handoff, Millis};
/// Ids as 128-bit fingerprints (XXH3-128), for maps that need not keep the id itself.
pub(crate) use dedup::fingerprint;
pub use names::{Name, SkillLevels};
pub use policy::{Policy, Strategy};
pub use sla::{SlaFigures, SlaSnapshot};

/// One output of the engine. Serialised with a `type` tag onto `omniroute.assignments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
#[allow(clippy::large_enum_variant)] // offers dominate; boxing them would cost an allocation each
pub enum Output {
    /// An offer of one contact to one agent.
    #[serde(rename = "offer")]
    Offer(Offer),
    /// An earlier offer no longer stands (timed out, abandoned, transferred, agent went away).
    #[serde(rename = "offer.withdrawn")]
    OfferWithdrawn(OfferWithdrawn),
    /// The engine set an agent away (too many missed offers in a row).
    #[serde(rename = "agent.away")]
    AgentAway(AgentAway),
}

impl Output {
    /// The assignment id this output concerns, if any.
    pub fn assignment_id(&self) -> Option<&str> {
        match self {
            Output::Offer(o) => Some(&o.assignment_id),
            Output::OfferWithdrawn(w) => Some(&w.assignment_id),
            Output::AgentAway(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    /// Deterministic: `{contact_id}#{attempt}`. Unique within a tenant.
    pub assignment_id: String,
    pub tenant: Name,
    pub contact_id: Name,
    pub agent_id: Name,
    pub customer_id: Name,
    pub channel: Name,
    /// The queue the contact waits in (after any transfer).
    pub queue: Name,
    pub language: Name,
    pub priority: i32,
    /// When the offer was made.
    pub offered_at: Millis,
    /// When an unanswered offer becomes a miss.
    pub expires_at: Millis,
    /// How long the contact had waited when offered.
    pub wait_ms: u64,
    /// 1 for the first offer of this contact, 2 after one miss, …
    pub attempt: u32,
    pub why: Why,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
}

/// `{contact_id}#{attempt}`, without the formatting machinery (one per offer).
fn assignment_id(contact: &str, attempt: u32) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(attempt);
    let mut id = String::with_capacity(contact.len() + 1 + digits.len());
    id.push_str(contact);
    id.push('#');
    id.push_str(digits);
    id
}

/// Why this agent got this contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Why {
    /// `preferred_agent`, `sticky`, or the queue strategy (`longest_idle`, …).
    pub rule: Name,
    /// Required skills matched, with the agent's level for each.
    pub matched_skills: SkillLevels,
    /// Preferred skills the agent has, with the agent's level.
    #[serde(default, skip_serializing_if = "SkillLevels::is_empty")]
    pub matched_preferred: SkillLevels,
    /// The agent's language tag that matched.
    pub language: Name,
    /// True when the match needed a fallback (`es-MX` → `es`, or a relaxation language).
    pub language_fallback: bool,
    /// The strategy's score for the chosen agent (higher is better).
    pub score: f64,
    /// Effective priority of the contact when chosen.
    pub effective_priority: f64,
    /// Number of relaxation steps in force (0 = none).
    pub relaxation_step: u32,
    /// Set when the agent came from an overflow queue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow_from: Option<Name>,
    pub sticky: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferWithdrawn {
    pub assignment_id: String,
    pub tenant: Name,
    pub contact_id: Name,
    pub agent_id: Name,
    pub at: Millis,
    /// `timeout`, `rejected`, `abandoned`, `updated`, `agent_unavailable`.
    pub reason: Name,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAway {
    pub tenant: Name,
    pub agent_id: Name,
    pub at: Millis,
    /// `missed_offers`.
    pub reason: Name,
    pub missed: u32,
}

/// Why an event was not applied. The daemon counts these by [`Ignored::reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Ignored {
    #[error("duplicate event id")]
    Duplicate,
    #[error("event is for tenant {0}, not this domain")]
    WrongTenant(String),
    #[error("unknown contact {0}")]
    UnknownContact(String),
    #[error("contact {0} already exists")]
    ContactExists(String),
    #[error("unknown agent {0}")]
    UnknownAgent(String),
    #[error("unknown channel {0}")]
    UnknownChannel(String),
    #[error("no such offer {0} for that agent and contact")]
    UnknownOffer(String),
    #[error("event does not fit the current state: {0}")]
    OutOfOrder(String),
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
}

impl Ignored {
    /// Stable, low-cardinality code for metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            Ignored::Duplicate => "duplicate",
            Ignored::WrongTenant(_) => "wrong_tenant",
            Ignored::UnknownContact(_) => "unknown_contact",
            Ignored::ContactExists(_) => "contact_exists",
            Ignored::UnknownAgent(_) => "unknown_agent",
            Ignored::UnknownChannel(_) => "unknown_channel",
            Ignored::UnknownOffer(_) => "unknown_offer",
            Ignored::OutOfOrder(_) => "out_of_order",
            Ignored::LimitReached(_) => "limit_reached",
        }
    }
}

/// Sizes of one domain, for metrics and memory accounting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineStats {
    pub agents: usize,
    pub agents_available: usize,
    pub contacts_waiting: usize,
    pub offers_open: usize,
    pub contacts_in_service: usize,
}

/// One routing domain: agents, contacts, waiting lines, offers and timers.
///
/// Layout of the state (each part in its own module):
/// - `tables`: interned names and the policy resolved to dense tables;
/// - `agents`: agents, their load, and the pools of available agents per (skill, language);
/// - `contacts`: live contacts and the waiting lines per (queue, channel);
/// - `timers`: offer expiry, wrap-up end, relaxation steps;
/// - `routing`: eligibility and the choice of agent or contact, offers;
/// - `lifecycle`: what each event does.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    tenant: Name,
    #[serde(with = "policy_as_json")]
    policy: Arc<Policy>,
    sla: sla::SlaBook,
    /// Latest processing time seen: `now` is never trusted to be monotonic.
    now: Millis,
    channel_names: tables::Interner,
    channels: Vec<tables::ChannelInfo>,
    queue_names: tables::Interner,
    queues: Vec<tables::QueueInfo>,
    /// Round-robin position per queue: the next agent index to try first.
    rr_cursor: Vec<u32>,
    langs: tables::Languages,
    skills: tables::Interner,
    agent_ids: tables::Interner,
    agents: Vec<agents::Agent>,
    pools: agents::Pools,
    contacts: contacts::Slab,
    contact_ids: FxHashMap<Arc<str>, u32>,
    next_uid: u64,
    next_wrapup: u64,
    lines: contacts::Lines,
    timers: timers::Timers,
    /// Customer → (last agent, last activity), for sticky routing; pruned after `sticky_for`.
    /// Keys are shared with `sticky_fifo` and the contacts (`Arc<str>` serialises as a string).
    sticky: FxHashMap<Arc<str>, (u32, Millis)>,
    sticky_fifo: room::Roomy<VecDeque<(Millis, Arc<str>)>>,
    /// Recently applied event ids (fingerprints), bounded by `limits.dedup_window`.
    seen: dedup::Window,
    counts: Counts,
    /// A policy reload happened: every agent is re-served at the next event or tick.
    sweep_pending: bool,
    /// Rule and reason words of the outputs, shared.
    #[serde(skip)]
    words: tables::Words,
    /// (queue id << 32 | channel id) → SLA book id; a cache, rebuilt as needed.
    #[serde(skip)]
    sla_books: FxHashMap<u64, u32>,
}

/// Running totals, so that `stats()` costs nothing.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
struct Counts {
    available: usize,
    waiting: usize,
    offers_open: usize,
    in_service: usize,
}

impl Engine {
    pub fn new(tenant: impl Into<String>, policy: Arc<Policy>) -> Self {
        let mut e = Engine {
            tenant: Name::from(tenant.into()),
            policy: policy.clone(),
            sla: sla::SlaBook::default(),
            now: 0,
            channel_names: Default::default(),
            channels: Vec::new(),
            queue_names: Default::default(),
            queues: Vec::new(),
            rr_cursor: Vec::new(),
            langs: Default::default(),
            skills: Default::default(),
            agent_ids: Default::default(),
            agents: Vec::new(),
            pools: Default::default(),
            contacts: Default::default(),
            contact_ids: Default::default(),
            next_uid: 0,
            next_wrapup: 0,
            lines: Default::default(),
            timers: Default::default(),
            sticky: Default::default(),
            sticky_fifo: Default::default(),
            seen: Default::default(),
            counts: Counts::default(),
            sweep_pending: false,
            words: Default::default(),
            sla_books: Default::default(),
        };
        e.set_policy(policy);
        e.sweep_pending = false;
        e
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// Swaps the routing policy (reload). State is kept; new rules apply from the next decision,
    /// and at the next event or tick every available agent is offered what it can now serve.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        self.policy = policy;
        self.reload_tables();
        self.sweep_pending = true;
    }

    /// Applies one event at processing time `now`. Timers due by `now` fire first, so the event
    /// sees the state as of `now` (an offer that expired cannot be accepted any more).
    pub fn handle(
        &mut self,
        now: Millis,
        event: &Event,
        out: &mut Vec<Output>,
    ) -> Result<(), Ignored> {
        if event.tenant != self.tenant.as_str() {
            return Err(Ignored::WrongTenant(event.tenant.clone()));
        }
        self.tick(now, out);
        let fingerprint = dedup::fingerprint(&event.id);
        if self.seen.contains(fingerprint) {
            return Err(Ignored::Duplicate);
        }
        self.apply(event, out)?;
        self.seen
            .remember(fingerprint, self.policy.limits.dedup_window);
        Ok(())
    }

    /// Fires every timer due at or before `now`, in (due time, order set) order.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        self.now = self.now.max(now);
        if self.sweep_pending {
            self.sweep_pending = false;
            for ai in 0..self.agents.len() as u32 {
                self.serve_agent(ai, out);
            }
        }
        while let Some(t) = self.timers.pop_due(self.now) {
            self.fire(t, out);
        }
        self.prune_sticky();
    }

    /// When the next timer is due; `tick` at or after it. May name a timer that turns out to
    /// be stale (its offer was answered): ticking then does nothing.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.next_due()
    }

    /// SLA figures as of `now`. Does not move the engine's clock: snapshots are taken at
    /// wall-clock moments that a replay of the input does not see, so they must not change
    /// routing.
    pub fn sla_snapshot(&mut self, now: Millis) -> Vec<SlaSnapshot> {
        let now = self.now.max(now);
        let live = self.live_view();
        self.sla.snapshot(now, &self.tenant, &self.policy, &live)
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats {
            agents: self.agents.len(),
            agents_available: self.counts.available,
            contacts_waiting: self.counts.waiting,
            offers_open: self.counts.offers_open,
            contacts_in_service: self.counts.in_service,
        }
    }

    /// Timers currently set, stale ones included (for memory accounting).
    pub fn timers_len(&self) -> usize {
        self.timers.len()
    }
}

/// The policy skips absent optional fields when serialised, which a non-self-describing
/// snapshot format (bincode) cannot read back; snapshots carry it as its JSON text.
mod policy_as_json {
    use std::sync::Arc;

    use serde::{de::Error as _, ser::Error as _, Deserialize, Deserializer, Serializer};

    use super::Policy;

    pub(super) fn serialize<S: Serializer>(p: &Arc<Policy>, s: S) -> Result<S::Ok, S::Error> {
        let text = serde_json::to_string(p.as_ref()).map_err(S::Error::custom)?;
        s.serialize_str(&text)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Policy>, D::Error> {
        let text = String::deserialize(d)?;
        serde_json::from_str(&text)
            .map(Arc::new)
            .map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn assignment_ids_read_like_format() {
        for (c, a) in [
            ("c1", 0),
            ("contact-7", 1),
            ("x", 10),
            ("", 4_294_967_295),
            ("é#", 99),
        ] {
            assert_eq!(super::assignment_id(c, a), format!("{c}#{a}"));
        }
    }
}
