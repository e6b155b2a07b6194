//! Bad input goes to the dead-letter topic and routing carries on; offsets are committed so a
//! restarted daemon does not route consumed records again.

mod support;

use std::time::Duration;

use rdkafka::message::Message;
use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_record_is_dead_lettered_unchanged_and_every_valid_one_routed() {
    let ns = unique("dlq");
    let topics = create_topics(&ns).await;
    let mut config = config(&topics, &ns, "");
    config.daemon.max_record_bytes = 1024;
    let mut d = start(config);
    d.ready().await;
    let p = producer();
    let (t, ev) = ("shop-mx", &topics.events);

    let oversized = format!(
        r#"{{"type":"contact.abandoned","id":"big","tenant":"{t}","ts":1,"contact_id":"{}"}}"#,
        "x".repeat(2000)
    );
    let bad: Vec<(&str, Vec<u8>)> = vec![
        ("invalid_json", br#"{"type":"contact.created","id":"#.to_vec()),
        (
            "wrong_type",
            format!(r#"{{"type":"contact.abandoned","id":"w","tenant":"{t}","ts":1,"contact_id":42}}"#).into_bytes(),
        ),
        (
            "missing_field",
            format!(r#"{{"type":"agent.state","id":"m","tenant":"{t}","ts":1,"state":"away"}}"#).into_bytes(),
        ),
        (
            "unknown_type",
            format!(r#"{{"type":"contact.teleported","id":"u","tenant":"{t}","ts":1}}"#).into_bytes(),
        ),
        ("oversized", oversized.into_bytes()),
        ("invalid_utf8", b"{\"type\":\"agent.state\",\"id\":\"\xff\xfe\"}".to_vec()),
        ("empty", Vec::new()),
        (
            "invalid_value",
            format!(r#"{{"type":"agent.profile","id":"v","tenant":"{t}","ts":1,"agent_id":"a","skills":{{"x":11}}}}"#).into_bytes(),
        ),
    ];
    let mut valid = vec![];
    for i in 0..4 {
        valid.push(event(
            t,
            "agent.profile",
            json!({"agent_id": format!("a{i}"), "skills": {"returns": 5}, "languages": ["es"]}),
        ));
        valid.push(event(
            t,
            "agent.state",
            json!({"agent_id": format!("a{i}"), "state": "available"}),
        ));
    }
    for i in 0..bad.len() {
        valid.push(contact(
            t,
            &format!("c{i}"),
            "email",
            "es-MX",
            json!({"returns": 3}),
        ));
    }
    // Interleave: all agents first, then each bad record followed by a valid contact.
    let mut sent_bad = vec![];
    for v in &valid[..8] {
        send_event(&p, ev, v).await;
    }
    for (i, (reason, payload)) in bad.iter().enumerate() {
        let at = send(&p, ev, t, payload).await;
        sent_bad.push((*reason, payload.clone(), at));
        send_event(&p, ev, &valid[8 + i]).await;
    }

    let dlq = Reader::new(&topics.dlq, 1);
    let letters = dlq.take(bad.len(), Duration::from_secs(10)).await;
    assert_eq!(letters.len(), bad.len(), "one dead letter per bad record");
    for (m, (reason, payload, (partition, offset))) in letters.iter().zip(&sent_bad) {
        let h = headers(m);
        assert_eq!(
            h.get("omniroute.reason").map(String::as_str),
            Some(*reason),
            "{h:?}"
        );
        assert!(
            h.get("omniroute.error").is_some_and(|e| !e.is_empty()),
            "{h:?}"
        );
        assert_eq!(h.get("omniroute.source.topic"), Some(&topics.events));
        assert_eq!(
            h.get("omniroute.source.partition"),
            Some(&partition.to_string())
        );
        assert_eq!(h.get("omniroute.source.offset"), Some(&offset.to_string()));
        assert_eq!(m.key(), Some(t.as_bytes()), "key unchanged");
        assert_eq!(
            m.payload().unwrap_or_default(),
            payload.as_slice(),
            "payload unchanged"
        );
    }
    assert!(
        dlq.next(Duration::from_millis(300)).await.is_none(),
        "no valid record dead-lettered"
    );

    // Every valid contact, each sent right after a bad record, was routed.
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let got = out
        .json_until(Duration::from_secs(10), |o| {
            of_type(o, "offer").len() >= bad.len()
        })
        .await;
    let mut offered: Vec<&str> = of_type(&got, "offer")
        .iter()
        .filter_map(|o| o["contact_id"].as_str())
        .collect();
    offered.sort_unstable();
    let mut expected: Vec<String> = (0..bad.len()).map(|i| format!("c{i}")).collect();
    expected.sort_unstable();
    assert_eq!(offered, expected);

    let s = d.stop().await;
    assert_eq!(s.dead_lettered, bad.len() as u64);
    assert_eq!(s.consumed, (valid.len() + bad.len()) as u64);
    assert_eq!(s.routed, valid.len() as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_resumes_after_the_committed_offsets() {
    let ns = unique("restart");
    let topics = create_topics(&ns).await;
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let (t, ev) = ("shop-cl", &topics.events);

    let mut first = start(config(&topics, &ns, ""));
    first.ready().await;
    agent(&p, ev, t, "a1", json!({}), &["es"], json!({})).await;
    send_event(&p, ev, &contact(t, "c1", "email", "es-CL", json!({}))).await;
    let got = out
        .json_until(Duration::from_secs(10), |o| !of_type(o, "offer").is_empty())
        .await;
    assert_eq!(of_type(&got, "offer")[0]["contact_id"], "c1");
    let s = first.stop().await;
    assert_eq!(s.consumed, 3);

    // Same group, fresh process state: it must not see the three records again (a replay
    // would offer c1 to a1 a second time).
    let mut second = start(config(&topics, &ns, ""));
    second.ready().await;
    agent(&p, ev, t, "a2", json!({}), &["es"], json!({})).await;
    send_event(&p, ev, &contact(t, "c2", "email", "es-CL", json!({}))).await;
    let got = out
        .json_until(Duration::from_secs(10), |o| !of_type(o, "offer").is_empty())
        .await;
    let offers = of_type(&got, "offer");
    assert_eq!(offers.len(), 1, "{got:#?}");
    assert_eq!(offers[0]["contact_id"], "c2");
    assert_eq!(offers[0]["agent_id"], "a2");
    assert!(
        out.next(Duration::from_millis(500)).await.is_none(),
        "nothing re-routed"
    );
    let s = second.stop().await;
    assert_eq!(s.consumed, 3, "only the new records were consumed");
}
