//! Memory per agent and per waiting contact, measured as resident set size (VmRSS) growth of
//! this process while one engine takes in agents or contacts. Engine only: no Kafka, no daemon.
//!
//! RSS is what an operator sees and sizes machines by; it includes the allocator's overhead and
//! the engine's bookkeeping around each item (indexes, pools, timers, the de-duplication window).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::{Engine, Policy};
use crate::event::{
    AgentProfile, AgentState, AgentStateChange, Body, ContactCreated, Event, Millis,
};

/// The process's resident set size in bytes, from `/proc/self/status`.
pub fn vm_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// One measurement: `items` taken in, `bytes` of RSS growth.
#[derive(Debug, Clone, Copy)]
pub struct Growth {
    pub items: usize,
    pub bytes: u64,
}

impl Growth {
    pub fn per_item(&self) -> f64 {
        self.bytes as f64 / self.items.max(1) as f64
    }
}

fn policy(agents: usize, contacts: usize) -> Arc<Policy> {
    let mut p = Policy::default();
    p.limits.max_agents = p.limits.max_agents.max(agents);
    p.limits.max_contacts = p.limits.max_contacts.max(contacts);
    Arc::new(p)
}

const SKILLS: [&str; 6] = [
    "billing", "returns", "tech", "sales", "shipping", "warranty",
];

fn agent_events(i: usize, ts: Millis) -> [Event; 2] {
    let mut skills = BTreeMap::new();
    for k in 0..3 {
        skills.insert(
            SKILLS[(i + k * 2) % SKILLS.len()].to_string(),
            3 + (i % 8) as u8,
        );
    }
    let agent_id = format!("agent-{i}");
    [
        Event {
            id: format!("p{i}"),
            tenant: "probe".into(),
            ts,
            body: Body::AgentProfile(AgentProfile {
                agent_id: agent_id.clone(),
                skills,
                languages: vec!["es".into(), "pt".into()],
                capacity: BTreeMap::new(),
                queues: Vec::new(),
            }),
        },
        Event {
            id: format!("s{i}"),
            tenant: "probe".into(),
            ts,
            body: Body::AgentState(AgentStateChange {
                agent_id,
                // Away: the agent is fully registered but takes no contact, so the probe
                // measures the agent alone.
                state: AgentState::Away,
                reason: None,
            }),
        },
    ]
}

fn contact_event(i: usize, ts: Millis) -> Event {
    let mut required_skills = BTreeMap::new();
    required_skills.insert(SKILLS[i % SKILLS.len()].to_string(), 1 + (i % 3) as u8);
    Event {
        id: format!("c{i}"),
        tenant: "probe".into(),
        ts,
        body: Body::ContactCreated(ContactCreated {
            contact_id: format!("contact-{i}"),
            channel: crate::loadgen::workload::CHANNELS[i % 8].to_string(),
            customer_id: format!("customer-{i}"),
            language: if i % 3 == 0 { "pt-BR" } else { "es-MX" }.into(),
            queue: None,
            required_skills,
            preferred_skills: BTreeMap::new(),
            priority: (i % 3) as i32,
            preferred_agent: None,
            handoff: None,
        }),
    }
}

/// RSS growth of one engine taking in `n` agents (profile + state each). The engine is handed
/// back: keep it while a later probe measures, or that probe reuses what dropping it frees.
pub fn agents(n: usize) -> (Growth, Engine) {
    let ts = 1_700_000_000_000;
    let mut engine = Engine::new("probe", policy(n, 0));
    let mut out = Vec::new();
    let before = vm_rss().unwrap_or(0);
    for i in 0..n {
        for e in agent_events(i, ts) {
            // Outputs are not kept: none are expected without contacts.
            let _ = engine.handle(ts, &e, &mut out);
            out.clear();
        }
    }
    let after = vm_rss().unwrap_or(0);
    warn_if_short(&engine, n);
    let growth = Growth {
        items: n,
        bytes: after.saturating_sub(before),
    };
    (growth, engine)
}

fn warn_if_short(engine: &Engine, n: usize) {
    let s = engine.stats();
    if s.agents != n {
        tracing::warn!(
            expected = n,
            got = s.agents,
            "memory probe: not every agent was taken in"
        );
    }
}

/// RSS growth of one engine (no agent available) taking in `n` contacts, which all wait.
pub fn waiting_contacts(n: usize) -> Growth {
    let ts = 1_700_000_000_000;
    let mut engine = Engine::new("probe", policy(0, n));
    let mut out = Vec::new();
    let before = vm_rss().unwrap_or(0);
    for i in 0..n {
        let _ = engine.handle(ts, &contact_event(i, ts), &mut out);
        out.clear();
    }
    let after = vm_rss().unwrap_or(0);
    let s = engine.stats();
    if s.contacts_waiting != n {
        tracing::warn!(
            expected = n,
            got = s.contacts_waiting,
            "memory probe: not every contact waits"
        );
    }
    Growth {
        items: s.contacts_waiting.max(1),
        bytes: after.saturating_sub(before),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_read_and_probes_take_every_item_in() {
        assert!(vm_rss().is_some_and(|b| b > 0));
        let mut e = Engine::new("probe", policy(10, 0));
        let mut out = Vec::new();
        for i in 0..10 {
            for ev in agent_events(i, 1) {
                e.handle(1, &ev, &mut out).unwrap();
            }
        }
        assert_eq!(e.stats().agents, 10);
        assert_eq!(e.stats().agents_available, 0);
        let mut e = Engine::new("probe", policy(0, 10));
        for i in 0..10 {
            e.handle(1, &contact_event(i, 1), &mut out).unwrap();
        }
        assert_eq!(e.stats().contacts_waiting, 10);
        assert!(out.is_empty());
    }
}
