//! What each event and each timer does to the routing domain.

use std::sync::Arc;

use super::agents::{self, Agent, Wrapup};
use super::contacts::{Contact, Phase};
use super::tables::{self, FULL_LOAD};
use super::timers::Timer;
use super::{sla, Engine, Ignored, Output, Strategy};
use crate::event::{
    AgentProfile, AgentState, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef,
    ContactUpdated, Event, OfferAnswer, Skills, WrapupDone,
};

impl Engine {
    pub(crate) fn apply(&mut self, event: &Event, out: &mut Vec<Output>) -> Result<(), Ignored> {
        match &event.body {
            Body::ContactCreated(c) => self.contact_created(event.ts, c, out),
            Body::ContactUpdated(u) => self.contact_updated(u, out),
            Body::ContactAbandoned(c) => self.contact_abandoned(c, out),
            Body::ContactCompleted(c) => self.contact_completed(c, out),
            Body::AgentProfile(p) => self.agent_profile(p, out),
            Body::AgentState(s) => self.agent_state(s, out),
            Body::OfferAccepted(a) => self.offer_accepted(a),
            Body::OfferRejected(a) => self.offer_rejected(a, out),
            Body::AgentWrapupDone(w) => self.wrapup_done(w, out),
        }
    }

    pub(crate) fn fire(&mut self, timer: Timer, out: &mut Vec<Output>) {
        match timer {
            Timer::OfferExpiry { slot, uid, attempt } => {
                let live = self.contacts.get(slot).is_some_and(|c| {
                    c.uid == uid && c.attempt == attempt && matches!(c.phase, Phase::Offered { .. })
                });
                if live {
                    self.miss(slot, self.words.timeout.clone(), out);
                }
            }
            Timer::WrapupEnd { agent, serial } => {
                let a = &mut self.agents[agent as usize];
                if let Some(i) = a.wrapups.iter().position(|w| w.serial == serial) {
                    let w = a.wrapups.remove(i);
                    self.end_wrapup(agent, &w);
                    self.serve_agent(agent, out);
                }
            }
            Timer::Relax { slot, uid } => {
                let waiting = self
                    .contacts
                    .get(slot)
                    .is_some_and(|c| c.uid == uid && matches!(c.phase, Phase::Waiting(Some(_))));
                if waiting {
                    self.dequeue(slot);
                    self.route_contact(slot, out);
                }
            }
        }
    }

    fn end_wrapup(&mut self, ai: u32, w: &Wrapup) {
        let exclusive = self.channels[w.channel as usize].exclusive;
        self.agents[ai as usize].release(self.now, w.channel, w.units, exclusive);
        self.agent_changed(ai);
    }

    /// After any change to an agent's state, load or profile: re-file it in the pools and tell
    /// the SLA book.
    pub(crate) fn agent_changed(&mut self, ai: u32) {
        self.pools.refile(ai, &mut self.agents);
        let a = &self.agents[ai as usize];
        self.pools.set_takes(ai, a.takes_mask(&self.channels));
        self.sla.on_agent(
            self.now,
            ai,
            a.state != AgentState::Offline,
            f64::from(a.load) / f64::from(FULL_LOAD),
        );
    }

    pub(crate) fn prune_sticky(&mut self) {
        let sticky_for = tables::millis(self.policy.sticky_for);
        while let Some((at, _)) = self.sticky_fifo.front() {
            if self.now.saturating_sub(*at) <= sticky_for {
                break;
            }
            if let Some((at, customer)) = self.sticky_fifo.pop_front() {
                if self.sticky.get(&customer).is_some_and(|s| s.1 == at) {
                    self.sticky.remove(&customer);
                }
            }
        }
    }

    fn touch_sticky(&mut self, customer: &Arc<str>, agent: u32) {
        if self.policy.sticky_for.is_zero() {
            return;
        }
        self.sticky.insert(customer.clone(), (agent, self.now));
        self.sticky_fifo.push_back((self.now, customer.clone()));
    }

    /// The SLA book of a (queue, channel), by id: the book's name lookup happens once.
    fn sla_book(&mut self, queue: u32, channel: u32) -> u32 {
        let key = (u64::from(queue) << 32) | u64::from(channel);
        if let Some(&b) = self.sla_books.get(&key) {
            return b;
        }
        let b = self.sla.book_id(
            self.queue_names.name(queue),
            self.channel_names.name(channel),
        );
        self.sla_books.insert(key, b);
        b
    }

    /// The id of a queue, resolving its settings the first time it is seen.
    pub(crate) fn queue_id(&mut self, name: &str) -> u32 {
        if let Some(q) = self.queue_names.get(name) {
            return q;
        }
        let q = self.queue_names.intern(name);
        self.resolve_queues();
        q
    }

    /// Resolves settings for every queue without them (overflow targets may add queues).
    fn resolve_queues(&mut self) {
        while self.queues.len() < self.queue_names.len() {
            let name = self.queue_names.name(self.queues.len() as u32).to_string();
            let info =
                tables::resolve_queue(&self.policy, &name, &mut self.queue_names, &mut self.langs);
            self.queues.push(info);
        }
    }

    /// Rebuilds the policy tables (at start and on reload) and everything keyed by them.
    pub(crate) fn reload_tables(&mut self) {
        tables::resolve_channels(&self.policy, &mut self.channel_names, &mut self.channels);
        self.queues.clear();
        self.resolve_queues();
        // A queue the policy does not name takes the default queue's settings, or the
        // built-in ones: those strategies count too.
        let uses = |s: Strategy| {
            self.policy.queues.values().any(|q| q.strategy == s)
                || super::policy::QueuePolicy::default().strategy == s
        };
        let keep = agents::Orders {
            by_load: uses(Strategy::LeastOccupied),
            by_index: uses(Strategy::RoundRobin),
        };
        self.pools.keep_orders(keep, &self.agents);
        for ai in 0..self.agents.len() as u32 {
            self.resolve_capacity(ai);
            self.agent_changed(ai);
        }
        // Aging and thresholds may have changed: re-key every waiting contact, and set timers
        // for the new relaxation steps.
        let waiting: Vec<u32> = self
            .contacts
            .iter()
            .filter(|(_, c)| matches!(c.phase, Phase::Waiting(Some(_))))
            .map(|(s, _)| s)
            .collect();
        for &s in &waiting {
            self.dequeue(s);
            self.enqueue(s);
            self.set_relax_timers(s);
        }
    }

    fn resolve_capacity(&mut self, ai: u32) {
        let a = &mut self.agents[ai as usize];
        a.capacity = self
            .channels
            .iter()
            .enumerate()
            .map(|(c, info)| {
                if !info.present {
                    return 0;
                }
                a.capacity_profile
                    .get(self.channel_names.name(c as u32))
                    .copied()
                    .unwrap_or(info.capacity)
            })
            .collect();
    }

    fn set_relax_timers(&mut self, slot: u32) {
        let Some(c) = self.contacts.get(slot) else {
            return;
        };
        let (arrival, uid) = (c.arrival, c.uid);
        for i in 0..self.queues[c.queue as usize].steps.len() {
            let due = arrival.saturating_add(self.queues[c.queue as usize].steps[i].after);
            if due > self.now {
                self.timers.set(due, Timer::Relax { slot, uid });
            }
        }
    }

    fn skill_ids(&mut self, skills: &Skills) -> Vec<(u32, u8)> {
        let mut v: Vec<(u32, u8)> = skills
            .iter()
            .map(|(name, &level)| (self.skills.intern(name), level))
            .collect();
        v.sort_unstable();
        v
    }

    fn contact_slot(&self, id: &str) -> Result<u32, Ignored> {
        self.contact_ids
            .get(id)
            .copied()
            .ok_or_else(|| Ignored::UnknownContact(id.to_string()))
    }

    fn agent_idx(&self, id: &str) -> Result<u32, Ignored> {
        self.agent_ids
            .get(id)
            .ok_or_else(|| Ignored::UnknownAgent(id.to_string()))
    }

    fn threshold(&self, queue: u32, channel: u32) -> u64 {
        self.queues[queue as usize]
            .sl_threshold
            .unwrap_or(self.channels[channel as usize].sl_threshold)
    }

    fn contact_created(
        &mut self,
        ts: u64,
        e: &ContactCreated,
        out: &mut Vec<Output>,
    ) -> Result<(), Ignored> {
        let channel = self
            .channel_names
            .get(&e.channel)
            .filter(|&c| self.channels[c as usize].present)
            .ok_or_else(|| Ignored::UnknownChannel(e.channel.clone()))?;
        if self.contact_ids.contains_key(e.contact_id.as_str()) {
            return Err(Ignored::ContactExists(e.contact_id.clone()));
        }
        if self.contacts.len() >= self.policy.limits.max_contacts {
            return Err(Ignored::LimitReached("max_contacts"));
        }
        let queue = match &e.queue {
            Some(q) => self.queue_id(q),
            None => {
                let d = self.policy.default_queue.clone();
                self.queue_id(&d)
            }
        };
        let (language, language_tag) = self.langs.spelled(&e.language);
        let required = self.skill_ids(&e.required_skills);
        let preferred = self.skill_ids(&e.preferred_skills);
        self.next_uid += 1;
        let id: Arc<str> = Arc::from(e.contact_id.as_str());
        let contact = Contact {
            id: id.clone(),
            uid: self.next_uid,
            customer: Arc::from(e.customer_id.as_str()),
            channel,
            language,
            language_tag,
            queue,
            required,
            preferred,
            priority: e.priority,
            extra: Contact::extra(e.preferred_agent.clone(), e.handoff.clone()),
            arrival: ts.min(self.now),
            attempt: 0,
            excluded: Vec::new(),
            phase: Phase::Waiting(None),
        };
        let slot = self.contacts.insert(contact);
        self.contact_ids.insert(id, slot);
        let book = self.sla_book(queue, channel);
        self.sla.queued_in(self.now, book);
        self.set_relax_timers(slot);
        self.route_contact(slot, out);
        Ok(())
    }

    fn contact_updated(
        &mut self,
        e: &ContactUpdated,
        out: &mut Vec<Output>,
    ) -> Result<(), Ignored> {
        let slot = self.contact_slot(&e.contact_id)?;
        let Some(c) = self.contacts.get(slot) else {
            return Err(Ignored::UnknownContact(e.contact_id.clone()));
        };
        if matches!(c.phase, Phase::InService { .. }) {
            return Err(Ignored::OutOfOrder(format!(
                "contact {} is already in service",
                e.contact_id
            )));
        }
        let old_queue = c.queue;
        let new_queue = e.queue.as_deref().map(|q| self.queue_id(q));
        let transfer = new_queue.is_some_and(|q| q != old_queue);
        let mut freed = None;
        if transfer {
            freed = self.withdraw(slot, self.words.updated.clone(), out);
        }
        self.dequeue(slot);
        let language = e.language.as_deref().map(|l| self.langs.spelled(l));
        let required = e.required_skills.as_ref().map(|s| self.skill_ids(s));
        let preferred = e.preferred_skills.as_ref().map(|s| self.skill_ids(s));
        let Some(c) = self.contacts.get_mut(slot) else {
            return Ok(());
        };
        if let Some(p) = e.priority {
            c.priority = p;
        }
        if let Some((l, tag)) = language {
            c.language = l;
            c.language_tag = tag;
        }
        if let Some(r) = required {
            c.required = r;
        }
        if let Some(p) = preferred {
            c.preferred = p;
        }
        if let Some(q) = new_queue {
            c.queue = q;
        }
        let waiting = matches!(c.phase, Phase::Waiting(_));
        if transfer {
            self.set_relax_timers(slot);
        }
        if waiting {
            self.route_contact(slot, out);
        }
        if let Some(ai) = freed {
            self.serve_agent(ai, out);
        }
        Ok(())
    }

    fn contact_abandoned(&mut self, e: &ContactRef, out: &mut Vec<Output>) -> Result<(), Ignored> {
        let slot = self.contact_slot(&e.contact_id)?;
        let Some(c) = self.contacts.get(slot) else {
            return Err(Ignored::UnknownContact(e.contact_id.clone()));
        };
        if matches!(c.phase, Phase::InService { .. }) {
            return Err(Ignored::OutOfOrder(format!(
                "contact {} was already accepted",
                e.contact_id
            )));
        }
        self.dequeue(slot);
        let freed = self.withdraw(slot, self.words.abandoned.clone(), out);
        if let Some(c) = self.contacts.remove(slot) {
            self.contact_ids.remove(&c.id);
            let wait = self.now.saturating_sub(c.arrival);
            let threshold = self.threshold(c.queue, c.channel);
            let short = self.channels[c.channel as usize].short_abandon;
            let book = self.sla_book(c.queue, c.channel);
            self.sla
                .abandoned_in(self.now, book, wait, threshold, short);
        }
        if let Some(ai) = freed {
            self.serve_agent(ai, out);
        }
        Ok(())
    }

    fn contact_completed(
        &mut self,
        e: &ContactCompleted,
        out: &mut Vec<Output>,
    ) -> Result<(), Ignored> {
        let slot = self.contact_slot(&e.contact_id)?;
        let Some(c) = self.contacts.get(slot) else {
            return Err(Ignored::UnknownContact(e.contact_id.clone()));
        };
        let Phase::InService {
            agent,
            units,
            answered_at,
        } = c.phase
        else {
            return Err(Ignored::OutOfOrder(format!(
                "contact {} was not accepted",
                e.contact_id
            )));
        };
        if let Some(by) = &e.agent_id {
            if self.agent_ids.get(by) != Some(agent) {
                return Err(Ignored::OutOfOrder(format!(
                    "contact {} is handled by {}, not {by}",
                    e.contact_id,
                    self.agent_ids.name(agent)
                )));
            }
        }
        let Some(c) = self.contacts.remove(slot) else {
            return Ok(());
        };
        self.contact_ids.remove(&c.id);
        self.counts.in_service -= 1;
        let book = self.sla_book(c.queue, c.channel);
        self.sla
            .completed_in(self.now, book, self.now.saturating_sub(answered_at));
        self.touch_sticky(&c.customer, agent);
        let info = self.channels[c.channel as usize];
        if info.wrapup > 0 {
            self.next_wrapup += 1;
            let serial = self.next_wrapup;
            self.agents[agent as usize].wrapups.push(Wrapup {
                serial,
                contact_id: c.id,
                channel: c.channel,
                units,
            });
            self.timers.set(
                self.now.saturating_add(info.wrapup),
                Timer::WrapupEnd { agent, serial },
            );
        } else {
            self.agents[agent as usize].release(self.now, c.channel, units, info.exclusive);
            self.agent_changed(agent);
            self.serve_agent(agent, out);
        }
        Ok(())
    }

    fn wrapup_done(&mut self, e: &WrapupDone, out: &mut Vec<Output>) -> Result<(), Ignored> {
        let ai = self.agent_idx(&e.agent_id)?;
        let a = &mut self.agents[ai as usize];
        // The agent keeps the room of its wrap-up list; one wrap-up ends without a list.
        let (one, all);
        let done: &[Wrapup] = match &e.contact_id {
            Some(id) => match a.wrapups.iter().position(|w| *w.contact_id == **id) {
                Some(i) => {
                    one = [a.wrapups.remove(i)];
                    &one
                }
                None => &[],
            },
            None => {
                all = a.wrapups.drain(..).collect::<Vec<_>>();
                &all
            }
        };
        if done.is_empty() {
            return Err(Ignored::OutOfOrder(format!(
                "agent {} has no such wrap-up",
                e.agent_id
            )));
        }
        for w in done {
            self.end_wrapup(ai, w);
        }
        self.serve_agent(ai, out);
        Ok(())
    }

    fn agent_profile(&mut self, p: &AgentProfile, out: &mut Vec<Output>) -> Result<(), Ignored> {
        let ai = match self.agent_ids.get(&p.agent_id) {
            Some(ai) => ai,
            None => {
                if self.agents.len() >= self.policy.limits.max_agents {
                    return Err(Ignored::LimitReached("max_agents"));
                }
                let ai = self.agent_ids.intern(&p.agent_id);
                self.agents.push(Agent::new(self.now));
                ai
            }
        };
        let skills = self.skill_ids(&p.skills);
        let mut languages: Vec<u32> = Vec::with_capacity(p.languages.len());
        for l in &p.languages {
            let id = self.langs.intern(l);
            if !languages.contains(&id) {
                languages.push(id);
            }
        }
        let mut queues: Vec<u32> = p.queues.iter().map(|q| self.queue_id(q)).collect();
        queues.sort_unstable();
        queues.dedup();
        // Pool memberships follow skills and languages: leave the old pools first.
        self.pools.unfile(ai, &mut self.agents);
        let a = &mut self.agents[ai as usize];
        a.skills = skills;
        a.languages = languages;
        a.queues = queues;
        a.capacity_profile = p.capacity.clone();
        self.pools.set_hot(ai, a);
        self.resolve_capacity(ai);
        self.agent_changed(ai);
        self.serve_agent(ai, out);
        Ok(())
    }

    fn agent_state(&mut self, s: &AgentStateChange, out: &mut Vec<Output>) -> Result<(), Ignored> {
        let ai = self.agent_idx(&s.agent_id)?;
        let a = &mut self.agents[ai as usize];
        if a.state == s.state {
            return Ok(());
        }
        match s.state {
            AgentState::Available => {
                a.state = AgentState::Available;
                a.idle_since = self.now;
                a.missed = 0;
                self.counts.available += 1;
                self.agent_changed(ai);
                self.serve_agent(ai, out);
            }
            AgentState::Away | AgentState::Offline => {
                let requeue = self.set_unavailable(ai, s.state, out);
                for slot in requeue {
                    self.route_contact(slot, out);
                }
            }
        }
        Ok(())
    }

    /// Finds the contact of an offer answer and checks it is the current offer to that agent.
    fn current_offer(&self, e: &OfferAnswer) -> Result<u32, Ignored> {
        let unknown = || Ignored::UnknownOffer(e.assignment_id.clone());
        let slot = *self
            .contact_ids
            .get(e.contact_id.as_str())
            .ok_or_else(unknown)?;
        let c = self.contacts.get(slot).ok_or_else(unknown)?;
        let Phase::Offered { agent, .. } = c.phase else {
            return Err(unknown());
        };
        let attempt = e
            .assignment_id
            .strip_prefix(&*c.id)
            .and_then(|rest| rest.strip_prefix('#'))
            .and_then(|n| n.parse::<u32>().ok());
        if attempt != Some(c.attempt) || self.agent_ids.name(agent) != e.agent_id {
            return Err(unknown());
        }
        Ok(slot)
    }

    fn offer_accepted(&mut self, e: &OfferAnswer) -> Result<(), Ignored> {
        let slot = self.current_offer(e)?;
        let now = self.now;
        let Some(c) = self.contacts.get_mut(slot) else {
            return Err(Ignored::UnknownOffer(e.assignment_id.clone()));
        };
        let Phase::Offered { agent, units, .. } = c.phase else {
            return Err(Ignored::UnknownOffer(e.assignment_id.clone()));
        };
        c.phase = Phase::InService {
            agent,
            units,
            answered_at: now,
        };
        let (queue, channel, wait) = (c.queue, c.channel, now.saturating_sub(c.arrival));
        let customer = c.customer.clone();
        let a = &mut self.agents[agent as usize];
        a.pending.retain(|&s| s != slot);
        a.missed = 0;
        self.counts.offers_open -= 1;
        self.counts.in_service += 1;
        let threshold = self.threshold(queue, channel);
        let book = self.sla_book(queue, channel);
        self.sla.answered_in(now, book, wait, threshold);
        self.touch_sticky(&customer, agent);
        Ok(())
    }

    fn offer_rejected(&mut self, e: &OfferAnswer, out: &mut Vec<Output>) -> Result<(), Ignored> {
        let slot = self.current_offer(e)?;
        self.miss(slot, self.words.rejected.clone(), out);
        Ok(())
    }

    /// Live state for an SLA snapshot: contacts not yet accepted per (queue, channel), agents.
    pub(crate) fn live_view(&self) -> sla::LiveView {
        let mut live = sla::LiveView::default();
        for (_, c) in self.contacts.iter() {
            if matches!(c.phase, Phase::InService { .. }) {
                continue;
            }
            let key = (
                self.queue_names.name(c.queue).to_string(),
                self.channel_names.name(c.channel).to_string(),
            );
            let e = live.waiting.entry(key).or_insert((0, c.arrival));
            e.0 += 1;
            e.1 = e.1.min(c.arrival);
        }
        for a in &self.agents {
            if a.state != AgentState::Offline {
                live.agents_logged_in += 1;
            }
            if a.state == AgentState::Available {
                live.agents_available += 1;
            }
            if a.load > 0 {
                live.agents_busy += 1;
            }
        }
        live
    }
}
