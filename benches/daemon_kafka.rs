//! Daemon throughput against a real broker (Tansu, or `OMNIROUTE_TEST_BROKERS`): how fast one
//! instance consumes, routes and produces. Run with `cargo bench --bench daemon_kafka`; under
//! `cargo test` it only checks that it builds.
//!
//! The workload, produced before the daemon starts: 8 tenants × 50 agents (profile + state),
//! then 50,000 contacts on chat and email in three languages, each created (→ an offer) and
//! abandoned (→ a withdrawal). The figure is events consumed per second, end to end: decode,
//! engine, outputs produced and acknowledged, offsets stored.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use serde_json::json;
use support::*;

const TENANTS: usize = 8;
const AGENTS: usize = 50;
const CONTACTS: usize = 50_000;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run());
}

/// Queues a record without waiting for its acknowledgement (the flush at the end waits).
fn queue(p: &FutureProducer, topic: &str, e: &serde_json::Value) {
    let tenant = e["tenant"].as_str().unwrap_or_default().to_string();
    let payload = e.to_string();
    loop {
        match p.send_result(FutureRecord::to(topic).key(&tenant).payload(&payload)) {
            Ok(_) => return,
            Err((_, _)) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

async fn run() {
    let ns = unique("bench");
    let topics = create_topics(&ns).await;
    let p = producer();
    let mut n = 0u64;
    for t in 0..TENANTS {
        let tenant = format!("shop-{t}");
        for a in 0..AGENTS {
            queue(
                &p,
                &topics.events,
                &event(
                    &tenant,
                    "agent.profile",
                    json!({"agent_id": format!("a{a}"), "skills": {"returns": 5 + a % 5},
                       "languages": ["es", "pt", "en"], "capacity": {"chat": 3, "email": 5}}),
                ),
            );
            queue(
                &p,
                &topics.events,
                &event(
                    &tenant,
                    "agent.state",
                    json!({"agent_id": format!("a{a}"), "state": "available"}),
                ),
            );
            n += 2;
        }
    }
    let channels = ["chat", "email"];
    for c in 0..CONTACTS {
        let tenant = format!("shop-{}", c % TENANTS);
        queue(
            &p,
            &topics.events,
            &contact(
                &tenant,
                &format!("c{c}"),
                channels[c % 2],
                ["es-MX", "pt-BR", "en-US"][c % 3],
                json!({"returns": 3}),
            ),
        );
        queue(
            &p,
            &topics.events,
            &event(
                &tenant,
                "contact.abandoned",
                json!({"contact_id": format!("c{c}")}),
            ),
        );
        n += 2;
    }
    p.flush(Duration::from_secs(30)).expect("flush workload");
    println!("daemon_kafka: {n} events queued on {}", topics.events);

    let mut d = start(config(&topics, &ns, ""));
    d.ready().await;
    let started = Instant::now();
    let before = d.status.borrow().consumed;
    let s = d
        .wait_for(120, "every event consumed", |s| s.consumed >= n)
        .await;
    let secs = started.elapsed().as_secs_f64();
    let timed = s.consumed - before;
    let s2 = d.stop().await;
    println!(
        "daemon_kafka: consumed {timed} events in {secs:.2} s = {:.0} events/s; produced {} outputs; routed {}, ignored {}",
        timed as f64 / secs,
        s2.produced,
        s2.routed,
        s2.ignored
    );
}
