//! Simulator speed: simulated hours per wall second for 200 agents at 85% occupancy.
//!
//! Each iteration simulates one hour (2,040 calls of 5 min on 200 agents, starting empty);
//! criterion's time per iteration is the wall time of one simulated hour, so simulated h/s is
//! 1 / that time (criterion prints it as elem/s).

use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use omniroute::sim::{self, Scenario};

const SCENARIO: &str = r#"
[simulation]
duration = "1h"
seed = 200

[routing.channels.voice]
wrapup = "0s"
[routing.queues.support]
service_level_target = 0.8

[[arrivals]]
queue = "support"
channel = "voice"
rate_per_hour = 2040
required_skills = { support = 1 }
handle = { dist = "exponential", mean = "5m" }

[[agents]]
name = "voice"
count = 200
skills = { support = 5 }
"#;

fn simulate(c: &mut Criterion) {
    let scenario = Scenario::from_toml(SCENARIO).expect("bench scenario is valid");
    let mut g = c.benchmark_group("simulate");
    g.sample_size(20).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Elements(1));
    g.bench_function("200_agents_85pct_1h", |b| {
        b.iter(|| sim::run(&scenario).expect("runs"))
    });
    g.finish();
}

criterion_group!(benches, simulate);
criterion_main!(benches);
