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

pub mod policy;
pub mod sla;

use serde::{Deserialize, Serialize};

use crate::event::{Event, Handoff, Millis, Skills};
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
    pub tenant: String,
    pub contact_id: String,
    pub agent_id: String,
    pub customer_id: String,
    pub channel: String,
    /// The queue the contact waits in (after any transfer).
    pub queue: String,
    pub language: String,
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

/// Why this agent got this contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Why {
    /// `preferred_agent`, `sticky`, or the queue strategy (`longest_idle`, …).
    pub rule: String,
    /// Required skills matched, with the agent's level for each.
    pub matched_skills: Skills,
    /// Preferred skills the agent has, with the agent's level.
    #[serde(default, skip_serializing_if = "Skills::is_empty")]
    pub matched_preferred: Skills,
    /// The agent's language tag that matched.
    pub language: String,
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
    pub overflow_from: Option<String>,
    pub sticky: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferWithdrawn {
    pub assignment_id: String,
    pub tenant: String,
    pub contact_id: String,
    pub agent_id: String,
    pub at: Millis,
    /// `timeout`, `rejected`, `abandoned`, `updated`, `agent_unavailable`.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentAway {
    pub tenant: String,
    pub agent_id: String,
    pub at: Millis,
    /// `missed_offers`.
    pub reason: String,
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

/// One routing domain. PLACEHOLDER bodies: the engine issue replaces them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Engine {
    tenant: String,
    policy: std::sync::Arc<Policy>,
    sla: sla::SlaBook,
}

impl Engine {
    pub fn new(tenant: impl Into<String>, policy: std::sync::Arc<Policy>) -> Self {
        Engine {
            tenant: tenant.into(),
            policy,
            sla: sla::SlaBook::default(),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    pub fn policy(&self) -> &std::sync::Arc<Policy> {
        &self.policy
    }

    /// Swaps the routing policy (reload). State is kept; new rules apply from the next decision.
    pub fn set_policy(&mut self, policy: std::sync::Arc<Policy>) {
        self.policy = policy;
    }

    pub fn handle(
        &mut self,
        _now: Millis,
        event: &Event,
        _out: &mut Vec<Output>,
    ) -> Result<(), Ignored> {
        if event.tenant != self.tenant {
            return Err(Ignored::WrongTenant(event.tenant.clone()));
        }
        Ok(())
    }

    pub fn tick(&mut self, _now: Millis, _out: &mut Vec<Output>) {}

    pub fn next_deadline(&self) -> Option<Millis> {
        None
    }

    pub fn sla_snapshot(&mut self, now: Millis) -> Vec<SlaSnapshot> {
        self.sla
            .snapshot(now, &self.tenant, &self.policy, &sla::LiveView::default())
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats::default()
    }
}
