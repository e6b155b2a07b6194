//! omniroute: routes omnichannel contact-center contacts from Kafka to agents by skill, language
//! and load, and publishes assignments and SLA metrics.
//!
//! # Layout
//! - [`event`]: the wire contract (JSON events) and decoding with a reason for every rejection.
//! - [`engine`]: the routing engine, pure and deterministic (time passed in); one per tenant.
//!   - [`engine::policy`]: channels, queues, strategies, relaxation, limits (the `[routing]` config).
//!   - [`engine::sla`]: service level, ASA, abandonment, occupancy bookkeeping.

pub mod engine;
pub mod event;
pub mod config;
pub mod daemon;
pub mod kafka;
pub mod metrics;
pub mod partition;
