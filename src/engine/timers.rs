//! Timers: offer expiry, wrap-up end, relaxation steps. Ordered by (due, sequence) so that
//! timers due at the same moment fire in the order they were set. Deletion is lazy: a timer
//! whose contact, attempt or wrap-up is gone is simply skipped when it fires.
//!
//! Timers are only ever set and popped in order, never searched, so a binary heap keyed by one
//! packed integer (due time high, sequence low) does; the sequence makes every key unique, so
//! the order of firing does not depend on how the heap is laid out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Timers {
    heap: Roomy<BinaryHeap<Reverse<Entry>>>,
    seq: u64,
}

impl Timers {
    pub(crate) fn set(&mut self, due: Millis, timer: Timer) {
        self.seq += 1;
        let key = (u128::from(due) << 64) | u128::from(self.seq);
        self.heap.push(Reverse(Entry(key, timer)));
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.heap.peek().map(|t| t.0.due())
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<Timer> {
        if self.heap.peek()?.0.due() <= now {
            self.heap.pop().map(|t| t.0 .1)
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
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
}
