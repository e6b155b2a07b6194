//! The de-duplication window: the last `limits.dedup_window` applied event ids, so that a
//! redelivered event is ignored instead of applied twice.
//!
//! Ids are kept as 128-bit fingerprints (XXH3-128 of the id's bytes, a specified and stable
//! algorithm, so a snapshot taken by one build is read alike by the next), not as strings: one
//! fingerprint costs 32 bytes in the window and nothing on the heap, and forgetting the oldest
//! frees no allocation. Two different ids share a fingerprint with probability 2⁻¹²⁸ per pair;
//! over a full window of 100,000 ids, that is about 10⁻²⁹ per event.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::room::Roomy;

/// The fingerprint of an event id.
pub(crate) fn fingerprint(id: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128(id.as_bytes())
}

/// Fingerprints are uniform already: the set uses their low 64 bits as the hash.
#[derive(Default, Clone, Copy)]
struct Low64(u64);

impl Hasher for Low64 {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u128 keys are hashed here; fold anything else in, for completeness.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

/// The window: a set to look up, and the same fingerprints oldest first, to forget in order.
/// Serialised as the ordered list alone; the set is rebuilt when read.
#[derive(Debug, Clone, Default)]
pub(crate) struct Window {
    set: HashSet<u128, BuildHasherDefault<Low64>>,
    /// A full window pushes before it pops: a clone exactly full would copy it on its first event.
    order: Roomy<VecDeque<u128>>,
}

impl Window {
    pub(crate) fn contains(&self, fingerprint: u128) -> bool {
        self.set.contains(&fingerprint)
    }

    /// Remembers an applied event; beyond `size` fingerprints, the oldest are forgotten (all of
    /// them with a size of 0).
    pub(crate) fn remember(&mut self, fingerprint: u128, size: usize) {
        if size > 0 && self.set.insert(fingerprint) {
            self.order.push_back(fingerprint);
        }
        while self.order.len() > size {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.order.len()
    }

    /// The set and the order hold the same fingerprints, once each (for the audit).
    pub(crate) fn audit(&self) -> Result<(), String> {
        if self.set.len() != self.order.len() || self.order.iter().any(|f| !self.set.contains(f)) {
            return Err(format!(
                "de-duplication window: {} in the set, {} in order",
                self.set.len(),
                self.order.len()
            ));
        }
        Ok(())
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.order)
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let order = VecDeque::<u128>::deserialize(d)?;
        let mut set = HashSet::with_capacity_and_hasher(order.len(), Default::default());
        set.extend(order.iter().copied());
        Ok(Window {
            set,
            order: order.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgets_the_oldest_beyond_its_size() {
        let mut w = Window::default();
        for id in ["ev-1", "ev-2", "ev-3"] {
            w.remember(fingerprint(id), 2);
        }
        assert!(!w.contains(fingerprint("ev-1")), "forgotten");
        assert!(w.contains(fingerprint("ev-2")) && w.contains(fingerprint("ev-3")));
        assert!(!w.contains(fingerprint("ev-4")));
        assert_eq!(w.len(), 2);
        // A smaller window (a reload) forgets down to its size at the next event.
        w.remember(fingerprint("ev-4"), 1);
        assert_eq!(w.len(), 1);
        assert!(w.contains(fingerprint("ev-4")) && !w.contains(fingerprint("ev-3")));
        w.remember(fingerprint("ev-5"), 0);
        assert_eq!(w.len(), 0, "a window of 0 remembers nothing");
        assert!(!w.contains(fingerprint("ev-5")));
    }

    #[test]
    fn fingerprints_are_the_specified_xxh3_128() {
        // Stable across builds: snapshots carry fingerprints. XXH3-128 of the empty input, from
        // the algorithm's reference test vectors.
        assert_eq!(fingerprint(""), 0x99aa06d3014798d86001c324468d497f);
        assert_ne!(fingerprint("ev-1"), fingerprint("ev-2"));
    }

    #[test]
    fn round_trips_as_the_ordered_list() {
        let mut w = Window::default();
        for i in 0..5 {
            w.remember(fingerprint(&format!("ev-{i}")), 3);
        }
        let json = serde_json::to_string(&w).expect("serialises");
        let back: Window = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back.order, w.order);
        assert!(back.contains(fingerprint("ev-4")) && !back.contains(fingerprint("ev-1")));
        let bytes =
            bincode::serde::encode_to_vec(&w, bincode::config::standard()).expect("bincode");
        let (back, _): (Window, usize) =
            bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                .expect("bincode");
        assert_eq!(back.order, w.order);
        assert_eq!(back.set, w.set);
    }
}
