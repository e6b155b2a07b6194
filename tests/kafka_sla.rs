//! SLA snapshots on a real Kafka-compatible broker (Tansu): the daemon publishes one JSON record
//! per queue/channel to the SLA topic, keyed by tenant, with the window bounds and the figures.

mod support;

use std::time::Duration;

use rdkafka::message::Message;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sla_snapshots_reach_the_sla_topic_keyed_by_tenant() {
    let ns = unique("sla");
    let topics = create_topics(&ns).await;
    // The shared test config turns snapshots off; this test wants one every second.
    let mut config = config(&topics, &ns, "");
    config.daemon.sla_snapshot_interval = Duration::from_secs(1);
    let mut d = start(config);
    d.ready().await;
    let p = producer();
    let offers = Reader::new(&topics.assignments, PARTITIONS);
    let sla = Reader::new(&topics.sla, 1);
    let (t, ev) = ("shop-cl", &topics.events);
    agent(&p, ev, t, "a1", json!({"sales": 5}), &["es"], json!({})).await;
    send_event(
        &p,
        ev,
        &contact(t, "c1", "chat", "es-CL", json!({"sales": 3})),
    )
    .await;
    let got = offers
        .json_until(Duration::from_secs(10), |o| !of_type(o, "offer").is_empty())
        .await;
    let offer = of_type(&got, "offer")[0].clone();
    assert_eq!(offer["agent_id"], "a1", "{got:#?}");
    send_event(
        &p,
        ev,
        &event(
            t,
            "offer.accepted",
            json!({"assignment_id": offer["assignment_id"], "agent_id": "a1", "contact_id": "c1"}),
        ),
    )
    .await;

    // Snapshots come every second; wait for one that has seen the answer.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let record = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let m = sla
            .next(left)
            .await
            .expect("an SLA snapshot counting the answered chat within 15 s");
        let v: serde_json::Value =
            serde_json::from_slice(m.payload().unwrap_or_default()).expect("SLA record is JSON");
        if v["window"]["answered"] == 1 {
            assert_eq!(m.key(), Some(t.as_bytes()), "keyed by tenant");
            break v;
        }
    };
    eprintln!("omniroute.sla record: {record}");
    assert_eq!(record["tenant"], t);
    assert_eq!(record["queue"], "general");
    assert_eq!(record["channel"], "chat");
    assert_eq!(record["window"]["offered"], 1);
    assert_eq!(record["since_start"]["answered"], 1);
    assert_eq!(record["agents_logged_in"], 1);
    let (start, end) = (
        record["window_start"].as_u64().expect("window_start"),
        record["window_end"].as_u64().expect("window_end"),
    );
    assert!(start < end, "window bounds: {record}");
    d.stop().await;
}
