//! SLA bookkeeping: service level, ASA, abandonment, handle time and occupancy per queue and
//! channel, over a rolling window and since start (DESIGN.md §4).
//!
//! The engine calls the `on_*` hooks as contacts move through their life; `snapshot` turns the
//! counts into figures. Pure and deterministic like the rest of the engine.
//!
//! PLACEHOLDER bodies: the SLA issue implements them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::policy::Policy;
use crate::event::Millis;

/// Counts and derived figures for one queue/channel over one span (window or since start).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SlaFigures {
    /// Contacts that entered the queue ("offered" in contact-center terms).
    pub offered: u64,
    /// Contacts whose offer an agent accepted.
    pub answered: u64,
    /// Answered within the service-level threshold.
    pub answered_within: u64,
    pub abandoned: u64,
    /// Abandoned within the service-level threshold.
    pub abandoned_within: u64,
    /// Abandoned within the short-abandon threshold.
    pub short_abandoned: u64,
    pub completed: u64,
    /// Per the queue's formula; `None` when the denominator is 0.
    pub service_level: Option<f64>,
    /// Average speed of answer, seconds.
    pub asa_seconds: Option<f64>,
    /// Average handle time (accept → complete), seconds.
    pub aht_seconds: Option<f64>,
    /// abandoned ÷ (answered + abandoned).
    pub abandonment_rate: Option<f64>,
}

/// One record of `omniroute.sla`: a queue/channel at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaSnapshot {
    pub tenant: String,
    pub queue: String,
    pub channel: String,
    pub at: Millis,
    pub window_start: Millis,
    pub window_end: Millis,
    pub window: SlaFigures,
    pub since_start: SlaFigures,
    pub service_level_threshold_seconds: f64,
    pub service_level_target: f64,
    /// Contacts waiting now (not yet accepted).
    pub queue_depth: u64,
    /// Wait of the oldest contact waiting now, seconds.
    pub longest_wait_seconds: f64,
    pub agents_logged_in: u64,
    pub agents_available: u64,
    pub agents_busy: u64,
    /// Busy time ÷ logged-in time over the window, capacity-aware (load fraction), tenant-wide.
    pub occupancy: Option<f64>,
}

/// Live state the engine passes in at snapshot time.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    /// (queue, channel) → (depth, oldest arrival time).
    pub waiting: BTreeMap<(String, String), (u64, Millis)>,
    pub agents_logged_in: u64,
    pub agents_available: u64,
    pub agents_busy: u64,
}

/// Accumulates SLA counts for one routing domain.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SlaBook {}

impl SlaBook {
    /// A contact entered `queue` on `channel`.
    pub fn on_queued(&mut self, _now: Millis, _queue: &str, _channel: &str) {}

    /// A contact was answered (offer accepted) after waiting `wait` ms; `threshold` is the
    /// service-level threshold in ms for its queue/channel.
    pub fn on_answered(
        &mut self,
        _now: Millis,
        _queue: &str,
        _channel: &str,
        _wait: u64,
        _threshold: u64,
    ) {
    }

    /// A waiting contact abandoned after `wait` ms.
    pub fn on_abandoned(
        &mut self,
        _now: Millis,
        _queue: &str,
        _channel: &str,
        _wait: u64,
        _threshold: u64,
        _short_abandon: u64,
    ) {
    }

    /// An answered contact completed after `handle` ms of handling (accept → complete).
    pub fn on_completed(&mut self, _now: Millis, _queue: &str, _channel: &str, _handle: u64) {}

    /// Agent `agent` (a dense index) changed: logged in or not, and its load fraction (0–1).
    pub fn on_agent(&mut self, _now: Millis, _agent: u32, _logged_in: bool, _load: f64) {}

    /// Figures for every queue/channel seen, plus live state.
    pub fn snapshot(
        &mut self,
        _now: Millis,
        _tenant: &str,
        _policy: &Policy,
        _live: &LiveView,
    ) -> Vec<SlaSnapshot> {
        Vec::new()
    }
}
