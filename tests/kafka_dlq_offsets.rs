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

/// One HTTP GET on the ops endpoint; `None` while it is not answering.
async fn get(addr: &str, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).await.ok()?;
    let code = body.get(9..12)?.parse().ok()?;
    Some((code, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_becomes_ready_serves_metrics_and_stops_cleanly_on_sigterm() {
    let ns = unique("proc");
    let topics = create_topics(&ns).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port");
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("omniroute.toml");
    let text =
        config_text(&topics, &ns, "").replace("listen = \"\"", &format!("listen = \"{addr}\""));
    write(&path, &text);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .args(["run", "--config", &path.display().to_string()])
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("start omniroute");

    // Alive first, ready once partitions are assigned.
    let ready = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            if let Some((200, _)) = get(&addr, "/readyz").await {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "/readyz did not turn 200 within 20 s");
    assert_eq!(get(&addr, "/healthz").await.map(|r| r.0), Some(200));

    let p = producer();
    let (t, ev) = ("shop-pe", &topics.events);
    agent(&p, ev, t, "a1", json!({}), &["es"], json!({})).await;
    send_event(&p, ev, &contact(t, "c1", "sms", "es-PE", json!({}))).await;
    send(&p, ev, t, b"not json").await;
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let got = out
        .json_until(Duration::from_secs(10), |o| !of_type(o, "offer").is_empty())
        .await;
    assert_eq!(of_type(&got, "offer").len(), 1, "{got:#?}");

    let metrics = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some((200, body)) = get(&addr, "/metrics").await {
                if body.contains("omniroute_dlq_records_total{reason=\"invalid_json\"} 1") {
                    return body;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("dead letter counted in /metrics");
    for name in [
        "omniroute_records_consumed_total",
        "omniroute_events_routed_total{type=\"contact.created\"} 1",
        "omniroute_assignments_produced_total{type=\"offer\"} 1",
        "omniroute_offers_total{tenant=\"shop-pe\",queue=\"general\",channel=\"sms\"} 1",
        "omniroute_decision_seconds_bucket",
        "omniroute_partitions_assigned",
    ] {
        assert!(
            metrics.contains(name),
            "{name} missing from /metrics:\n{metrics}"
        );
    }

    let pid = child.id().expect("pid").to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("graceful stop within shutdown_timeout")
        .expect("exit status");
    assert!(status.success(), "{status:?}");

    // Offsets were committed on the way out: the same group resumes after the last record.
    let mut again = start(config(&topics, &ns, ""));
    again.ready().await;
    assert!(
        out.next(Duration::from_millis(1500)).await.is_none(),
        "nothing re-routed"
    );
    let s = again.stop().await;
    assert_eq!(s.consumed, 0);
}
