//! The what-if simulator: a scenario (arrivals, rosters, the routing policy) run in virtual
//! time against the real routing engine, reporting the same SLA figures as the daemon.
//!
//! - [`scenario`]: the TOML format and its validation.
//! - [`des`]: the discrete-event loop driving [`crate::engine::Engine`].
//! - [`report`]: per-run and sweep results, tables and JSON.
//! - [`chart`]: the staffing chart (SVG).
//! - [`cli`]: the `simulate` subcommand.
//! - [`rng`]: the seeded random source and samplers.

pub mod chart;
pub mod cli;
pub mod des;
pub mod report;
pub mod rng;
pub mod scenario;

pub use des::Simulation;
pub use report::{RunReport, SweepReport};
pub use scenario::Scenario;

/// Why a simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot read scenario {path}: {message}")]
    Read { path: String, message: String },
    #[error("scenario is not valid TOML: {0}")]
    Parse(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("engine refused the simulation: {0}")]
    Engine(String),
    #[error("cannot draw the chart: {0}")]
    Chart(String),
}

/// Runs `scenario` once.
pub fn run(scenario: &Scenario) -> Result<RunReport, SimError> {
    let mut report = Simulation::new(scenario)?.run()?;
    report.add_erlang_estimates(scenario);
    Ok(report)
}

/// Runs `scenario` with the roster scaled to each of `agents`, on up to `threads` threads.
/// Every run uses the same seed, so all see the same customers.
pub fn sweep(
    scenario: &Scenario,
    agents: std::ops::RangeInclusive<u32>,
    threads: usize,
) -> Result<SweepReport, SimError> {
    if scenario.total_agents() == 0 {
        return Err(SimError::Invalid {
            path: "agents".into(),
            message: "a sweep scales the roster, which has no agents".into(),
        });
    }
    let levels: Vec<u32> = agents.collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::with_capacity(levels.len()));
    std::thread::scope(|s| {
        for _ in 0..threads.clamp(1, levels.len().max(1)) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&n) = levels.get(i) else { break };
                let r = run(&scenario.with_agents(n));
                if let Ok(mut v) = results.lock() {
                    v.push(r);
                }
            });
        }
    });
    let results = results
        .into_inner()
        .map_err(|_| SimError::Engine("a sweep run panicked".into()))?;
    let runs = results.into_iter().collect::<Result<Vec<_>, _>>()?;
    Ok(SweepReport::new(runs))
}
