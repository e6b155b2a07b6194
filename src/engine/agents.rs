//! Agents: profile, state, held work and load, and the pools that index available agents with
//! room by (skill, language) in the order each strategy wants, so that choosing an agent only
//! looks at agents who have the contact's rarest required skill and speak its language.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::tables::{ChannelInfo, FULL_LOAD};
use crate::event::{AgentState, Millis};

/// One agent of the routing domain. Indexed densely by interning order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Agent {
    /// Skill id → level, sorted by skill id.
    pub(crate) skills: Vec<(u32, u8)>,
    /// Language ids, in profile order.
    pub(crate) languages: Vec<u32>,
    /// Queue ids served, sorted; empty means every queue.
    pub(crate) queues: Vec<u32>,
    /// Capacity as the profile gave it (channel name → max), kept to re-resolve on reload.
    pub(crate) capacity_profile: BTreeMap<String, u16>,
    /// Resolved max concurrent contacts per channel id; 0 = does not work that channel.
    pub(crate) capacity: Vec<u16>,
    /// Contacts held per channel id: pending offers (reserved), in service, and wrap-up.
    pub(crate) held: Vec<u16>,
    /// Sum of the load units of everything held; never above [`FULL_LOAD`] by assignment.
    pub(crate) load: u32,
    /// Held contacts of exclusive channels (voice): while > 0 nothing else is offered.
    pub(crate) exclusive: u16,
    pub(crate) state: AgentState,
    /// Since when the agent is idle for `longest_idle`: became available, or its load last
    /// dropped to zero.
    pub(crate) idle_since: Millis,
    /// Offers missed (rejected or timed out) in a row.
    pub(crate) missed: u32,
    /// Contact slots with an offer pending to this agent, oldest first.
    pub(crate) pending: Vec<u32>,
    /// Slots still busy in wrap-up after completion.
    pub(crate) wrapups: Vec<Wrapup>,
    /// Pool memberships and the keys they were filed under, to remove them exactly.
    pub(crate) filed: Vec<(u32, u32)>,
    pub(crate) filed_keys: (IdleKey, LoadKey),
}

/// A wrap-up slot: the contact is completed but the agent's slot stays busy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Wrapup {
    pub(crate) serial: u64,
    pub(crate) contact_id: std::sync::Arc<str>,
    pub(crate) channel: u32,
    pub(crate) units: u32,
}

/// `longest_idle` order: agents without work first, then by idle time, then index. Packed
/// into one integer, most significant first — `busy` (bit 96), idle time (bits 32–95), index
/// (bits 0–31) — so the pools compare one `u128` instead of a tuple.
pub(crate) type IdleKey = u128;
/// `least_occupied` order: lowest load (bits 96–127), then longest idle, then index.
pub(crate) type LoadKey = u128;

/// The agent index a pool key names.
pub(crate) fn agent_of(key: u128) -> u32 {
    key as u32
}

fn pack(high: u32, idle_since: Millis, idx: u32) -> u128 {
    (u128::from(high) << 96) | (u128::from(idle_since) << 32) | u128::from(idx)
}

impl Agent {
    pub(crate) fn new(now: Millis) -> Self {
        Agent {
            skills: Vec::new(),
            languages: Vec::new(),
            queues: Vec::new(),
            capacity_profile: BTreeMap::new(),
            capacity: Vec::new(),
            held: Vec::new(),
            load: 0,
            exclusive: 0,
            state: AgentState::Offline,
            idle_since: now,
            missed: 0,
            pending: Vec::new(),
            wrapups: Vec::new(),
            filed: Vec::new(),
            filed_keys: (0, 0),
        }
    }

    pub(crate) fn level(&self, skill: u32) -> u8 {
        match self.skills.binary_search_by_key(&skill, |s| s.0) {
            Ok(i) => self.skills[i].1,
            Err(_) => 0,
        }
    }

    pub(crate) fn held_on(&self, channel: u32) -> u16 {
        self.held.get(channel as usize).copied().unwrap_or(0)
    }

    pub(crate) fn capacity_on(&self, channel: u32) -> u16 {
        self.capacity.get(channel as usize).copied().unwrap_or(0)
    }

    /// Whether one more contact of `channel` fits: per-channel maximum, total load, and voice
    /// exclusivity (an exclusive contact needs an empty agent and blocks everything else).
    pub(crate) fn can_take(&self, channel: u32, info: &ChannelInfo) -> bool {
        info.present
            && self.held_on(channel) < self.capacity_on(channel)
            && self.exclusive == 0
            && self.load + info.units <= FULL_LOAD
            && (!info.exclusive || self.load == 0)
    }

    /// Room for at least one more contact on some channel.
    pub(crate) fn has_room(&self, channels: &[ChannelInfo]) -> bool {
        channels
            .iter()
            .enumerate()
            .any(|(c, info)| self.can_take(c as u32, info))
    }

    pub(crate) fn serves_queue(&self, queue: u32) -> bool {
        self.queues.is_empty() || self.queues.binary_search(&queue).is_ok()
    }

    pub(crate) fn hold(&mut self, channel: u32, units: u32, exclusive: bool) {
        let c = channel as usize;
        if self.held.len() <= c {
            self.held.resize(c + 1, 0);
        }
        self.held[c] += 1;
        self.load += units;
        if exclusive {
            self.exclusive += 1;
        }
    }

    /// Frees one slot. Returns true when the agent became free of all work.
    pub(crate) fn release(
        &mut self,
        now: Millis,
        channel: u32,
        units: u32,
        exclusive: bool,
    ) -> bool {
        let c = channel as usize;
        if let Some(h) = self.held.get_mut(c) {
            *h = h.saturating_sub(1);
        }
        self.load = self.load.saturating_sub(units);
        if exclusive {
            self.exclusive = self.exclusive.saturating_sub(1);
        }
        if self.load == 0 {
            self.idle_since = self.idle_since.max(now);
            true
        } else {
            false
        }
    }

    pub(crate) fn idle_key(&self, idx: u32) -> IdleKey {
        pack(u32::from(self.load > 0), self.idle_since, idx)
    }

    pub(crate) fn load_key(&self, idx: u32) -> LoadKey {
        pack(self.load, self.idle_since, idx)
    }
}

/// Available agents with room for more work who have a skill (any level) and speak a language
/// (exact tag), in the two orders the indexed strategies need.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pool {
    pub(crate) by_idle: BTreeSet<IdleKey>,
    /// Only in the every-agent pools (skill slot 0): the load changes with every contact, and
    /// keeping one load order per language rather than per skill keeps that update cheap.
    pub(crate) by_load: BTreeSet<LoadKey>,
    /// Agent indices, for round robin's "next after the cursor"; every-agent pools only.
    pub(crate) by_index: BTreeSet<u32>,
}

/// Pools by skill slot (0 = every agent, `skill id + 1` = agents with that skill), then
/// language id (the agent's own tags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pools {
    pools: Vec<Vec<Pool>>,
}

impl Pools {
    pub(crate) fn get(&self, skill_slot: u32, lang: u32) -> Option<&Pool> {
        self.pools.get(skill_slot as usize)?.get(lang as usize)
    }

    pub(crate) fn slots(&self) -> usize {
        self.pools.len()
    }

    fn get_mut(&mut self, skill_slot: u32, lang: u32) -> &mut Pool {
        let c = skill_slot as usize;
        if self.pools.len() <= c {
            self.pools.resize_with(c + 1, Vec::new);
        }
        let row = &mut self.pools[c];
        let l = lang as usize;
        if row.len() <= l {
            row.resize_with(l + 1, Pool::default);
        }
        &mut row[l]
    }

    /// Re-files agent `idx` after any change to its state, load, profile or idle time.
    /// `channels` is the policy's channel table.
    ///
    /// `agent.filed` is either empty or exactly the pools of the agent's current skills and
    /// languages ([`unfile`](Self::unfile) runs before a profile changes them), so whether the
    /// memberships change only depends on whether the agent should be filed at all.
    pub(crate) fn refile(&mut self, idx: u32, agent: &mut Agent, channels: &[ChannelInfo]) {
        let keys = (agent.idle_key(idx), agent.load_key(idx));
        let file = agent.state == AgentState::Available
            && !agent.languages.is_empty()
            && agent.has_room(channels);
        if file != agent.filed.is_empty() {
            // Same pools: only the orders whose key changed are touched (a load change without
            // going idle or busy leaves the idle order as it is).
            let (old_idle, old_load) = agent.filed_keys;
            for &(c, p) in &agent.filed {
                let pool = self.get_mut(c, p);
                if old_idle != keys.0 {
                    pool.by_idle.remove(&old_idle);
                    pool.by_idle.insert(keys.0);
                }
                if old_load != keys.1 && c == 0 {
                    pool.by_load.remove(&old_load);
                    pool.by_load.insert(keys.1);
                }
            }
            agent.filed_keys = keys;
            return;
        }
        self.unfile(idx, agent);
        if !file {
            agent.filed_keys = keys;
            return;
        }
        let mut now_filed = std::mem::take(&mut agent.filed);
        let slots = std::iter::once(0).chain(agent.skills.iter().map(|s| s.0 + 1));
        for slot in slots {
            for &l in &agent.languages {
                now_filed.push((slot, l));
            }
        }
        for &(c, p) in &now_filed {
            let pool = self.get_mut(c, p);
            pool.by_idle.insert(keys.0);
            if c == 0 {
                pool.by_load.insert(keys.1);
                pool.by_index.insert(idx);
            }
        }
        agent.filed = now_filed;
        agent.filed_keys = keys;
    }

    /// Takes agent `idx` out of every pool it is filed in (keeps the `filed` allocation).
    pub(crate) fn unfile(&mut self, idx: u32, agent: &mut Agent) {
        let (old_idle, old_load) = agent.filed_keys;
        for &(c, p) in &agent.filed {
            let pool = self.get_mut(c, p);
            pool.by_idle.remove(&old_idle);
            if c == 0 {
                pool.by_load.remove(&old_load);
                pool.by_index.remove(&idx);
            }
        }
        agent.filed.clear();
    }
}
