//! Log setup: `tracing` events rendered for a person on a terminal, or as one JSON object per
//! line for journald / Loki.
//!
//! The `[log]` config table is [`LogSettings`]. `RUST_LOG`, when set, overrides its `level` so an
//! operator can turn up one module without editing the config. Logs go to stderr: stdout stays
//! free for command output (`check-config`), and journald captures both.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

/// The `[log]` config table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// How lines are rendered.
    #[serde(default)]
    pub format: LogFormat,
    /// A level (`info`) or a filter in `RUST_LOG` syntax (`info,omniroute=debug,rdkafka=warn`).
    #[serde(default = "default_level")]
    pub level: String,
}

fn default_level() -> String {
    "info".to_owned()
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::default(),
            level: default_level(),
        }
    }
}

/// How log lines are rendered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human on a terminal, JSON otherwise (under systemd stderr is a journald stream).
    #[default]
    Auto,
    /// Human-readable lines, coloured on a terminal.
    Human,
    /// One JSON object per line: `timestamp`, `level`, `target`, `message` and the event's fields.
    Json,
}

impl LogFormat {
    /// Whether this format renders JSON, given whether stderr is a terminal.
    pub fn is_json(self, stderr_is_terminal: bool) -> bool {
        match self {
            LogFormat::Auto => !stderr_is_terminal,
            LogFormat::Human => false,
            LogFormat::Json => true,
        }
    }
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter (from `[log] level` or `RUST_LOG`) does not parse.
    #[error("invalid log filter {filter:?} from {source_name}: {message}")]
    InvalidFilter {
        /// The filter text as given.
        filter: String,
        /// Where it came from: `[log] level` or `RUST_LOG`.
        source_name: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// A global subscriber was installed already (init called twice).
    #[error("logging is already initialised: {0}")]
    AlreadyInitialised(String),
}

const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "off"];

/// Builds the filter: `RUST_LOG` (when set and non-empty) wins over the configured level.
///
/// A configured level is checked more strictly than `RUST_LOG`: a bare word must be a level name,
/// because `EnvFilter` would read a typo such as `debg` as a target name and silently log
/// nothing of ours.
pub fn filter(level: &str, rust_log: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    if let Some(env) = rust_log.filter(|s| !s.trim().is_empty()) {
        return EnvFilter::try_new(env).map_err(|e| TelemetryError::InvalidFilter {
            filter: env.to_owned(),
            source_name: "RUST_LOG",
            message: e.to_string(),
        });
    }
    let invalid = |message: String| TelemetryError::InvalidFilter {
        filter: level.to_owned(),
        source_name: "[log] level",
        message,
    };
    if level.trim().is_empty() {
        return Err(invalid(format!(
            "empty; expected one of {}",
            LEVELS.join(", ")
        )));
    }
    for directive in level.split(',').map(str::trim) {
        let bare = !directive.contains('=') && !directive.contains('[');
        if bare && !LEVELS.contains(&directive.to_ascii_lowercase().as_str()) {
            return Err(invalid(format!(
                "{directive:?} is not a level; expected one of {} or target=level",
                LEVELS.join(", ")
            )));
        }
    }
    EnvFilter::try_new(level).map_err(|e| invalid(e.to_string()))
}

/// Builds the subscriber without installing it, writing to `writer`.
///
/// Split from [`init`] so tests can capture the output.
pub fn subscriber<W>(
    settings: &LogSettings,
    rust_log: Option<&str>,
    stderr_is_terminal: bool,
    writer: W,
) -> Result<Box<dyn Subscriber + Send + Sync>, TelemetryError>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = filter(&settings.level, rust_log)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    if settings.format.is_json(stderr_is_terminal) {
        Ok(Box::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .finish(),
        ))
    } else {
        Ok(Box::new(builder.with_ansi(stderr_is_terminal).finish()))
    }
}

/// Installs the global log subscriber, writing to stderr. Call once, early in `main`.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    let rust_log = std::env::var("RUST_LOG").ok();
    let terminal = std::io::stderr().is_terminal();
    let sub = subscriber(settings, rust_log.as_deref(), terminal, std::io::stderr)?;
    tracing::subscriber::set_global_default(sub)
        .map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Collects everything written, so a test can read the rendered lines.
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    impl Buf {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn capture(settings: &LogSettings, rust_log: Option<&str>, terminal: bool) -> String {
        let buf = Buf::default();
        let sub = subscriber(settings, rust_log, terminal, buf.clone()).unwrap();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(topic = "omniroute.events", partition = 3, "event rejected");
            tracing::debug!("debug detail");
        });
        buf.text()
    }

    #[test]
    fn json_lines_carry_message_and_fields() {
        let s = LogSettings {
            format: LogFormat::Json,
            level: "info".into(),
        };
        let out = capture(&s, None, true);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 1, "debug must be filtered out at info: {out}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["message"], "event rejected");
        assert_eq!(v["topic"], "omniroute.events");
        assert_eq!(v["partition"], 3);
        assert_eq!(v["level"], "INFO");
        assert!(v["timestamp"].is_string());
    }

    #[test]
    fn auto_is_human_on_a_terminal_and_json_otherwise() {
        let s = LogSettings::default();
        let human = capture(&s, None, true);
        assert!(human.contains("event rejected"));
        assert!(serde_json::from_str::<serde_json::Value>(human.trim()).is_err());
        let json = capture(&s, None, false);
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        assert_eq!(v["message"], "event rejected");
    }

    #[test]
    fn rust_log_overrides_configured_level() {
        let s = LogSettings {
            format: LogFormat::Human,
            level: "info".into(),
        };
        assert!(!capture(&s, None, false).contains("debug detail"));
        assert!(capture(&s, Some("debug"), false).contains("debug detail"));
        // An empty RUST_LOG is treated as unset, as most tools do.
        assert!(!capture(&s, Some(""), false).contains("debug detail"));
        let quiet = capture(&s, Some("error"), false);
        assert!(quiet.is_empty(), "{quiet}");
    }

    #[test]
    fn bad_filters_are_clear_errors() {
        let e = filter("debg", None).unwrap_err().to_string();
        assert!(e.contains("[log] level") && e.contains("debg"), "{e}");
        assert!(filter("", None).is_err());
        let e = filter("info", Some("omniroute=loud"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("RUST_LOG") && e.contains("omniroute=loud"),
            "{e}"
        );
        assert!(filter("info,omniroute=debug,rdkafka=warn", None).is_ok());
        assert!(filter("WARN", None).is_ok());
    }

    #[test]
    fn settings_parse_from_toml_and_reject_unknown_keys() {
        let s: LogSettings = toml::from_str("format = \"json\"\nlevel = \"debug\"").unwrap();
        assert_eq!(s.format, LogFormat::Json);
        assert_eq!(s.level, "debug");
        let d: LogSettings = toml::from_str("").unwrap();
        assert_eq!(d, LogSettings::default());
        assert_eq!(d.format, LogFormat::Auto);
        assert_eq!(d.level, "info");
        assert!(toml::from_str::<LogSettings>("colour = true").is_err());
        assert!(toml::from_str::<LogSettings>("format = \"xml\"").is_err());
    }
}
