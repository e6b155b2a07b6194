//! Agents: profile, state, held work and load, and the pools that index available agents with
//! room by (skill, language) in the order each strategy wants, so that choosing an agent only
//! looks at agents who have the contact's rarest required skill and speak its language.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

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
    /// Stamp of the agent's entries in the pools' idle orders while it is filed without work;
    /// 0 otherwise. Entries with another stamp are dead.
    pub(crate) idle_stamp: u64,
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
            idle_stamp: 0,
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

/// One entry of a pool's idle order: (idle since, agent index, stamp of the idle stint).
pub(crate) type IdleEntry = (Millis, u32, u64);

fn is_idle(key: IdleKey) -> bool {
    key >> 96 == 0
}

/// Available agents with room for more work who have a skill (any level) and speak a language
/// (exact tag), in the two orders the indexed strategies need.
///
/// The `longest_idle` order ([`IdleKey`]) is kept in two parts. Agents without work sit in
/// `idle`, oldest first: an agent becomes idle at the current time, so it almost always joins at
/// the back, and when it leaves (takes work, goes away) its entries are not searched for in
/// every pool — they die, since the agent's `idle_stamp` no longer matches, and are dropped from
/// the front or by an occasional compaction. Agents with work and room sit in `busy`, ordered by
/// the same key. Iterating `idle` (live entries) then `busy` gives exactly the idle-key order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pool {
    idle: VecDeque<IdleEntry>,
    /// Live entries in `idle`.
    idle_live: usize,
    busy: BTreeSet<IdleKey>,
    /// Only in the every-agent pools (skill slot 0): the load changes with every contact, and
    /// keeping one load order per language rather than per skill keeps that update cheap.
    pub(crate) by_load: BTreeSet<LoadKey>,
    /// Agent indices, for round robin's "next after the cursor"; every-agent pools only.
    pub(crate) by_index: BTreeSet<u32>,
}

impl Pool {
    /// Agents in the pool.
    pub(crate) fn len(&self) -> usize {
        self.idle_live + self.busy.len()
    }

    /// The pool in `longest_idle` order (agents without work first, then by idle time, then
    /// index), as idle keys.
    pub(crate) fn by_idle<'a>(&'a self, agents: &'a [Agent]) -> impl Iterator<Item = IdleKey> + 'a {
        self.idle
            .iter()
            .filter(|e| live(agents, e))
            .map(|&(t, i, _)| pack(0, t, i))
            .chain(self.busy.iter().copied())
    }

    /// Whether agent `idx` is in the pool under `key` (for the audit).
    pub(crate) fn holds(&self, key: IdleKey, idx: u32, agents: &[Agent]) -> bool {
        if is_idle(key) {
            let stamp = agents[idx as usize].idle_stamp;
            let entry = ((key >> 32) as Millis, idx, stamp);
            stamp != 0 && self.idle.binary_search(&entry).is_ok()
        } else {
            self.busy.contains(&key)
        }
    }

    /// Live entries counted the slow way (for the audit).
    pub(crate) fn idle_live_counted(&self, agents: &[Agent]) -> (usize, usize) {
        let n = self.idle.iter().filter(|e| live(agents, e)).count();
        (n, self.idle_live)
    }

    fn enter_idle(&mut self, entry: IdleEntry) {
        self.idle_live += 1;
        if self.idle.back().is_none_or(|b| *b < entry) {
            self.idle.push_back(entry);
        } else {
            // Only when an agent keeps an old idle time (a new profile, a reload): in order.
            let at = self.idle.partition_point(|e| *e < entry);
            self.idle.insert(at, entry);
        }
    }

    /// One live entry died: drop dead entries from the front, and compact when most are dead.
    fn leave_idle(&mut self, agents: &[Agent]) {
        self.idle_live -= 1;
        while self.idle.front().is_some_and(|e| !live(agents, e)) {
            self.idle.pop_front();
        }
        if self.idle.len() > 2 * self.idle_live + 16 {
            self.idle.retain(|e| live(agents, e));
        }
    }
}

fn live(agents: &[Agent], e: &IdleEntry) -> bool {
    agents[e.1 as usize].idle_stamp == e.2
}

/// Pools by skill slot (0 = every agent, `skill id + 1` = agents with that skill), then
/// language id (the agent's own tags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pools {
    pools: Vec<Vec<Pool>>,
    /// Last idle stamp handed out (0 = none).
    stamps: u64,
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
    /// `filed` is either empty or exactly the pools of the agent's current skills and
    /// languages ([`unfile`](Self::unfile) runs before a profile changes them), so whether the
    /// memberships change only depends on whether the agent should be filed at all.
    pub(crate) fn refile(&mut self, idx: u32, agents: &mut [Agent], channels: &[ChannelInfo]) {
        let agent = &agents[idx as usize];
        let keys = (agent.idle_key(idx), agent.load_key(idx));
        let file = agent.state == AgentState::Available
            && !agent.languages.is_empty()
            && agent.has_room(channels);
        if file != agent.filed.is_empty() {
            // Same pools: only the orders whose key changed are touched (a load change without
            // going idle or busy leaves the idle order as it is).
            let (old_idle, old_load) = agent.filed_keys;
            let filed = std::mem::take(&mut agents[idx as usize].filed);
            if old_idle != keys.0 {
                self.leave_idle_order(idx, &filed, old_idle, agents);
                self.enter_idle_order(idx, &filed, keys.0, agents);
            }
            if old_load != keys.1 {
                for &(c, p) in filed.iter().filter(|f| f.0 == 0) {
                    let pool = self.get_mut(c, p);
                    pool.by_load.remove(&old_load);
                    pool.by_load.insert(keys.1);
                }
            }
            let agent = &mut agents[idx as usize];
            agent.filed = filed;
            agent.filed_keys = keys;
            return;
        }
        self.unfile(idx, agents);
        let agent = &mut agents[idx as usize];
        agent.filed_keys = keys;
        if !file {
            return;
        }
        let mut filed = std::mem::take(&mut agent.filed);
        let slots = std::iter::once(0).chain(agent.skills.iter().map(|s| s.0 + 1));
        for slot in slots {
            for &l in &agent.languages {
                filed.push((slot, l));
            }
        }
        self.enter_idle_order(idx, &filed, keys.0, agents);
        for &(c, p) in filed.iter().filter(|f| f.0 == 0) {
            let pool = self.get_mut(c, p);
            pool.by_load.insert(keys.1);
            pool.by_index.insert(idx);
        }
        agents[idx as usize].filed = filed;
    }

    /// Takes agent `idx` out of every pool it is filed in (keeps the `filed` allocation).
    pub(crate) fn unfile(&mut self, idx: u32, agents: &mut [Agent]) {
        let (old_idle, old_load) = agents[idx as usize].filed_keys;
        let mut filed = std::mem::take(&mut agents[idx as usize].filed);
        self.leave_idle_order(idx, &filed, old_idle, agents);
        for &(c, p) in filed.iter().filter(|f| f.0 == 0) {
            let pool = self.get_mut(c, p);
            pool.by_load.remove(&old_load);
            pool.by_index.remove(&idx);
        }
        filed.clear();
        agents[idx as usize].filed = filed;
    }

    fn enter_idle_order(
        &mut self,
        idx: u32,
        filed: &[(u32, u32)],
        key: IdleKey,
        agents: &mut [Agent],
    ) {
        if filed.is_empty() {
            return;
        }
        if is_idle(key) {
            self.stamps += 1;
            let stamp = self.stamps;
            agents[idx as usize].idle_stamp = stamp;
            let entry = ((key >> 32) as Millis, idx, stamp);
            for &(c, p) in filed {
                self.get_mut(c, p).enter_idle(entry);
            }
        } else {
            for &(c, p) in filed {
                self.get_mut(c, p).busy.insert(key);
            }
        }
    }

    fn leave_idle_order(
        &mut self,
        idx: u32,
        filed: &[(u32, u32)],
        key: IdleKey,
        agents: &mut [Agent],
    ) {
        if filed.is_empty() {
            return;
        }
        if is_idle(key) {
            agents[idx as usize].idle_stamp = 0;
            for &(c, p) in filed {
                let c = c as usize;
                let pool = &mut self.pools[c][p as usize];
                pool.leave_idle(agents);
            }
        } else {
            for &(c, p) in filed {
                self.get_mut(c, p).busy.remove(&key);
            }
        }
    }
}
