//! omniroute: routes omnichannel contact-center contacts from Kafka to agents by skill, language
//! and load, and publishes assignments and SLA metrics.
//!
//! # Layout
//! - [`event`]: the wire contract (JSON events) and decoding with a reason for every rejection.
//! - [`engine`]: the routing engine, pure and deterministic (time passed in); one per tenant.
//!   - [`engine::policy`]: channels, queues, strategies, relaxation, limits (the `[routing]` config).
//!   - [`engine::sla`]: service level, ASA, abandonment, occupancy bookkeeping.
//! - [`sim`]: the what-if simulator: scenarios, a discrete-event loop in virtual time driving
//!   the engine, staffing sweeps and charts.
//! - [`erlang`]: Erlang B/C staffing formulas (quick estimates and simulator validation).

pub mod engine;
pub mod erlang;
pub mod event;
pub mod sim;
