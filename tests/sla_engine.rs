//! SLA figures end to end: wire events through the real engine, then `sla_snapshot`, checked
//! against counts worked out by hand.

use std::sync::Arc;

use omniroute::engine::{Engine, Output, Policy, SlaSnapshot};
use omniroute::event::{decode, DEFAULT_MAX_RECORD_BYTES};
use serde_json::{json, Value};

/// A whole minute (1.8e12 ms is divisible by 60,000), so the 15 min window's 15 s buckets start
/// exactly at T0.
const T0: u64 = 1_800_000_000_000;

struct Desk {
    engine: Engine,
    seq: u64,
}

impl Desk {
    fn new(policy: Policy) -> Self {
        Desk {
            engine: Engine::new("shop", Arc::new(policy)),
            seq: 0,
        }
    }

    /// Fires the timers due by `now`, each at its own deadline (as the daemon does), so that a
    /// wrap-up ends at its due time and not at the next event's.
    fn advance(&mut self, now: u64, out: &mut Vec<Output>) {
        while let Some(due) = self.engine.next_deadline().filter(|d| *d <= now) {
            self.engine.tick(due, out);
        }
    }

    /// Sends one event at `T0 + secs`, after firing any timers due by then.
    fn send(&mut self, secs: u64, mut v: Value) -> Vec<Output> {
        let now = T0 + secs * 1000;
        let mut out = Vec::new();
        self.advance(now, &mut out);
        self.seq += 1;
        let o = v.as_object_mut().expect("an object");
        o.insert("id".into(), json!(format!("e{}", self.seq)));
        o.insert("tenant".into(), json!("shop"));
        o.insert("ts".into(), json!(now));
        let ev = decode(v.to_string().as_bytes(), DEFAULT_MAX_RECORD_BYTES).expect("decodes");
        self.engine
            .handle(now, &ev, &mut out)
            .expect("engine applies the event");
        out
    }

    fn snapshot(&mut self, secs: u64) -> Vec<SlaSnapshot> {
        let now = T0 + secs * 1000;
        let mut out = Vec::new();
        self.advance(now, &mut out);
        self.engine.sla_snapshot(now)
    }
}

fn offer_id(out: &[Output]) -> String {
    out.iter()
        .find_map(|o| match o {
            Output::Offer(o) => Some(o.assignment_id.clone()),
            _ => None,
        })
        .expect("an offer")
}

#[test]
fn voice_queue_figures_match_hand_computed_counts() {
    let mut d = Desk::new(Policy::default());
    d.send(
        0,
        json!({"type": "agent.profile", "agent_id": "ana", "languages": ["es"]}),
    );
    d.send(
        0,
        json!({"type": "agent.state", "agent_id": "ana", "state": "available"}),
    );
    // c1 is offered at once and accepted after 10 s: answered within 20 s.
    let out = d.send(
        0,
        json!({"type": "contact.created", "contact_id": "c1", "channel": "voice",
               "customer_id": "u1", "language": "es-MX"}),
    );
    let a1 = offer_id(&out);
    // c2 waits (the only agent holds c1's offer) and hangs up after 2 s: a short abandon (< 5 s),
    // within the threshold. c3 hangs up after 58 s: a real abandon, past the threshold.
    for (c, at) in [("c2", 1), ("c3", 2)] {
        d.send(
            at,
            json!({"type": "contact.created", "contact_id": c, "channel": "voice",
                   "customer_id": c, "language": "es"}),
        );
    }
    d.send(3, json!({"type": "contact.abandoned", "contact_id": "c2"}));
    d.send(
        10,
        json!({"type": "offer.accepted", "assignment_id": a1, "agent_id": "ana", "contact_id": "c1"}),
    );
    d.send(60, json!({"type": "contact.abandoned", "contact_id": "c3"}));
    // c1 handled for 300 s; then 30 s of voice wrap-up.
    d.send(
        310,
        json!({"type": "contact.completed", "contact_id": "c1", "agent_id": "ana"}),
    );

    let snaps = d.snapshot(400);
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    let s = &snaps[0];
    assert_eq!((s.queue.as_str(), s.channel.as_str()), ("general", "voice"));
    assert_eq!(s.service_level_threshold_seconds, 20.0);
    for f in [&s.window, &s.since_start] {
        assert_eq!(
            (f.offered, f.answered, f.answered_within, f.completed),
            (3, 1, 1, 1)
        );
        assert_eq!(
            (f.abandoned, f.abandoned_within, f.short_abandoned),
            (2, 1, 1)
        );
        // 1 within / (1 answered + 2 abandoned - 1 short)
        assert_eq!(f.service_level, Some(0.5));
        assert_eq!(f.asa_seconds, Some(10.0));
        assert_eq!(f.aht_seconds, Some(300.0));
        assert_eq!(f.abandonment_rate, Some(2.0 / 3.0));
    }
    assert_eq!(s.queue_depth, 0);
    // Ana logged in for 400 s, busy from the offer at 0 s to the end of wrap-up at 340 s.
    let occ = s.occupancy.expect("occupancy");
    assert!((occ - 340.0 / 400.0).abs() < 1e-9, "{occ}");
    assert!((s.since_start.agent_seconds_logged_in - 400.0).abs() < 1e-9);
    assert!((s.since_start.agent_seconds_busy - 340.0).abs() < 1e-9);
}

#[test]
fn email_waits_are_measured_against_48_hours() {
    let mut d = Desk::new(Policy::default());
    d.send(
        0,
        json!({"type": "agent.profile", "agent_id": "eva", "languages": ["pt"],
                     "capacity": {"email": 1}}),
    );
    for (c, at) in [("m1", 0), ("m2", 1)] {
        d.send(
            at,
            json!({"type": "contact.created", "contact_id": c, "channel": "email",
                   "customer_id": c, "language": "pt-BR"}),
        );
    }
    // Eva logs in 47 h later: m1 is answered within 48 h, m2 (one email at a time) after 49 h.
    let h = 3600;
    let out = d.send(
        47 * h,
        json!({"type": "agent.state", "agent_id": "eva", "state": "available"}),
    );
    let a1 = offer_id(&out);
    d.send(
        47 * h,
        json!({"type": "offer.accepted", "assignment_id": a1, "agent_id": "eva", "contact_id": "m1"}),
    );
    let out = d.send(
        49 * h,
        json!({"type": "contact.completed", "contact_id": "m1", "agent_id": "eva"}),
    );
    // Email wrap-up is 60 s; m2 is offered when it ends.
    let mut out = out;
    if !out.iter().any(|o| matches!(o, Output::Offer(_))) {
        let mut more = Vec::new();
        d.advance(T0 + (49 * h + 60) * 1000, &mut more);
        out = more;
    }
    let a2 = offer_id(&out);
    d.send(
        49 * h + 60,
        json!({"type": "offer.accepted", "assignment_id": a2, "agent_id": "eva", "contact_id": "m2"}),
    );
    let s = &d.snapshot(49 * h + 120)[0];
    assert_eq!(s.service_level_threshold_seconds, 48.0 * 3600.0);
    let f = &s.since_start;
    assert_eq!((f.offered, f.answered, f.answered_within), (2, 2, 1));
    assert_eq!(f.service_level, Some(0.5));
    // Waits: 47 h and 49 h 1 min - 1 s.
    let asa = f.asa_seconds.expect("asa");
    assert!(
        (asa - (47.0 * 3600.0 + 49.0 * 3600.0 + 59.0) / 2.0).abs() < 1e-6,
        "{asa}"
    );
    // The 15 min window at 49 h 2 min holds only m2's answer.
    assert_eq!((s.window.offered, s.window.answered), (0, 1));
}
