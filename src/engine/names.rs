//! Cheap names for the engine's outputs: every offer carries a dozen of them (tenant, agent,
//! contact, channel, queue, …), and the engine already holds each one interned. A [`Name`] is a
//! shared `Arc<str>`, so building an offer clones pointers instead of allocating strings; it
//! serialises as a plain JSON string, so the published records are unchanged.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::event::Skills;

/// An immutable, shared string. Compares, hashes and serialises like the text it holds.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Name(Arc<str>);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Name {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(Arc::from(s))
    }
}

impl From<String> for Name {
    fn from(s: String) -> Self {
        Name(Arc::from(s))
    }
}

impl From<Arc<str>> for Name {
    fn from(s: Arc<str>) -> Self {
        Name(s)
    }
}

impl From<&Arc<str>> for Name {
    fn from(s: &Arc<str>) -> Self {
        Name(s.clone())
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0.to_string()
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, o: &str) -> bool {
        *self.0 == *o
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, o: &&str) -> bool {
        *self.0 == **o
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, o: &String) -> bool {
        *self.0 == **o
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, o: &Name) -> bool {
        *self == *o.0
    }
}

impl PartialEq<Name> for &str {
    fn eq(&self, o: &Name) -> bool {
        **self == *o.0
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, o: &Name) -> bool {
        **self == *o.0
    }
}

/// Skill name → level, as an offer reports them. Kept as a short vector sorted by name, which
/// serialises exactly like the `BTreeMap` ([`Skills`]) it stands for, without a tree node and a
/// string per skill.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SkillLevels(Vec<(Name, u8)>);

impl SkillLevels {
    /// From pairs in any order, names distinct.
    pub(crate) fn from_unsorted(mut v: Vec<(Name, u8)>) -> Self {
        v.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        SkillLevels(v)
    }

    pub fn get(&self, skill: &str) -> Option<&u8> {
        self.0
            .binary_search_by(|(n, _)| n.as_str().cmp(skill))
            .ok()
            .map(|i| &self.0[i].1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// (skill, level) in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u8)> + '_ {
        self.0.iter().map(|(n, l)| (n.as_str(), *l))
    }

    pub fn to_skills(&self) -> Skills {
        self.iter().map(|(n, l)| (n.to_string(), l)).collect()
    }
}

impl fmt::Debug for SkillLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl Serialize for SkillLevels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for SkillLevels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = Skills::deserialize(d)?;
        Ok(SkillLevels(
            m.into_iter().map(|(n, l)| (Name::from(n), l)).collect(),
        ))
    }
}
