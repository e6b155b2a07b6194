//! Results of runs and sweeps, as plain tables and JSON.

use std::fmt::Write as _;

use serde::Serialize;

use super::des::Counters;
use super::scenario::Scenario;
use crate::engine::SlaFigures;
use crate::erlang::Load;

/// One queue/channel of one run, counted after warm-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub queue: String,
    pub channel: String,
    pub threshold_seconds: f64,
    pub target: f64,
    pub figures: SlaFigures,
    /// Service level ≥ target; `None` when nothing was answered or abandoned.
    pub meets_target: Option<bool>,
    /// Erlang C staffing for this queue/channel alone, when its arrivals are steady Poisson
    /// (a quick estimate: it ignores abandons, multi-chat capacity, shifts and sharing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erlang_c_agents: Option<u32>,
}

/// One run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub agents: u32,
    pub seed: u64,
    pub simulated_hours: f64,
    pub warmup_hours: f64,
    /// Capacity-aware, all agents, after warm-up.
    pub occupancy: Option<f64>,
    pub rows: Vec<Row>,
    pub counters: Counters,
    pub wall_seconds: f64,
}

impl RunReport {
    /// Simulated hours per wall-clock second.
    pub fn speed(&self) -> f64 {
        self.simulated_hours / self.wall_seconds.max(1e-9)
    }

    /// Fills [`Row::erlang_c_agents`] from the scenario's steady arrival streams.
    pub fn add_erlang_estimates(&mut self, scenario: &Scenario) {
        for row in &mut self.rows {
            let (mut rate, mut work) = (0.0, 0.0);
            let mut steady = true;
            for a in &scenario.arrivals {
                let q = a
                    .queue
                    .as_deref()
                    .unwrap_or(&scenario.routing.default_queue);
                if q != row.queue || a.channel != row.channel {
                    continue;
                }
                let (Some(r), Some(h)) = (a.rate_per_hour, a.handle.mean_seconds()) else {
                    steady = false;
                    continue;
                };
                steady &= a.intervals.is_empty();
                rate += r / 3600.0;
                work += r / 3600.0 * h;
            }
            if steady && rate > 0.0 {
                let load = Load::new(rate, work / rate);
                row.erlang_c_agents = load.agents_for(row.threshold_seconds, row.target, 100_000);
            }
        }
    }

    /// A plain-text table.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<14} {:<9} {:>8} {:>8} {:>7} {:>7} {:>6} {:>9} {:>9} {:>7} {:>5} {:>8}",
            "queue",
            "channel",
            "offered",
            "answered",
            "SL",
            "target",
            "met",
            "ASA s",
            "AHT s",
            "aband.",
            "short",
            "ErlangC"
        );
        for r in &self.rows {
            let f = &r.figures;
            let _ = writeln!(
                s,
                "{:<14} {:<9} {:>8} {:>8} {:>7} {:>7} {:>6} {:>9} {:>9} {:>7} {:>5} {:>8}",
                r.queue,
                r.channel,
                f.offered,
                f.answered,
                pct(f.service_level),
                format!("{:.0}%", r.target * 100.0),
                match r.meets_target {
                    Some(true) => "yes",
                    Some(false) => "NO",
                    None => "-",
                },
                num(f.asa_seconds),
                num(f.aht_seconds),
                pct(f.abandonment_rate),
                f.short_abandoned,
                r.erlang_c_agents.map_or("-".to_string(), |n| n.to_string()),
            );
        }
        let _ = writeln!(
            s,
            "agents {}  occupancy {}  simulated {:.1} h (warm-up {:.2} h excluded)  seed {}",
            self.agents,
            pct(self.occupancy),
            self.simulated_hours,
            self.warmup_hours,
            self.seed
        );
        let _ = writeln!(
            s,
            "{} contacts, {} engine events ({} not applied), {} offers in {:.3} s wall = {:.0} simulated h/s",
            self.counters.contacts,
            self.counters.events,
            self.counters.ignored,
            self.counters.offers,
            self.wall_seconds,
            self.speed()
        );
        s
    }
}

/// The runs of a sweep over staffing levels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepReport {
    pub runs: Vec<RunReport>,
    /// Per queue/channel: the fewest agents whose run met the target (and every larger run did
    /// too); `None` when no level in the sweep did.
    pub minimum: Vec<Minimum>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Minimum {
    pub queue: String,
    pub channel: String,
    pub target: f64,
    pub threshold_seconds: f64,
    pub agents: Option<u32>,
    /// `agents` is the lowest level swept: the true minimum may be lower still.
    pub at_sweep_start: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erlang_c_agents: Option<u32>,
}

impl SweepReport {
    pub fn new(mut runs: Vec<RunReport>) -> SweepReport {
        runs.sort_by_key(|r| r.agents);
        let mut minimum: Vec<Minimum> = Vec::new();
        let keys: Vec<(String, String)> = runs
            .iter()
            .flat_map(|r| r.rows.iter().map(|x| (x.queue.clone(), x.channel.clone())))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        for (q, c) in keys {
            let mut best = None;
            let mut info = None;
            // Scan from the most agents down: the minimum is where meeting the target stops.
            for r in runs.iter().rev() {
                let row = r.rows.iter().find(|x| x.queue == q && x.channel == c);
                if let Some(row) = row {
                    info.get_or_insert((row.target, row.threshold_seconds, row.erlang_c_agents));
                }
                if row.and_then(|x| x.meets_target).unwrap_or(false) {
                    best = Some(r.agents);
                } else {
                    break;
                }
            }
            let (target, threshold_seconds, erlang) = info.unwrap_or((0.0, 0.0, None));
            let lowest = runs.first().map(|r| r.agents);
            minimum.push(Minimum {
                queue: q,
                channel: c,
                target,
                threshold_seconds,
                agents: best,
                at_sweep_start: best.is_some() && best == lowest,
                erlang_c_agents: erlang,
            });
        }
        SweepReport { runs, minimum }
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let keys: Vec<(&str, &str)> = self
            .minimum
            .iter()
            .map(|m| (m.queue.as_str(), m.channel.as_str()))
            .collect();
        let _ = write!(s, "{:>6} {:>6}", "agents", "occ.");
        for (q, c) in &keys {
            let _ = write!(s, " | {:>22}", format!("{q}/{c} SL  ASA s  ab."));
        }
        let _ = writeln!(s);
        for r in &self.runs {
            let _ = write!(s, "{:>6} {:>6}", r.agents, pct(r.occupancy));
            for (q, c) in &keys {
                let row = r.rows.iter().find(|x| x.queue == *q && x.channel == *c);
                let cell = match row {
                    Some(x) => format!(
                        "{}{} {:>7} {:>5}",
                        pct(x.figures.service_level),
                        if x.meets_target == Some(true) {
                            "*"
                        } else {
                            " "
                        },
                        num(x.figures.asa_seconds),
                        pct(x.figures.abandonment_rate)
                    ),
                    None => "-".to_string(),
                };
                let _ = write!(s, " | {cell:>22}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(s, "(* = meets target)");
        for m in &self.minimum {
            let _ = writeln!(
                s,
                "minimum roster for {}/{} ({:.0}% within {}): {}{}",
                m.queue,
                m.channel,
                m.target * 100.0,
                seconds(m.threshold_seconds),
                match m.agents {
                    None => "not met in this range".to_string(),
                    Some(n) if m.at_sweep_start => {
                        format!("{n} or fewer (met at the lowest level swept; start lower)")
                    }
                    Some(n) => n.to_string(),
                },
                m.erlang_c_agents.map_or(String::new(), |n| {
                    format!(" (Erlang C, agents dedicated to it alone: {n})")
                }),
            );
        }
        s
    }
}

fn pct(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0))
}

fn num(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.1}"))
}

fn seconds(s: f64) -> String {
    if s >= 3600.0 && s % 3600.0 == 0.0 {
        format!("{} h", s / 3600.0)
    } else if s >= 60.0 && s % 60.0 == 0.0 {
        format!("{} min", s / 60.0)
    } else {
        format!("{s} s")
    }
}
