//! Agents: profile, state, held work and load, and the pools that index available agents with
//! room by (skill, language) in the order each strategy wants, so that choosing an agent only
//! looks at agents who have the contact's rarest required skill and speak its language.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use super::room::Roomy;
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
    pub(crate) pending: Roomy<Vec<u32>>,
    /// Slots still busy in wrap-up after completion.
    pub(crate) wrapups: Roomy<Vec<Wrapup>>,
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
            pending: Default::default(),
            wrapups: Default::default(),
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

/// What an agent offers a search, read by every eligibility check: skills with levels,
/// languages and queues served, in one cache line per agent in a dense array beside the pools'
/// stamps, so that checking an agent a search meets reads one line instead of the agent and
/// three vectors. Only an agent whose profile does not fit ([`Hot::INLINE_SKILLS`] skills,
/// [`Hot::INLINE_LANGS`] languages, [`Hot::INLINE_QUEUES`] queues, ids below 2^16) is checked
/// on the agent itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[repr(C, align(64))]
pub(crate) struct Hot {
    /// `skill id << 8 | level`, sorted by skill id.
    skills: [u32; Hot::INLINE_SKILLS],
    langs: [u16; Hot::INLINE_LANGS],
    queues: [u16; Hot::INLINE_QUEUES],
    n_skills: u8,
    n_langs: u8,
    /// 0 = every queue.
    n_queues: u8,
    /// The profile did not fit: read the agent.
    spilled: bool,
}

impl Hot {
    pub(crate) const INLINE_SKILLS: usize = 11;
    pub(crate) const INLINE_LANGS: usize = 4;
    pub(crate) const INLINE_QUEUES: usize = 4;

    /// The record of `agent`'s current profile.
    pub(crate) fn of(agent: &Agent) -> Hot {
        let mut h = Hot::default();
        let small = |id: u32| id < 1 << 16;
        if agent.skills.len() > Hot::INLINE_SKILLS
            || agent.languages.len() > Hot::INLINE_LANGS
            || agent.queues.len() > Hot::INLINE_QUEUES
            || agent.skills.iter().any(|s| !small(s.0))
            || !agent.languages.iter().all(|&l| small(l))
            || !agent.queues.iter().all(|&q| small(q))
        {
            h.spilled = true;
            return h;
        }
        for (d, &(s, l)) in h.skills.iter_mut().zip(&agent.skills) {
            *d = s << 8 | u32::from(l);
        }
        for (d, &l) in h.langs.iter_mut().zip(&agent.languages) {
            *d = l as u16;
        }
        for (d, &q) in h.queues.iter_mut().zip(&agent.queues) {
            *d = q as u16;
        }
        h.n_skills = agent.skills.len() as u8;
        h.n_langs = agent.languages.len() as u8;
        h.n_queues = agent.queues.len() as u8;
        h
    }

    pub(crate) fn spilled(&self) -> bool {
        self.spilled
    }
}

/// The parts of a profile an eligibility check reads, from the agent or its [`Hot`] record.
pub(crate) trait Profile {
    fn level(&self, skill: u32) -> u8;
    fn serves_queue(&self, queue: u32) -> bool;
    /// The agent's `i`th language, in profile order.
    fn language(&self, i: usize) -> Option<u32>;
}

impl Profile for Agent {
    fn level(&self, skill: u32) -> u8 {
        Agent::level(self, skill)
    }
    fn serves_queue(&self, queue: u32) -> bool {
        Agent::serves_queue(self, queue)
    }
    fn language(&self, i: usize) -> Option<u32> {
        self.languages.get(i).copied()
    }
}

impl Profile for Hot {
    fn level(&self, skill: u32) -> u8 {
        self.skills[..usize::from(self.n_skills)]
            .iter()
            .find(|&&s| s >> 8 == skill)
            .map_or(0, |&s| s as u8)
    }
    fn serves_queue(&self, queue: u32) -> bool {
        self.n_queues == 0
            || self.queues[..usize::from(self.n_queues)]
                .iter()
                .any(|&q| u32::from(q) == queue)
    }
    fn language(&self, i: usize) -> Option<u32> {
        (i < usize::from(self.n_langs)).then(|| u32::from(self.langs[i]))
    }
}

/// An agent's stamps in the pools' lazy queues, kept apart from the agents in one dense array
/// (16 bytes an agent), so that checking whether an entry is live does not touch the agent.
///
/// A stamp counts the agent's own entries and exits: odd while the agent is in that order (its
/// entries with this stamp are live), even otherwise. Per agent rather than global, it fits in
/// 32 bits (an agent would have to become idle two billion times to come round, and its dead
/// entries are compacted long before), which keeps both the array and the queue entries small.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Stamps {
    /// Of the agent's entries in the `idle` queues: odd while it is filed without work.
    /// Entries with another stamp are dead.
    pub(crate) idle: u32,
    /// Of the agent's entries in the `order` queues: odd while it is filed.
    pub(crate) order: u32,
    /// Bit `c` set when the agent is available and can take one more contact of channel `c`
    /// (channels 0–63), as of its last change (exact: every change re-computes it): lets a
    /// search pass over agents without room on the contact's channel without touching them.
    pub(crate) takes: u64,
}

impl Agent {
    /// The [`Stamps::takes`] mask: channels (below 64) on which one more contact fits now.
    /// Zero while the agent is not available: no channel takes a contact then.
    pub(crate) fn takes_mask(&self, channels: &[ChannelInfo]) -> u64 {
        if self.state != AgentState::Available {
            return 0;
        }
        channels
            .iter()
            .take(64)
            .enumerate()
            .filter(|&(c, info)| self.can_take(c as u32, info))
            .fold(0, |m, (c, _)| m | (1 << c))
    }
}

/// One entry of a pool's lazy orders: (idle since, agent index, stamp). The entry is live while
/// the agent's stamp for that order is still the entry's.
pub(crate) type IdleEntry = (Millis, u32, u32);

fn is_idle(key: IdleKey) -> bool {
    key >> 96 == 0
}

/// The idle time packed in an [`IdleKey`].
fn since_of(key: IdleKey) -> Millis {
    (key >> 32) as Millis
}

/// The entries of a lazy queue, sorted. New entries carry the current time, so they nearly
/// always join at the back. A clone keeps the room the queue has grown to ([`Roomy`]): for the
/// every-agent pools of a large domain, tens of thousands of entries each.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
struct Entries(Roomy<VecDeque<IdleEntry>>);

impl Entries {
    fn push(&mut self, entry: IdleEntry) {
        if self.0.back().is_none_or(|b| *b < entry) {
            self.0.push_back(entry);
        } else {
            // Only when an agent keeps an old idle time (a new profile, a reload): in order.
            let at = self.0.partition_point(|e| *e < entry);
            self.0.insert(at, entry);
        }
    }

    fn holds(&self, entry: IdleEntry) -> bool {
        self.0.binary_search(&entry).is_ok()
    }

    /// The entries still live under `stamp` (which of the agent's stamps the queue's entries
    /// carry), in order. `stamp` is generic rather than a function pointer so that each queue's
    /// walk is compiled with its own stamp read inline (a pointer call per entry cost 2–6 %).
    fn live<'a, S: Fn(&Stamps) -> u32 + 'a>(
        &'a self,
        stamps: &'a [Stamps],
        stamp: S,
    ) -> impl Iterator<Item = &'a IdleEntry> + 'a {
        self.0
            .iter()
            .filter(move |e| stamp(&stamps[e.1 as usize]) == e.2)
    }

    fn drop_dead_front(&mut self, stamps: &[Stamps], stamp: impl Fn(&Stamps) -> u32) {
        while self
            .0
            .front()
            .is_some_and(|e| stamp(&stamps[e.1 as usize]) != e.2)
        {
            self.0.pop_front();
        }
    }

    /// Drops the dead entries among the first `n`, keeping the live ones in order (moved to the
    /// end of that part, so the dead front can go).
    fn drop_dead_in(&mut self, n: usize, stamps: &[Stamps], stamp: impl Fn(&Stamps) -> u32) {
        let n = n.min(self.0.len());
        let mut keep = n;
        for i in (0..n).rev() {
            let e = self.0[i];
            if stamp(&stamps[e.1 as usize]) == e.2 {
                keep -= 1;
                self.0[keep] = e;
            }
        }
        self.0.drain(..keep);
    }

    /// Drops every dead entry. Copies the live ones down in one contiguous slice rather than
    /// `VecDeque::retain`, which swaps each kept entry through the ring (a tenth of the engine's
    /// instructions at 10k agents went there).
    fn compact(&mut self, stamps: &[Stamps], stamp: impl Fn(&Stamps) -> u32) {
        let entries = self.0.make_contiguous();
        let mut kept = 0;
        for i in 0..entries.len() {
            let e = entries[i];
            if stamp(&stamps[e.1 as usize]) == e.2 {
                entries[kept] = e;
                kept += 1;
            }
        }
        self.0.truncate(kept);
    }
}

/// A sorted queue of entries that are never searched for: an entry dies when its agent's stamp
/// moves on, and dead entries are dropped from the front or by an occasional compaction. The
/// `order` queues; the `idle` ones are an [`IdleQueue`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Lazy {
    q: Entries,
    /// Live entries in `q`.
    live: usize,
}

impl Lazy {
    fn enter(&mut self, entry: IdleEntry) {
        self.live += 1;
        self.q.push(entry);
    }

    /// One live entry died (its agent's stamp already moved on).
    fn leave(&mut self, stamps: &[Stamps]) {
        self.live -= 1;
        self.q.drop_dead_front(stamps, order_stamp);
        // Dead entries cost every search that passes them: compact once they are a third.
        if 2 * self.q.0.len() > 3 * self.live + 32 {
            self.q.compact(stamps, order_stamp);
        }
    }

    fn live_entries<'a>(
        &'a self,
        stamps: &'a [Stamps],
    ) -> impl Iterator<Item = &'a IdleEntry> + 'a {
        self.q.live(stamps, order_stamp)
    }
}

/// The queue of agents without work of a pool, by idle time: sorted entries like [`Lazy`]'s,
/// but they die without the queue being told. An agent takes work far more often than anything
/// else happens to it, and telling each of its 10–20 pools cost more than the whole search; so
/// the queue does not count its live entries. Dead entries are dropped from the front whenever
/// a search walked, once it is done (see [`IdleQueue::walked`]), and from the whole queue when
/// it has grown by half since the last compaction. The searches keep the front clean, so an
/// entry joining does not look at it, and the whole queue is compacted rarely: each
/// compaction reads the stamps of every agent in it, far apart (at 100k agents, growth by an
/// eighth and a dropped front on every entry cost 1.4 % more instructions and 3.4 % more
/// last-level read misses).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct IdleQueue {
    q: Entries,
    /// Length at which the next entry compacts the queue.
    compact_at: usize,
}

impl IdleQueue {
    fn enter(&mut self, entry: IdleEntry, stamps: &[Stamps]) {
        self.q.push(entry);
        if self.q.0.len() > self.compact_at {
            self.compact(stamps);
        }
    }

    fn compact(&mut self, stamps: &[Stamps]) {
        self.q.compact(stamps, idle_stamp);
        let len = self.q.0.len();
        self.compact_at = len + len / 2 + 16;
    }

    /// A search walked the first `walked` entries here: drops the dead ones among them, so that
    /// no later search passes them again (searches all start at the front, where agents take
    /// work; at 100k agents they passed 22 dead entries an event, each a far read of stamps).
    /// Costs about what the walk did: the same entries and stamps, just read.
    fn walked(&mut self, stamps: &[Stamps], walked: usize) {
        self.q.drop_dead_in(walked, stamps, idle_stamp);
    }

    /// The live entries in order; `walked` counts the entries looked at, live or dead.
    fn live_entries<'a>(
        &'a self,
        stamps: &'a [Stamps],
        walked: &'a Cell<u32>,
    ) -> impl Iterator<Item = &'a IdleEntry> + 'a {
        self.q.0.iter().filter(move |e| {
            walked.set(walked.get() + 1);
            stamps[e.1 as usize].idle == e.2
        })
    }
}

fn idle_stamp(s: &Stamps) -> u32 {
    s.idle
}

fn order_stamp(s: &Stamps) -> u32 {
    s.order
}

/// Whether a stamp is that of live entries: odd while the agent is in the queues, even after.
pub(crate) fn live(stamp: u32) -> bool {
    stamp & 1 == 1
}

/// The agent's next odd stamp: its new entries, and none of its old ones, are live.
fn enter_stamp(stamp: u32) -> u32 {
    stamp.wrapping_add(1) | 1
}

/// The agent's next even stamp: none of its entries are live.
fn leave_stamp(stamp: u32) -> u32 {
    (stamp | 1).wrapping_add(1)
}

/// One of a pool's two lazy queues, with the agent stamp that says which entries are live.
#[derive(Clone, Copy)]
enum Queue {
    Idle,
    Order,
}

impl Queue {
    fn stamp_mut(self, s: &mut Stamps) -> &mut u32 {
        match self {
            Queue::Idle => &mut s.idle,
            Queue::Order => &mut s.order,
        }
    }
}

/// Available agents who have a skill (any level) and speak a language (exact tag), in the orders
/// the indexed strategies need. Agents without room are kept too: they fail eligibility when a
/// search meets them, which is cheaper than leaving and re-entering 10–20 pools each time an
/// agent fills up or frees a slot.
///
/// The `longest_idle` order ([`IdleKey`]: agents without work first, then by idle time, then
/// index) is kept in two lazy queues, so that no load change searches an ordered set: `idle`
/// holds the agents without work, by idle time; `order` holds every agent of the pool by idle
/// time, which for an agent with work is still the time it was last idle, so it keeps its place
/// when it takes work. An agent enters both at the back when it becomes idle (its idle time is
/// "now"); its `idle` entry dies when it takes work, its `order` entry when its idle time moves
/// on. Iterating the live `idle` entries, then the live `order` entries of agents with work,
/// gives exactly the idle-key order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pool {
    idle: IdleQueue,
    order: Lazy,
    /// Only in the every-agent pools (skill slot 0), and only agents with work: the load
    /// changes with every contact, and keeping one load order per language rather than per
    /// skill keeps that update cheap. Agents without work come first in `least_occupied`
    /// order, in the order `idle` holds them (see [`Pool::idle_keys`]).
    by_load: BTreeSet<LoadKey>,
    /// Agent indices, for round robin's "next after the cursor"; every-agent pools only.
    pub(crate) by_index: BTreeSet<u32>,
}

impl Pool {
    /// Agents in the pool (with room or not): a size hint for choosing where to search.
    pub(crate) fn len(&self) -> usize {
        self.order.live
    }

    /// The pool in `longest_idle` order (agents without work first, then by idle time, then
    /// index), as idle keys. With `idle_only`, only the agents without work (all that an
    /// exclusive channel can use). `stamps` are [`Pools::stamps`]; `walked` counts the
    /// idle-queue entries looked at.
    pub(crate) fn by_idle<'a>(
        &'a self,
        stamps: &'a [Stamps],
        idle_only: bool,
        walked: &'a Cell<u32>,
    ) -> impl Iterator<Item = IdleKey> + 'a {
        // A filed agent without a live idle entry has work.
        let busy = (!idle_only).then(|| {
            self.order
                .live_entries(stamps)
                .filter(|e| !live(stamps[e.1 as usize].idle))
                .map(|&(t, i, _)| pack(1, t, i))
        });
        self.idle
            .live_entries(stamps, walked)
            .map(|&(t, i, _)| pack(0, t, i))
            .chain(busy.into_iter().flatten())
    }

    /// The agents without work, longest idle first, as idle keys — which are also their load
    /// keys, since they come first in `least_occupied` order with load 0.
    /// `walked` counts the idle-queue entries looked at.
    pub(crate) fn idle_keys<'a>(
        &'a self,
        stamps: &'a [Stamps],
        walked: &'a Cell<u32>,
    ) -> impl Iterator<Item = IdleKey> + 'a {
        self.idle
            .live_entries(stamps, walked)
            .map(|&(t, i, _)| pack(0, t, i))
    }

    /// The agents with work in `longest_idle` order (by idle time, then index), as idle keys.
    pub(crate) fn busy_keys<'a>(
        &'a self,
        stamps: &'a [Stamps],
    ) -> impl Iterator<Item = IdleKey> + 'a {
        // A filed agent without a live idle entry has work.
        self.order
            .live_entries(stamps)
            .filter(|e| !live(stamps[e.1 as usize].idle))
            .map(|&(t, i, _)| pack(1, t, i))
    }

    /// The agents with work in `least_occupied` order (lowest load, then longest idle, then
    /// index), as load keys; every-agent pools only.
    pub(crate) fn loaded_keys(&self) -> impl Iterator<Item = LoadKey> + '_ {
        self.by_load.iter().copied()
    }

    /// Whether the load order holds `key` of an agent with work (for the audit).
    pub(crate) fn holds_load(&self, key: LoadKey) -> bool {
        self.by_load.contains(&key)
    }

    /// Agents with work in the load order (for the audit).
    pub(crate) fn loaded(&self) -> usize {
        self.by_load.len()
    }

    /// Whether agent `idx` is in the pool's idle orders under its current stamps (for the audit).
    pub(crate) fn holds(&self, idx: u32, agent: &Agent, stamps: &[Stamps]) -> bool {
        let s = stamps.get(idx as usize).copied().unwrap_or_default();
        let since = since_of(agent.filed_keys.0);
        live(s.order)
            && self.order.q.holds((since, idx, s.order))
            && (!live(s.idle) || self.idle.q.holds((since, idx, s.idle)))
    }

    /// Live entries counted the slow way — of agents without work, of all — and as kept (for
    /// the audit).
    pub(crate) fn live_counted(&self, stamps: &[Stamps]) -> (usize, usize, usize) {
        (
            self.idle.live_entries(stamps, &Cell::new(0)).count(),
            self.order.live_entries(stamps).count(),
            self.order.live,
        )
    }
}

/// Pools by skill slot (0 = every agent, `skill id + 1` = agents with that skill), then
/// language id (the agent's own tags).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Pools {
    pools: Vec<Vec<Pool>>,
    /// Whether the every-agent pools keep their `by_load` (least occupied) and `by_index`
    /// (round robin) orders: only when a queue of the policy can use them, since a load order
    /// moves with every contact an agent takes or ends. Set from the policy whenever it is set
    /// (see [`Pools::keep_orders`]); in snapshots, so that an engine read back keeps what its
    /// orders hold.
    keep: Orders,
    /// By agent index.
    stamps: Vec<Stamps>,
    /// By agent index: the profile fields eligibility reads.
    hot: Vec<Hot>,
}

/// The optional orders of the every-agent pools (see [`Pools`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Orders {
    pub(crate) by_load: bool,
    pub(crate) by_index: bool,
}

impl Pools {
    /// Keeps the optional orders the policy needs, rebuilt from the filed agents, and drops
    /// the others. Called whenever the policy is set (start, reload, restore).
    pub(crate) fn keep_orders(&mut self, keep: Orders, agents: &[Agent]) {
        self.keep = keep;
        if let Some(row) = self.pools.first_mut() {
            for pool in row.iter_mut() {
                pool.by_load.clear();
                pool.by_index.clear();
            }
        }
        for (idx, agent) in agents.iter().enumerate() {
            let (idle_key, load_key) = agent.filed_keys;
            for &(c, p) in agent.filed.iter().filter(|f| f.0 == 0) {
                let pool = self.get_mut(c, p);
                if keep.by_load && !is_idle(idle_key) {
                    pool.by_load.insert(load_key);
                }
                if keep.by_index {
                    pool.by_index.insert(idx as u32);
                }
            }
        }
    }

    /// The optional orders kept (for the audit).
    pub(crate) fn orders(&self) -> Orders {
        self.keep
    }

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

    /// A search walked the idle queues of pools (`slot`, `langs`): the first `walked(i)`
    /// entries in the pool of the `i`th language. Their dead entries are dropped.
    pub(crate) fn searched(
        &mut self,
        slot: u32,
        langs: &super::tables::TagList,
        walked: impl Fn(usize) -> u32,
    ) {
        let Some(row) = self.pools.get_mut(slot as usize) else {
            return;
        };
        for (i, l) in langs.iter().enumerate() {
            let n = walked(i);
            if let Some(pool) = row.get_mut(l as usize) {
                if n > 0 {
                    pool.idle.walked(&self.stamps, n as usize);
                }
            }
        }
    }

    /// Every agent's stamps, by agent index (agents never filed may be missing at the end).
    pub(crate) fn stamps(&self) -> &[Stamps] {
        &self.stamps
    }

    /// Every agent's hot record, by agent index (agents without a profile may be missing).
    pub(crate) fn hot(&self) -> &[Hot] {
        &self.hot
    }

    /// Records agent `idx`'s profile (after any change to its skills, languages or queues).
    pub(crate) fn set_hot(&mut self, idx: u32, agent: &Agent) {
        let i = idx as usize;
        if self.hot.len() <= i {
            self.hot.resize(i + 1, Hot::default());
        }
        self.hot[i] = Hot::of(agent);
    }

    /// Records what agent `idx` can take now (after any change to its load, capacity or state).
    pub(crate) fn set_takes(&mut self, idx: u32, takes: u64) {
        self.stamps_mut(idx).takes = takes;
    }

    /// False only when agent `idx` surely cannot take a contact of `channel` now; a quick
    /// filter in front of the full eligibility check.
    pub(crate) fn may_take(&self, idx: u32, channel: u32) -> bool {
        channel >= 64
            || self
                .stamps
                .get(idx as usize)
                .is_none_or(|s| s.takes >> channel & 1 == 1)
    }

    fn stamps_mut(&mut self, idx: u32) -> &mut Stamps {
        let i = idx as usize;
        if self.stamps.len() <= i {
            self.stamps.resize(i + 1, Stamps::default());
        }
        &mut self.stamps[i]
    }

    /// Re-files agent `idx` after any change to its state, load, profile or idle time.
    ///
    /// `filed` is either empty or exactly the pools of the agent's current skills and
    /// languages ([`unfile`](Self::unfile) runs before a profile changes them), so whether the
    /// memberships change only depends on whether the agent should be filed at all: available
    /// and speaking some language. Room does not matter (see [`Pool`]).
    pub(crate) fn refile(&mut self, idx: u32, agents: &mut [Agent]) {
        let agent = &agents[idx as usize];
        let keys = (agent.idle_key(idx), agent.load_key(idx));
        let file = agent.state == AgentState::Available && !agent.languages.is_empty();
        if !file {
            if !agent.filed.is_empty() {
                self.unfile(idx, agents);
            }
            agents[idx as usize].filed_keys = keys;
            return;
        }
        if agent.filed.is_empty() {
            let mut filed = std::mem::take(&mut agents[idx as usize].filed);
            let agent = &agents[idx as usize];
            let slots = std::iter::once(0).chain(agent.skills.iter().map(|s| s.0 + 1));
            for slot in slots {
                for &l in &agent.languages {
                    filed.push((slot, l));
                }
            }
            self.enter(Queue::Order, idx, &filed, keys.0);
            if is_idle(keys.0) {
                self.enter(Queue::Idle, idx, &filed, keys.0);
            }
            let keep = self.keep;
            for &(c, p) in filed.iter().filter(|f| f.0 == 0) {
                let pool = self.get_mut(c, p);
                if keep.by_load && !is_idle(keys.0) {
                    pool.by_load.insert(keys.1);
                }
                if keep.by_index {
                    pool.by_index.insert(idx);
                }
            }
            let agent = &mut agents[idx as usize];
            agent.filed = filed;
            agent.filed_keys = keys;
            return;
        }
        // Same pools: only the orders whose key changed are touched. Taking work or filling up
        // moves nothing but the load order; becoming idle again enters at the back.
        let (old_idle, old_load) = agent.filed_keys;
        let filed = std::mem::take(&mut agents[idx as usize].filed);
        if old_idle != keys.0 {
            let moved = since_of(old_idle) != since_of(keys.0);
            let (was_idle, now_idle) = (is_idle(old_idle), is_idle(keys.0));
            if was_idle && (moved || !now_idle) {
                self.leave(Queue::Idle, idx, &filed);
            }
            if moved {
                self.leave(Queue::Order, idx, &filed);
                self.enter(Queue::Order, idx, &filed, keys.0);
            }
            if now_idle && (moved || !was_idle) {
                self.enter(Queue::Idle, idx, &filed, keys.0);
            }
        }
        if self.keep.by_load && old_load != keys.1 {
            for &(c, p) in filed.iter().filter(|f| f.0 == 0) {
                let pool = self.get_mut(c, p);
                if !is_idle(old_idle) {
                    pool.by_load.remove(&old_load);
                }
                if !is_idle(keys.0) {
                    pool.by_load.insert(keys.1);
                }
            }
        }
        let agent = &mut agents[idx as usize];
        agent.filed = filed;
        agent.filed_keys = keys;
    }

    /// Takes agent `idx` out of every pool it is filed in (keeps the `filed` allocation).
    pub(crate) fn unfile(&mut self, idx: u32, agents: &mut [Agent]) {
        let (old_idle, old_load) = agents[idx as usize].filed_keys;
        let mut filed = std::mem::take(&mut agents[idx as usize].filed);
        if !filed.is_empty() {
            if live(self.stamps_mut(idx).idle) {
                self.leave(Queue::Idle, idx, &filed);
            }
            self.leave(Queue::Order, idx, &filed);
        }
        let keep = self.keep;
        for &(c, p) in filed.iter().filter(|f| f.0 == 0) {
            let pool = self.get_mut(c, p);
            if keep.by_load && !is_idle(old_idle) {
                pool.by_load.remove(&old_load);
            }
            if keep.by_index {
                pool.by_index.remove(&idx);
            }
        }
        filed.clear();
        agents[idx as usize].filed = filed;
    }

    /// The agent enters queue `q` of each of its pools at `key`'s idle time; its old entries
    /// there die. The `idle` queues of its pools exist already: an agent enters `order` first.
    fn enter(&mut self, q: Queue, idx: u32, filed: &[(u32, u32)], key: IdleKey) {
        let s = q.stamp_mut(self.stamps_mut(idx));
        *s = enter_stamp(*s);
        let entry = (since_of(key), idx, *s);
        for &(c, p) in filed {
            match q {
                Queue::Order => self.get_mut(c, p).order.enter(entry),
                Queue::Idle => self.pools[c as usize][p as usize]
                    .idle
                    .enter(entry, &self.stamps),
            }
        }
    }

    /// The agent's entries in queue `q` die (`filed` are its pools, which exist). The `idle`
    /// queues are not told (see [`IdleQueue`]).
    fn leave(&mut self, q: Queue, idx: u32, filed: &[(u32, u32)]) {
        let s = q.stamp_mut(self.stamps_mut(idx));
        *s = leave_stamp(*s);
        if let Queue::Order = q {
            for &(c, p) in filed {
                self.pools[c as usize][p as usize].order.leave(&self.stamps);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tables::TagList;

    const AGENTS: u32 = 40;

    fn available(now: Millis) -> Agent {
        let mut a = Agent::new(now);
        a.state = AgentState::Available;
        a.languages = vec![0];
        a.skills = vec![(3, 5)];
        a
    }

    /// Agents take work and finish it in a scattered order, as a busy floor does; the idle
    /// queues of their pools, never told when an agent takes work, must still list exactly the
    /// agents without work in `longest_idle` order, and stay within their compaction bound.
    #[test]
    fn idle_queues_list_the_agents_without_work_in_order_and_stay_bounded() {
        let mut agents: Vec<Agent> = (0..AGENTS).map(|_| available(0)).collect();
        let mut pools = Pools::default();
        for i in 0..AGENTS {
            pools.refile(i, &mut agents);
        }
        let mut busy = vec![false; AGENTS as usize];
        let mut x: u64 = 1;
        for now in 1..5_000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let i = (x >> 33) as u32 % AGENTS;
            let a = &mut agents[i as usize];
            if busy[i as usize] {
                a.release(now, 0, 100, false);
            } else {
                a.hold(0, 100, false);
            }
            busy[i as usize] = !busy[i as usize];
            pools.refile(i, &mut agents);

            let mut want: Vec<(Millis, u32)> = (0..AGENTS)
                .filter(|&j| !busy[j as usize])
                .map(|j| (agents[j as usize].idle_since, j))
                .collect();
            want.sort();
            for slot in [0, 4] {
                let pool = pools.get(slot, 0).expect("pool of the agents' skill");
                let got: Vec<(Millis, u32)> = pool
                    .idle_keys(pools.stamps(), &Cell::new(0))
                    .map(|k| (since_of(k), agent_of(k)))
                    .collect();
                assert_eq!(got, want, "idle order of pool {slot} at {now}");
                let len = pool.idle.q.0.len();
                assert!(
                    len <= AGENTS as usize + AGENTS as usize / 2 + 17,
                    "idle queue of pool {slot} holds {len} entries for {AGENTS} agents"
                );
            }
        }
    }

    /// A burst of contacts while nobody finishes work: no entry joins the idle queue, so only the
    /// searches can clear what they pass. 100 longest-idle agents that the contacts cannot use
    /// stay at the front; behind them each offer leaves one dead entry. Without the searches'
    /// clean-up the k-th search passes k dead entries (404,550 over the 900 searches; 21,475
    /// when a queue was compacted after its searches had passed twice its length); with the
    /// walked part cleaned, each search passes only the entry the one before it left.
    #[test]
    fn a_burst_of_searches_does_not_pass_the_same_dead_entries_again_and_again() {
        const UNUSABLE: u32 = 100;
        const AGENTS: u32 = 1_000;
        let mut agents: Vec<Agent> = (0..AGENTS)
            .map(|i| {
                let mut a = Agent::new(Millis::from(i));
                a.state = AgentState::Available;
                a.languages = vec![0];
                a.skills = vec![(3, 5)];
                a
            })
            .collect();
        let mut pools = Pools::default();
        for i in 0..AGENTS {
            pools.refile(i, &mut agents);
        }
        let mut langs = TagList::default();
        langs.add(0);
        let mut passed_total = 0u64;
        for _ in 0..(AGENTS - UNUSABLE) {
            let walked = Cell::new(0);
            let mut live = 0;
            let pool = pools.get(4, 0).expect("pool of the agents' skill");
            let chosen = pool
                .idle_keys(pools.stamps(), &walked)
                .map(agent_of)
                .inspect(|_| live += 1)
                .find(|&i| i >= UNUSABLE)
                .expect("a usable agent without work is left");
            passed_total += u64::from(walked.get()) - live;
            agents[chosen as usize].hold(0, 100, false);
            pools.refile(chosen, &mut agents);
            pools.searched(4, &langs, |_| walked.get());
        }
        assert!(
            passed_total < u64::from(AGENTS - UNUSABLE),
            "the searches passed {passed_total} dead entries"
        );
        let left = pools.get(4, 0).map_or(0, |p| p.idle.q.0.len());
        assert!(left < 200, "{left} entries left for {UNUSABLE} live ones");
    }

    /// A search of two language pools that walked one entry of the first drops the dead entries
    /// of that part only: not the dead entry behind it, nor anything in the other pool.
    #[test]
    fn a_search_drops_the_dead_entries_of_the_part_it_walked_and_only_there() {
        let mut agents: Vec<Agent> = (0..4)
            .map(|i| {
                let mut a = Agent::new(Millis::from(i));
                a.state = AgentState::Available;
                a.languages = vec![i % 2];
                a.skills = vec![(3, 5)];
                a
            })
            .collect();
        let mut pools = Pools::default();
        for i in 0..4 {
            pools.refile(i, &mut agents);
        }
        // Agents 0 and 2 (language 0) and 1 (language 1) take work: their idle entries die
        // where they are, untold.
        for i in [0, 2, 1] {
            agents[i as usize].hold(0, 100, false);
            pools.refile(i, &mut agents);
        }
        let len = |pools: &Pools, l| pools.get(4, l).map(|p| p.idle.q.0.len());
        assert_eq!((len(&pools, 0), len(&pools, 1)), (Some(2), Some(2)));
        let mut langs = TagList::default();
        langs.add(0);
        langs.add(1);
        let walked = [1, 0];
        pools.searched(4, &langs, |i| walked[i]);
        assert_eq!((len(&pools, 0), len(&pools, 1)), (Some(1), Some(2)));
        let left: Vec<u32> = pools
            .get(4, 0)
            .map_or(vec![], |p| p.idle.q.0.iter().map(|e| e.1).collect());
        assert_eq!(left, [2], "the dead entry the search did not walk stays");
    }
}
