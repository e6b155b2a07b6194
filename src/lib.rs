//! omniroute: routes omnichannel contact-center contacts from Kafka to agents by skill, language
//! and load, and publishes assignments and SLA metrics.
//!
//! # Layout
//! - [`event`]: the wire contract (JSON events) and decoding with a reason for every rejection.
//! - [`engine`]: the routing engine, pure and deterministic (time passed in); one per tenant.
//!   - [`engine::policy`]: channels, queues, strategies, relaxation, limits (the `[routing]` config).
//!   - [`engine::sla`]: service level, ASA, abandonment, occupancy bookkeeping.
//! - [`telemetry`]: log setup (`tracing`, human or JSON, `RUST_LOG`).
//! - [`http`]: `/metrics`, `/healthz` and `/readyz` on a tiny HTTP/1.1 responder.
//! - [`systemd`]: service-manager notifications (readiness, reload, stop, status, watchdog).

pub mod engine;
pub mod event;
pub mod http;
pub mod systemd;
pub mod telemetry;
