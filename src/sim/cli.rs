//! `omniroute simulate`: run a scenario, or sweep staffing levels, and print the SLA figures.

use std::path::PathBuf;

use anyhow::Context as _;

use super::{chart, Scenario};

#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Scenario file (TOML): `[simulation]`, `[routing]`, `[[arrivals]]`, `[[agents]]`.
    #[arg(long, value_name = "FILE")]
    pub scenario: PathBuf,
    /// Run once per total staffing level in A..B (inclusive), scaling the roster, and report
    /// the minimum that meets each queue's target.
    #[arg(long, value_name = "A..B", value_parser = parse_range)]
    pub sweep_agents: Option<(u32, u32)>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the staffing chart (SVG) of a sweep to FILE.
    #[arg(long, value_name = "FILE", requires = "sweep_agents")]
    pub chart: Option<PathBuf>,
    /// Override the scenario's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the scenario's simulated duration (e.g. `24h`).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Parallel runs in a sweep (default: the number of CPUs).
    #[arg(long)]
    pub threads: Option<usize>,
}

fn parse_range(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("`{s}` is not a range like 10..20"))?;
    let b = b.strip_prefix('=').unwrap_or(b);
    let a: u32 = a
        .trim()
        .parse()
        .map_err(|_| format!("`{a}` is not a number"))?;
    let b: u32 = b
        .trim()
        .parse()
        .map_err(|_| format!("`{b}` is not a number"))?;
    if a == 0 || a > b {
        return Err(format!("`{s}`: need 1 <= A <= B"));
    }
    Ok((a, b))
}

pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let mut scenario = Scenario::load(&args.scenario)?;
    if let Some(seed) = args.seed {
        scenario.simulation.seed = seed;
    }
    if let Some(d) = args.duration {
        scenario.simulation.duration = d;
    }
    scenario.validate()?;
    match args.sweep_agents {
        None => {
            let report = super::run(&scenario)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.table());
            }
        }
        Some((a, b)) => {
            let threads = args
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let sweep = super::sweep(&scenario, a..=b, threads)?;
            if let Some(path) = &args.chart {
                let title = format!("Staffing: {}", args.scenario.display());
                chart::staffing_chart(&sweep, &title, path)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&sweep)?);
            } else {
                print!("{}", sweep.table());
                if let Some(path) = &args.chart {
                    println!("chart: {}", path.display());
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("10..20"), Ok((10, 20)));
        assert_eq!(parse_range("10..=20"), Ok((10, 20)));
        assert!(parse_range("20..10").is_err());
        assert!(parse_range("ten..20").is_err());
    }
}
