//! Interned names and the policy resolved into dense tables, so the hot path compares integers
//! and indexes vectors instead of hashing strings and walking `BTreeMap`s.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use super::policy::{Policy, Strategy};
use super::Name;

/// One full agent, in load units. lcm(1..=10) × 1000, so that 1/capacity for every usual
/// capacity (and configured fractions to 1e-6 or so) is an exact integer.
pub(crate) const FULL_LOAD: u32 = 2_520_000;

/// Names ↔ dense ids. The map is only looked up, never iterated, so its hasher cannot make the
/// engine's decisions depend on the process.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Interner {
    /// Shared, so that outputs naming an id clone a pointer.
    names: Vec<Name>,
    ids: FxHashMap<String, u32>,
}

impl Interner {
    pub(crate) fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub(crate) fn intern(&mut self, name: &str) -> u32 {
        if let Some(id) = self.ids.get(name) {
            return *id;
        }
        let id = self.names.len() as u32;
        self.names.push(Name::from(name));
        self.ids.insert(name.to_string(), id);
        id
    }

    pub(crate) fn name(&self, id: u32) -> &str {
        &self.names[id as usize]
    }

    /// The name of `id` as a shared [`Name`] (clone it for an output).
    pub(crate) fn shared(&self, id: u32) -> &Name {
        &self.names[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

/// BCP 47 tags, compared case-insensitively; each tag knows its primary subtag (`es-MX` → `es`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Languages {
    tags: Interner,
    /// Spellings seen on the wire → canonical id and the spelling as a shared [`Name`], so
    /// `es-MX` and `es-mx` cost one lookup and a contact keeps its tag without a copy.
    spellings: FxHashMap<String, (u32, Name)>,
    primary: Vec<u32>,
    /// Primary id → the regional tags seen under it (`es` → `es-mx`, `es-ar`).
    variants: Vec<Vec<u32>>,
}

impl Languages {
    pub(crate) fn intern(&mut self, tag: &str) -> u32 {
        self.spelled(tag).0
    }

    /// The id of `tag`, and `tag` itself as a shared name.
    pub(crate) fn spelled(&mut self, tag: &str) -> (u32, Name) {
        if let Some((id, name)) = self.spellings.get(tag) {
            return (*id, name.clone());
        }
        let canon = tag.trim().replace('_', "-").to_ascii_lowercase();
        let id = match self.tags.get(&canon) {
            Some(id) => id,
            None => {
                let id = self.tags.intern(&canon);
                let primary_name = canon.split('-').next().unwrap_or(&canon).to_string();
                // The primary subtag is its own primary; intern it first when it is new.
                let primary = if primary_name == canon {
                    id
                } else {
                    self.intern(&primary_name)
                };
                if self.primary.len() <= id as usize {
                    self.primary.resize(id as usize + 1, 0);
                }
                self.primary[id as usize] = primary;
                if primary != id {
                    if self.variants.len() <= primary as usize {
                        self.variants.resize(primary as usize + 1, Vec::new());
                    }
                    self.variants[primary as usize].push(id);
                }
                id
            }
        };
        let name = Name::from(tag);
        self.spellings.insert(tag.to_string(), (id, name.clone()));
        (id, name)
    }

    pub(crate) fn primary(&self, id: u32) -> u32 {
        self.primary[id as usize]
    }

    #[cfg(test)]
    pub(crate) fn name(&self, id: u32) -> &str {
        self.tags.name(id)
    }

    pub(crate) fn shared(&self, id: u32) -> &Name {
        self.tags.shared(id)
    }

    /// Every agent tag that can serve `wanted` by [`serves`](Self::serves): the tag itself, its
    /// bare language, and for a bare tag its regional variants. Appended to `into`, no repeats.
    pub(crate) fn servers_of(&self, wanted: u32, into: &mut TagList) {
        let mut add = |l: u32| into.add(l);
        add(wanted);
        let p = self.primary(wanted);
        add(p);
        if p == wanted {
            for &v in self.variants.get(p as usize).map_or(&[][..], |v| &v[..]) {
                add(v);
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.tags.len()
    }

    /// How an agent's tag serves a wanted tag: `Some(false)` exact, `Some(true)` by fallback
    /// (the agent speaks the bare language of a regional tag, or a regional variant of a bare
    /// one), `None` not at all. Two different regions (`es-AR` for `es-MX`) do not match.
    pub(crate) fn serves(&self, agent: u32, wanted: u32) -> Option<bool> {
        if agent == wanted {
            Some(false)
        } else if agent == self.primary(wanted) || wanted == self.primary(agent) {
            Some(true)
        } else {
            None
        }
    }
}

/// A short list of language ids without repeats, in insertion order; on the stack up to
/// [`TagList::INLINE`] of them (one decision looks at a handful).
#[derive(Debug, Clone, Default)]
pub(crate) struct TagList {
    inline: [u32; TagList::INLINE],
    len: usize,
    more: Vec<u32>,
}

impl TagList {
    const INLINE: usize = 12;

    pub(crate) fn add(&mut self, l: u32) {
        if self.iter().any(|x| x == l) {
            return;
        }
        if self.len < Self::INLINE {
            self.inline[self.len] = l;
            self.len += 1;
        } else {
            self.more.push(l);
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + Clone + '_ {
        self.inline[..self.len]
            .iter()
            .chain(self.more.iter())
            .copied()
    }
}

/// One channel of the policy, in milliseconds and load units.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub(crate) struct ChannelInfo {
    /// False for a channel that was removed from the policy on reload: nobody takes it any more.
    pub(crate) present: bool,
    pub(crate) capacity: u16,
    pub(crate) units: u32,
    pub(crate) exclusive: bool,
    pub(crate) offer_timeout: u64,
    pub(crate) wrapup: u64,
    pub(crate) sl_threshold: u64,
    pub(crate) short_abandon: u64,
}

/// One relaxation step of a queue, resolved to ids.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct StepInfo {
    pub(crate) after: u64,
    pub(crate) drop_preferred: bool,
    pub(crate) lower_by: u8,
    pub(crate) languages: Vec<u32>,
    pub(crate) overflow_to: Option<u32>,
}

/// One queue of the policy (or the default queue's settings for a queue the policy does not
/// name).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct QueueInfo {
    pub(crate) strategy: Strategy,
    pub(crate) aging: f64,
    pub(crate) sl_threshold: Option<u64>,
    pub(crate) steps: Vec<StepInfo>,
    /// Some step overflows: agents of other queues may serve this one.
    pub(crate) overflows: bool,
    /// Some step adds fallback languages: agents of other languages may serve this one.
    pub(crate) language_fallback: bool,
}

pub(crate) fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Resolves every channel of `policy` into `infos`, keeping ids of known names stable.
pub(crate) fn resolve_channels(
    policy: &Policy,
    names: &mut Interner,
    infos: &mut Vec<ChannelInfo>,
) {
    for info in infos.iter_mut() {
        *info = ChannelInfo::default();
    }
    for (name, c) in &policy.channels {
        let id = names.intern(name) as usize;
        if infos.len() <= id {
            infos.resize(id + 1, ChannelInfo::default());
        }
        let units = (c.load_fraction() * f64::from(FULL_LOAD)).round();
        infos[id] = ChannelInfo {
            present: true,
            capacity: c.capacity,
            units: (units as u32).clamp(1, FULL_LOAD),
            exclusive: c.exclusive,
            offer_timeout: millis(c.offer_timeout),
            wrapup: millis(c.wrapup),
            sl_threshold: millis(c.service_level_threshold).max(1),
            short_abandon: millis(c.short_abandon),
        };
    }
}

/// Resolves one queue by name; may intern new languages and overflow queues.
pub(crate) fn resolve_queue(
    policy: &Policy,
    name: &str,
    queues: &mut Interner,
    langs: &mut Languages,
) -> QueueInfo {
    let q = policy.queue(name);
    let steps: Vec<StepInfo> = q
        .relaxation
        .iter()
        .map(|s| StepInfo {
            after: millis(s.after),
            drop_preferred: s.drop_preferred_skills,
            lower_by: s.lower_min_level_by,
            languages: s
                .fallback_languages
                .iter()
                .map(|l| langs.intern(l))
                .collect(),
            overflow_to: s.overflow_to.as_deref().map(|o| queues.intern(o)),
        })
        .collect();
    QueueInfo {
        strategy: q.strategy,
        aging: if q.aging.is_finite() { q.aging } else { 0.0 },
        sl_threshold: q.service_level_threshold.map(|t| millis(t).max(1)),
        overflows: steps.iter().any(|s| s.overflow_to.is_some()),
        language_fallback: steps.iter().any(|s| !s.languages.is_empty()),
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn language_fallback_rules() {
        let mut l = Languages::default();
        let es_mx = l.intern("es-MX");
        let es = l.intern("es");
        let es_ar = l.intern("es_AR");
        let en = l.intern("EN");
        assert_eq!(l.intern("es-mx"), es_mx);
        assert_eq!(l.name(es_ar), "es-ar");
        assert_eq!(l.primary(es_mx), es);
        assert_eq!(l.serves(es_mx, es_mx), Some(false));
        assert_eq!(l.serves(es, es_mx), Some(true));
        assert_eq!(l.serves(es_mx, es), Some(true));
        assert_eq!(l.serves(es_ar, es_mx), None);
        assert_eq!(l.serves(en, es), None);
        let mut v = TagList::default();
        l.servers_of(es, &mut v);
        assert_eq!(v.iter().collect::<Vec<_>>(), [es, es_mx, es_ar]);
        let mut v = TagList::default();
        l.servers_of(es_mx, &mut v);
        assert_eq!(v.iter().collect::<Vec<_>>(), [es_mx, es]);
        let mut many = TagList::default();
        for i in (0..20).chain(0..20) {
            many.add(i);
        }
        assert_eq!(many.iter().collect::<Vec<_>>(), (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn load_units_are_exact_for_default_channels() {
        let p = Policy::default();
        let mut names = Interner::default();
        let mut infos = Vec::new();
        resolve_channels(&p, &mut names, &mut infos);
        let chat = &infos[names.get("chat").unwrap() as usize];
        assert_eq!(chat.units * 3, FULL_LOAD);
        let email = &infos[names.get("email").unwrap() as usize];
        assert_eq!(email.units * 5, FULL_LOAD);
        assert!(infos[names.get("voice").unwrap() as usize].exclusive);
    }
}

/// The fixed words of the outputs (rules, reasons), made once so that outputs share them.
#[derive(Debug, Clone)]
pub(crate) struct Words {
    pub(crate) preferred_agent: Name,
    pub(crate) sticky: Name,
    /// By strategy: `longest_idle`, `least_occupied`, `best_skill_match`, `round_robin`.
    strategies: [Name; 4],
    pub(crate) timeout: Name,
    pub(crate) rejected: Name,
    pub(crate) abandoned: Name,
    pub(crate) updated: Name,
    pub(crate) agent_unavailable: Name,
    pub(crate) missed_offers: Name,
}

impl Default for Words {
    fn default() -> Self {
        Words {
            preferred_agent: Name::from("preferred_agent"),
            sticky: Name::from("sticky"),
            strategies: [
                Strategy::LongestIdle,
                Strategy::LeastOccupied,
                Strategy::BestSkillMatch,
                Strategy::RoundRobin,
            ]
            .map(|s| Name::from(s.as_str())),
            timeout: Name::from("timeout"),
            rejected: Name::from("rejected"),
            abandoned: Name::from("abandoned"),
            updated: Name::from("updated"),
            agent_unavailable: Name::from("agent_unavailable"),
            missed_offers: Name::from("missed_offers"),
        }
    }
}

impl Words {
    pub(crate) fn strategy(&self, s: Strategy) -> &Name {
        let i = match s {
            Strategy::LongestIdle => 0,
            Strategy::LeastOccupied => 1,
            Strategy::BestSkillMatch => 2,
            Strategy::RoundRobin => 3,
        };
        &self.strategies[i]
    }
}
