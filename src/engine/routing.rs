//! The routing decisions: who is eligible for a contact, which eligible agent gets it, which
//! waiting contact a freed agent gets, and making, withdrawing and missing offers.
//!
//! Invariant kept after every event and tick: no waiting contact has an eligible agent who could
//! take it now. So a decision only ever has to look at what just changed: a new or requeued
//! contact (contact-driven, [`Engine::route_contact`]) or an agent who gained room
//! (agent-driven, [`Engine::serve_agent`]).

use super::agents::{agent_of, IdleKey, LoadKey, Profile};
use super::contacts::{effective_priority, line_key, line_parts, Contact, Phase, WaitKey};
use super::tables::{TagList, FULL_LOAD};
use super::timers::Timer;
use super::{AgentAway, Engine, Name, Offer, OfferWithdrawn, Output, SkillLevels, Strategy, Why};
use crate::event::AgentState;

/// One of two iterators of the same item (the two phases of a search).
enum Either<A, B> {
    Left(A),
    Right(B),
}

impl<T, A: Iterator<Item = T>, B: Iterator<Item = T>> Iterator for Either<A, B> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        match self {
            Either::Left(a) => a.next(),
            Either::Right(b) => b.next(),
        }
    }
}

/// How many eligible agents `best_skill_match` compares at most (the longest idle ones).
pub(crate) const SKILL_MATCH_CANDIDATES: usize = 32;

/// Where a contact's search looked (the idle queues of skill slot `slot` for languages `langs`)
/// and how far it walked in each of them, for
/// [`Pools::searched`](super::agents::Pools::searched).
#[derive(Debug, Default)]
pub(crate) struct Searched {
    slot: u32,
    langs: TagList,
    /// Entries walked, by position in `langs`. Languages past the last counter share it: each
    /// of those pools then has the prefix of the sum cleaned, more than was walked there, which
    /// costs more but only ever drops dead entries.
    walked: [std::cell::Cell<u32>; 8],
}

impl Searched {
    /// The counter of the pool of the `i`th language searched.
    fn walked(&self, i: usize) -> &std::cell::Cell<u32> {
        &self.walked[i.min(self.walked.len() - 1)]
    }
}

/// Relaxation in force for one contact at `now`: the first `steps` steps of its queue.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Relax {
    pub(crate) steps: usize,
    pub(crate) lower_by: u8,
    pub(crate) drop_preferred: bool,
}

/// How an eligible agent matched.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Match {
    /// The agent's language id that matched.
    pub(crate) language: u32,
    pub(crate) fallback: bool,
    /// The overflow queue through which the agent is eligible, if not through the contact's own.
    pub(crate) overflow: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rule {
    PreferredAgent,
    Sticky,
    Strategy,
}

impl Engine {
    pub(crate) fn relax(&self, c: &Contact) -> Relax {
        let waited = self.now.saturating_sub(c.arrival);
        let mut r = Relax::default();
        for s in &self.queues[c.queue as usize].steps {
            if s.after > waited {
                break;
            }
            r.steps += 1;
            r.lower_by = r.lower_by.saturating_add(s.lower_by);
            r.drop_preferred |= s.drop_preferred;
        }
        r
    }

    /// Eligibility (DESIGN.md §3): available, room on the channel, not excluded, serves the
    /// queue (or an overflow queue in force), every required skill at the (relaxed) minimum,
    /// and speaks the language (or a relaxation fallback language).
    pub(crate) fn eligible(&self, ai: u32, c: &Contact, r: &Relax) -> Option<Match> {
        // Availability and room from the channel mask, the profile from the hot record: an
        // agent a search meets is checked without reading the agent itself.
        let i = ai as usize;
        let stamps = self.pools.stamps();
        let hot = self.pools.hot();
        let fast = c.channel < 64 && i < stamps.len() && i < hot.len() && !hot[i].spilled();
        if !fast {
            let a = &self.agents[i];
            if a.state != AgentState::Available
                || !a.can_take(c.channel, &self.channels[c.channel as usize])
                || c.excluded.contains(&ai)
            {
                return None;
            }
            return self.profile_matches(a, c, r);
        }
        if stamps[i].takes >> c.channel & 1 == 0 || c.excluded.contains(&ai) {
            return None;
        }
        self.profile_matches(&hot[i], c, r)
    }

    /// The profile part of [`eligible`](Self::eligible): queue (or an overflow queue in force),
    /// required skills at the (relaxed) minimum, and language (or a fallback language).
    fn profile_matches<P: Profile>(&self, a: &P, c: &Contact, r: &Relax) -> Option<Match> {
        let steps = &self.queues[c.queue as usize].steps[..r.steps];
        let overflow = if a.serves_queue(c.queue) {
            None
        } else {
            Some(
                steps
                    .iter()
                    .filter_map(|s| s.overflow_to)
                    .find(|&o| a.serves_queue(o))?,
            )
        };
        for &(skill, min) in &c.required {
            if a.level(skill) < min.saturating_sub(r.lower_by).max(1) {
                return None;
            }
        }
        let languages = || (0..).map_while(|i| a.language(i));
        let mut fallback = None;
        for l in languages() {
            match self.langs.serves(l, c.language) {
                Some(false) => {
                    return Some(Match {
                        language: l,
                        fallback: false,
                        overflow,
                    })
                }
                Some(true) if fallback.is_none() => fallback = Some(l),
                _ => {}
            }
        }
        if fallback.is_none() {
            fallback = steps
                .iter()
                .flat_map(|s| s.languages.iter())
                .find_map(|&f| languages().find(|&l| self.langs.serves(l, f).is_some()));
        }
        fallback.map(|l| Match {
            language: l,
            fallback: true,
            overflow,
        })
    }

    /// The customer's last agent, while still within `sticky_for` of their last activity.
    pub(crate) fn sticky_agent(&self, customer: &str) -> Option<u32> {
        let sticky_for = super::tables::millis(self.policy.sticky_for);
        if sticky_for == 0 {
            return None;
        }
        let &(agent, at) = self.sticky.get(customer)?;
        (self.now.saturating_sub(at) <= sticky_for).then_some(agent)
    }

    /// Picks the agent for a contact, or `None` when nobody eligible can take it now.
    /// Walks `keys` (idle or load keys, best first) to the first agent eligible for `c`, and
    /// keeps it in `best` if it beats what `best` holds: the walk stops at the first key that
    /// does not.
    fn first_eligible(
        &self,
        keys: impl Iterator<Item = u128>,
        c: &Contact,
        r: &Relax,
        best: &mut Option<(u128, Match)>,
    ) {
        for key in keys {
            if best.as_ref().is_some_and(|b| b.0 <= key) {
                return;
            }
            if !self.pools.may_take(agent_of(key), c.channel) {
                continue;
            }
            if let Some(m) = self.eligible(agent_of(key), c, r) {
                *best = Some((key, m));
                return;
            }
        }
    }

    /// The agent for contact `c` under relaxation `r`, if any is eligible. `searched` learns
    /// which pools' idle queues the search walked and how far.
    pub(crate) fn choose_agent(
        &self,
        c: &Contact,
        r: &Relax,
        searched: &mut Searched,
    ) -> Option<(u32, Rule, Match)> {
        if let Some(ai) = c.preferred_agent().and_then(|p| self.agent_ids.get(p)) {
            if let Some(m) = self.eligible(ai, c, r) {
                return Some((ai, Rule::PreferredAgent, m));
            }
        }
        if let Some(ai) = self.sticky_agent(&c.customer) {
            if let Some(m) = self.eligible(ai, c, r) {
                return Some((ai, Rule::Sticky, m));
            }
        }
        // Pools to look in: every agent tag that serves the contact's language or a fallback
        // language in force.
        let langs = &mut searched.langs;
        self.langs.servers_of(c.language, langs);
        for s in &self.queues[c.queue as usize].steps[..r.steps] {
            for &f in &s.languages {
                self.langs.servers_of(f, langs);
            }
        }
        // The contact's rarest required skill (fewest agents) narrows the search most.
        let slot = c
            .required
            .iter()
            .map(|&(skill, _)| skill + 1)
            .min_by_key(|&slot| {
                langs
                    .iter()
                    .filter_map(|l| self.pools.get(slot, l))
                    .map(|p| p.len())
                    .sum::<usize>()
            })
            .unwrap_or(0);
        searched.slot = slot;
        let searched = &*searched;
        let langs = &searched.langs;
        let pools = langs
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((self.pools.get(slot, l)?, searched.walked(i))));
        let every_agent_pools = langs.iter().filter_map(|l| self.pools.get(0, l));
        // An exclusive channel (voice) needs an agent without work: the search stops there.
        let idle_only = self.channels[c.channel as usize].exclusive;
        let found = match self.queues[c.queue as usize].strategy {
            // Agents without work come before agents with work in both orders below: the
            // search looks at the agents without work of every language pool first, and at the
            // others only when none of them is eligible.
            Strategy::LongestIdle => {
                let mut best: Option<(IdleKey, Match)> = None;
                let stamps = self.pools.stamps();
                for busy in [false, true] {
                    if busy && (best.is_some() || idle_only) {
                        break;
                    }
                    for (pool, walked) in pools.clone() {
                        let keys = if busy {
                            Either::Right(pool.busy_keys(stamps))
                        } else {
                            Either::Left(pool.idle_keys(stamps, walked))
                        };
                        self.first_eligible(keys, c, r, &mut best);
                    }
                }
                best.map(|(k, m)| (agent_of(k), m))
            }
            Strategy::LeastOccupied => {
                // Agents without work from the narrow skill pool (their load keys are their idle
                // keys), then agents with work from the every-agent load order.
                let mut best: Option<(LoadKey, Match)> = None;
                let stamps = self.pools.stamps();
                for loaded in [false, true] {
                    if loaded && (best.is_some() || idle_only) {
                        break;
                    }
                    for (i, l) in langs.iter().enumerate() {
                        let keys = if loaded {
                            let Some(p) = self.pools.get(0, l) else {
                                continue;
                            };
                            Either::Right(p.loaded_keys())
                        } else {
                            let Some(p) = self.pools.get(slot, l) else {
                                continue;
                            };
                            Either::Left(p.idle_keys(stamps, searched.walked(i)))
                        };
                        self.first_eligible(keys, c, r, &mut best);
                    }
                }
                best.map(|(k, m)| (agent_of(k), m))
            }
            // A contact-dependent order cannot be indexed: the search looks at the longest-idle
            // eligible agents, up to SKILL_MATCH_CANDIDATES of them, and takes the best score,
            // so one decision stays bounded however large the pool.
            Strategy::BestSkillMatch => {
                let mut best: Option<((std::cmp::Reverse<u32>, u32), Match)> = None;
                let mut seen = 0;
                'pools: for (pool, walked) in pools {
                    for key in pool.by_idle(self.pools.stamps(), idle_only, walked) {
                        let ai = agent_of(key);
                        if !self.pools.may_take(ai, c.channel) {
                            continue;
                        }
                        if let Some(m) = self.eligible(ai, c, r) {
                            let rank = (std::cmp::Reverse(self.skill_score(ai, c, r)), ai);
                            if best.as_ref().is_none_or(|b| rank < b.0) {
                                best = Some((rank, m));
                            }
                            seen += 1;
                            if seen >= SKILL_MATCH_CANDIDATES {
                                break 'pools;
                            }
                        }
                    }
                }
                best.map(|(k, m)| (k.1, m))
            }
            Strategy::RoundRobin => {
                // The first eligible agent at or after the cursor, else the first from the start.
                let cursor = self.rr_cursor.get(c.queue as usize).copied().unwrap_or(0);
                let mut best: Option<((bool, u32), Match)> = None;
                for pool in every_agent_pools {
                    let order = pool
                        .by_index
                        .range(cursor..)
                        .chain(pool.by_index.range(..cursor));
                    for &ai in order {
                        let rank = (ai < cursor, ai);
                        if best.as_ref().is_some_and(|b| b.0 <= rank) {
                            break;
                        }
                        if !self.pools.may_take(ai, c.channel) {
                            continue;
                        }
                        if let Some(m) = self.eligible(ai, c, r) {
                            best = Some((rank, m));
                            break;
                        }
                    }
                }
                best.map(|(k, m)| (k.1, m))
            }
        };
        found.map(|(ai, m)| (ai, Rule::Strategy, m))
    }

    /// best_skill_match: surplus over each required minimum, plus for each preferred skill held
    /// at or above the wanted level 10 and its surplus (unless relaxation dropped them).
    pub(crate) fn skill_score(&self, ai: u32, c: &Contact, r: &Relax) -> u32 {
        // From the hot record where the profile fits, as eligibility reads it: scoring the
        // candidates of a large pool then does not touch each agent.
        match self.pools.hot().get(ai as usize) {
            Some(h) if !h.spilled() => Self::score(h, c, r),
            _ => Self::score(&self.agents[ai as usize], c, r),
        }
    }

    fn score<P: Profile>(a: &P, c: &Contact, r: &Relax) -> u32 {
        let mut score = 0u32;
        for &(s, min) in &c.required {
            let min = min.saturating_sub(r.lower_by).max(1);
            score += u32::from(a.level(s).saturating_sub(min));
        }
        if !r.drop_preferred {
            for &(s, want) in &c.preferred {
                let l = a.level(s);
                if l >= want {
                    score += 10 + u32::from(l - want);
                }
            }
        }
        score
    }

    /// Contact-driven: offer the contact in `slot` (not in a line) now, or put it in its line.
    pub(crate) fn route_contact(&mut self, slot: u32, out: &mut Vec<Output>) {
        let Some(c) = self.contacts.get(slot) else {
            return;
        };
        let r = self.relax(c);
        let mut searched = Searched::default();
        match self.choose_agent(c, &r, &mut searched) {
            Some((ai, rule, m)) => self.offer(slot, ai, rule, m, r, out),
            None => self.enqueue(slot),
        }
        if searched.walked.iter().any(|w| w.get() > 0) {
            self.pools
                .searched(searched.slot, &searched.langs, |i| searched.walked(i).get());
        }
    }

    /// Agent-driven: while agent `ai` has room, offer it the best waiting contact it can serve:
    /// highest effective priority across every line it serves, ties by arrival, then slot.
    pub(crate) fn serve_agent(&mut self, ai: u32, out: &mut Vec<Output>) {
        loop {
            let a = &self.agents[ai as usize];
            if a.state != AgentState::Available {
                return;
            }
            let mut primaries = [u32::MAX; 8];
            for (p, &l) in primaries.iter_mut().zip(&a.languages) {
                *p = self.langs.primary(l);
            }
            let mut best: Option<(f64, u64, u32, Match, Relax)> = None;
            for (&key, line) in &self.lines {
                let (q, ch, lang) = line_parts(key);
                let info = &self.channels[ch as usize];
                let qi = &self.queues[q as usize];
                if !a.can_take(ch, info)
                    || !(qi.overflows || a.serves_queue(q))
                    || !(qi.language_fallback
                        || primaries.contains(&lang)
                        || a.languages.len() > primaries.len())
                {
                    continue;
                }
                let threshold = qi.sl_threshold.unwrap_or(info.sl_threshold);
                for wk in line {
                    let Some(c) = self.contacts.get(wk.slot) else {
                        continue;
                    };
                    let r = self.relax(c);
                    if let Some(m) = self.eligible(ai, c, &r) {
                        let eff = effective_priority(
                            c.priority, qi.aging, threshold, c.arrival, self.now,
                        );
                        let better = match &best {
                            None => true,
                            Some(b) => eff
                                .total_cmp(&b.0)
                                .then(b.1.cmp(&c.arrival))
                                .then(b.2.cmp(&wk.slot))
                                .is_gt(),
                        };
                        if better {
                            best = Some((eff, c.arrival, wk.slot, m, r));
                        }
                        break;
                    }
                }
            }
            let Some((_, _, slot, m, r)) = best else {
                return;
            };
            let rule = match self.contacts.get(slot) {
                Some(c) if c.preferred_agent() == Some(self.agent_ids.name(ai)) => {
                    Rule::PreferredAgent
                }
                Some(c) if self.sticky_agent(&c.customer) == Some(ai) => Rule::Sticky,
                _ => Rule::Strategy,
            };
            self.offer(slot, ai, rule, m, r, out);
        }
    }

    /// Puts the contact in `slot` (not in a line) into its waiting line.
    pub(crate) fn enqueue(&mut self, slot: u32) {
        let Some(c) = self.contacts.get(slot) else {
            return;
        };
        let qi = &self.queues[c.queue as usize];
        let threshold = qi
            .sl_threshold
            .unwrap_or(self.channels[c.channel as usize].sl_threshold);
        let key = WaitKey::new(c.priority, qi.aging, threshold, c.arrival, slot);
        self.lines
            .entry(line_key(c.queue, c.channel, self.langs.primary(c.language)))
            .or_default()
            .insert(key);
        if let Some(c) = self.contacts.get_mut(slot) {
            c.phase = Phase::Waiting(Some(key));
        }
        self.counts.waiting += 1;
    }

    /// Takes the contact in `slot` out of its waiting line, if it is in one.
    pub(crate) fn dequeue(&mut self, slot: u32) {
        let Some(c) = self.contacts.get_mut(slot) else {
            return;
        };
        if let Phase::Waiting(Some(key)) = c.phase {
            c.phase = Phase::Waiting(None);
            let lk = line_key(c.queue, c.channel, self.langs.primary(c.language));
            if let Some(line) = self.lines.get_mut(&lk) {
                line.remove(&key);
                if line.is_empty() {
                    self.lines.remove(&lk);
                }
            }
            self.counts.waiting -= 1;
        }
    }

    /// Offers the contact in `slot` to agent `ai`, reserving the agent's capacity.
    fn offer(&mut self, slot: u32, ai: u32, rule: Rule, m: Match, r: Relax, out: &mut Vec<Output>) {
        self.dequeue(slot);
        let now = self.now;
        let Some(c) = self.contacts.get(slot) else {
            return;
        };
        let info = self.channels[c.channel as usize];
        let qi = &self.queues[c.queue as usize];
        let strategy = qi.strategy;
        let threshold = qi.sl_threshold.unwrap_or(info.sl_threshold);
        let eff = effective_priority(c.priority, qi.aging, threshold, c.arrival, now);
        let a = &self.agents[ai as usize];
        let score = match strategy {
            Strategy::LongestIdle => now.saturating_sub(a.idle_since) as f64 / 1000.0,
            Strategy::LeastOccupied => 1.0 - f64::from(a.load) / f64::from(FULL_LOAD),
            Strategy::BestSkillMatch => f64::from(self.skill_score(ai, c, &r)),
            Strategy::RoundRobin => 0.0,
        };
        let matched_skills = SkillLevels::from_unsorted(
            c.required
                .iter()
                .map(|&(s, _)| (self.skills.shared(s).clone(), a.level(s)))
                .collect(),
        );
        let matched_preferred = if r.drop_preferred || c.preferred.is_empty() {
            SkillLevels::default()
        } else {
            SkillLevels::from_unsorted(
                c.preferred
                    .iter()
                    .filter(|&&(s, _)| a.level(s) > 0)
                    .map(|&(s, _)| (self.skills.shared(s).clone(), a.level(s)))
                    .collect(),
            )
        };
        let attempt = c.attempt + 1;
        let offer = Offer {
            assignment_id: super::assignment_id(&c.id, attempt),
            tenant: self.tenant.clone(),
            contact_id: Name::from(&c.id),
            agent_id: self.agent_ids.shared(ai).clone(),
            customer_id: Name::from(&c.customer),
            channel: self.channel_names.shared(c.channel).clone(),
            queue: self.queue_names.shared(c.queue).clone(),
            language: c.language_tag.clone(),
            priority: c.priority,
            offered_at: now,
            expires_at: now.saturating_add(info.offer_timeout),
            wait_ms: now.saturating_sub(c.arrival),
            attempt,
            why: Why {
                rule: match rule {
                    Rule::PreferredAgent => self.words.preferred_agent.clone(),
                    Rule::Sticky => self.words.sticky.clone(),
                    Rule::Strategy => self.words.strategy(strategy).clone(),
                },
                matched_skills,
                matched_preferred,
                language: self.langs.shared(m.language).clone(),
                language_fallback: m.fallback,
                score,
                effective_priority: eff,
                relaxation_step: r.steps as u32,
                overflow_from: m.overflow.map(|q| self.queue_names.shared(q).clone()),
                sticky: rule == Rule::Sticky,
            },
            handoff: c.handoff().cloned(),
        };
        let (uid, queue, channel) = (c.uid, c.queue, c.channel);
        if let Some(c) = self.contacts.get_mut(slot) {
            c.attempt = attempt;
            c.phase = Phase::Offered {
                agent: ai,
                units: info.units,
                offered_at: now,
            };
        }
        let a = &mut self.agents[ai as usize];
        a.hold(channel, info.units, info.exclusive);
        a.pending.push(slot);
        if strategy == Strategy::RoundRobin && rule == Rule::Strategy {
            let q = queue as usize;
            if self.rr_cursor.len() <= q {
                self.rr_cursor.resize(q + 1, 0);
            }
            self.rr_cursor[q] = ai + 1;
        }
        self.timers.set(
            now.saturating_add(info.offer_timeout),
            Timer::OfferExpiry { slot, uid, attempt },
        );
        self.counts.offers_open += 1;
        self.agent_changed(ai);
        out.push(Output::Offer(offer));
    }

    /// Withdraws the pending offer of the contact in `slot`, freeing the agent's reservation.
    /// The contact is left out of any line (`Waiting(None)`); returns the agent.
    pub(crate) fn withdraw(
        &mut self,
        slot: u32,
        reason: Name,
        out: &mut Vec<Output>,
    ) -> Option<u32> {
        let now = self.now;
        let c = self.contacts.get_mut(slot)?;
        let Phase::Offered { agent, units, .. } = c.phase else {
            return None;
        };
        c.phase = Phase::Waiting(None);
        let channel = c.channel;
        let exclusive = self.channels[channel as usize].exclusive;
        out.push(Output::OfferWithdrawn(OfferWithdrawn {
            assignment_id: super::assignment_id(&c.id, c.attempt),
            tenant: self.tenant.clone(),
            contact_id: Name::from(&c.id),
            agent_id: self.agent_ids.shared(agent).clone(),
            at: now,
            reason,
        }));
        let a = &mut self.agents[agent as usize];
        a.pending.retain(|&s| s != slot);
        a.release(now, channel, units, exclusive);
        self.counts.offers_open -= 1;
        self.agent_changed(agent);
        Some(agent)
    }

    /// A missed offer (rejected or timed out): withdraw, exclude the agent, requeue at the
    /// contact's old place, and set the agent away after too many misses in a row.
    pub(crate) fn miss(&mut self, slot: u32, reason: Name, out: &mut Vec<Output>) {
        let Some(ai) = self.withdraw(slot, reason, out) else {
            return;
        };
        if let Some(c) = self.contacts.get_mut(slot) {
            c.excluded.push(ai);
        }
        let a = &mut self.agents[ai as usize];
        a.missed += 1;
        let missed = a.missed;
        let max = self.policy.max_missed_offers;
        let mut requeue = vec![slot];
        if max > 0 && missed >= max && a.state == AgentState::Available {
            out.push(Output::AgentAway(AgentAway {
                tenant: self.tenant.clone(),
                agent_id: self.agent_ids.shared(ai).clone(),
                at: self.now,
                reason: self.words.missed_offers.clone(),
                missed,
            }));
            requeue.extend(self.set_unavailable(ai, AgentState::Away, out));
        }
        for s in requeue {
            self.route_contact(s, out);
        }
        self.serve_agent(ai, out);
    }

    /// Sets an agent away or offline, withdrawing its pending offers. Returns the withdrawn
    /// contacts' slots, for the caller to route again.
    pub(crate) fn set_unavailable(
        &mut self,
        ai: u32,
        state: AgentState,
        out: &mut Vec<Output>,
    ) -> Vec<u32> {
        let a = &mut self.agents[ai as usize];
        if a.state == AgentState::Available {
            self.counts.available -= 1;
        }
        a.state = state;
        // A copy, so that the agent keeps the room of its list for its next offers.
        let pending = a.pending.to_vec();
        a.pending.clear();
        for &s in &pending {
            self.withdraw(s, self.words.agent_unavailable.clone(), out);
        }
        self.agent_changed(ai);
        pending
    }
}
