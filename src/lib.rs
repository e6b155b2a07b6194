//! omniroute: routes omnichannel contact-center contacts from Kafka to agents by skill, language
//! and load, and publishes assignments and SLA metrics.
//!
//! # Layout
//! - [`event`]: the wire contract (JSON events) and decoding with a reason for every rejection.
//! - [`engine`]: the routing engine, pure and deterministic (time passed in); one per tenant.
//!   - [`engine::policy`]: channels, queues, strategies, relaxation, limits (the `[routing]` config).
//!   - [`engine::sla`]: service level, ASA, abandonment, occupancy bookkeeping.
//! - [`config`]: the typed TOML config, validation with key paths, secrets, librdkafka pass-through.
//! - [`daemon`]: `run(config, shutdown)`: consume → route → produce, reloads, graceful stop.
//! - [`demo`]: `omniroute demo`, the daemon against an in-process Kafka with a live table.
//! - [`kafka`]: client settings, producer with delivery tracking and backpressure, rebalance
//!   hand-over, dead-letter headers.
//! - [`partition`]: one input partition's routing state (tenant → engine) and record handling,
//!   with engine time taken from the records; its snapshot format.
//! - [`recovery`]: exactly-once effects across crashes: clock records, output sequence numbers,
//!   chunked snapshots on the state topic, and reading back what was produced.
//! - [`metrics`]: metric names and helpers.
//! - [`telemetry`]: log setup (`tracing`, human or JSON, `RUST_LOG`).
//! - [`http`]: `/metrics`, `/healthz` and `/readyz` on a tiny HTTP/1.1 responder.
//! - [`systemd`]: service-manager notifications (readiness, reload, stop, status, watchdog).
//! - [`sim`]: the what-if simulator: scenarios, a discrete-event loop in virtual time driving
//!   the engine, staffing sweeps and charts.
//! - [`erlang`]: Erlang B/C staffing formulas (quick estimates and simulator validation).
//! - [`loadgen`]: `omniroute loadgen`, the workload generator and benchmarks
//!   (docs/PERFORMANCE.md); [`passthrough`]: the consume → produce baseline; [`memprobe`]: RSS
//!   per agent and per waiting contact.

pub mod config;
pub mod daemon;
pub mod demo;
pub mod engine;
pub mod erlang;
pub mod event;
pub mod http;
pub mod kafka;
pub mod loadgen;
pub mod memprobe;
pub mod metrics;
pub mod partition;
pub mod passthrough;
pub mod recovery;
pub mod sim;
pub mod systemd;
pub mod telemetry;
