//! The scenario file: a `[routing]` policy exactly as in the daemon's config, arrival streams,
//! agent rosters and run settings. See docs/SIMULATOR.md for the format with an example.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::SimError;
use crate::engine::Policy;
use crate::event::{Millis, Skills};

const DAY_MS: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub simulation: Settings,
    /// The routing policy, the same table as `[routing]` in the daemon's config.
    #[serde(default)]
    pub routing: Policy,
    #[serde(default)]
    pub arrivals: Vec<Arrival>,
    #[serde(default)]
    pub agents: Vec<AgentGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Simulated time, warm-up included.
    #[serde(with = "humantime_serde")]
    pub duration: Duration,
    /// Time at the start whose contacts are not counted (the queue fills up meanwhile).
    #[serde(default, with = "humantime_serde")]
    pub warmup: Duration,
    #[serde(default)]
    pub seed: u64,
    /// Virtual clock at the start, RFC 3339; its time of day places shifts and rate intervals.
    #[serde(default = "default_start")]
    pub start: String,
    /// How long a simulated agent takes to accept an offer.
    #[serde(default, with = "humantime_serde")]
    pub accept_delay: Duration,
    /// How long an agent the engine set away (missed offers) stays away before coming back.
    #[serde(default = "default_away_for", with = "humantime_serde")]
    pub away_for: Duration,
    #[serde(default = "default_tenant")]
    pub tenant: String,
}

/// One stream of contacts into a queue on a channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrival {
    /// The policy's default queue when absent.
    #[serde(default)]
    pub queue: Option<String>,
    pub channel: String,
    /// Poisson rate, contacts per hour; applies outside `intervals` too.
    #[serde(default)]
    pub rate_per_hour: Option<f64>,
    /// Rate per interval of the day (overrides `rate_per_hour` inside each interval).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intervals: Vec<RateInterval>,
    /// Language tag → weight. Default: `es` only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub languages: BTreeMap<String, f64>,
    #[serde(default)]
    pub required_skills: Skills,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub preferred_skills: Skills,
    #[serde(default)]
    pub priority: i32,
    /// Handle time (accept → complete).
    pub handle: Dist,
    /// How long a customer waits before abandoning (unless answered). Default: forever.
    #[serde(default)]
    pub patience: Dist,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateInterval {
    /// Time of day, `HH:MM`.
    pub from: String,
    /// Time of day, `HH:MM` (`24:00` allowed); before `from` means past midnight.
    pub to: String,
    pub rate_per_hour: f64,
}

/// A duration distribution.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "dist", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dist {
    /// Never happens (patience: the customer never abandons).
    #[default]
    None,
    Fixed {
        #[serde(with = "humantime_serde")]
        value: Duration,
    },
    Exponential {
        #[serde(with = "humantime_serde")]
        mean: Duration,
    },
    Lognormal {
        #[serde(with = "humantime_serde")]
        mean: Duration,
        #[serde(with = "humantime_serde")]
        sd: Duration,
    },
    Uniform {
        #[serde(with = "humantime_serde")]
        min: Duration,
        #[serde(with = "humantime_serde")]
        max: Duration,
    },
}

impl Dist {
    /// The mean, seconds; `None` for [`Dist::None`].
    pub fn mean_seconds(&self) -> Option<f64> {
        match self {
            Dist::None => None,
            Dist::Fixed { value } => Some(value.as_secs_f64()),
            Dist::Exponential { mean } | Dist::Lognormal { mean, .. } => Some(mean.as_secs_f64()),
            Dist::Uniform { min, max } => Some((min.as_secs_f64() + max.as_secs_f64()) / 2.0),
        }
    }

    /// One sample in ms; `None` for [`Dist::None`].
    pub(crate) fn sample(&self, rng: &mut super::rng::Rng) -> Option<u64> {
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let v = match self {
            Dist::None => return None,
            Dist::Fixed { value } => ms(value),
            Dist::Exponential { mean } => rng.exponential(ms(mean)),
            Dist::Lognormal { mean, sd } => rng.lognormal(ms(mean), ms(sd)),
            Dist::Uniform { min, max } => ms(min) + (ms(max) - ms(min)) * rng.unit(),
        };
        Some(v.round().max(0.0) as u64)
    }
}

/// A group of identical agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentGroup {
    /// Names the group in ids and output.
    pub name: String,
    pub count: u32,
    #[serde(default)]
    pub skills: Skills,
    /// BCP 47 tags. Default: `es`.
    #[serde(default)]
    pub languages: Vec<String>,
    /// Channel → concurrent contacts; channels absent use the policy's default capacity.
    #[serde(default)]
    pub capacity: BTreeMap<String, u16>,
    /// Queues served; empty means every queue.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queues: Vec<String>,
    /// Daily shifts; empty means logged in for the whole run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shifts: Vec<Shift>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Time of day, `HH:MM`.
    pub start: String,
    /// Time of day, `HH:MM`; before `start` means past midnight.
    pub end: String,
}

fn default_start() -> String {
    "2026-01-05T08:00:00Z".to_string()
}
fn default_away_for() -> Duration {
    Duration::from_secs(60)
}
fn default_tenant() -> String {
    "sim".to_string()
}

/// `HH:MM` → ms since midnight (`24:00` allowed).
pub(crate) fn time_of_day(s: &str) -> Option<u64> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    if m >= 60 || h > 24 || (h == 24 && m > 0) {
        return None;
    }
    Some((h * 60 + m) * 60_000)
}

impl Scenario {
    pub fn from_toml(text: &str) -> Result<Scenario, SimError> {
        let s: Scenario = toml::from_str(text).map_err(|e| SimError::Parse(e.to_string()))?;
        s.validate()?;
        Ok(s)
    }

    pub fn load(path: &Path) -> Result<Scenario, SimError> {
        let text = std::fs::read_to_string(path).map_err(|e| SimError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Scenario::from_toml(&text)
    }

    /// Virtual epoch ms at the start.
    pub fn start_ms(&self) -> Result<Millis, SimError> {
        crate::event::parse_rfc3339(&self.simulation.start)
            .ok_or_else(|| invalid("simulation.start", "must be an RFC 3339 timestamp"))
    }

    /// Agents in the roster.
    pub fn total_agents(&self) -> u32 {
        self.agents.iter().map(|g| g.count).sum()
    }

    /// The same scenario with the roster scaled to `total` agents, keeping the groups'
    /// proportions (largest remainder, so the counts add up exactly).
    pub fn with_agents(&self, total: u32) -> Scenario {
        let mut s = self.clone();
        let have = f64::from(self.total_agents().max(1));
        let shares: Vec<f64> = self
            .agents
            .iter()
            .map(|g| f64::from(g.count) * f64::from(total) / have)
            .collect();
        let mut counts: Vec<u32> = shares.iter().map(|x| x.floor() as u32).collect();
        let mut left = total.saturating_sub(counts.iter().sum());
        let mut order: Vec<usize> = (0..shares.len()).collect();
        order.sort_by(|&a, &b| {
            let fa = shares[a] - shares[a].floor();
            let fb = shares[b] - shares[b].floor();
            fb.total_cmp(&fa).then(a.cmp(&b))
        });
        for i in order {
            if left == 0 {
                break;
            }
            counts[i] += 1;
            left -= 1;
        }
        for (g, c) in s.agents.iter_mut().zip(counts) {
            g.count = c;
        }
        s
    }

    /// Cross-field checks, with the offending key in the error.
    pub fn validate(&self) -> Result<(), SimError> {
        self.routing
            .validate()
            .map_err(|e| invalid(&e.path, &e.message))?;
        let sim = &self.simulation;
        if sim.duration.is_zero() {
            return Err(invalid("simulation.duration", "must be greater than 0"));
        }
        if sim.warmup >= sim.duration {
            return Err(invalid(
                "simulation.warmup",
                "must be shorter than the duration",
            ));
        }
        if sim.tenant.is_empty() {
            return Err(invalid("simulation.tenant", "must not be empty"));
        }
        self.start_ms()?;
        if self.arrivals.is_empty() {
            return Err(invalid("arrivals", "at least one arrival stream is needed"));
        }
        for (i, a) in self.arrivals.iter().enumerate() {
            let p = format!("arrivals[{i}]");
            if self.routing.channel(&a.channel).is_none() {
                return Err(invalid(
                    &format!("{p}.channel"),
                    "names no channel of the policy",
                ));
            }
            let rate_ok = |r: f64| r.is_finite() && r >= 0.0;
            match a.rate_per_hour {
                Some(r) if !rate_ok(r) => {
                    return Err(invalid(&format!("{p}.rate_per_hour"), "must be >= 0"))
                }
                None if a.intervals.is_empty() => {
                    return Err(invalid(
                        &format!("{p}.rate_per_hour"),
                        "give a rate_per_hour or intervals",
                    ))
                }
                _ => {}
            }
            for (j, iv) in a.intervals.iter().enumerate() {
                let ip = format!("{p}.intervals[{j}]");
                if time_of_day(&iv.from).is_none() {
                    return Err(invalid(&format!("{ip}.from"), "must be HH:MM"));
                }
                if time_of_day(&iv.to).is_none() {
                    return Err(invalid(&format!("{ip}.to"), "must be HH:MM"));
                }
                if !rate_ok(iv.rate_per_hour) {
                    return Err(invalid(&format!("{ip}.rate_per_hour"), "must be >= 0"));
                }
            }
            for (lang, w) in &a.languages {
                if !(w.is_finite() && *w > 0.0) {
                    return Err(invalid(
                        &format!("{p}.languages.{lang}"),
                        "weight must be > 0",
                    ));
                }
            }
            check_dist(&a.handle, &format!("{p}.handle"))?;
            if matches!(a.handle, Dist::None) {
                return Err(invalid(&format!("{p}.handle"), "a handle time is needed"));
            }
            check_dist(&a.patience, &format!("{p}.patience"))?;
        }
        for (i, g) in self.agents.iter().enumerate() {
            let p = format!("agents[{i}]");
            if g.name.is_empty() {
                return Err(invalid(&format!("{p}.name"), "must not be empty"));
            }
            for (j, sh) in g.shifts.iter().enumerate() {
                let sp = format!("{p}.shifts[{j}]");
                let (Some(a), Some(b)) = (time_of_day(&sh.start), time_of_day(&sh.end)) else {
                    return Err(invalid(&sp, "start and end must be HH:MM"));
                };
                if a == b {
                    return Err(invalid(&sp, "start and end must differ"));
                }
            }
        }
        Ok(())
    }

    /// Arrival rate (per ms) of stream `a` at virtual time `t`, and when that rate next changes.
    pub(crate) fn rate_at(&self, a: &Arrival, t: Millis) -> (f64, Millis) {
        let base = a.rate_per_hour.unwrap_or(0.0);
        if a.intervals.is_empty() {
            return (base / 3_600_000.0, Millis::MAX);
        }
        let day = t - t % DAY_MS;
        let tod = t % DAY_MS;
        let mut rate = base;
        let mut next_change = day + DAY_MS;
        for iv in &a.intervals {
            let (Some(from), Some(to)) = (time_of_day(&iv.from), time_of_day(&iv.to)) else {
                continue;
            };
            let inside = if from <= to {
                tod >= from && tod < to
            } else {
                tod >= from || tod < to
            };
            if inside {
                rate = iv.rate_per_hour;
            }
            for edge in [from, to] {
                let e = if edge > tod {
                    day + edge
                } else {
                    day + DAY_MS + edge
                };
                next_change = next_change.min(e);
            }
        }
        (rate / 3_600_000.0, next_change)
    }

    /// The shifts of group `g` over `[start, end)` as (log in, log out) times.
    pub(crate) fn shift_spans(g: &AgentGroup, start: Millis, end: Millis) -> Vec<(Millis, Millis)> {
        if g.shifts.is_empty() {
            return vec![(start, end)];
        }
        let mut spans = Vec::new();
        // The day before the start too, for a night shift still running at the start.
        let mut day = (start - start % DAY_MS).saturating_sub(DAY_MS);
        while day < end {
            for sh in &g.shifts {
                let (Some(a), Some(b)) = (time_of_day(&sh.start), time_of_day(&sh.end)) else {
                    continue;
                };
                let on = day + a;
                let off = if b > a { day + b } else { day + DAY_MS + b };
                let (on, off) = (on.max(start), off.min(end));
                if on < off {
                    spans.push((on, off));
                }
            }
            day += DAY_MS;
        }
        spans.sort_unstable();
        spans
    }
}

fn check_dist(d: &Dist, path: &str) -> Result<(), SimError> {
    match d {
        Dist::Lognormal { mean, sd } if mean.is_zero() || sd.is_zero() => {
            Err(invalid(path, "lognormal needs mean and sd greater than 0"))
        }
        Dist::Uniform { min, max } if min > max => Err(invalid(path, "uniform needs min <= max")),
        _ => Ok(()),
    }
}

fn invalid(path: &str, message: &str) -> SimError {
    SimError::Invalid {
        path: path.to_string(),
        message: message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
        [simulation]
        duration = "8h"
        warmup = "30m"
        seed = 7
        start = "2026-01-05T08:00:00Z"

        [routing.queues.sales]
        service_level_target = 0.8

        [[arrivals]]
        queue = "sales"
        channel = "chat"
        rate_per_hour = 60
        intervals = [{ from = "12:00", to = "14:00", rate_per_hour = 120 }]
        languages = { "es-MX" = 3, "pt-BR" = 1 }
        required_skills = { sales = 3 }
        handle = { dist = "lognormal", mean = "6m", sd = "3m" }
        patience = { dist = "exponential", mean = "2m" }

        [[agents]]
        name = "chat-es"
        count = 10
        skills = { sales = 5 }
        languages = ["es", "pt"]
        capacity = { chat = 3 }
        shifts = [{ start = "08:00", end = "16:00" }, { start = "22:00", end = "02:00" }]
    "#;

    #[test]
    fn parses_the_example_and_rejects_typos() {
        let s = Scenario::from_toml(EXAMPLE).expect("example parses");
        assert_eq!(s.simulation.duration, Duration::from_secs(8 * 3600));
        assert_eq!(s.arrivals[0].handle.mean_seconds(), Some(360.0));
        assert_eq!(s.routing.queue("sales").service_level_target, 0.8);
        let e = Scenario::from_toml(&EXAMPLE.replace("count = 10", "cuont = 10")).unwrap_err();
        assert!(e.to_string().contains("cuont"), "{e}");
        let e = Scenario::from_toml(&EXAMPLE.replace("\"chat\"\n", "\"fax\"\n")).unwrap_err();
        assert!(e.to_string().contains("arrivals[0].channel"), "{e}");
        let e = Scenario::from_toml(&EXAMPLE.replace("warmup = \"30m\"", "warmup = \"9h\""))
            .unwrap_err();
        assert!(e.to_string().contains("simulation.warmup"), "{e}");
    }

    #[test]
    fn rates_follow_the_intervals_of_the_day() {
        let s = Scenario::from_toml(EXAMPLE).expect("example parses");
        let a = &s.arrivals[0];
        let start = s.start_ms().expect("start parses");
        let (r, next) = s.rate_at(a, start);
        assert!((r * 3_600_000.0 - 60.0).abs() < 1e-9);
        assert_eq!(next, start + 4 * 3_600_000, "changes at 12:00");
        let (r, next) = s.rate_at(a, start + 4 * 3_600_000);
        assert!((r * 3_600_000.0 - 120.0).abs() < 1e-9);
        assert_eq!(next, start + 6 * 3_600_000, "back at 14:00");
    }

    #[test]
    fn shifts_become_spans_including_overnight() {
        let s = Scenario::from_toml(EXAMPLE).expect("example parses");
        let start = s.start_ms().expect("start parses");
        let h = 3_600_000;
        let spans = Scenario::shift_spans(&s.agents[0], start, start + 24 * h);
        // 08–16, 22–02 (next day), and next day's 08:00 is the end of the run.
        assert_eq!(
            spans,
            vec![(start, start + 8 * h), (start + 14 * h, start + 18 * h)]
        );
    }

    #[test]
    fn roster_scales_by_largest_remainder() {
        let mut s = Scenario::from_toml(EXAMPLE).expect("example parses");
        let mut g = s.agents[0].clone();
        g.name = "b".into();
        g.count = 5;
        s.agents.push(g);
        let t = s.with_agents(7);
        let counts: Vec<u32> = t.agents.iter().map(|g| g.count).collect();
        // 10:5 scaled to 7 → 4.67 and 2.33 → 5 and 2.
        assert_eq!(counts, vec![5, 2]);
        assert_eq!(s.with_agents(30).total_agents(), 30);
    }

    #[test]
    fn times_of_day() {
        assert_eq!(time_of_day("00:00"), Some(0));
        assert_eq!(time_of_day("24:00"), Some(24 * 3_600_000));
        assert_eq!(time_of_day("12:60"), None);
        assert_eq!(time_of_day("noon"), None);
    }
}
