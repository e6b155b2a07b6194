//! Timers: offer expiry, wrap-up end, relaxation steps. Ordered by (due, sequence) so that
//! timers due at the same moment fire in the order they were set. Deletion is lazy: a timer
//! whose contact, attempt or wrap-up is gone is simply skipped when it fires.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

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

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Timers {
    set: BTreeSet<(Millis, u64, Timer)>,
    seq: u64,
}

impl Timers {
    pub(crate) fn set(&mut self, due: Millis, timer: Timer) {
        self.seq += 1;
        self.set.insert((due, self.seq, timer));
    }

    pub(crate) fn next_due(&self) -> Option<Millis> {
        self.set.first().map(|t| t.0)
    }

    /// Removes and returns the earliest timer due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Millis) -> Option<Timer> {
        if self.set.first()?.0 <= now {
            self.set.pop_first().map(|t| t.2)
        } else {
            None
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.set.len()
    }
}
