//! Routing policy: channels, queues, strategies, relaxation steps and limits.
//!
//! This is the `[routing]` table of the TOML config. It is plain data so that the daemon can
//! swap it on reload (SIGHUP) and the simulator can read it from a scenario file. Built-in
//! defaults exist for the eight standard channels; the config overrides them field by field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// The standard channels, with built-in defaults. Custom channels may be added in config.
pub const STANDARD_CHANNELS: [&str; 8] = [
    "voice",
    "chat",
    "email",
    "whatsapp",
    "messenger",
    "twitter",
    "sms",
    "webform",
];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Queue for contacts that name none.
    #[serde(default = "default_queue")]
    pub default_queue: String,
    /// How long a customer's last agent stays preferred, across channels. 0 disables stickiness.
    #[serde(default = "default_sticky_for", with = "humantime_serde")]
    pub sticky_for: Duration,
    /// Offers missed (rejected or timed out) in a row before the agent is set away. 0 = never.
    #[serde(default = "default_max_missed")]
    pub max_missed_offers: u32,
    /// Per-channel settings, merged over the built-in defaults field by field.
    #[serde(
        default = "default_channels",
        deserialize_with = "merge_channels",
        serialize_with = "ser_channels"
    )]
    pub channels: BTreeMap<String, ChannelPolicy>,
    /// Queues by name. A contact naming an unknown queue uses `default_queue`'s settings.
    #[serde(default)]
    pub queues: BTreeMap<String, QueuePolicy>,
    /// Rolling window for SLA metrics.
    #[serde(default = "default_sla_window", with = "humantime_serde")]
    pub sla_window: Duration,
    #[serde(default)]
    pub limits: Limits,
}

/// How one channel behaves for an agent and a contact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelPolicy {
    /// Default maximum concurrent contacts of this channel per agent (profiles may override).
    pub capacity: u16,
    /// Fraction of an agent's total load one contact takes (chat 1/3, email 1/5). Defaults to
    /// `1 / capacity`. The sum over an agent's contacts never exceeds 1.
    pub load: Option<f64>,
    /// A contact of this channel blocks all other work (voice).
    pub exclusive: bool,
    /// An offer not answered within this time is a miss.
    #[serde(with = "humantime_serde")]
    pub offer_timeout: Duration,
    /// After completion the agent's slot stays busy this long, or until `agent.wrapup_done`.
    #[serde(with = "humantime_serde")]
    pub wrapup: Duration,
    /// Service-level threshold ("answered within"), unless the queue sets its own.
    #[serde(with = "humantime_serde")]
    pub service_level_threshold: Duration,
    /// Abandons within this time are short abandons (excluded by the default SL formula).
    #[serde(with = "humantime_serde")]
    pub short_abandon: Duration,
}

impl ChannelPolicy {
    /// The load fraction one contact of this channel takes, in (0, 1].
    pub fn load_fraction(&self) -> f64 {
        self.load
            .unwrap_or_else(|| 1.0 / f64::from(self.capacity.max(1)))
    }
}

/// Field-by-field override of a channel, as written in config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelOverride {
    capacity: Option<u16>,
    load: Option<f64>,
    exclusive: Option<bool>,
    #[serde(default, with = "humantime_serde")]
    offer_timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    wrapup: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    service_level_threshold: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    short_abandon: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueuePolicy {
    #[serde(default)]
    pub strategy: Strategy,
    /// Share of contacts to answer within the threshold (0–1), used by alerts and the simulator.
    #[serde(default = "default_sl_target")]
    pub service_level_target: f64,
    /// Overrides the channel's service-level threshold for this queue.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub service_level_threshold: Option<Duration>,
    #[serde(default)]
    pub service_level_formula: SlFormula,
    /// Priority gained per service-level threshold waited: effective priority =
    /// priority + aging × wait / threshold.
    #[serde(default = "default_aging")]
    pub aging: f64,
    /// Steps applied in order once a contact has waited `after`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub relaxation: Vec<RelaxStep>,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            strategy: Strategy::default(),
            service_level_target: default_sl_target(),
            service_level_threshold: None,
            service_level_formula: SlFormula::default(),
            aging: default_aging(),
            relaxation: Vec::new(),
        }
    }
}

/// How to choose among eligible agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The agent idle the longest (since their last assignment ended) first.
    #[default]
    LongestIdle,
    /// The agent with the lowest current load first.
    LeastOccupied,
    /// The agent whose skills best exceed the requirement (then preferred skills) first.
    BestSkillMatch,
    /// Agents take turns in a fixed rotation.
    RoundRobin,
}

impl Strategy {
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LongestIdle => "longest_idle",
            Strategy::LeastOccupied => "least_occupied",
            Strategy::BestSkillMatch => "best_skill_match",
            Strategy::RoundRobin => "round_robin",
        }
    }
}

/// Service-level formula variants (DESIGN.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlFormula {
    /// answered_within / (answered + abandoned − short_abandoned)
    #[default]
    AbandonAdjusted,
    /// answered_within / answered
    AnsweredOnly,
    /// (answered_within + abandoned_within) / (answered + abandoned)
    WithAbandoned,
    /// removed_within / queued
    RemovedWithin,
}

/// One relaxation (bullseye) step. Each field relaxes one constraint; steps accumulate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelaxStep {
    /// Wait after which this step applies.
    #[serde(with = "humantime_serde")]
    pub after: Duration,
    /// Stop scoring preferred skills (they only order, never filter; dropping them widens ties).
    #[serde(default)]
    pub drop_preferred_skills: bool,
    /// Lower every required minimum level by this much (never below 1).
    #[serde(default)]
    pub lower_min_level_by: u8,
    /// Extra languages accepted from this step on (BCP 47 tags, e.g. `en`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_languages: Vec<String>,
    /// Agents of this queue become eligible too (overflow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overflow_to: Option<String>,
}

/// Bounds that keep one routing domain's memory finite. Events beyond them are refused with a
/// reason, never silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_max_agents")]
    pub max_agents: usize,
    #[serde(default = "default_max_contacts")]
    pub max_contacts: usize,
    /// Recent event ids remembered for de-duplication.
    #[serde(default = "default_dedup_window")]
    pub dedup_window: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_agents: default_max_agents(),
            max_contacts: default_max_contacts(),
            dedup_window: default_dedup_window(),
        }
    }
}

/// Why a policy cannot be used; `path` names the offending key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct PolicyError {
    pub path: String,
    pub message: String,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            default_queue: default_queue(),
            sticky_for: default_sticky_for(),
            max_missed_offers: default_max_missed(),
            channels: default_channels(),
            queues: BTreeMap::new(),
            sla_window: default_sla_window(),
            limits: Limits::default(),
        }
    }
}

impl Policy {
    /// The queue's settings, or the default queue's, or built-in defaults.
    pub fn queue(&self, name: &str) -> &QueuePolicy {
        static BUILT_IN: std::sync::OnceLock<QueuePolicy> = std::sync::OnceLock::new();
        self.queues
            .get(name)
            .or_else(|| self.queues.get(&self.default_queue))
            .unwrap_or_else(|| BUILT_IN.get_or_init(QueuePolicy::default))
    }

    pub fn channel(&self, name: &str) -> Option<&ChannelPolicy> {
        self.channels.get(name)
    }

    /// Service-level threshold for a queue on a channel: the queue's, else the channel's.
    pub fn sl_threshold(&self, queue: &str, channel: &str) -> Duration {
        self.queue(queue)
            .service_level_threshold
            .or_else(|| self.channel(channel).map(|c| c.service_level_threshold))
            .unwrap_or(Duration::from_secs(20))
    }

    /// Cross-field checks serde cannot express.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let err = |path: String, message: &str| {
            Err(PolicyError {
                path,
                message: message.to_string(),
            })
        };
        if self.default_queue.is_empty() {
            return err("routing.default_queue".into(), "must not be empty");
        }
        for (name, c) in &self.channels {
            let p = format!("routing.channels.{name}");
            if c.capacity == 0 {
                return err(format!("{p}.capacity"), "must be at least 1");
            }
            if let Some(l) = c.load {
                if !(l > 0.0 && l <= 1.0) {
                    return err(format!("{p}.load"), "must be in (0, 1]");
                }
            }
            if c.offer_timeout.is_zero() {
                return err(format!("{p}.offer_timeout"), "must be greater than 0");
            }
            if c.service_level_threshold.is_zero() {
                return err(
                    format!("{p}.service_level_threshold"),
                    "must be greater than 0",
                );
            }
        }
        for (name, q) in &self.queues {
            let p = format!("routing.queues.{name}");
            if !(0.0..=1.0).contains(&q.service_level_target) {
                return err(format!("{p}.service_level_target"), "must be in [0, 1]");
            }
            if q.service_level_threshold.is_some_and(|t| t.is_zero()) {
                return err(
                    format!("{p}.service_level_threshold"),
                    "must be greater than 0",
                );
            }
            if !(q.aging.is_finite() && q.aging >= 0.0) {
                return err(format!("{p}.aging"), "must be a finite number >= 0");
            }
            let mut last = Duration::ZERO;
            for (i, step) in q.relaxation.iter().enumerate() {
                let sp = format!("{p}.relaxation[{i}]");
                if i > 0 && step.after < last {
                    return err(format!("{sp}.after"), "steps must be in increasing order");
                }
                last = step.after;
                if let Some(o) = &step.overflow_to {
                    if o == name {
                        return err(
                            format!("{sp}.overflow_to"),
                            "a queue cannot overflow to itself",
                        );
                    }
                    if !self.queues.contains_key(o) && o != &self.default_queue {
                        return err(format!("{sp}.overflow_to"), "names no configured queue");
                    }
                }
            }
        }
        if self.limits.max_agents == 0 || self.limits.max_contacts == 0 {
            return err(
                "routing.limits".into(),
                "max_agents and max_contacts must be at least 1",
            );
        }
        if self.sla_window.is_zero() {
            return err("routing.sla_window".into(), "must be greater than 0");
        }
        Ok(())
    }
}

fn default_queue() -> String {
    "general".to_string()
}
fn default_sticky_for() -> Duration {
    Duration::from_secs(30 * 60)
}
fn default_max_missed() -> u32 {
    3
}
fn default_sl_target() -> f64 {
    0.8
}
fn default_aging() -> f64 {
    1.0
}
fn default_sla_window() -> Duration {
    Duration::from_secs(15 * 60)
}
fn default_max_agents() -> usize {
    200_000
}
fn default_max_contacts() -> usize {
    2_000_000
}
fn default_dedup_window() -> usize {
    100_000
}

fn channel(
    capacity: u16,
    exclusive: bool,
    offer_timeout: u64,
    wrapup: u64,
    sl: u64,
    short_abandon: u64,
) -> ChannelPolicy {
    ChannelPolicy {
        capacity,
        load: None,
        exclusive,
        offer_timeout: Duration::from_secs(offer_timeout),
        wrapup: Duration::from_secs(wrapup),
        service_level_threshold: Duration::from_secs(sl),
        short_abandon: Duration::from_secs(short_abandon),
    }
}

/// Built-in channel defaults: industry-typical thresholds (voice 20 s, chat 30 s, WhatsApp 5 min,
/// email 48 h).
pub fn default_channels() -> BTreeMap<String, ChannelPolicy> {
    const H: u64 = 3600;
    [
        ("voice", channel(1, true, 20, 30, 20, 5)),
        ("chat", channel(3, false, 30, 15, 30, 5)),
        ("email", channel(5, false, 300, 60, 48 * H, 0)),
        ("whatsapp", channel(3, false, 60, 15, 300, 10)),
        ("messenger", channel(3, false, 60, 15, 300, 10)),
        ("twitter", channel(3, false, 60, 15, H, 0)),
        ("sms", channel(3, false, 60, 15, 300, 0)),
        ("webform", channel(5, false, 300, 60, 24 * H, 0)),
    ]
    .into_iter()
    .map(|(n, c)| (n.to_string(), c))
    .collect()
}

fn merge_channels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ChannelPolicy>, D::Error> {
    let overrides = BTreeMap::<String, ChannelOverride>::deserialize(d)?;
    let mut channels = default_channels();
    for (name, o) in overrides {
        // A custom channel starts from chat-like defaults.
        let base = channels
            .get(&name)
            .cloned()
            .unwrap_or_else(|| channel(3, false, 60, 15, 60, 0));
        let c = ChannelPolicy {
            capacity: o.capacity.unwrap_or(base.capacity),
            load: o.load.or(base.load),
            exclusive: o.exclusive.unwrap_or(base.exclusive),
            offer_timeout: o.offer_timeout.unwrap_or(base.offer_timeout),
            wrapup: o.wrapup.unwrap_or(base.wrapup),
            service_level_threshold: o
                .service_level_threshold
                .unwrap_or(base.service_level_threshold),
            short_abandon: o.short_abandon.unwrap_or(base.short_abandon),
        };
        channels.insert(name, c);
    }
    Ok(channels)
}

fn ser_channels<S: serde::Serializer>(
    c: &BTreeMap<String, ChannelPolicy>,
    s: S,
) -> Result<S::Ok, S::Error> {
    c.serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_overrides_merge_over_defaults() {
        let p: Policy = toml::from_str(
            r#"
            [channels.chat]
            capacity = 4
            [channels.instagram]
            offer_timeout = "45s"
            [queues.returns]
            strategy = "best_skill_match"
            [[queues.returns.relaxation]]
            after = "60s"
            lower_min_level_by = 2
            overflow_to = "general"
            "#,
        )
        .unwrap();
        let chat = p.channel("chat").unwrap();
        assert_eq!(chat.capacity, 4);
        assert_eq!(chat.service_level_threshold, Duration::from_secs(30));
        assert_eq!(
            p.channel("instagram").unwrap().offer_timeout,
            Duration::from_secs(45)
        );
        assert!(p.channel("voice").unwrap().exclusive);
        assert_eq!(p.queue("returns").strategy, Strategy::BestSkillMatch);
        p.validate().unwrap();
    }

    #[test]
    fn validation_names_the_key() {
        let p: Policy = toml::from_str(
            r#"
            [queues.a]
            [[queues.a.relaxation]]
            after = "1m"
            overflow_to = "nowhere"
            "#,
        )
        .unwrap();
        let e = p.validate().unwrap_err();
        assert_eq!(e.path, "routing.queues.a.relaxation[0].overflow_to");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<Policy>("[channels.chat]\ncapacityy = 3\n").unwrap_err();
        assert!(e.to_string().contains("capacityy"), "{e}");
    }
}
