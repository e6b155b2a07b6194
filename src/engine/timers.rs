//! Timers: offer expiry, wrap-up end, relaxation steps. Ordered by (due, sequence) so that
//! timers due at the same moment fire in the order they were set. Deletion is lazy: a timer
//! whose contact, attempt or wrap-up is gone is simply skipped when it fires.
//!
//! Timers are only ever set and popped in order, never searched. Nearly every timer is "now
//! plus a fixed duration" (an offer timeout or wrap-up of a channel, a relaxation step of a
//! queue) and the clock never goes back, so the timers of one duration are set in the order they
//! fall due. They are kept in a few sorted runs (lanes): a timer joins the back of the lane whose
//! last key is the largest below its own, and the next timer is the smallest of the lanes'
//! fronts. Setting and firing then touch only the ends of a handful of queues, where a binary
//! heap of a large domain's hundreds of thousands of timers walked its whole depth, a cache miss
//! a level. Keys (due time high, sequence low) are unique, so the order of firing is exactly the
//! (due, sequence) order whatever the lanes hold.

use std::cmp::Reverse;
use std::collections::VecDeque;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::room::Roomy;
use crate::event::Millis;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) enum Timer {
    /// The offer `attempt` of the contact in `slot` (if still `uid`) becomes a miss.
    OfferExpiry { slot: u32, uid: u64, attempt: u32 },
    /// The wrap-up `serial` of `agent` ends.
    WrapupEnd { agent: u32, serial: u64 },
    /// The contact in `slot` (if still `uid`) crosses a relaxation step.
    Relax { slot: u32, uid: u64 },
}

/// A set timer: `due << 64 | sequence`, then the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Entry(u128, Timer);

impl Entry {
    fn due(&self) -> Millis {
        (self.0 >> 64) as Millis
    }
}

/// Lanes beyond which a timer that fits no lane is inserted in order into the lane with the
/// latest back instead of opening a new one (a policy with that many interleaved durations).
const MAX_LANES: usize = 64;

#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    /// Each lane sorted by key, front first.
    lanes: Vec<Roomy<VecDeque<Entry>>>,
    /// The lane of the earliest timer: an engine asks after every event whether one is due,
    /// and nearly always none is.
    first: Option<usize>,
    seq: u64,
}

impl Timers {
    pub(crate) fn set(&mut self, due: Millis, timer: Timer) {
        self.seq += 1;
        let key = (u128::from(due) << 64) | u128::from(self.seq);
        self.insert(Entry(key, timer));
    }

    fn insert(&mut self, entry: Entry) {
        // Best fit: the lane whose back is the largest key below this one; an empty lane fits
        // anything, but a lane that keeps its order is better.
        let mut fit: Option<(usize, u128)> = None;
        let mut empty = None;
        for (i, lane) in self.lanes.iter().enumerate() {
            match lane.back() {
                Some(b) if b.0 < entry.0 => {
                    if fit.is_none_or(|f| b.0 > f.1) {
                        fit = Some((i, b.0));
                    }
                }
                Some(_) => {}
                None => empty = empty.or(Some(i)),
            }
        }
        let lane = if let Some(i) = fit.map(|f| f.0).or(empty) {
            self.lanes[i].push_back(entry);
            i
        } else if self.lanes.len() < MAX_LANES {
            let mut lane = VecDeque::new();
            lane.push_back(entry);
            self.lanes.push(lane.into());
            self.lanes.len() - 1
        } else {
            // Every lane is taken (and none is empty): the one with the latest back.
            let i = (0..self.lanes.len())
                .max_by_key(|&i| self.lanes[i].back().map(|b| b.0))
                .unwrap_or(0);
            let lane = &mut self.lanes[i];
            let at = lane.partition_point(|e| e.0 < entry.0);
            lane.insert(at, entry);
            i
        };
        let first = self.first.and_then(|f| self.lanes[f].front()).map(|e| e.0);
        if first.is_none_or(|k| entry.0 < k) {
            self.first = Some(lane);
        }
    }

    /// The lane holding the earliest timer.
    fn earliest(&self) -> Option<usize> {
        self.lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| Some((l.front()?.0, i)))
            .min()
            .map(|(_, i)| i)
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.first
            .and_then(|i| self.lanes[i].front())
            .map(Entry::due)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<Timer> {
        let lane = &mut self.lanes[self.first?];
        if lane.front()?.due() > now {
            return None;
        }
        let fired = lane.pop_front().map(|e| e.1);
        self.first = self.earliest();
        fired
    }

    pub(crate) fn len(&self) -> usize {
        self.lanes.iter().map(|l| l.len()).sum()
    }

    /// Every timer, in firing order.
    fn sorted(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.lanes.iter().flat_map(|l| l.iter().copied()).collect();
        all.sort_unstable();
        all
    }
}

/// Timers as the binary heap of earlier builds stored them (its elements serialise as a plain
/// sequence, then the sequence counter), so the state format stays: written in firing order,
/// read back in any order.
#[derive(Serialize, Deserialize)]
struct Stored {
    heap: Vec<Reverse<Entry>>,
    seq: u64,
}

impl Serialize for Timers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Stored {
            heap: self.sorted().into_iter().map(Reverse).collect(),
            seq: self.seq,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Timers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let stored = Stored::deserialize(d)?;
        let mut entries: Vec<Entry> = stored.heap.into_iter().map(|r| r.0).collect();
        entries.sort_unstable();
        let mut t = Timers {
            lanes: Vec::new(),
            first: None,
            seq: stored.seq,
        };
        for e in entries {
            t.insert(e);
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fire_by_due_time_then_in_the_order_set() {
        let mut t = Timers::default();
        let w = |serial| Timer::WrapupEnd { agent: 0, serial };
        t.set(20, w(1));
        t.set(10, w(2));
        t.set(20, w(3));
        t.set(10, w(4));
        t.set(u64::MAX, w(5));
        assert_eq!(t.next_due(), Some(10));
        assert_eq!(t.pop_due(9), None);
        let fired: Vec<Timer> = std::iter::from_fn(|| t.pop_due(20)).collect();
        assert_eq!(fired, [w(2), w(4), w(1), w(3)]);
        assert_eq!(t.len(), 1);
        assert_eq!(t.pop_due(u64::MAX), Some(w(5)));
    }

    /// Against a binary heap of the same keys: random durations (more distinct ones than
    /// lanes, so the in-order fallback runs too), a clock that moves on, pops in between.
    #[test]
    fn fire_in_the_order_a_heap_of_the_same_keys_gives() {
        use std::collections::BinaryHeap;
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for distinct in [3u64, 20, 200] {
            let mut t = Timers::default();
            let mut heap = BinaryHeap::new();
            let (mut now, mut seq) = (1_000u64, 0u64);
            for serial in 0..20_000u64 {
                now += next() % 5;
                let due = now + 1_000 * (next() % distinct) + next() % 3;
                t.set(due, Timer::WrapupEnd { agent: 0, serial });
                seq += 1;
                heap.push(Reverse(((u128::from(due) << 64) | u128::from(seq), serial)));
                if next() % 3 == 0 {
                    let at = now + next() % 2_000;
                    loop {
                        let want = match heap.peek() {
                            Some(Reverse((k, s))) if (k >> 64) as u64 <= at => Some(*s),
                            _ => None,
                        };
                        let got = t.pop_due(at).map(|x| match x {
                            Timer::WrapupEnd { serial, .. } => serial,
                            _ => u64::MAX,
                        });
                        assert_eq!(got, want, "{distinct} durations");
                        if want.is_none() {
                            break;
                        }
                        heap.pop();
                    }
                }
            }
            assert_eq!(t.len(), heap.len());
            assert_eq!(
                t.next_due(),
                heap.peek().map(|Reverse((k, _))| (k >> 64) as u64)
            );
            assert!(t.lanes.len() <= MAX_LANES);
        }
    }

    /// A snapshot reads back to the same timers, and to the same bytes again.
    #[test]
    fn timers_read_back_from_a_snapshot_fire_alike() {
        let mut t = Timers::default();
        for serial in 0..500u64 {
            let due = 10_000 + serial * 7 % 1_000 + (serial % 4) * 30_000;
            t.set(due, Timer::WrapupEnd { agent: 1, serial });
        }
        let bytes = serde_json::to_vec(&t).expect("serialises");
        let mut back: Timers = serde_json::from_slice(&bytes).expect("reads back");
        assert_eq!(serde_json::to_vec(&back).expect("serialises"), bytes);
        for at in [0, 10_500, 40_000, 200_000] {
            let a: Vec<Timer> = std::iter::from_fn(|| t.pop_due(at)).collect();
            let b: Vec<Timer> = std::iter::from_fn(|| back.pop_due(at)).collect();
            assert_eq!(a, b);
        }
        assert_eq!(back.len(), 0);
    }
}
