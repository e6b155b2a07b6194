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
    if payload.len() > max_bytes {
        return Err(DecodeError::Oversized {
            size: payload.len(),
            limit: max_bytes,
        });
    }
    if payload.is_empty() {
        return Err(DecodeError::Empty);
    }
    let text = std::str::from_utf8(payload).map_err(|e| DecodeError::InvalidUtf8 {
        at: e.valid_up_to(),
    })?;
    let event: Event = serde_json::from_str(text).map_err(classify)?;
    validate(&event)?;
    Ok(event)
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

    #[test]
    fn round_trips_through_json() {
        let e = dec(r#"{"type":"offer.accepted","id":"e3","tenant":"t","ts":5,
            "assignment_id":"c1#1","agent_id":"a1","contact_id":"c1"}"#)
        .unwrap();
        let again = dec(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(e, again);
    }
}
