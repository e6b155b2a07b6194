//! The daemon's configuration: one typed tree read from TOML.
//!
//! Unknown keys are errors (`deny_unknown_fields`), durations are written as durations
//! (`"30s"`, `"5m"`), and [`Config::validate`] adds the checks serde cannot express, naming the
//! key's path. Secrets are [`Secret`]s: they can come from the file, another file or the
//! environment, and never print.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

use crate::engine::policy::{Policy, PolicyError};
use crate::telemetry::LogSettings;

/// librdkafka keys omniroute sets itself; the `[kafka.client]` pass-through refuses them so that
/// a client setting cannot silently break offset handling or group membership.
pub const MANAGED_CLIENT_KEYS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
    "enable.partition.eof",
    "security.protocol",
    "sasl.mechanism",
    "sasl.mechanisms",
    "sasl.username",
    "sasl.password",
    "ssl.ca.location",
    "ssl.certificate.location",
    "ssl.key.location",
    "ssl.key.password",
];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub kafka: KafkaConfig,
    /// Routing policy: channels, queues, strategies, relaxation, limits.
    #[serde(default)]
    pub routing: Policy,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub daemon: DaemonConfig,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port`.
    pub brokers: Vec<String>,
    #[serde(default = "default_group_id")]
    pub group_id: String,
    /// Input topics; several must be co-partitioned (same partition count, keyed by tenant).
    #[serde(default = "default_input_topics")]
    pub input_topics: Vec<String>,
    #[serde(default = "default_assignments_topic")]
    pub assignments_topic: String,
    #[serde(default = "default_sla_topic")]
    pub sla_topic: String,
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Routing-state snapshots, one partition per input partition (see [`crate::recovery`]).
    #[serde(default = "default_state_topic")]
    pub state_topic: String,
    /// Where a new consumer group starts: `earliest` or `latest`.
    #[serde(default)]
    pub start_from: StartFrom,
    #[serde(default)]
    pub security: Security,
    /// librdkafka settings passed through as is, applied last. Keys omniroute manages are
    /// refused (see [`MANAGED_CLIENT_KEYS`]).
    #[serde(default, serialize_with = "ser_client")]
    pub client: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartFrom {
    #[default]
    Earliest,
    Latest,
}

impl StartFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            StartFrom::Earliest => "earliest",
            StartFrom::Latest => "latest",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Plaintext => "plaintext",
            Protocol::Ssl => "ssl",
            Protocol::SaslPlaintext => "sasl_plaintext",
            Protocol::SaslSsl => "sasl_ssl",
        }
    }

    fn uses_sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// TLS and SASL settings, mapped onto librdkafka's `security.*`, `sasl.*` and `ssl.*` keys.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sasl_mechanism: Option<SaslMechanism>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Secret>,
    /// CA bundle to verify the brokers' certificates (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Client certificate for mutual TLS (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<PathBuf>,
    /// Client private key for mutual TLS (PEM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_password: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the HTTP endpoint serving /metrics, /healthz and /readyz. Empty disables it.
    #[serde(default = "default_metrics_listen")]
    pub listen: String,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            listen: default_metrics_listen(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Larger input records go to the dead-letter topic.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// Longest sleep between engine timer checks when no event arrives.
    #[serde(default = "default_tick_interval", with = "humantime_serde")]
    pub tick_interval: Duration,
    /// Deadline for a graceful stop (finish in-flight, flush, commit).
    #[serde(default = "default_shutdown_timeout", with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How often SLA snapshots go to the SLA topic. 0 disables them.
    #[serde(default = "default_sla_interval", with = "humantime_serde")]
    pub sla_snapshot_interval: Duration,
    /// How often consumed offsets are committed.
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    /// Produced records not yet acknowledged by the brokers; above this, consuming pauses.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// librdkafka's producer queue size (`queue.buffering.max.messages`).
    #[serde(default = "default_producer_queue")]
    pub producer_queue_messages: usize,
    /// How often each partition's routing state is snapshotted to the state topic. Offsets are
    /// committed at snapshots, so this bounds the replay after a crash.
    #[serde(default = "default_snapshot_interval", with = "humantime_serde")]
    pub snapshot_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            max_record_bytes: default_max_record_bytes(),
            tick_interval: default_tick_interval(),
            shutdown_timeout: default_shutdown_timeout(),
            sla_snapshot_interval: default_sla_interval(),
            commit_interval: default_commit_interval(),
            max_in_flight: default_max_in_flight(),
            producer_queue_messages: default_producer_queue(),
            snapshot_interval: default_snapshot_interval(),
        }
    }
}

fn default_group_id() -> String {
    "omniroute".into()
}
fn default_input_topics() -> Vec<String> {
    vec!["omniroute.events".into()]
}
fn default_assignments_topic() -> String {
    "omniroute.assignments".into()
}
fn default_sla_topic() -> String {
    "omniroute.sla".into()
}
fn default_dlq_topic() -> String {
    "omniroute.dlq".into()
}
fn default_state_topic() -> String {
    "omniroute.state".into()
}
fn default_snapshot_interval() -> Duration {
    Duration::from_secs(30)
}
fn default_metrics_listen() -> String {
    "127.0.0.1:9464".into()
}
fn default_max_record_bytes() -> usize {
    crate::event::DEFAULT_MAX_RECORD_BYTES
}
fn default_tick_interval() -> Duration {
    Duration::from_millis(250)
}
fn default_shutdown_timeout() -> Duration {
    Duration::from_secs(20)
}
fn default_sla_interval() -> Duration {
    Duration::from_secs(10)
}
fn default_commit_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_max_in_flight() -> usize {
    50_000
}
fn default_producer_queue() -> usize {
    100_000
}

/// Values in the pass-through table whose key looks secret are redacted when printed.
fn ser_client<S: Serializer>(c: &BTreeMap<String, String>, s: S) -> Result<S::Ok, S::Error> {
    let shown: BTreeMap<&str, &str> = c
        .iter()
        .map(|(k, v)| {
            if is_secret_key(k) {
                (k.as_str(), REDACTED)
            } else {
                (k.as_str(), v.as_str())
            }
        })
        .collect();
    shown.serialize(s)
}

fn is_secret_key(k: &str) -> bool {
    let k = k.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k.contains("key.pem")
}

const REDACTED: &str = "<redacted>";

/// A secret value: given inline (`{ value = "…" }`), in a file (`{ file = "/path" }`) or in an
/// environment variable (`{ env = "NAME" }`). Debug, Display and Serialize print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    Value(String),
    File(PathBuf),
    Env(String),
}

impl Secret {
    /// Reads the secret. Errors say where from, never the value.
    pub fn resolve(&self, path: &str) -> Result<String, ConfigError> {
        match self {
            Secret::Value(v) => Ok(v.clone()),
            Secret::File(f) => std::fs::read_to_string(f)
                .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
                .map_err(|e| ConfigError::Invalid {
                    path: path.into(),
                    message: format!("cannot read secret file {}: {e}", f.display()),
                }),
            Secret::Env(name) => std::env::var(name).map_err(|_| ConfigError::Invalid {
                path: path.into(),
                message: format!("environment variable {name} is not set or not UTF-8"),
            }),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SecretVisitor)
    }
}

const SECRET_FORMS: &str = "a table { value = \"…\" }, { file = \"/path\" } or { env = \"NAME\" }";

/// Hand-written so that no error message ever repeats what was written in the secret's place.
struct SecretVisitor;

impl<'de> de::Visitor<'de> for SecretVisitor {
    type Value = Secret;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(SECRET_FORMS)
    }

    fn visit_str<E: de::Error>(self, _v: &str) -> Result<Secret, E> {
        Err(E::custom(format!(
            "a secret must be {SECRET_FORMS}, not a plain string"
        )))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
        let mut found: Option<Secret> = None;
        while let Some(key) = map.next_key::<String>()? {
            let value: String = map
                .next_value()
                .map_err(|_| de::Error::custom(format!("secret `{key}` must be a string")))?;
            let s = match key.as_str() {
                "value" => Secret::Value(value),
                "file" => Secret::File(PathBuf::from(value)),
                "env" => Secret::Env(value),
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown secret source `{other}`, expected value, file or env"
                    )))
                }
            };
            if found.replace(s).is_some() {
                return Err(de::Error::custom("a secret takes exactly one source"));
            }
        }
        found.ok_or_else(|| de::Error::custom(format!("a secret must be {SECRET_FORMS}")))
    }

    fn visit_i64<E: de::Error>(self, _v: i64) -> Result<Secret, E> {
        Err(E::custom(format!("a secret must be {SECRET_FORMS}")))
    }

    fn visit_u64<E: de::Error>(self, _v: u64) -> Result<Secret, E> {
        Err(E::custom(format!("a secret must be {SECRET_FORMS}")))
    }

    fn visit_f64<E: de::Error>(self, _v: f64) -> Result<Secret, E> {
        Err(E::custom(format!("a secret must be {SECRET_FORMS}")))
    }

    fn visit_bool<E: de::Error>(self, _v: bool) -> Result<Secret, E> {
        Err(E::custom(format!("a secret must be {SECRET_FORMS}")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _seq: A) -> Result<Secret, A::Error> {
        Err(de::Error::custom(format!(
            "a secret must be {SECRET_FORMS}"
        )))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A TOML syntax or type error. The message never quotes the file's text, so a secret
    /// written in the wrong place is not echoed.
    #[error("{file}:{line}:{column}: {message}")]
    Parse {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl From<PolicyError> for ConfigError {
    fn from(e: PolicyError) -> Self {
        ConfigError::Invalid {
            path: e.path,
            message: e.message,
        }
    }
}

impl Config {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses and validates config text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let parse_error = |e: toml::de::Error, path: &str| {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            let message = e.message().trim().to_string();
            ConfigError::Parse {
                file: origin.to_string(),
                line,
                column,
                message: if path.is_empty() || path == "." {
                    message
                } else {
                    format!("{path}: {message}")
                },
            }
        };
        let de = toml::Deserializer::parse(text).map_err(|e| parse_error(e, ""))?;
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            parse_error(e.into_inner(), &path)
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Cross-field checks, each naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |path: &str, message: &str| {
            Err(ConfigError::Invalid {
                path: path.into(),
                message: message.into(),
            })
        };
        let k = &self.kafka;
        if k.brokers.is_empty() || k.brokers.iter().any(|b| b.trim().is_empty()) {
            return invalid("kafka.brokers", "must list at least one host:port");
        }
        if k.group_id.is_empty() {
            return invalid("kafka.group_id", "must not be empty");
        }
        if k.input_topics.is_empty() || k.input_topics.iter().any(|t| t.is_empty()) {
            return invalid("kafka.input_topics", "must list at least one topic");
        }
        for (path, topic) in [
            ("kafka.assignments_topic", &k.assignments_topic),
            ("kafka.sla_topic", &k.sla_topic),
            ("kafka.dlq_topic", &k.dlq_topic),
            ("kafka.state_topic", &k.state_topic),
        ] {
            if topic.is_empty() {
                return invalid(path, "must not be empty");
            }
            if k.input_topics.contains(topic) {
                return invalid(path, "must not also be an input topic");
            }
        }
        for key in k.client.keys() {
            if MANAGED_CLIENT_KEYS.contains(&key.as_str()) {
                return invalid(
                    &format!("kafka.client.\"{key}\""),
                    "is managed by omniroute; use [kafka] or [kafka.security] instead",
                );
            }
        }
        let s = &k.security;
        if s.protocol.uses_sasl() {
            if s.sasl_mechanism.is_none() {
                return invalid(
                    "kafka.security.sasl_mechanism",
                    "is required with a sasl_* protocol",
                );
            }
            if s.username.is_none() {
                return invalid(
                    "kafka.security.username",
                    "is required with a sasl_* protocol",
                );
            }
            if s.password.is_none() {
                return invalid(
                    "kafka.security.password",
                    "is required with a sasl_* protocol",
                );
            }
        } else if s.sasl_mechanism.is_some() || s.username.is_some() || s.password.is_some() {
            return invalid(
                "kafka.security.protocol",
                "SASL settings need protocol sasl_plaintext or sasl_ssl",
            );
        }
        if s.key_file.is_some() != s.cert_file.is_some() {
            return invalid(
                "kafka.security.key_file",
                "cert_file and key_file go together",
            );
        }
        if !self.metrics.listen.is_empty()
            && self.metrics.listen.parse::<std::net::SocketAddr>().is_err()
        {
            return invalid(
                "metrics.listen",
                "must be an address such as 127.0.0.1:9464",
            );
        }
        let d = &self.daemon;
        if d.max_record_bytes == 0 {
            return invalid("daemon.max_record_bytes", "must be at least 1");
        }
        if d.tick_interval.is_zero() {
            return invalid("daemon.tick_interval", "must be greater than 0");
        }
        if d.commit_interval.is_zero() {
            return invalid("daemon.commit_interval", "must be greater than 0");
        }
        if d.max_in_flight == 0 {
            return invalid("daemon.max_in_flight", "must be at least 1");
        }
        if d.producer_queue_messages == 0 {
            return invalid("daemon.producer_queue_messages", "must be at least 1");
        }
        if d.snapshot_interval.is_zero() {
            return invalid("daemon.snapshot_interval", "must be greater than 0");
        }
        self.routing.validate()?;
        Ok(())
    }

    /// The effective config as TOML, secrets redacted (for `check-config`).
    pub fn to_toml_redacted(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot render the config as TOML: {e}\n"))
    }

    /// librdkafka settings shared by consumer and producer: brokers, security, then the
    /// pass-through table. Secrets are resolved here, at the edge.
    pub fn client_settings(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let k = &self.kafka;
        let s = &k.security;
        let mut out = vec![
            ("bootstrap.servers".to_string(), k.brokers.join(",")),
            ("security.protocol".to_string(), s.protocol.as_str().into()),
        ];
        if let Some(m) = s.sasl_mechanism {
            out.push(("sasl.mechanism".into(), m.as_str().into()));
        }
        if let Some(u) = &s.username {
            out.push(("sasl.username".into(), u.clone()));
        }
        if let Some(p) = &s.password {
            out.push((
                "sasl.password".into(),
                p.resolve("kafka.security.password")?,
            ));
        }
        for (key, file) in [
            ("ssl.ca.location", &s.ca_file),
            ("ssl.certificate.location", &s.cert_file),
            ("ssl.key.location", &s.key_file),
        ] {
            if let Some(f) = file {
                out.push((key.into(), f.display().to_string()));
            }
        }
        if let Some(p) = &s.key_password {
            out.push((
                "ssl.key.password".into(),
                p.resolve("kafka.security.key_password")?,
            ));
        }
        out.extend(k.client.iter().map(|(a, b)| (a.clone(), b.clone())));
        Ok(out)
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = "[kafka]\nbrokers = [\"127.0.0.1:9092\"]\n";

    #[test]
    fn example_config_parses_and_validates() {
        let text = include_str!("../config/omniroute.toml");
        let c = Config::parse(text, "config/omniroute.toml").unwrap();
        assert_eq!(c.kafka.input_topics, vec!["omniroute.events".to_string()]);
        assert!(c.routing.queues.contains_key("general"));
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let c = Config::parse(MIN, "min").unwrap();
        assert_eq!(c.kafka.assignments_topic, "omniroute.assignments");
        assert_eq!(c.kafka.dlq_topic, "omniroute.dlq");
        assert_eq!(c.daemon.tick_interval, Duration::from_millis(250));
    }

    #[test]
    fn unknown_key_is_an_error_with_position() {
        let e = Config::parse(
            &format!("{MIN}[daemon]\ntick_intervall = \"1s\"\n"),
            "f.toml",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("f.toml:4:"), "{msg}");
        assert!(
            msg.contains("daemon.tick_intervall: unknown field"),
            "{msg}"
        );
        // Deeper keys name their whole path.
        let e = Config::parse(
            &format!(
                "{MIN}[routing.queues.sales]
strategi = \"round_robin\"\n"
            ),
            "f.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("routing.queues.sales.strategi: unknown field"),
            "{e}"
        );
    }

    #[test]
    fn bad_values_name_the_key_path() {
        let e = Config::parse(
            &format!("{MIN}[kafka.client]\n\"enable.auto.offset.store\" = \"true\"\n"),
            "f",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("kafka.client.\"enable.auto.offset.store\": "),
            "{e}"
        );
        let e = Config::parse(
            &format!("{MIN}[routing.channels.chat]\ncapacity = 0\n"),
            "f",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("routing.channels.chat.capacity"),
            "{e}"
        );
        let e = Config::parse("[kafka]\nbrokers = []\n", "f").unwrap_err();
        assert!(e.to_string().starts_with("kafka.brokers"), "{e}");
    }

    #[test]
    fn secrets_come_from_value_file_or_env_and_never_print() {
        let dir = std::env::temp_dir().join(format!("omniroute-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "file-s3cret\n").unwrap();
        let text = format!(
            "[kafka]\nbrokers = [\"b:9093\"]\n[kafka.security]\nprotocol = \"sasl_ssl\"\n\
             sasl_mechanism = \"SCRAM-SHA-512\"\nusername = \"u\"\n\
             password = {{ file = \"{}\" }}\nkey_password = {{ value = \"inline-s3cret\" }}\n\
             cert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n",
            file.display()
        );
        let c = Config::parse(&text, "f").unwrap();
        let settings = c.client_settings().unwrap();
        let get = |k: &str| {
            settings
                .iter()
                .find(|(a, _)| a == k)
                .map(|(_, b)| b.clone())
        };
        assert_eq!(get("sasl.password").as_deref(), Some("file-s3cret"));
        assert_eq!(get("ssl.key.password").as_deref(), Some("inline-s3cret"));
        assert_eq!(get("sasl.mechanism").as_deref(), Some("SCRAM-SHA-512"));
        for shown in [c.to_toml_redacted(), format!("{c:?}")] {
            assert!(!shown.contains("s3cret"), "{shown}");
            assert!(shown.contains("<redacted>"));
        }
        let env = Secret::Env("OMNIROUTE_TEST_SURELY_UNSET_VAR".into());
        let e = env.resolve("kafka.security.password").unwrap_err();
        assert!(e.to_string().starts_with("kafka.security.password"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_secret_in_the_wrong_form_is_not_echoed() {
        let text = "[kafka]\nbrokers = [\"b:9093\"]\n[kafka.security]\nprotocol = \"sasl_ssl\"\n\
                    sasl_mechanism = \"PLAIN\"\nusername = \"u\"\npassword = \"hunter2-s3cret\"\n";
        let e = Config::parse(text, "f").unwrap_err().to_string();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(e.contains("a secret must be"), "{e}");
        let text =
            format!("{MIN}[kafka.client]\n\"sasl.oauthbearer.client.secret\" = \"x-s3cret\"\n");
        let c = Config::parse(&text, "f").unwrap();
        assert!(!c.to_toml_redacted().contains("s3cret"));
    }
}
