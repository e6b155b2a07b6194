//! Consistency check of the whole engine state, recomputed from scratch. Slow (it tries every
//! waiting contact against every agent); for tests and debugging, never on the hot path.

use std::collections::BTreeMap;

use super::contacts::{line_key, Phase};
use super::tables::FULL_LOAD;
use super::Engine;
use crate::event::AgentState;

impl Engine {
    /// Checks the invariants the engine relies on and promises; the first broken one is
    /// returned as a message. Holds after every `handle` and `tick`:
    /// - every agent's held slots and load equal what its offers, contacts in service and
    ///   wrap-ups add up to; load ≤ one agent; voice (exclusive) alone; per-channel maximum;
    /// - the pools hold exactly the available agents who speak a language, under their current
    ///   keys and stamps;
    /// - waiting lines hold exactly the waiting contacts; counters match;
    /// - no starvation: no waiting contact has an agent that is eligible for it right now;
    /// - the de-duplication window's set and order hold the same fingerprints.
    #[doc(hidden)]
    pub fn audit(&self) -> Result<(), String> {
        self.seen.audit()?;
        let mut held: Vec<BTreeMap<u32, (u16, u32, u16)>> =
            vec![BTreeMap::new(); self.agents.len()];
        let mut pending: Vec<Vec<u32>> = vec![Vec::new(); self.agents.len()];
        let (mut waiting, mut offered, mut serving) = (0, 0, 0);
        for (slot, c) in self.contacts.iter() {
            if self.contact_ids.get(&c.id) != Some(&slot) {
                return Err(format!("contact {} not indexed by id", c.id));
            }
            let excl = u16::from(self.channels[c.channel as usize].exclusive);
            let (agent, units) = match c.phase {
                Phase::Waiting(None) => return Err(format!("contact {} outside any line", c.id)),
                Phase::Waiting(Some(k)) => {
                    waiting += 1;
                    let in_line = self
                        .lines
                        .get(&line_key(
                            c.queue,
                            c.channel,
                            self.langs.primary(c.language),
                        ))
                        .is_some_and(|l| l.contains(&k));
                    if !in_line || k.slot != slot {
                        return Err(format!("contact {} missing from its line", c.id));
                    }
                    continue;
                }
                Phase::Offered { agent, units, .. } => {
                    offered += 1;
                    pending[agent as usize].push(slot);
                    (agent, units)
                }
                Phase::InService { agent, units, .. } => {
                    serving += 1;
                    (agent, units)
                }
            };
            let e = held[agent as usize].entry(c.channel).or_default();
            *e = (e.0 + 1, e.1 + units, e.2 + excl);
        }
        for (ai, a) in self.agents.iter().enumerate() {
            for w in &a.wrapups {
                let excl = u16::from(self.channels[w.channel as usize].exclusive);
                let e = held[ai].entry(w.channel).or_default();
                *e = (e.0 + 1, e.1 + w.units, e.2 + excl);
            }
            let name = self.agent_ids.name(ai as u32);
            let load: u32 = held[ai].values().map(|h| h.1).sum();
            let exclusive: u16 = held[ai].values().map(|h| h.2).sum();
            let count: u16 = held[ai].values().map(|h| h.0).sum();
            if load != a.load || exclusive != a.exclusive {
                return Err(format!("agent {name}: load {} but holds {load}", a.load));
            }
            if load > FULL_LOAD {
                return Err(format!("agent {name} over full load: {load}"));
            }
            if exclusive > 0 && count > 1 {
                return Err(format!("agent {name} holds voice and other work"));
            }
            for (c, info) in self.channels.iter().enumerate() {
                let h = held[ai].get(&(c as u32)).map_or(0, |h| h.0);
                if h != a.held_on(c as u32) {
                    return Err(format!("agent {name}: held count off on channel {c}"));
                }
                if h > a.capacity_on(c as u32) && info.present {
                    return Err(format!("agent {name} over capacity on channel {c}"));
                }
            }
            let mut p = a.pending.to_vec();
            p.sort_unstable();
            if p != pending[ai] {
                return Err(format!("agent {name}: pending offers out of step"));
            }
            let should = a.state == AgentState::Available && !a.languages.is_empty();
            if should == a.filed.is_empty()
                || a.filed_keys != (a.idle_key(ai as u32), a.load_key(ai as u32))
            {
                return Err(format!("agent {name} not filed as its state says"));
            }
            let stamps = self.pools.stamps().get(ai).copied().unwrap_or_default();
            if self.pools.stamps().len() > ai && stamps.takes != a.takes_mask(&self.channels) {
                return Err(format!("agent {name}: channel mask out of step"));
            }
            if self.pools.hot().get(ai) != Some(&super::agents::Hot::of(a)) {
                return Err(format!("agent {name}: hot record out of step"));
            }
            if (!a.filed.is_empty() && a.load == 0) != super::agents::live(stamps.idle)
                || a.filed.is_empty() == super::agents::live(stamps.order)
            {
                return Err(format!("agent {name}: idle stamps out of step"));
            }
            let keep = self.pools.orders();
            for &(c, l) in &a.filed {
                let pool = self.pools.get(c, l).ok_or("missing pool")?;
                let ordered = c != 0
                    || ((!keep.by_index || pool.by_index.contains(&(ai as u32)))
                        && (!keep.by_load
                            || a.load == 0
                            || pool.holds_load(a.load_key(ai as u32))));
                if !ordered || !pool.holds(ai as u32, a, self.pools.stamps()) {
                    return Err(format!("agent {name} missing from pool ({c}, {l})"));
                }
                if c > 0 && a.level(c - 1) == 0 {
                    return Err(format!("agent {name} filed under a skill it lacks"));
                }
            }
        }
        let filed: usize = self.agents.iter().map(|a| a.filed.len()).sum();
        let idle_filed: usize = self
            .agents
            .iter()
            .filter(|a| a.load == 0)
            .map(|a| a.filed.len())
            .sum();
        let (mut pooled, mut pooled_idle) = (0, 0);
        for c in 0..self.pools.slots() as u32 {
            for l in 0..self.langs.len() as u32 {
                let Some(p) = self.pools.get(c, l) else {
                    continue;
                };
                let (idle, counted, kept) = p.live_counted(self.pools.stamps());
                // The optional orders hold every agent of an every-agent pool (with work, for
                // the load order) when kept, and none otherwise.
                let keep = self.pools.orders();
                let (all, loaded) = if c == 0 {
                    (
                        if keep.by_index { p.len() } else { 0 },
                        if keep.by_load {
                            kept.saturating_sub(idle)
                        } else {
                            0
                        },
                    )
                } else {
                    (0, 0)
                };
                if p.loaded() != loaded || p.by_index.len() != all || counted != kept {
                    return Err(format!("pool ({c}, {l}) miscounted"));
                }
                pooled += kept;
                pooled_idle += idle;
            }
        }
        if (filed, idle_filed) != (pooled, pooled_idle) {
            return Err(format!(
                "pools hold {pooled} entries ({pooled_idle} idle), agents filed {filed} ({idle_filed})"
            ));
        }
        let lined: usize = self.lines.values().map(|l| l.len()).sum();
        let available = self
            .agents
            .iter()
            .filter(|a| a.state == AgentState::Available)
            .count();
        let c = self.counts;
        if (lined, waiting, offered, serving, available)
            != (
                c.waiting,
                c.waiting,
                c.offers_open,
                c.in_service,
                c.available,
            )
        {
            return Err(format!(
                "counters off: lines {lined}, waiting {waiting}/{}, offered {offered}/{}, in service {serving}/{}, available {available}/{}",
                c.waiting, c.offers_open, c.in_service, c.available
            ));
        }
        for (_, c) in self.contacts.iter() {
            if !matches!(c.phase, Phase::Waiting(_)) {
                continue;
            }
            let r = self.relax(c);
            for ai in 0..self.agents.len() as u32 {
                if self.eligible(ai, c, &r).is_some() {
                    return Err(format!(
                        "starvation: contact {} waits while agent {} could take it",
                        c.id,
                        self.agent_ids.name(ai)
                    ));
                }
            }
        }
        Ok(())
    }
}
