//! Clones that keep the room a container has grown to.
//!
//! A derived clone of a `Vec`, `VecDeque` or `BinaryHeap` is exactly full, so its first push
//! copies the whole container. An engine grows its contact slab, timer lanes, de-duplication
//! window, pool queues and agents' lists once and then reuses the room; a clone of it (the
//! benches replay into clones of a warmed engine) would instead copy each of them once more —
//! tens of megabytes at 100k agents, a fifth of the cache misses of a 20,000-event replay —
//! which is not the steady state of the engine that was cloned.

use std::collections::{BinaryHeap, VecDeque};
use std::ops::{Deref, DerefMut};

use serde::{Deserialize, Serialize};

/// A clone with the original's capacity.
pub(crate) trait Room {
    fn clone_with_room(&self) -> Self;
}

impl<T: Clone> Room for Vec<T> {
    fn clone_with_room(&self) -> Self {
        let mut v = Vec::with_capacity(self.capacity());
        v.extend_from_slice(self);
        v
    }
}

impl<T: Clone> Room for VecDeque<T> {
    fn clone_with_room(&self) -> Self {
        let mut q = VecDeque::with_capacity(self.capacity());
        q.extend(self.iter().cloned());
        q
    }
}

impl<T: Clone + Ord> Room for BinaryHeap<T> {
    /// The same layout: rebuilding a valid heap moves nothing, so pops come in the same order.
    fn clone_with_room(&self) -> Self {
        let mut v = Vec::with_capacity(self.capacity());
        v.extend_from_slice(self.as_slice());
        BinaryHeap::from(v)
    }
}

/// A field whose clone keeps its room ([`Room`]); otherwise the container itself.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct Roomy<C>(C);

impl<C> From<C> for Roomy<C> {
    fn from(c: C) -> Self {
        Roomy(c)
    }
}

impl<'a, C> IntoIterator for &'a Roomy<C>
where
    &'a C: IntoIterator,
{
    type Item = <&'a C as IntoIterator>::Item;
    type IntoIter = <&'a C as IntoIterator>::IntoIter;
    fn into_iter(self) -> Self::IntoIter {
        (&self.0).into_iter()
    }
}

impl<C: Room> Clone for Roomy<C> {
    fn clone(&self) -> Self {
        Roomy(self.0.clone_with_room())
    }
}

impl<C> Deref for Roomy<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> DerefMut for Roomy<C> {
    fn deref_mut(&mut self) -> &mut C {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_keep_the_room_and_the_contents() {
        let mut v: Vec<u32> = Vec::with_capacity(100);
        v.extend(0..10);
        let c = Roomy(v).clone();
        assert!(c.capacity() >= 100);
        assert_eq!(*c, (0..10).collect::<Vec<_>>());

        let mut q: VecDeque<u32> = VecDeque::with_capacity(100);
        q.extend(0..10);
        q.pop_front();
        let c = q.clone_with_room();
        assert!(c.capacity() >= 100);
        assert!(c.iter().eq(q.iter()));

        let mut h: BinaryHeap<(u32, u32)> = BinaryHeap::with_capacity(100);
        for i in 0..50 {
            h.push((i * 7919 % 13, i));
        }
        let mut c = h.clone_with_room();
        assert!(c.capacity() >= 100);
        assert_eq!(c.as_slice(), h.as_slice());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        while let (Some(x), Some(y)) = (h.pop(), c.pop()) {
            a.push(x);
            b.push(y);
        }
        assert_eq!(a, b);
    }
}
