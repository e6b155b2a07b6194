//! SLA bookkeeping: service level, ASA, abandonment, handle time and occupancy per queue and
//! channel, over a rolling window and since start (DESIGN.md §4).
//!
//! The engine calls the `on_*` hooks as contacts move through their life; `snapshot` turns the
//! counts into figures. Pure and deterministic like the rest of the engine.
//!
//! The rolling window is kept as [`BUCKETS`] time buckets per queue/channel (plus one for the
//! partial bucket at the front), so memory stays bounded whatever the traffic; the window a
//! snapshot reports is therefore aligned to bucket edges and its exact bounds are in the record.
//!
//! Conventions, fixed here so that every consumer reads the same numbers:
//! - answered (or abandoned) *within* the threshold means `wait <= threshold`;
//! - a short abandon is `wait < short_abandon`, so a short-abandon threshold of 0 disables it;
//! - occupancy is Σ load·dt ÷ Σ logged-in·dt over all agents of the domain, where an agent's
//!   load is the fraction of its capacity in use (2 of 3 chats = 0.667).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::policy::{Policy, SlFormula};
use crate::event::Millis;

/// Buckets per rolling window: the window moves in steps of `window / BUCKETS`.
pub const BUCKETS: u64 = 60;

/// Window used until the policy's is known (the policy's default, 15 min).
const DEFAULT_WINDOW_MS: u64 = 15 * 60 * 1000;

/// Counts and derived figures for one queue/channel over one span (window or since start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlaFigures {
    /// Contacts that entered the queue ("offered" in contact-center terms).
    pub offered: u64,
    /// Contacts whose offer an agent accepted.
    pub answered: u64,
    /// Answered within the service-level threshold.
    pub answered_within: u64,
    pub abandoned: u64,
    /// Abandoned within the service-level threshold.
    pub abandoned_within: u64,
    /// Abandoned within the short-abandon threshold.
    pub short_abandoned: u64,
    pub completed: u64,
    /// Sum of the waits of answered contacts, ms (ASA = this ÷ answered). Kept so that spans can
    /// be subtracted exactly (e.g. "since warm-up" = since start now − since start then).
    #[serde(default)]
    pub answer_wait_ms: u64,
    /// Sum of handle times of completed contacts, ms (AHT = this ÷ completed).
    #[serde(default)]
    pub handle_ms: u64,
    /// Per the queue's formula; `None` when the denominator is 0.
    pub service_level: Option<f64>,
    /// Average speed of answer, seconds.
    pub asa_seconds: Option<f64>,
    /// Average handle time (accept → complete), seconds.
    pub aht_seconds: Option<f64>,
    /// abandoned ÷ (answered + abandoned).
    pub abandonment_rate: Option<f64>,
    /// Agent-seconds logged in over the span, domain-wide (all agents, so the same in every
    /// queue/channel record, like `occupancy`). Occupancy over any span is Δbusy ÷ Δlogged-in
    /// between two since-start figures.
    #[serde(default)]
    pub agent_seconds_logged_in: f64,
    /// Load-weighted agent-seconds busy over the span, domain-wide (an agent at 2 of 3 chats
    /// for 60 s adds 40).
    #[serde(default)]
    pub agent_seconds_busy: f64,
}

impl SlaFigures {
    /// Recomputes the derived figures (service level, ASA, AHT, abandonment rate) from the counts.
    pub fn derive(&mut self, formula: SlFormula) {
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        self.service_level = match formula {
            SlFormula::AbandonAdjusted => ratio(
                self.answered_within,
                (self.answered + self.abandoned).saturating_sub(self.short_abandoned),
            ),
            SlFormula::AnsweredOnly => ratio(self.answered_within, self.answered),
            SlFormula::WithAbandoned => ratio(
                self.answered_within + self.abandoned_within,
                self.answered + self.abandoned,
            ),
            SlFormula::RemovedWithin => {
                ratio(self.answered_within + self.abandoned_within, self.offered)
            }
        };
        self.asa_seconds = ratio(self.answer_wait_ms, self.answered).map(|s| s / 1000.0);
        self.aht_seconds = ratio(self.handle_ms, self.completed).map(|s| s / 1000.0);
        self.abandonment_rate = ratio(self.abandoned, self.answered + self.abandoned);
    }

    /// The counts of `self` minus those of `earlier` (a since-start figure taken before), with
    /// the derived figures recomputed: the figures of the span between the two.
    pub fn since(&self, earlier: &SlaFigures, formula: SlFormula) -> SlaFigures {
        let mut c = self.counts();
        c.sub(&earlier.counts());
        let mut f = c.figures(formula);
        f.agent_seconds_logged_in =
            (self.agent_seconds_logged_in - earlier.agent_seconds_logged_in).max(0.0);
        f.agent_seconds_busy = (self.agent_seconds_busy - earlier.agent_seconds_busy).max(0.0);
        f
    }

    /// Busy ÷ logged-in agent time over the span (domain-wide); `None` when nobody was logged in.
    pub fn occupancy(&self) -> Option<f64> {
        (self.agent_seconds_logged_in > 0.0)
            .then(|| self.agent_seconds_busy / self.agent_seconds_logged_in)
    }

    fn counts(&self) -> Counts {
        Counts {
            offered: self.offered,
            answered: self.answered,
            answered_within: self.answered_within,
            abandoned: self.abandoned,
            abandoned_within: self.abandoned_within,
            short_abandoned: self.short_abandoned,
            completed: self.completed,
            answer_wait_ms: self.answer_wait_ms,
            handle_ms: self.handle_ms,
        }
    }
}

/// One record of `omniroute.sla`: a queue/channel at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSnapshot {
    pub tenant: String,
    pub queue: String,
    pub channel: String,
    pub at: Millis,
    pub window_start: Millis,
    pub window_end: Millis,
    pub window: SlaFigures,
    pub since_start: SlaFigures,
    pub service_level_threshold_seconds: f64,
    pub service_level_target: f64,
    /// Contacts waiting now (not yet accepted).
    pub queue_depth: u64,
    /// Wait of the oldest contact waiting now, seconds.
    pub longest_wait_seconds: f64,
    pub agents_logged_in: u64,
    pub agents_available: u64,
    pub agents_busy: u64,
    /// Busy time ÷ logged-in time over the window, capacity-aware (load fraction), tenant-wide.
    pub occupancy: Option<f64>,
}

/// Live state the engine passes in at snapshot time.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    /// (queue, channel) → (depth, oldest arrival time).
    pub waiting: BTreeMap<(String, String), (u64, Millis)>,
    pub agents_logged_in: u64,
    pub agents_available: u64,
    pub agents_busy: u64,
}

/// Raw counts; figures are derived only at snapshot time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Counts {
    offered: u64,
    answered: u64,
    answered_within: u64,
    abandoned: u64,
    abandoned_within: u64,
    short_abandoned: u64,
    completed: u64,
    answer_wait_ms: u64,
    handle_ms: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.offered += o.offered;
        self.answered += o.answered;
        self.answered_within += o.answered_within;
        self.abandoned += o.abandoned;
        self.abandoned_within += o.abandoned_within;
        self.short_abandoned += o.short_abandoned;
        self.completed += o.completed;
        self.answer_wait_ms += o.answer_wait_ms;
        self.handle_ms += o.handle_ms;
    }

    fn sub(&mut self, o: &Counts) {
        self.offered = self.offered.saturating_sub(o.offered);
        self.answered = self.answered.saturating_sub(o.answered);
        self.answered_within = self.answered_within.saturating_sub(o.answered_within);
        self.abandoned = self.abandoned.saturating_sub(o.abandoned);
        self.abandoned_within = self.abandoned_within.saturating_sub(o.abandoned_within);
        self.short_abandoned = self.short_abandoned.saturating_sub(o.short_abandoned);
        self.completed = self.completed.saturating_sub(o.completed);
        self.answer_wait_ms = self.answer_wait_ms.saturating_sub(o.answer_wait_ms);
        self.handle_ms = self.handle_ms.saturating_sub(o.handle_ms);
    }

    fn figures(&self, formula: SlFormula) -> SlaFigures {
        let mut f = SlaFigures {
            offered: self.offered,
            answered: self.answered,
            answered_within: self.answered_within,
            abandoned: self.abandoned,
            abandoned_within: self.abandoned_within,
            short_abandoned: self.short_abandoned,
            completed: self.completed,
            answer_wait_ms: self.answer_wait_ms,
            handle_ms: self.handle_ms,
            ..SlaFigures::default()
        };
        f.derive(formula);
        f
    }
}

/// A ring of time buckets `index → T`, oldest first, holding at most `BUCKETS + 1` of them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Buckets<T> {
    ring: VecDeque<(u64, T)>,
}

impl<T: Default> Buckets<T> {
    /// The bucket for `index`, created if needed. An index older than the newest bucket (time
    /// passed in out of order) lands in its own bucket if still kept, else in the newest.
    fn at(&mut self, index: u64) -> &mut T {
        let newest = self.ring.back().map(|(i, _)| *i);
        match newest {
            Some(n) if index <= n => {
                // Searched from the newest end: nearly every call hits the newest bucket.
                let pos = self
                    .ring
                    .iter()
                    .rposition(|(i, _)| *i == index)
                    .unwrap_or(self.ring.len() - 1);
                &mut self.ring[pos].1
            }
            _ => {
                self.prune(index);
                self.ring.push_back((index, T::default()));
                let last = self.ring.len() - 1;
                &mut self.ring[last].1
            }
        }
    }

    /// Drops buckets that have left the window ending in bucket `current`.
    fn prune(&mut self, current: u64) {
        let first = current.saturating_sub(BUCKETS);
        while self.ring.front().is_some_and(|(i, _)| *i < first) {
            self.ring.pop_front();
        }
    }

    fn in_window(&self, current: u64) -> impl Iterator<Item = &T> {
        let first = current.saturating_sub(BUCKETS);
        self.ring
            .iter()
            .filter(move |(i, _)| *i >= first && *i <= current)
            .map(|(_, t)| t)
    }

    /// Re-buckets from width `from` to width `to` (ms). Exact when the new width is a multiple
    /// of the old; otherwise each old bucket moves whole into the bucket holding its start.
    fn rebucket(&mut self, from: u64, to: u64, merge: impl Fn(&mut T, &T)) {
        let mut ring: VecDeque<(u64, T)> = VecDeque::with_capacity(self.ring.len());
        for (i, t) in self.ring.drain(..) {
            let ni = i * from / to;
            match ring.back_mut() {
                Some((bi, bt)) if *bi == ni => merge(bt, &t),
                _ => ring.push_back((ni, t)),
            }
        }
        self.ring = ring;
    }
}

/// Agent time in one bucket, ms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct AgentTime {
    logged_in_ms: f64,
    busy_ms: f64,
}

/// One agent's last reported state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct AgentTrack {
    logged_in: bool,
    /// Load in millionths, so that the domain-wide sum stays exact through any number of
    /// changes (a float sum would drift).
    load: i64,
}

/// Load fractions are kept in units of 1/LOAD_SCALE.
const LOAD_SCALE: i64 = 1_000_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct QueueBook {
    since_start: Counts,
    window: Buckets<Counts>,
}

/// Accumulates SLA counts for one routing domain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlaBook {
    /// Rolling window length, ms; 0 until set (then [`DEFAULT_WINDOW_MS`] applies).
    window_ms: u64,
    /// queue → channel → index in `books`. Nested so that hooks look up by `&str` without
    /// allocating; the engine keeps the index per (queue, channel) id and skips the lookup.
    queues: BTreeMap<String, BTreeMap<String, u32>>,
    books: Vec<QueueBook>,
    /// By the engine's dense agent index.
    agents: Vec<AgentTrack>,
    /// Agents logged in now, and the sum of their loads (units of 1/LOAD_SCALE). Occupancy
    /// integrates these domain-wide sums, so a change costs the same with 10 or 10,000 agents.
    logged_in_now: i64,
    load_now: i64,
    /// Time up to which the sums have been integrated into `agent_time`.
    accrued_to: Millis,
    agent_time: Buckets<AgentTime>,
    logged_in_ms_total: f64,
    busy_ms_total: f64,
}

impl SlaBook {
    /// A book with the given rolling window (the policy's `sla_window`).
    pub fn new(window: Duration) -> Self {
        let mut b = SlaBook::default();
        b.set_window(window);
        b
    }

    /// Changes the rolling window (policy reload). Counts already in the window are kept,
    /// re-bucketed to the new bucket width.
    pub fn set_window(&mut self, window: Duration) {
        let new = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
        let old_width = self.width();
        self.window_ms = new;
        let new_width = self.width();
        if old_width != new_width {
            for book in &mut self.books {
                book.window.rebucket(old_width, new_width, Counts::add);
            }
            self.agent_time.rebucket(old_width, new_width, |a, b| {
                a.logged_in_ms += b.logged_in_ms;
                a.busy_ms += b.busy_ms;
            });
        }
    }

    /// The rolling window in force.
    pub fn window(&self) -> Duration {
        Duration::from_millis(self.window_len())
    }

    fn window_len(&self) -> u64 {
        if self.window_ms == 0 {
            DEFAULT_WINDOW_MS
        } else {
            self.window_ms
        }
    }

    /// Bucket width, ms.
    fn width(&self) -> u64 {
        (self.window_len() / BUCKETS).max(1)
    }

    /// The id of the book of `queue` on `channel`, created if new. Ids are stable for the life
    /// of the book (and of its snapshots).
    pub(crate) fn book_id(&mut self, queue: &str, channel: &str) -> u32 {
        // Lookups first, so the common path allocates nothing.
        if let Some(&id) = self.queues.get(queue).and_then(|ch| ch.get(channel)) {
            return id;
        }
        let id = self.books.len() as u32;
        self.books.push(QueueBook::default());
        if !self.queues.contains_key(queue) {
            self.queues.insert(queue.to_string(), BTreeMap::new());
        }
        if let Some(channels) = self.queues.get_mut(queue) {
            channels.insert(channel.to_string(), id);
        }
        id
    }

    fn record(&mut self, now: Millis, book: u32, c: Counts) {
        let index = now / self.width();
        if let Some(book) = self.books.get_mut(book as usize) {
            book.since_start.add(&c);
            book.window.at(index).add(&c);
        }
    }

    /// A contact entered `queue` on `channel`.
    pub fn on_queued(&mut self, now: Millis, queue: &str, channel: &str) {
        let book = self.book_id(queue, channel);
        self.queued_in(now, book);
    }

    /// [`on_queued`](Self::on_queued) by book id.
    pub(crate) fn queued_in(&mut self, now: Millis, book: u32) {
        let c = Counts {
            offered: 1,
            ..Counts::default()
        };
        self.record(now, book, c);
    }

    /// A contact was answered (offer accepted) after waiting `wait` ms; `threshold` is the
    /// service-level threshold in ms for its queue/channel.
    pub fn on_answered(
        &mut self,
        now: Millis,
        queue: &str,
        channel: &str,
        wait: u64,
        threshold: u64,
    ) {
        let book = self.book_id(queue, channel);
        self.answered_in(now, book, wait, threshold);
    }

    /// [`on_answered`](Self::on_answered) by book id.
    pub(crate) fn answered_in(&mut self, now: Millis, book: u32, wait: u64, threshold: u64) {
        let c = Counts {
            answered: 1,
            answered_within: u64::from(wait <= threshold),
            answer_wait_ms: wait,
            ..Counts::default()
        };
        self.record(now, book, c);
    }

    /// A waiting contact abandoned after `wait` ms.
    pub fn on_abandoned(
        &mut self,
        now: Millis,
        queue: &str,
        channel: &str,
        wait: u64,
        threshold: u64,
        short_abandon: u64,
    ) {
        let book = self.book_id(queue, channel);
        self.abandoned_in(now, book, wait, threshold, short_abandon);
    }

    /// [`on_abandoned`](Self::on_abandoned) by book id.
    pub(crate) fn abandoned_in(
        &mut self,
        now: Millis,
        book: u32,
        wait: u64,
        threshold: u64,
        short_abandon: u64,
    ) {
        let c = Counts {
            abandoned: 1,
            abandoned_within: u64::from(wait <= threshold),
            short_abandoned: u64::from(wait < short_abandon),
            ..Counts::default()
        };
        self.record(now, book, c);
    }

    /// An answered contact completed after `handle` ms of handling (accept → complete).
    pub fn on_completed(&mut self, now: Millis, queue: &str, channel: &str, handle: u64) {
        let book = self.book_id(queue, channel);
        self.completed_in(now, book, handle);
    }

    /// [`on_completed`](Self::on_completed) by book id.
    pub(crate) fn completed_in(&mut self, now: Millis, book: u32, handle: u64) {
        let c = Counts {
            completed: 1,
            handle_ms: handle,
            ..Counts::default()
        };
        self.record(now, book, c);
    }

    /// Agent `agent` (a dense index) changed: logged in or not, and its load fraction (0–1).
    pub fn on_agent(&mut self, now: Millis, agent: u32, logged_in: bool, load: f64) {
        self.accrue(now);
        let i = agent as usize;
        if i >= self.agents.len() {
            self.agents.resize(i + 1, AgentTrack::default());
        }
        // A load outside [0, 1] would be an engine bug; clamp so occupancy stays a fraction.
        let load = if load.is_finite() {
            (load.clamp(0.0, 1.0) * LOAD_SCALE as f64).round() as i64
        } else {
            0
        };
        let new = AgentTrack {
            logged_in,
            load: if logged_in { load } else { 0 },
        };
        let old = std::mem::replace(&mut self.agents[i], new);
        self.logged_in_now += i64::from(new.logged_in) - i64::from(old.logged_in);
        self.load_now += new.load - old.load;
    }

    /// Integrates the domain-wide sums from `accrued_to` up to `now` into the agent-time buckets.
    fn accrue(&mut self, now: Millis) {
        if self.accrued_to == 0 || now <= self.accrued_to {
            // First call, or time passed in out of order: nothing to integrate.
            self.accrued_to = self.accrued_to.max(now);
            return;
        }
        let since = self.accrued_to;
        self.accrued_to = now;
        if self.logged_in_now <= 0 {
            return;
        }
        let logged = self.logged_in_now as f64;
        let busy = self.load_now as f64 / LOAD_SCALE as f64;
        let dt = (now - since) as f64;
        self.logged_in_ms_total += dt * logged;
        self.busy_ms_total += dt * busy;
        let width = self.width();
        let current = now / width;
        // Time before the window's first bucket would be pruned at once: skip it.
        let earliest = current.saturating_sub(BUCKETS) * width;
        let mut from = since.max(earliest);
        while from < now {
            let index = from / width;
            let to = ((index + 1) * width).min(now);
            let span = (to - from) as f64;
            let b = self.agent_time.at(index);
            b.logged_in_ms += span * logged;
            b.busy_ms += span * busy;
            from = to;
        }
    }

    /// Figures for every queue/channel seen, plus live state, sorted by (queue, channel).
    pub fn snapshot(
        &mut self,
        now: Millis,
        tenant: &str,
        policy: &Policy,
        live: &LiveView,
    ) -> Vec<SlaSnapshot> {
        if self.window_ms != u64::try_from(policy.sla_window.as_millis()).unwrap_or(u64::MAX) {
            self.set_window(policy.sla_window);
        }
        // Integrate up to `now` so occupancy covers the whole window.
        self.accrue(now);
        let width = self.width();
        let current = now / width;
        self.agent_time.prune(current);
        let (logged, busy) = self
            .agent_time
            .in_window(current)
            .fold((0.0, 0.0), |(l, b), t| (l + t.logged_in_ms, b + t.busy_ms));
        let occupancy = (logged > 0.0).then(|| busy / logged);
        let window_start = current.saturating_sub(BUCKETS) * width;

        let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
        for (q, chans) in &self.queues {
            for c in chans.keys() {
                keys.insert((q, c));
            }
        }
        for (q, c) in live.waiting.keys() {
            keys.insert((q, c));
        }
        let mut out = Vec::with_capacity(keys.len());
        for (queue, channel) in keys {
            let qp = policy.queue(queue);
            let formula = qp.service_level_formula;
            let (mut since_start, mut window) = match self
                .queues
                .get(queue)
                .and_then(|c| c.get(channel))
                .and_then(|&b| self.books.get(b as usize))
            {
                Some(book) => {
                    let mut w = Counts::default();
                    for c in book.window.in_window(current) {
                        w.add(c);
                    }
                    (book.since_start.figures(formula), w.figures(formula))
                }
                None => (
                    Counts::default().figures(formula),
                    Counts::default().figures(formula),
                ),
            };
            since_start.agent_seconds_logged_in = self.logged_in_ms_total / 1000.0;
            since_start.agent_seconds_busy = self.busy_ms_total / 1000.0;
            window.agent_seconds_logged_in = logged / 1000.0;
            window.agent_seconds_busy = busy / 1000.0;
            let (depth, oldest) = live
                .waiting
                .get(&(queue.to_string(), channel.to_string()))
                .copied()
                .unwrap_or((0, now));
            out.push(SlaSnapshot {
                tenant: tenant.to_string(),
                queue: queue.to_string(),
                channel: channel.to_string(),
                at: now,
                window_start,
                window_end: now,
                window,
                since_start,
                service_level_threshold_seconds: policy.sl_threshold(queue, channel).as_secs_f64(),
                service_level_target: qp.service_level_target,
                queue_depth: depth,
                longest_wait_seconds: if depth > 0 {
                    now.saturating_sub(oldest) as f64 / 1000.0
                } else {
                    0.0
                },
                agents_logged_in: live.agents_logged_in,
                agents_available: live.agents_available,
                agents_busy: live.agents_busy,
                occupancy,
            });
        }
        for book in &mut self.books {
            book.window.prune(current);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1000;
    const MIN: u64 = 60 * S;
    const H: u64 = 60 * MIN;
    /// Arbitrary epoch start, far from 0 so that bucket arithmetic is exercised.
    const T0: Millis = 1_795_449_600_000;

    fn policy(toml_text: &str) -> Policy {
        let p: Policy = toml::from_str(toml_text).expect("test policy parses");
        p.validate().expect("test policy is valid");
        p
    }

    fn snap(book: &mut SlaBook, now: Millis, p: &Policy) -> Vec<SlaSnapshot> {
        book.snapshot(now, "t", p, &LiveView::default())
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    /// 10 offered; answered after 5, 10, 20, 25 (within 20 s: 3) and 40, 60 s; abandoned after
    /// 3 s (short), 15 s (within), 30 s (after the threshold).
    fn mixed_queue(book: &mut SlaBook, queue: &str) {
        let t = 20 * S;
        for i in 0..10 {
            book.on_queued(T0 + i, queue, "voice");
        }
        for w in [5, 10, 20, 25, 40, 60] {
            book.on_answered(T0 + 100 * S, queue, "voice", w * S, t);
        }
        for w in [3, 15, 30] {
            book.on_abandoned(T0 + 100 * S, queue, "voice", w * S, t, 5 * S);
        }
        book.on_completed(T0 + 200 * S, queue, "voice", 300 * S);
        book.on_completed(T0 + 200 * S, queue, "voice", 100 * S);
    }

    #[test]
    fn every_formula_on_hand_computed_counts() {
        let p = policy(
            r#"
            [queues.adj]
            [queues.ans]
            service_level_formula = "answered_only"
            [queues.with]
            service_level_formula = "with_abandoned"
            [queues.rem]
            service_level_formula = "removed_within"
            "#,
        );
        let mut book = SlaBook::new(p.sla_window);
        for q in ["adj", "ans", "with", "rem"] {
            mixed_queue(&mut book, q);
        }
        let out = snap(&mut book, T0 + 300 * S, &p);
        let names: Vec<&str> = out.iter().map(|s| s.queue.as_str()).collect();
        assert_eq!(names, ["adj", "ans", "rem", "with"], "sorted by queue");
        let f = |q: &str| {
            out.iter()
                .find(|s| s.queue == q)
                .map(|s| s.since_start.clone())
                .unwrap_or_default()
        };
        let adj = f("adj");
        assert_eq!((adj.offered, adj.answered, adj.answered_within), (10, 6, 3));
        assert_eq!(
            (adj.abandoned, adj.abandoned_within, adj.short_abandoned),
            (3, 2, 1)
        );
        // 3 / (6 + 3 - 1)
        assert!(close(adj.service_level, 3.0 / 8.0), "{adj:?}");
        // 3 / 6
        assert!(close(f("ans").service_level, 0.5));
        // (3 + 2) / (6 + 3)
        assert!(close(f("with").service_level, 5.0 / 9.0));
        // (3 + 2) / 10
        assert!(close(f("rem").service_level, 0.5));
        // ASA = (5+10+20+25+40+60)/6 s; AHT = (300+100)/2 s; abandonment = 3 / 9.
        assert!(close(adj.asa_seconds, 160.0 / 6.0));
        assert!(close(adj.aht_seconds, 200.0));
        assert!(close(adj.abandonment_rate, 1.0 / 3.0));
        // Everything happened within the 15 min window too.
        let w = &out[0].window;
        assert_eq!(
            (w.offered, w.answered, w.abandoned, w.completed),
            (10, 6, 3, 2)
        );
        assert_eq!(out[0].service_level_threshold_seconds, 20.0);
        assert_eq!(out[0].service_level_target, 0.8);
    }

    #[test]
    fn empty_denominators_give_none() {
        let mut f = SlaFigures {
            offered: 2,
            ..SlaFigures::default()
        };
        f.derive(SlFormula::AbandonAdjusted);
        assert_eq!(f.service_level, None);
        assert_eq!(f.asa_seconds, None);
        assert_eq!(f.abandonment_rate, None);
        f.derive(SlFormula::RemovedWithin);
        assert_eq!(f.service_level, Some(0.0));
        // Only short abandons: the adjusted denominator is 0, not negative.
        f.abandoned = 1;
        f.short_abandoned = 1;
        f.derive(SlFormula::AbandonAdjusted);
        assert_eq!(f.service_level, None);
    }

    #[test]
    fn thresholds_are_inclusive_and_short_abandon_zero_disables() {
        let mut book = SlaBook::default();
        book.on_answered(T0, "q", "chat", 30 * S, 30 * S);
        book.on_answered(T0, "q", "chat", 30 * S + 1, 30 * S);
        book.on_abandoned(T0, "q", "email", 0, 48 * H, 0);
        let out = snap(&mut book, T0 + 1, &Policy::default());
        let chat = &out[0].since_start;
        assert_eq!((chat.answered, chat.answered_within), (2, 1));
        let email = &out[1].since_start;
        assert_eq!((email.abandoned, email.short_abandoned), (1, 0));
    }

    #[test]
    fn email_scale_threshold_of_48_hours() {
        let p = Policy::default();
        let t = u64::try_from(p.sl_threshold("general", "email").as_millis()).unwrap_or(0);
        assert_eq!(t, 48 * H);
        let mut book = SlaBook::new(p.sla_window);
        for _ in 0..4 {
            book.on_queued(T0, "general", "email");
        }
        book.on_answered(T0 + 47 * H, "general", "email", 47 * H, t);
        book.on_answered(T0 + 48 * H, "general", "email", 48 * H, t);
        book.on_answered(T0 + 49 * H, "general", "email", 49 * H, t);
        book.on_abandoned(T0 + 72 * H, "general", "email", 72 * H, t, 0);
        let out = snap(&mut book, T0 + 72 * H, &p);
        let s = &out[0];
        assert_eq!(s.service_level_threshold_seconds, 48.0 * 3600.0);
        // 2 within of (3 answered + 1 abandoned - 0 short).
        assert!(close(s.since_start.service_level, 0.5));
        assert!(close(s.since_start.asa_seconds, 48.0 * 3600.0));
        // The 15 min window at 72 h holds only the abandon.
        assert_eq!((s.window.answered, s.window.abandoned), (0, 1));
        assert!(close(s.window.service_level, 0.0));
    }

    #[test]
    fn multi_chat_agent_occupancy_is_capacity_aware() {
        let p = policy("sla_window = \"1h\"");
        let mut book = SlaBook::new(p.sla_window);
        // Occupancy is tenant-wide but travels in the per-queue records: one queue exists.
        book.on_queued(T0, "q", "chat");
        // Logged in idle 10 min, 2 of 3 chats 10 min, 1 of 3 chats 10 min.
        book.on_agent(T0, 0, true, 0.0);
        book.on_agent(T0 + 10 * MIN, 0, true, 2.0 / 3.0);
        book.on_agent(T0 + 20 * MIN, 0, true, 1.0 / 3.0);
        let out = {
            let mut live = LiveView::default();
            live.waiting
                .insert(("q".into(), "chat".into()), (2, T0 + 25 * MIN));
            book.snapshot(T0 + 30 * MIN, "t", &p, &live)
        };
        // (2/3·10 + 1/3·10) / 30
        assert!(close(out[0].occupancy, 1.0 / 3.0), "{:?}", out[0].occupancy);
        let f = &out[0].since_start;
        assert!((f.agent_seconds_logged_in - 1800.0).abs() < 1e-6);
        assert!((f.agent_seconds_busy - 600.0).abs() < 1e-6);
        assert_eq!(out[0].window.occupancy(), out[0].occupancy);
        assert_eq!(out[0].queue_depth, 2);
        assert_eq!(out[0].longest_wait_seconds, 300.0);
        // A second agent fully busy on voice for the next 30 min; the first logs out at 30 min.
        book.on_agent(T0 + 30 * MIN, 0, false, 0.0);
        book.on_agent(T0 + 30 * MIN, 1, true, 1.0);
        let out = snap(&mut book, T0 + 60 * MIN, &p);
        // Window (1 h, bucket-aligned) covers everything: busy 10 + 30 min of 60 min logged in.
        assert!(
            close(out[0].occupancy, 40.0 / 60.0),
            "{:?}",
            out[0].occupancy
        );
    }

    #[test]
    fn window_rolls_off_while_since_start_keeps_all() {
        // 60 s window → 1 s buckets.
        let p = policy("sla_window = \"60s\"");
        let mut book = SlaBook::new(p.sla_window);
        for i in 0..120 {
            book.on_queued(T0 + i * S, "q", "chat");
            book.on_answered(
                T0 + i * S,
                "q",
                "chat",
                if i < 60 { 0 } else { 60 * S },
                30 * S,
            );
        }
        let out = snap(&mut book, T0 + 119 * S, &p);
        let s = &out[0];
        assert_eq!(s.since_start.offered, 120);
        // Buckets 59..=119 of the run: 61 one-second buckets, the window's bucket-aligned span.
        assert_eq!(s.window.offered, 61);
        assert_eq!(s.window_start, T0 + 59 * S);
        assert_eq!(s.window_end, T0 + 119 * S);
        // One answer within (second 59), 60 late ones.
        assert!(close(s.window.service_level, 1.0 / 61.0));
        assert!(close(s.since_start.service_level, 0.5));
        // Much later: nothing left in the window, memory pruned.
        let out = snap(&mut book, T0 + 1000 * S, &p);
        assert_eq!(out[0].window.offered, 0);
        assert_eq!(out[0].window.service_level, None);
        assert_eq!(out[0].since_start.offered, 120);
        let book_len: usize = book.books.iter().map(|b| b.window.ring.len()).sum();
        assert_eq!(book_len, 0);
    }

    #[test]
    fn memory_stays_bounded_under_long_traffic() {
        let mut book = SlaBook::new(Duration::from_secs(60));
        for i in 0..10_000 {
            book.on_queued(T0 + i * S, "q", "chat");
            book.on_agent(T0 + i * S, (i % 3) as u32, true, 0.5);
        }
        let len = book.books[book.queues["q"]["chat"] as usize]
            .window
            .ring
            .len();
        assert!(len <= (BUCKETS + 1) as usize, "{len}");
        assert!(book.agent_time.ring.len() <= (BUCKETS + 1) as usize);
    }

    #[test]
    fn since_subtracts_an_earlier_snapshot() {
        let p = Policy::default();
        let mut book = SlaBook::new(p.sla_window);
        book.on_answered(T0, "q", "voice", 100 * S, 20 * S);
        let warm = snap(&mut book, T0 + S, &p)[0].since_start.clone();
        book.on_answered(T0 + 2 * S, "q", "voice", 10 * S, 20 * S);
        book.on_answered(T0 + 2 * S, "q", "voice", 30 * S, 20 * S);
        let end = snap(&mut book, T0 + 3 * S, &p)[0].since_start.clone();
        let d = end.since(&warm, SlFormula::AbandonAdjusted);
        assert_eq!((d.answered, d.answered_within), (2, 1));
        assert!(close(d.asa_seconds, 20.0));
        assert!(close(d.service_level, 0.5));
    }

    #[test]
    fn changing_the_window_keeps_counts() {
        let mut book = SlaBook::new(Duration::from_secs(60));
        for i in 0..30 {
            book.on_queued(T0 + i * S, "q", "chat");
        }
        let p = policy("sla_window = \"10m\"");
        let out = snap(&mut book, T0 + 30 * S, &p);
        assert_eq!(book.window(), Duration::from_secs(600));
        assert_eq!(out[0].window.offered, 30);
    }

    #[test]
    fn book_round_trips_through_serde() {
        let mut book = SlaBook::new(Duration::from_secs(60));
        mixed_queue(&mut book, "q");
        book.on_agent(T0, 3, true, 1.0);
        let json = serde_json::to_string(&book).expect("serialises");
        let mut again: SlaBook = serde_json::from_str(&json).expect("deserialises");
        let p = Policy::default();
        assert_eq!(
            snap(&mut again, T0 + 400 * S, &p),
            snap(&mut book, T0 + 400 * S, &p)
        );
    }
}
