//! Wire types of the event contract (DESIGN.md §2) and their decoding.
//!
//! Every input record is one JSON object with `type`, `id`, `tenant` and `ts`, plus the fields of
//! its type. Decoding never panics: a record that cannot be used yields a [`DecodeError`] whose
//! [`DecodeError::reason`] is a short stable code for the dead-letter header and the metric label.
//!
//! Unknown *fields* are ignored so that connectors can add fields before omniroute knows them;
//! unknown *types* are rejected.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

mod scan;

/// Milliseconds since the Unix epoch. The engine's only notion of time.
pub type Millis = u64;

/// Largest record the decoder accepts; larger ones go to the dead-letter topic.
pub const DEFAULT_MAX_RECORD_BYTES: usize = 64 * 1024;

/// One input event, decoded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique event id, used for de-duplication.
    pub id: String,
    /// Routing domain: one shop / contact center. Also the Kafka key.
    pub tenant: String,
    /// Event time: RFC 3339 string or epoch milliseconds on the wire.
    #[serde(with = "wire_ts")]
    pub ts: Millis,
    #[serde(flatten)]
    pub body: Body,
}

/// The typed part of an event, selected by the `type` field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Body {
    #[serde(rename = "contact.created")]
    ContactCreated(ContactCreated),
    #[serde(rename = "contact.updated")]
    ContactUpdated(ContactUpdated),
    #[serde(rename = "contact.abandoned")]
    ContactAbandoned(ContactRef),
    #[serde(rename = "contact.completed")]
    ContactCompleted(ContactCompleted),
    #[serde(rename = "agent.profile")]
    AgentProfile(AgentProfile),
    #[serde(rename = "agent.state")]
    AgentState(AgentStateChange),
    #[serde(rename = "offer.accepted")]
    OfferAccepted(OfferAnswer),
    #[serde(rename = "offer.rejected")]
    OfferRejected(OfferAnswer),
    #[serde(rename = "agent.wrapup_done")]
    AgentWrapupDone(WrapupDone),
}

impl Body {
    /// The wire name of this event type.
    pub fn type_name(&self) -> &'static str {
        match self {
            Body::ContactCreated(_) => "contact.created",
            Body::ContactUpdated(_) => "contact.updated",
            Body::ContactAbandoned(_) => "contact.abandoned",
            Body::ContactCompleted(_) => "contact.completed",
            Body::AgentProfile(_) => "agent.profile",
            Body::AgentState(_) => "agent.state",
            Body::OfferAccepted(_) => "offer.accepted",
            Body::OfferRejected(_) => "offer.rejected",
            Body::AgentWrapupDone(_) => "agent.wrapup_done",
        }
    }
}

/// Skill name → level (1–10). A `BTreeMap` keeps serialisation and iteration deterministic.
pub type Skills = BTreeMap<String, u8>;

/// Context a chatbot hands over with a contact, so the customer need not repeat themselves.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Handoff {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactCreated {
    pub contact_id: String,
    /// voice, chat, email, whatsapp, messenger, twitter, sms, webform, or a custom channel.
    pub channel: String,
    pub customer_id: String,
    /// BCP 47 tag, e.g. `es-MX`.
    pub language: String,
    /// Queue name; the policy's default queue when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// Required skills with their minimum level.
    #[serde(default)]
    pub required_skills: Skills,
    /// Preferred skills: they raise an agent's score but are not required.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub preferred_skills: Skills,
    /// Base priority; higher is served first. Default 0.
    #[serde(default)]
    pub priority: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handoff: Option<Handoff>,
}

/// Changes to a waiting or offered contact. Absent fields stay as they are. A new `queue` is a
/// transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactUpdated {
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_skills: Option<Skills>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_skills: Option<Skills>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRef {
    pub contact_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCompleted {
    pub contact_id: String,
    /// The agent who handled it; checked against the engine's record when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentProfile {
    pub agent_id: String,
    /// Skill → level 1–10.
    #[serde(default)]
    pub skills: Skills,
    /// BCP 47 tags the agent speaks, e.g. `["es", "pt-BR"]`.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Channel → maximum concurrent contacts. Channels absent here use the policy's default;
    /// 0 means the agent does not work that channel.
    #[serde(default)]
    pub capacity: BTreeMap<String, u16>,
    /// Queues the agent serves; empty means every queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentState {
    Offline,
    Available,
    Away,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStateChange {
    pub agent_id: String,
    pub state: AgentState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `offer.accepted` / `offer.rejected`: the agent's answer to an assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferAnswer {
    pub assignment_id: String,
    pub agent_id: String,
    pub contact_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrapupDone {
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<String>,
}

/// Why a record could not be decoded. Each variant maps to a stable [`reason`](Self::reason)
/// code used in the dead-letter headers and the `reason` metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {size} bytes exceeds the limit of {limit} bytes")]
    Oversized { size: usize, limit: usize },
    #[error("record is not valid UTF-8 (first bad byte at {at})")]
    InvalidUtf8 { at: usize },
    #[error("record is empty")]
    Empty,
    #[error("record is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("unknown event type: {0}")]
    UnknownType(String),
    #[error("missing field: {0}")]
    MissingField(String),
    #[error("wrong type: {0}")]
    WrongType(String),
    #[error("invalid value: {0}")]
    InvalidValue(String),
}

impl DecodeError {
    /// Stable, low-cardinality code for headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Oversized { .. } => "oversized",
            DecodeError::InvalidUtf8 { .. } => "invalid_utf8",
            DecodeError::Empty => "empty",
            DecodeError::InvalidJson(_) => "invalid_json",
            DecodeError::UnknownType(_) => "unknown_type",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::WrongType(_) => "wrong_type",
            DecodeError::InvalidValue(_) => "invalid_value",
        }
    }
}

/// Decodes one record. `max_bytes` bounds the payload size.
pub fn decode(payload: &[u8], max_bytes: usize) -> Result<Event, DecodeError> {
    let text = text(payload, max_bytes)?;
    let event = match scan::event(text) {
        Some(e) => e,
        None => by_serde(text)?,
    };
    validate(&event)?;
    Ok(event)
}

/// Decoded events kept for reuse by [`decode_reusing`]: one per event type the scanner builds,
/// and one for whatever the serde decoders build.
#[derive(Debug, Default)]
pub struct Scratch {
    scanned: scan::Slots,
    other: Option<Event>,
}

/// Decodes one record like [`decode`], into `scratch`: the strings of the last event of the
/// same type are overwritten rather than a new event allocated, and nothing is freed after
/// the event has been used. The event stays valid until the next call.
pub fn decode_reusing<'s>(
    payload: &[u8],
    max_bytes: usize,
    scratch: &'s mut Scratch,
) -> Result<&'s Event, DecodeError> {
    let text = text(payload, max_bytes)?;
    let event = match scan::event_in(text, &mut scratch.scanned) {
        Some(e) => e,
        None => &*scratch.other.insert(by_serde(text)?),
    };
    validate(event)?;
    Ok(event)
}

/// The record as text: within the size limit, not empty, UTF-8.
fn text(payload: &[u8], max_bytes: usize) -> Result<&str, DecodeError> {
    if payload.len() > max_bytes {
        return Err(DecodeError::Oversized {
            size: payload.len(),
            limit: max_bytes,
        });
    }
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 {
        at: e.valid_up_to(),
    })
}

/// What the scanner does not take. The direct decoder covers the usual layout of every type;
/// anything it does not take either (a body field before `type`, a bad value, a duplicate
/// key, …) goes through the reference decoder, which gives the accepted events and every
/// rejection reason their definition.
fn by_serde(text: &str) -> Result<Event, DecodeError> {
    match direct::event(text) {
        Some(e) => Ok(e),
        None => reference(text),
    }
}

/// The reference decoder: serde's internally tagged enum behind `#[serde(flatten)]`. It buffers
/// every record into an intermediate tree before building the event, so the hot path uses
/// [`direct`], and this one settles whatever `direct` does not take.
fn reference(text: &str) -> Result<Event, DecodeError> {
    serde_json::from_str(text).map_err(classify)
}

/// One pass over the record, without an intermediate tree: `id`, `tenant` and `ts` are read as
/// they come, and once `type` is known the body's own (derived) deserializer reads the rest of
/// the object directly, with the header fields picked out of its way.
///
/// It takes only what the reference decoder accepts, and gives the same event: each body is the
/// same derived deserializer, fed the same fields. It gives up (`None`) on anything else — a
/// body field before `type`, a duplicate header field, a `type` that is not a known name, any
/// error at all — and the reference decoder then decides, so rejections keep their reasons.
mod direct {
    use std::borrow::Cow;
    use std::fmt;

    use serde::de::value::{CowStrDeserializer, MapAccessDeserializer};
    use serde::de::{self, Deserialize, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};

    use super::{
        AgentProfile, AgentStateChange, Body, ContactCompleted, ContactCreated, ContactRef,
        ContactUpdated, Event, Millis, OfferAnswer, WrapupDone,
    };

    pub(super) fn event(text: &str) -> Option<Event> {
        let mut de = serde_json::Deserializer::from_str(text);
        let event = de::Deserializer::deserialize_map(&mut de, EventVisitor).ok()?;
        de.end().ok()?;
        Some(event)
    }

    /// A top-level key: one of the header fields, or a body field (borrowed when unescaped).
    enum Key<'de> {
        Id,
        Tenant,
        Ts,
        Type,
        Body(Cow<'de, str>),
    }

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KeyVisitor;
            impl<'de> Visitor<'de> for KeyVisitor {
                type Value = Key<'de>;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a field name")
                }
                fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                    Ok(Key::header(v).unwrap_or(Key::Body(Cow::Borrowed(v))))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                    Ok(Key::header(v).unwrap_or_else(|| Key::Body(Cow::Owned(v.to_string()))))
                }
            }
            d.deserialize_str(KeyVisitor)
        }
    }

    impl Key<'_> {
        fn header(name: &str) -> Option<Self> {
            Some(match name {
                "id" => Key::Id,
                "tenant" => Key::Tenant,
                "ts" => Key::Ts,
                "type" => Key::Type,
                _ => return None,
            })
        }
    }

    /// The event types, by wire name only (the reference decoder also takes variant indexes).
    #[derive(Clone, Copy)]
    enum Kind {
        ContactCreated,
        ContactUpdated,
        ContactAbandoned,
        ContactCompleted,
        AgentProfile,
        AgentState,
        OfferAccepted,
        OfferRejected,
        AgentWrapupDone,
    }

    impl<'de> Deserialize<'de> for Kind {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct KindVisitor;
            impl Visitor<'_> for KindVisitor {
                type Value = Kind;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("an event type")
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Kind, E> {
                    Ok(match v {
                        "contact.created" => Kind::ContactCreated,
                        "contact.updated" => Kind::ContactUpdated,
                        "contact.abandoned" => Kind::ContactAbandoned,
                        "contact.completed" => Kind::ContactCompleted,
                        "agent.profile" => Kind::AgentProfile,
                        "agent.state" => Kind::AgentState,
                        "offer.accepted" => Kind::OfferAccepted,
                        "offer.rejected" => Kind::OfferRejected,
                        "agent.wrapup_done" => Kind::AgentWrapupDone,
                        _ => return Err(E::custom("unknown event type")),
                    })
                }
            }
            d.deserialize_str(KindVisitor)
        }
    }

    struct Ts(Millis);

    impl<'de> Deserialize<'de> for Ts {
        fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::wire_ts::deserialize(d).map(Ts)
        }
    }

    #[derive(Default)]
    struct Header {
        id: Option<String>,
        tenant: Option<String>,
        ts: Option<Millis>,
    }

    impl Header {
        /// Reads the value of header key `key`; a second one is an error (as in the reference).
        fn read<'de, A: MapAccess<'de>>(
            &mut self,
            key: &Key<'_>,
            map: &mut A,
        ) -> Result<(), A::Error> {
            fn once<T, E: de::Error>(slot: &mut Option<T>, v: T) -> Result<(), E> {
                if slot.is_some() {
                    return Err(E::custom("duplicate header field"));
                }
                *slot = Some(v);
                Ok(())
            }
            match key {
                Key::Id => once(&mut self.id, map.next_value::<String>()?),
                Key::Tenant => once(&mut self.tenant, map.next_value::<String>()?),
                Key::Ts => once(&mut self.ts, map.next_value::<Ts>()?.0),
                Key::Type => Err(de::Error::custom("duplicate field `type`")),
                Key::Body(_) => Err(de::Error::custom("not a header field")),
            }
        }
    }

    /// The rest of the object as the body's deserializer sees it: header fields are read into
    /// `header` on the way and never reach the body.
    struct BodyFields<'a, A> {
        map: &'a mut A,
        header: &'a mut Header,
    }

    impl<'de, A: MapAccess<'de>> MapAccess<'de> for BodyFields<'_, A> {
        type Error = A::Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, A::Error> {
            loop {
                match self.map.next_key::<Key<'de>>()? {
                    None => return Ok(None),
                    Some(Key::Body(name)) => {
                        let name: CowStrDeserializer<'de, A::Error> = name.into_deserializer();
                        return seed.deserialize(name).map(Some);
                    }
                    Some(key) => self.header.read(&key, self.map)?,
                }
            }
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(
            &mut self,
            seed: V,
        ) -> Result<V::Value, A::Error> {
            self.map.next_value_seed(seed)
        }
    }

    struct EventVisitor;

    impl<'de> Visitor<'de> for EventVisitor {
        type Value = Event;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an event object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
            let mut header = Header::default();
            let kind = loop {
                match map.next_key::<Key<'de>>()? {
                    Some(Key::Type) => break map.next_value::<Kind>()?,
                    Some(Key::Body(_)) | None => {
                        return Err(de::Error::custom("body field before `type`"))
                    }
                    Some(key) => header.read(&key, &mut map)?,
                }
            };
            let fields = MapAccessDeserializer::new(BodyFields {
                map: &mut map,
                header: &mut header,
            });
            let body = match kind {
                Kind::ContactCreated => Body::ContactCreated(ContactCreated::deserialize(fields)?),
                Kind::ContactUpdated => Body::ContactUpdated(ContactUpdated::deserialize(fields)?),
                Kind::ContactAbandoned => Body::ContactAbandoned(ContactRef::deserialize(fields)?),
                Kind::ContactCompleted => {
                    Body::ContactCompleted(ContactCompleted::deserialize(fields)?)
                }
                Kind::AgentProfile => Body::AgentProfile(AgentProfile::deserialize(fields)?),
                Kind::AgentState => Body::AgentState(AgentStateChange::deserialize(fields)?),
                Kind::OfferAccepted => Body::OfferAccepted(OfferAnswer::deserialize(fields)?),
                Kind::OfferRejected => Body::OfferRejected(OfferAnswer::deserialize(fields)?),
                Kind::AgentWrapupDone => Body::AgentWrapupDone(WrapupDone::deserialize(fields)?),
            };
            match header {
                Header {
                    id: Some(id),
                    tenant: Some(tenant),
                    ts: Some(ts),
                } => Ok(Event {
                    id,
                    tenant,
                    ts,
                    body,
                }),
                _ => Err(de::Error::custom("missing header field")),
            }
        }
    }
}

/// Sorts a serde_json error into a reason. Only the error path pays for the string matching.
fn classify(e: serde_json::Error) -> DecodeError {
    use serde_json::error::Category;
    let msg = e.to_string();
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => DecodeError::InvalidJson(msg),
        Category::Data => {
            if msg.contains("unknown variant") {
                DecodeError::UnknownType(msg)
            } else if msg.contains("missing field") {
                DecodeError::MissingField(msg)
            } else if msg.contains("invalid type") {
                DecodeError::WrongType(msg)
            } else {
                DecodeError::InvalidValue(msg)
            }
        }
    }
}

/// Checks the values serde cannot: non-empty ids, skill levels 1–10.
fn validate(e: &Event) -> Result<(), DecodeError> {
    fn non_empty(name: &str, v: &str) -> Result<(), DecodeError> {
        if v.is_empty() {
            Err(DecodeError::InvalidValue(format!(
                "{name} must not be empty"
            )))
        } else {
            Ok(())
        }
    }
    fn levels(name: &str, skills: &Skills, min: u8) -> Result<(), DecodeError> {
        for (skill, level) in skills {
            if *level < min || *level > 10 {
                return Err(DecodeError::InvalidValue(format!(
                    "{name}.{skill} = {level}, expected {min}..=10"
                )));
            }
        }
        Ok(())
    }
    non_empty("id", &e.id)?;
    non_empty("tenant", &e.tenant)?;
    match &e.body {
        Body::ContactCreated(c) => {
            non_empty("contact_id", &c.contact_id)?;
            non_empty("channel", &c.channel)?;
            non_empty("language", &c.language)?;
            levels("required_skills", &c.required_skills, 1)?;
            levels("preferred_skills", &c.preferred_skills, 1)?;
        }
        Body::ContactUpdated(c) => {
            non_empty("contact_id", &c.contact_id)?;
            if let Some(s) = &c.required_skills {
                levels("required_skills", s, 1)?;
            }
            if let Some(s) = &c.preferred_skills {
                levels("preferred_skills", s, 1)?;
            }
        }
        Body::ContactAbandoned(c) => non_empty("contact_id", &c.contact_id)?,
        Body::ContactCompleted(c) => non_empty("contact_id", &c.contact_id)?,
        Body::AgentProfile(a) => {
            non_empty("agent_id", &a.agent_id)?;
            levels("skills", &a.skills, 1)?;
        }
        Body::AgentState(a) => non_empty("agent_id", &a.agent_id)?,
        Body::OfferAccepted(o) | Body::OfferRejected(o) => {
            non_empty("assignment_id", &o.assignment_id)?;
            non_empty("agent_id", &o.agent_id)?;
        }
        Body::AgentWrapupDone(w) => non_empty("agent_id", &w.agent_id)?,
    }
    Ok(())
}

/// `ts` on the wire: an RFC 3339 string (any offset) or an integer of epoch milliseconds.
/// Always serialised as epoch milliseconds.
mod wire_ts {
    use serde::{de, Deserializer, Serializer};

    use super::Millis;

    pub(super) fn serialize<S: Serializer>(ts: &Millis, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(*ts)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Millis, D::Error> {
        d.deserialize_any(TsVisitor)
    }

    struct TsVisitor;

    impl de::Visitor<'_> for TsVisitor {
        type Value = Millis;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an RFC 3339 timestamp or epoch milliseconds")
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Millis, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Millis, E> {
            u64::try_from(v).map_err(|_| E::custom("ts must not be negative"))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Millis, E> {
            if (0.0..1.0e15).contains(&v) {
                Ok(v as Millis)
            } else {
                Err(E::custom("ts out of range"))
            }
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Millis, E> {
            super::parse_rfc3339(v).ok_or_else(|| E::custom(format!("ts `{v}` is not RFC 3339")))
        }
    }
}

/// Parses an RFC 3339 timestamp into epoch milliseconds; `None` when malformed or before 1970.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Formats epoch milliseconds as RFC 3339 in UTC (for human-facing output such as the demo).
pub fn format_rfc3339(ms: Millis) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Result<Event, DecodeError> {
        decode(s.as_bytes(), DEFAULT_MAX_RECORD_BYTES)
    }

    #[test]
    fn decodes_contact_created_with_rfc3339_offset() {
        let e = dec(r#"{"type":"contact.created","id":"e1","tenant":"shop-mx",
            "ts":"2026-11-23T10:00:00.250-06:00","contact_id":"c1","channel":"whatsapp",
            "customer_id":"cu1","language":"es-MX","required_skills":{"returns":5},
            "handoff":{"bot":"sofia","intent":"refund"}}"#)
        .unwrap();
        // 10:00:00.250 at -06:00 is 16:00:00.250 UTC.
        assert_eq!(e.ts, 1_795_449_600_250);
        let Body::ContactCreated(c) = e.body else {
            panic!("wrong body")
        };
        assert_eq!(c.required_skills.get("returns"), Some(&5));
        assert_eq!(c.priority, 0);
        assert_eq!(c.handoff.unwrap().intent.as_deref(), Some("refund"));
    }

    #[test]
    fn decodes_epoch_ms_and_ignores_unknown_fields() {
        let e = dec(
            r#"{"type":"agent.state","id":"e2","tenant":"t","ts":1700000000000,
            "agent_id":"a1","state":"available","extra":true}"#,
        )
        .unwrap();
        assert_eq!(e.ts, 1_700_000_000_000);
        assert_eq!(e.body.type_name(), "agent.state");
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty"),
            (b"{not json", "invalid_json"),
            (b"\xff\xfe{}", "invalid_utf8"),
            (
                br#"{"type":"contact.teleported","id":"e","tenant":"t","ts":1}"#,
                "unknown_type",
            ),
            (
                br#"{"type":"contact.abandoned","id":"e","tenant":"t","ts":1}"#,
                "missing_field",
            ),
            (
                br#"{"type":"contact.abandoned","id":"e","tenant":"t","ts":1,"contact_id":7}"#,
                "wrong_type",
            ),
            (
                br#"{"type":"agent.profile","id":"e","tenant":"t","ts":1,"agent_id":"a","skills":{"x":11}}"#,
                "invalid_value",
            ),
            (
                br#"{"type":"agent.state","id":"e","tenant":"t","ts":"yesterday","agent_id":"a","state":"away"}"#,
                "invalid_value",
            ),
        ];
        for (payload, reason) in cases {
            let got = decode(payload, DEFAULT_MAX_RECORD_BYTES).unwrap_err();
            assert_eq!(
                got.reason(),
                *reason,
                "{:?} -> {got}",
                String::from_utf8_lossy(payload)
            );
        }
        let big = vec![b' '; 100];
        assert_eq!(decode(&big, 10).unwrap_err().reason(), "oversized");
    }

    /// One valid event of every type, every optional field set somewhere.
    const CORPUS: &[&str] = &[
        r#"{"type":"contact.created","id":"e1","tenant":"t","ts":"2026-11-23T10:00:00.250-06:00","contact_id":"c1","channel":"chat","customer_id":"k","language":"es-MX","queue":"sales","required_skills":{"returns":5},"preferred_skills":{"vip":2},"priority":-3,"preferred_agent":"a1","handoff":{"bot":"sofia","intent":"refund","summary":"s"}}"#,
        r#"{"type":"contact.created","id":"e1b","tenant":"t","ts":5,"contact_id":"c\u00e9","channel":"voice","customer_id":"k","language":"pt-BR","handoff":null,"extra":[1,{"a":null}]}"#,
        r#"{"type":"contact.updated","id":"e2","tenant":"t","ts":5.5,"contact_id":"c1","priority":4,"required_skills":{"x":1},"preferred_skills":null,"queue":"q2","language":"en"}"#,
        r#"{"type":"contact.abandoned","id":"e3","tenant":"t","ts":7,"contact_id":"c1"}"#,
        r#"{"type":"contact.completed","id":"e4","tenant":"t","ts":7,"contact_id":"c1","agent_id":"a1"}"#,
        r#"{"type":"agent.profile","id":"e5","tenant":"t","ts":7,"agent_id":"a1","skills":{"a":10,"b":1},"languages":["es","pt-BR"],"capacity":{"chat":3,"voice":0},"queues":["sales"]}"#,
        r#"{"type":"agent.state","id":"e6","tenant":"t","ts":7,"agent_id":"a1","state":"away","reason":"lunch"}"#,
        r#"{"type":"offer.accepted","id":"e7","tenant":"t","ts":7,"assignment_id":"c1#1","agent_id":"a1","contact_id":"c1"}"#,
        r#"{"type":"offer.rejected","id":"e8","tenant":"t","ts":7,"assignment_id":"c1#1","agent_id":"a1","contact_id":"c1","reason":"busy"}"#,
        r#"{"type":"agent.wrapup_done","id":"e9","tenant":"t","ts":7,"agent_id":"a1","contact_id":"c1"}"#,
    ];

    /// Variants of `json` (an object): fields reordered, each dropped, duplicated, or given
    /// other values; header fields escaped; `type` as a variant index.
    fn variants(json: &str) -> Vec<String> {
        struct InOrder;
        impl<'de> serde::de::Visitor<'de> for InOrder {
            type Value = Vec<(String, String)>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                    fields.push((serde_json::to_string(&k).unwrap(), v.to_string()));
                }
                Ok(fields)
            }
        }
        let mut de = serde_json::Deserializer::from_str(json);
        let fields = serde::Deserializer::deserialize_map(&mut de, InOrder).unwrap();
        let join = |fs: &[(String, String)]| {
            let inner: Vec<String> = fs.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", inner.join(","))
        };
        let mut out = vec![json.to_string(), join(&fields)];
        let mut rev = fields.clone();
        rev.reverse();
        out.push(join(&rev));
        for i in 0..fields.len() {
            let mut f = fields.clone();
            f.remove(i);
            out.push(join(&f));
            let mut f = fields.clone();
            f.push(fields[i].clone());
            out.push(join(&f));
            let mut f = fields.clone();
            let moved = f.remove(i);
            f.insert(0, moved);
            out.push(join(&f));
            for other in [
                "7",
                "-1",
                "300",
                "1.5",
                "null",
                "true",
                "\"\"",
                "\"x\"",
                "{}",
                "[]",
                "[\"x\"]",
                "{\"k\":0}",
                "{\"k\":11}",
                "0",
                "9",
                "\"available\"",
            ] {
                let mut f = fields.clone();
                f[i].1 = other.to_string();
                out.push(join(&f));
            }
        }
        out.push(json.replacen("\"type\"", "\"t\\u0079pe\"", 1));
        out.push(json.replacen("\"tenant\"", "\"tenan\\u0074\"", 1));
        out.push(json.replacen("{", "{\"x\":1,", 1));
        out.push(json.replacen("}", "} x", 1));
        out.push(format!("[{json}]"));
        out.push(format!("{json} "));
        out
    }

    #[test]
    fn the_direct_decoder_agrees_with_the_reference_on_every_variant() {
        let (mut direct_hits, mut scan_hits, mut accepted) = (0, 0, 0);
        for json in CORPUS {
            for v in variants(json) {
                let parsed = reference(&v);
                accepted += usize::from(parsed.is_ok());
                let checked = parsed.clone().and_then(|e| validate(&e).map(|()| e));
                assert_eq!(dec(&v), checked, "{v}");
                if let Some(e) = direct::event(&v) {
                    direct_hits += 1;
                    assert_eq!(Ok(&e), parsed.as_ref(), "direct took {v}");
                }
                if let Some(e) = scan::event(&v) {
                    scan_hits += 1;
                    assert_eq!(Ok(&e), parsed.as_ref(), "the scanner took {v}");
                }
            }
            assert!(
                direct::event(json).is_some(),
                "the usual layout is direct: {json}"
            );
        }
        assert!(scan_hits > 100, "the scanner took {scan_hits} variants");
        // Most variants are rejections; of the accepted ones, only those with a body field
        // before `type` or a `type` given as a variant index take the reference path.
        assert!(
            direct_hits * 4 > accepted * 3,
            "{direct_hits} of {accepted}"
        );
    }

    #[test]
    fn the_daemons_own_encoding_is_decoded_directly() {
        for json in CORPUS {
            let e = dec(json).unwrap();
            let again = serde_json::to_string(&e).unwrap();
            assert_eq!(direct::event(&again).as_ref(), Some(&e), "{again}");
            // Every type but the two rare ones is the scanner's.
            if !matches!(e.body, Body::ContactUpdated(_) | Body::AgentProfile(_)) {
                assert_eq!(scan::event(&again).as_ref(), Some(&e), "{again}");
            }
        }
    }

    /// Broken and unusual records, byte by byte: every prefix of each corpus record, and each
    /// record with one of a few bytes inserted at every position. Whatever the scanner takes
    /// must be what the reference takes, and the decoder's answer must be the reference's.
    #[test]
    fn the_scanner_agrees_with_the_reference_on_every_cut_and_insertion() {
        let mut taken = 0;
        for json in CORPUS {
            let canonical = serde_json::to_string(&dec(json).unwrap()).unwrap();
            let mut cases = Vec::new();
            for at in 1..=canonical.len() {
                if !canonical.is_char_boundary(at) {
                    continue;
                }
                cases.push(canonical[..at].to_string());
                for insert in [
                    " ", "\n", "\"", "\\", "0", "-", ",", ":", "}", "{", "x", "é",
                ] {
                    let mut v = canonical.clone();
                    v.insert_str(at, insert);
                    cases.push(v);
                }
            }
            let mut scratch = Scratch::default();
            for v in cases {
                let parsed = reference(&v);
                let checked = parsed.clone().and_then(|e| validate(&e).map(|()| e));
                assert_eq!(dec(&v), checked, "{v}");
                let reused = decode_reusing(v.as_bytes(), DEFAULT_MAX_RECORD_BYTES, &mut scratch);
                assert_eq!(reused.cloned(), checked, "reusing: {v}");
                if let Some(e) = scan::event(&v) {
                    taken += 1;
                    assert_eq!(Ok(&e), parsed.as_ref(), "the scanner took {v}");
                }
            }
        }
        assert!(taken > 1_000, "the scanner took {taken} cases");
    }

    /// An event of one of the scanner's types with arbitrary strings (quotes, escapes, control
    /// characters, non-ASCII) and numbers, optional fields set or not.
    fn arbitrary_event() -> impl proptest::strategy::Strategy<Value = Event> {
        use proptest::strategy::Strategy;
        (
            proptest::collection::vec("\\PC{0,6}|[a-z0-9#-]{1,12}", 8),
            0u64..=u64::MAX,
            proptest::num::i32::ANY,
            proptest::collection::btree_map("[a-z]{1,8}|\\PC{1,4}", 1u8..=10, 0..4),
            0usize..7,
            proptest::bool::ANY,
        )
            .prop_map(|(ids, ts, priority, levels, kind, with_optional)| {
                let s = |i: usize| ids[i].clone();
                let opt = |i: usize| with_optional.then(|| s(i));
                let body = match kind {
                    0 => Body::ContactCreated(ContactCreated {
                        contact_id: s(2),
                        channel: s(3),
                        customer_id: s(4),
                        language: s(5),
                        queue: opt(6),
                        required_skills: levels.clone(),
                        preferred_skills: if with_optional { levels } else { Skills::new() },
                        priority,
                        preferred_agent: opt(7),
                        handoff: with_optional.then(|| Handoff {
                            bot: Some(s(3)),
                            intent: None,
                            summary: Some(s(4)),
                        }),
                    }),
                    1 => Body::ContactAbandoned(ContactRef { contact_id: s(2) }),
                    2 => Body::ContactCompleted(ContactCompleted {
                        contact_id: s(2),
                        agent_id: opt(3),
                    }),
                    3 => Body::AgentState(AgentStateChange {
                        agent_id: s(2),
                        state: [AgentState::Offline, AgentState::Available, AgentState::Away]
                            [priority.unsigned_abs() as usize % 3],
                        reason: opt(3),
                    }),
                    4 | 5 => {
                        let answer = OfferAnswer {
                            assignment_id: s(2),
                            agent_id: s(3),
                            contact_id: s(4),
                            reason: opt(5),
                        };
                        if kind == 4 {
                            Body::OfferAccepted(answer)
                        } else {
                            Body::OfferRejected(answer)
                        }
                    }
                    _ => Body::AgentWrapupDone(WrapupDone {
                        agent_id: s(2),
                        contact_id: opt(3),
                    }),
                };
                Event {
                    id: s(0),
                    tenant: s(1),
                    ts,
                    body,
                }
            })
    }

    proptest::proptest! {
        /// Arbitrary events survive the round trip, and those serde writes without escapes are
        /// the scanner's.
        #[test]
        fn arbitrary_events_round_trip_and_plain_ones_are_scanned(e in arbitrary_event()) {
            let json = serde_json::to_string(&e).unwrap();
            let expected = validate(&e).map(|()| e.clone());
            proptest::prop_assert_eq!(dec(&json), expected.clone(), "{}", json);
            // Timestamps of 20 digits (past the year 318 million) are left to serde.
            let plain = !json.contains('\\') && e.ts < 10_000_000_000_000_000_000;
            match scan::event(&json) {
                Some(got) => proptest::prop_assert_eq!(Ok(got), reference(&json)),
                None => proptest::prop_assert!(!plain, "plain but not scanned: {}", json),
            }
        }

        /// One scratch decoding a sequence of records — arbitrary events and corpus variants,
        /// types and optional fields changing from one to the next — gives what a fresh decoder
        /// gives for each.
        #[test]
        fn a_reused_scratch_decodes_like_a_fresh_decoder(
            events in proptest::collection::vec(arbitrary_event(), 1..12),
            picks in proptest::collection::vec(proptest::num::usize::ANY, 0..12),
        ) {
            let variants: Vec<String> = CORPUS.iter().flat_map(|j| variants(j)).collect();
            let mut records: Vec<String> = Vec::new();
            let mut picks = picks.iter();
            for e in &events {
                records.push(serde_json::to_string(e).unwrap());
                if let Some(p) = picks.next() {
                    records.push(variants[p % variants.len()].clone());
                }
            }
            let mut scratch = Scratch::default();
            for r in &records {
                let got = decode_reusing(r.as_bytes(), DEFAULT_MAX_RECORD_BYTES, &mut scratch);
                proptest::prop_assert_eq!(got.cloned(), dec(r), "{}", r);
            }
        }
    }

    #[test]
    fn round_trips_through_json() {
        let e = dec(r#"{"type":"offer.accepted","id":"e3","tenant":"t","ts":5,
            "assignment_id":"c1#1","agent_id":"a1","contact_id":"c1"}"#)
        .unwrap();
        let again = dec(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e, again);
    }
}
