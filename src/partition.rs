//! One input partition's routing state: the engines of the tenants (routing domains) keyed to it.
//!
//! A tenant lives on exactly one partition, so the engines of a partition are owned by whoever
//! owns the partition: built when it is assigned, dropped when it is revoked. Kafka I/O stays in
//! the daemon; this module turns one record into the records to produce.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::engine::{Engine, EngineStats, Output, Policy, SlaSnapshot};
use crate::event::{self, DecodeError, Millis};
use crate::metrics;

/// What one input record became.
#[derive(Debug)]
pub enum Outcome {
    /// The engine applied it; the outputs (possibly none) were appended.
    Routed { event_type: &'static str },
    /// The engine did not apply it (duplicate, unknown contact, …): counted, not dead-lettered.
    Ignored { reason: &'static str },
    /// Unusable: goes to the dead-letter topic unchanged.
    DeadLetter(DecodeError),
}

/// The state of one partition.
pub struct Partition {
    id: i32,
    policy: Arc<Policy>,
    engines: HashMap<String, Engine>,
    max_record_bytes: usize,
    /// Offers not yet accepted or withdrawn, for the answered-wait histogram: (tenant,
    /// assignment id) → what the offer said. Bounded by the engines' open offers.
    open_offers: HashMap<(String, String), OpenOffer>,
    /// Every engine's next timer, ordered by time, so the daemon's clock finds due engines and
    /// the next wake-up without scanning all tenants. `deadlines` is the same, by tenant.
    timers: BTreeSet<(Millis, String)>,
    deadlines: HashMap<String, Millis>,
}

struct OpenOffer {
    queue: String,
    channel: String,
    offered_at: Millis,
    wait_ms: u64,
}

impl Partition {
    /// The "partition assigned → build state" step. State starts empty today; rebuilding a
    /// partition's engines from snapshots plugs in here, before the partition routes.
    pub fn build(id: i32, policy: Arc<Policy>, max_record_bytes: usize) -> Self {
        Partition {
            id,
            policy,
            engines: HashMap::new(),
            max_record_bytes,
            open_offers: HashMap::new(),
            timers: BTreeSet::new(),
            deadlines: HashMap::new(),
        }
    }

    pub fn id(&self) -> i32 {
        self.id
    }

    /// Decodes one record and drives its tenant's engine.
    pub fn process(
        &mut self,
        now: Millis,
        payload: Option<&[u8]>,
        out: &mut Vec<Output>,
    ) -> Outcome {
        let event = match event::decode(payload.unwrap_or_default(), self.max_record_bytes) {
            Ok(e) => e,
            Err(e) => return Outcome::DeadLetter(e),
        };
        let engine = self
            .engines
            .entry(event.tenant.clone())
            .or_insert_with(|| Engine::new(event.tenant.clone(), self.policy.clone()));
        let started = Instant::now();
        let first = out.len();
        let result = engine.handle(now, &event, out);
        let event_type = event.body.type_name();
        self.reschedule(&event.tenant);
        match result {
            Ok(()) => {
                metrics::routed(event_type, started.elapsed().as_secs_f64());
                if let event::Body::OfferAccepted(a) = &event.body {
                    let key = (event.tenant.clone(), a.assignment_id.clone());
                    if let Some(o) = self.open_offers.remove(&key) {
                        let waited = o.wait_ms + now.saturating_sub(o.offered_at);
                        metrics::answered_wait(
                            &event.tenant,
                            &o.queue,
                            &o.channel,
                            waited as f64 / 1000.0,
                        );
                    }
                }
                self.track(&out[first..]);
                Outcome::Routed { event_type }
            }
            Err(ignored) => {
                tracing::debug!(
                    partition = self.id,
                    tenant = %event.tenant,
                    id = %event.id,
                    reason = ignored.reason(),
                    error = %ignored,
                    "event ignored"
                );
                Outcome::Ignored {
                    reason: ignored.reason(),
                }
            }
        }
    }

    /// Fires every engine's timers due at `now`.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<Output>) {
        let first = out.len();
        let due: Vec<String> = self
            .timers
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, tenant)| tenant.clone())
            .collect();
        for tenant in due {
            if let Some(e) = self.engines.get_mut(&tenant) {
                e.tick(now, out);
            }
            self.reschedule(&tenant);
        }
        self.track(&out[first..]);
    }

    /// Re-reads one engine's next timer into the index.
    fn reschedule(&mut self, tenant: &str) {
        let next = self.engines.get(tenant).and_then(Engine::next_deadline);
        let old = self.deadlines.get(tenant).copied();
        if next == old {
            return;
        }
        if let Some(at) = old {
            self.timers.remove(&(at, tenant.to_string()));
        }
        match next {
            Some(at) => {
                self.timers.insert((at, tenant.to_string()));
                self.deadlines.insert(tenant.to_string(), at);
            }
            None => {
                self.deadlines.remove(tenant);
            }
        }
    }

    /// Follows offers until they are accepted or withdrawn.
    fn track(&mut self, outputs: &[Output]) {
        for o in outputs {
            match o {
                Output::Offer(x) => {
                    self.open_offers.insert(
                        (x.tenant.clone(), x.assignment_id.clone()),
                        OpenOffer {
                            queue: x.queue.clone(),
                            channel: x.channel.clone(),
                            offered_at: x.offered_at,
                            wait_ms: x.wait_ms,
                        },
                    );
                }
                Output::OfferWithdrawn(x) => {
                    self.open_offers
                        .remove(&(x.tenant.clone(), x.assignment_id.clone()));
                }
                Output::AgentAway(_) => {}
            }
        }
    }

    /// Earliest timer over the partition's engines.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.timers.first().map(|(at, _)| *at)
    }

    /// Applies a reloaded policy to every engine, keeping their state.
    pub fn set_policy(&mut self, policy: Arc<Policy>) {
        for e in self.engines.values_mut() {
            e.set_policy(policy.clone());
        }
        self.policy = policy;
        // New timeouts or relaxation steps can move timers.
        let tenants: Vec<String> = self.engines.keys().cloned().collect();
        for t in tenants {
            self.reschedule(&t);
        }
    }

    pub fn sla_snapshots(&mut self, now: Millis) -> Vec<SlaSnapshot> {
        self.engines
            .values_mut()
            .flat_map(|e| e.sla_snapshot(now))
            .collect()
    }

    /// Sizes summed over the partition's engines.
    pub fn stats(&self) -> EngineStats {
        self.engines
            .values()
            .map(Engine::stats)
            .fold(EngineStats::default(), |a, s| EngineStats {
                agents: a.agents + s.agents,
                agents_available: a.agents_available + s.agents_available,
                contacts_waiting: a.contacts_waiting + s.contacts_waiting,
                offers_open: a.offers_open + s.offers_open,
                contacts_in_service: a.contacts_in_service + s.contacts_in_service,
            })
    }

    pub fn tenants(&self) -> usize {
        self.engines.len()
    }
}

/// The `type` tag of an output, for metric labels.
pub fn output_type(o: &Output) -> &'static str {
    match o {
        Output::Offer(_) => "offer",
        Output::OfferWithdrawn(_) => "offer.withdrawn",
        Output::AgentAway(_) => "agent.away",
    }
}

/// The tenant an output belongs to: its Kafka key.
pub fn output_tenant(o: &Output) -> &str {
    match o {
        Output::Offer(x) => &x.tenant,
        Output::OfferWithdrawn(x) => &x.tenant,
        Output::AgentAway(x) => &x.tenant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_records_are_dead_letters_and_engines_are_per_tenant() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 1024);
        let mut out = Vec::new();
        assert!(matches!(
            p.process(1, Some(b"{nope"), &mut out),
            Outcome::DeadLetter(DecodeError::InvalidJson(_))
        ));
        assert!(matches!(
            p.process(1, None, &mut out),
            Outcome::DeadLetter(DecodeError::Empty)
        ));
        let ev = |t: &str| {
            format!(
                r#"{{"type":"agent.state","id":"e-{t}","tenant":"{t}","ts":1,"agent_id":"a","state":"available"}}"#
            )
        };
        for t in ["shop-mx", "shop-br", "shop-mx"] {
            let o = p.process(1, Some(ev(t).as_bytes()), &mut out);
            assert!(!matches!(o, Outcome::DeadLetter(_)), "{o:?}");
        }
        assert_eq!(p.tenants(), 2);
    }

    #[test]
    fn offers_are_followed_until_accepted() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 4096);
        let mut out = Vec::new();
        for e in [
            r#"{"type":"agent.profile","id":"1","tenant":"t","ts":1000,"agent_id":"a","languages":["es"]}"#,
            r#"{"type":"agent.state","id":"2","tenant":"t","ts":1000,"agent_id":"a","state":"available"}"#,
            r#"{"type":"contact.created","id":"3","tenant":"t","ts":1000,"contact_id":"c","channel":"chat","customer_id":"k","language":"es-MX"}"#,
        ] {
            assert!(matches!(
                p.process(1000, Some(e.as_bytes()), &mut out),
                Outcome::Routed { .. }
            ));
        }
        let Some(Output::Offer(offer)) = out.first() else {
            panic!("expected an offer, got {out:?}")
        };
        assert_eq!(p.open_offers.len(), 1);
        let accept = format!(
            r#"{{"type":"offer.accepted","id":"4","tenant":"t","ts":3000,"assignment_id":"{}","agent_id":"a","contact_id":"c"}}"#,
            offer.assignment_id
        );
        out.clear();
        assert!(matches!(
            p.process(3000, Some(accept.as_bytes()), &mut out),
            Outcome::Routed { .. }
        ));
        assert!(p.open_offers.is_empty());
    }

    #[test]
    fn timers_are_indexed_across_tenants() {
        let mut p = Partition::build(0, Arc::new(Policy::default()), 4096);
        let mut out = Vec::new();
        // Tenant "early" gets its chat offer at t=1000, "late" at t=5000; chat offers time out
        // after 30 s by default.
        for (t, at) in [("early", 1000u64), ("late", 5000)] {
            for e in [
                format!(
                    r#"{{"type":"agent.profile","id":"p","tenant":"{t}","ts":{at},"agent_id":"a","languages":["es"]}}"#
                ),
                format!(
                    r#"{{"type":"agent.state","id":"s","tenant":"{t}","ts":{at},"agent_id":"a","state":"available"}}"#
                ),
                format!(
                    r#"{{"type":"contact.created","id":"c","tenant":"{t}","ts":{at},"contact_id":"c","channel":"chat","customer_id":"k","language":"es"}}"#
                ),
            ] {
                p.process(at, Some(e.as_bytes()), &mut out);
            }
        }
        assert_eq!(p.next_deadline(), Some(31_000));
        out.clear();
        p.tick(30_999, &mut out);
        assert!(out.is_empty(), "nothing due yet: {out:?}");
        p.tick(31_000, &mut out);
        let withdrawn: Vec<&str> = out
            .iter()
            .filter_map(|o| match o {
                Output::OfferWithdrawn(w) => Some(w.tenant.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(withdrawn, ["early"]);
        assert!(p.next_deadline().is_some_and(|d| d > 31_000));
    }
}
