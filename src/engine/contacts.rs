//! Contacts: what the customer asked for, where they are in their life (waiting, offered, in
//! service), and the waiting lines per (queue, channel).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::room::Roomy;
use crate::event::{Handoff, Millis};

/// One live contact. Completed and abandoned contacts are dropped.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Contact {
    /// Shared with the id index (`Arc<str>` serialises as a string).
    pub(crate) id: Arc<str>,
    /// Unique for the life of the engine; timers carry it so that a reused slot never fires an
    /// old contact's timer.
    pub(crate) uid: u64,
    /// Shared with the sticky-routing map.
    pub(crate) customer: Arc<str>,
    pub(crate) channel: u32,
    /// Canonical language id and the tag as the connector sent it.
    pub(crate) language: u32,
    pub(crate) language_tag: super::Name,
    pub(crate) queue: u32,
    /// Skill id → minimum level, sorted by skill id.
    pub(crate) required: Vec<(u32, u8)>,
    pub(crate) preferred: Vec<(u32, u8)>,
    pub(crate) priority: i32,
    /// Fields most contacts leave empty, boxed so that a waiting contact without them stays
    /// small (a million waiting contacts is a sizing case).
    pub(crate) extra: Option<Box<ContactExtra>>,
    /// When the customer began waiting: min(event time, processing time).
    pub(crate) arrival: Millis,
    /// Offers made so far; the next offer is `attempt + 1`.
    pub(crate) attempt: u32,
    /// Agents who missed this contact; never offered it again.
    pub(crate) excluded: Vec<u32>,
    pub(crate) phase: Phase,
}

/// The rarely set parts of a contact.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContactExtra {
    pub(crate) preferred_agent: Option<String>,
    #[serde(with = "handoff_fields")]
    pub(crate) handoff: Option<Handoff>,
}

impl Contact {
    /// `None` when neither field is set, so that such contacts carry no box.
    pub(crate) fn extra(
        preferred_agent: Option<String>,
        handoff: Option<Handoff>,
    ) -> Option<Box<ContactExtra>> {
        (preferred_agent.is_some() || handoff.is_some()).then(|| {
            Box::new(ContactExtra {
                preferred_agent,
                handoff,
            })
        })
    }

    pub(crate) fn preferred_agent(&self) -> Option<&str> {
        self.extra.as_ref()?.preferred_agent.as_deref()
    }

    pub(crate) fn handoff(&self) -> Option<&Handoff> {
        self.extra.as_ref()?.handoff.as_ref()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum Phase {
    /// Waiting: in a line under this key, or `None` only transiently inside one decision.
    Waiting(Option<WaitKey>),
    /// Offered to `agent`, who holds a reserved slot of `units`.
    Offered {
        agent: u32,
        units: u32,
        offered_at: Millis,
    },
    /// Accepted by `agent`.
    InService {
        agent: u32,
        units: u32,
        answered_at: Millis,
    },
}

/// Position in a waiting line. Within one (queue, channel) the threshold and aging are the same,
/// so `priority − aging × arrival / threshold` orders contacts by effective priority at any
/// time: the line never needs re-sorting as time passes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct WaitKey {
    /// Negated time-invariant priority: ascending order serves the highest first.
    pub(crate) neg_k: f64,
    pub(crate) arrival: Millis,
    pub(crate) slot: u32,
}

impl WaitKey {
    pub(crate) fn new(
        priority: i32,
        aging: f64,
        threshold: u64,
        arrival: Millis,
        slot: u32,
    ) -> Self {
        let k = f64::from(priority) - aging * (arrival as f64) / (threshold.max(1) as f64);
        WaitKey {
            neg_k: -k,
            arrival,
            slot,
        }
    }
}

impl PartialEq for WaitKey {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for WaitKey {}
impl PartialOrd for WaitKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for WaitKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.neg_k
            .total_cmp(&other.neg_k)
            .then(self.arrival.cmp(&other.arrival))
            .then(self.slot.cmp(&other.slot))
    }
}

/// Effective priority at `now`: priority grows by `aging` per service-level threshold waited.
pub(crate) fn effective_priority(
    priority: i32,
    aging: f64,
    threshold: u64,
    arrival: Millis,
    now: Millis,
) -> f64 {
    f64::from(priority) + aging * (now.saturating_sub(arrival) as f64) / (threshold.max(1) as f64)
}

/// Waiting lines keyed by `line_key(queue, channel, primary language)`, iterated in key order.
/// The language in the key lets a freed agent skip lines of languages it does not speak.
pub(crate) type Lines = BTreeMap<u128, BTreeSet<WaitKey>>;

pub(crate) fn line_key(queue: u32, channel: u32, language: u32) -> u128 {
    (u128::from(queue) << 64) | (u128::from(channel) << 32) | u128::from(language)
}

pub(crate) fn line_parts(key: u128) -> (u32, u32, u32) {
    ((key >> 64) as u32, (key >> 32) as u32, key as u32)
}

/// Live contacts in slots; freed slots are reused last-in first-out (deterministic).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Slab {
    slots: Roomy<Vec<Option<Contact>>>,
    free: Roomy<Vec<u32>>,
    live: usize,
}

impl Slab {
    pub(crate) fn insert(&mut self, c: Contact) -> u32 {
        self.live += 1;
        if let Some(s) = self.free.pop() {
            self.slots[s as usize] = Some(c);
            s
        } else {
            self.slots.push(Some(c));
            (self.slots.len() - 1) as u32
        }
    }

    pub(crate) fn remove(&mut self, slot: u32) -> Option<Contact> {
        let c = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        Some(c)
    }

    pub(crate) fn get(&self, slot: u32) -> Option<&Contact> {
        self.slots.get(slot as usize)?.as_ref()
    }

    pub(crate) fn get_mut(&mut self, slot: u32) -> Option<&mut Contact> {
        self.slots.get_mut(slot as usize)?.as_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (u32, &Contact)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i as u32, c)))
    }
}

/// `Handoff` skips absent fields on the wire, which a non-self-describing snapshot format
/// (bincode) cannot read back; snapshots store its fields positionally instead.
mod handoff_fields {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::event::Handoff;

    type Fields = Option<(Option<String>, Option<String>, Option<String>)>;

    pub(super) fn serialize<S: Serializer>(h: &Option<Handoff>, s: S) -> Result<S::Ok, S::Error> {
        let f: Fields = h
            .as_ref()
            .map(|h| (h.bot.clone(), h.intent.clone(), h.summary.clone()));
        f.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Handoff>, D::Error> {
        let f = Fields::deserialize(d)?;
        Ok(f.map(|(bot, intent, summary)| Handoff {
            bot,
            intent,
            summary,
        }))
    }
}
