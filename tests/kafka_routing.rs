//! The daemon against a real Kafka-compatible broker (Tansu): events in, assignments out.

mod support;

use std::time::Duration;

use omniroute::daemon::Reload;
use serde_json::json;
use support::*;

/// Short offer timeout for chat so the re-offer test runs in seconds.
const ROUTING: &str = r#"
[routing.channels.chat]
offer_timeout = "1s"
"#;

fn offer_for<'a>(out: &'a [serde_json::Value], contact: &str) -> Vec<&'a serde_json::Value> {
    of_type(out, "offer")
        .into_iter()
        .filter(|o| o["contact_id"] == contact)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_skill_language_and_capacity() {
    let ns = unique("route");
    let topics = create_topics(&ns).await;
    let mut d = start(config(
        &topics,
        &ns,
        "[routing.channels.chat]\noffer_timeout = \"60s\"\n",
    ));
    d.ready().await;
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let t = "shop-mx";
    let ev = &topics.events;
    // a-es fits Spanish returns at level 5+ but takes one chat at a time; a-pt speaks only
    // Portuguese; a-low speaks Spanish but lacks the level.
    agent(
        &p,
        ev,
        t,
        "a-es",
        json!({"returns": 7}),
        &["es"],
        json!({"chat": 1}),
    )
    .await;
    agent(
        &p,
        ev,
        t,
        "a-pt",
        json!({"returns": 9}),
        &["pt"],
        json!({"chat": 1}),
    )
    .await;
    agent(
        &p,
        ev,
        t,
        "a-low",
        json!({"returns": 2}),
        &["es"],
        json!({"chat": 3}),
    )
    .await;
    send_event(
        &p,
        ev,
        &contact(t, "c1", "chat", "es-MX", json!({"returns": 5})),
    )
    .await;
    send_event(
        &p,
        ev,
        &contact(t, "c2", "chat", "pt-BR", json!({"returns": 5})),
    )
    .await;
    send_event(
        &p,
        ev,
        &contact(t, "c3", "chat", "es-MX", json!({"returns": 5})),
    )
    .await;

    let got = out
        .json_until(Duration::from_secs(10), |o| of_type(o, "offer").len() >= 2)
        .await;
    let c1 = offer_for(&got, "c1");
    let c2 = offer_for(&got, "c2");
    assert_eq!(c1.len(), 1, "{got:#?}");
    assert_eq!(c1[0]["agent_id"], "a-es");
    assert_eq!(c1[0]["tenant"], t);
    assert_eq!(c1[0]["why"]["language"], "es");
    assert_eq!(c1[0]["why"]["matched_skills"]["returns"], 7);
    assert_eq!(c1[0]["attempt"], 1);
    assert_eq!(c2.len(), 1, "{got:#?}");
    assert_eq!(c2[0]["agent_id"], "a-pt");

    // c3 fits only a-es, whose one chat slot is taken: nothing until the slot frees.
    let more = out
        .json_until(Duration::from_millis(1500), |o| !o.is_empty())
        .await;
    assert!(
        offer_for(&more, "c3").is_empty(),
        "capacity exceeded: {more:#?}"
    );

    let aid = c1[0]["assignment_id"]
        .as_str()
        .expect("assignment id")
        .to_string();
    let answer = json!({"assignment_id": aid, "agent_id": "a-es", "contact_id": "c1"});
    send_event(&p, ev, &event(t, "offer.accepted", answer)).await;
    send_event(
        &p,
        ev,
        &event(
            t,
            "contact.completed",
            json!({"contact_id": "c1", "agent_id": "a-es"}),
        ),
    )
    .await;
    send_event(
        &p,
        ev,
        &event(
            t,
            "agent.wrapup_done",
            json!({"agent_id": "a-es", "contact_id": "c1"}),
        ),
    )
    .await;
    let got = out
        .json_until(Duration::from_secs(10), |o| !offer_for(o, "c3").is_empty())
        .await;
    let c3 = offer_for(&got, "c3");
    assert_eq!(c3.len(), 1, "{got:#?}");
    assert_eq!(c3[0]["agent_id"], "a-es");

    let status = d.stop().await;
    assert_eq!(status.dead_lettered, 0);
    assert!(status.routed >= 12, "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unanswered_offer_times_out_and_goes_to_another_agent() {
    let ns = unique("timeout");
    let topics = create_topics(&ns).await;
    let mut d = start(config(&topics, &ns, ROUTING));
    d.ready().await;
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let (t, ev) = ("shop-br", &topics.events);
    agent(&p, ev, t, "a1", json!({"sales": 5}), &["pt"], json!({})).await;
    agent(&p, ev, t, "a2", json!({"sales": 5}), &["pt"], json!({})).await;
    send_event(
        &p,
        ev,
        &contact(t, "c1", "chat", "pt-BR", json!({"sales": 3})),
    )
    .await;

    // Nobody answers: the 1 s offer timeout fires from the daemon's clock, with no new events.
    let got = out
        .json_until(Duration::from_secs(10), |o| offer_for(o, "c1").len() >= 2)
        .await;
    let offers = offer_for(&got, "c1");
    assert_eq!(offers.len(), 2, "{got:#?}");
    assert_eq!(offers[0]["attempt"], 1);
    assert_eq!(offers[1]["attempt"], 2);
    assert_ne!(
        offers[0]["agent_id"], offers[1]["agent_id"],
        "re-offer excludes the agent who missed"
    );
    let withdrawn = of_type(&got, "offer.withdrawn");
    assert_eq!(withdrawn.len(), 1, "{got:#?}");
    assert_eq!(withdrawn[0]["reason"], "timeout");
    assert_eq!(withdrawn[0]["assignment_id"], offers[0]["assignment_id"]);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandon_withdraws_the_offer_and_frees_the_agent() {
    let ns = unique("abandon");
    let topics = create_topics(&ns).await;
    let mut d = start(config(
        &topics,
        &ns,
        "[routing.channels.voice]\noffer_timeout = \"60s\"\n",
    ));
    d.ready().await;
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let (t, ev) = ("shop-ar", &topics.events);
    agent(&p, ev, t, "a1", json!({"support": 6}), &["es"], json!({})).await;
    send_event(
        &p,
        ev,
        &contact(t, "c1", "voice", "es-AR", json!({"support": 4})),
    )
    .await;
    send_event(
        &p,
        ev,
        &contact(t, "c2", "voice", "es-AR", json!({"support": 4})),
    )
    .await;
    let got = out
        .json_until(Duration::from_secs(10), |o| !offer_for(o, "c1").is_empty())
        .await;
    assert_eq!(offer_for(&got, "c1")[0]["agent_id"], "a1");
    assert!(
        offer_for(&got, "c2").is_empty(),
        "voice is exclusive: {got:#?}"
    );

    send_event(
        &p,
        ev,
        &event(t, "contact.abandoned", json!({"contact_id": "c1"})),
    )
    .await;
    let got = out
        .json_until(Duration::from_secs(10), |o| !offer_for(o, "c2").is_empty())
        .await;
    let withdrawn = of_type(&got, "offer.withdrawn");
    assert_eq!(withdrawn.len(), 1, "{got:#?}");
    assert_eq!(withdrawn[0]["contact_id"], "c1");
    assert_eq!(withdrawn[0]["reason"], "abandoned");
    assert_eq!(offer_for(&got, "c2")[0]["agent_id"], "a1");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_policy_keeps_state_and_rejects_a_bad_file() {
    let ns = unique("reload");
    let topics = create_topics(&ns).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("omniroute.toml");
    let slow = "[routing.channels.chat]\noffer_timeout = \"60s\"\n";
    write(&path, &config_text(&topics, &ns, slow));
    let mut d = start(omniroute::config::Config::load(&path).expect("config"));
    d.ready().await;
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let (t, ev) = ("shop-co", &topics.events);
    // State built before the reloads: two agents.
    agent(&p, ev, t, "a1", json!({}), &["es"], json!({})).await;
    agent(&p, ev, t, "a2", json!({}), &["es"], json!({})).await;

    // A bad file: rejected, the old policy stays.
    write(
        &path,
        &config_text(&topics, &ns, "[routing.channels.chat]\ncapacity = 0\n"),
    );
    d.reload
        .send(Reload { path: path.clone() })
        .await
        .expect("daemon running");
    let s = d
        .wait_for(5, "rejected reload", |s| s.reloads_failed == 1)
        .await;
    let err = s.last_reload_error.expect("error kept");
    assert!(err.contains("routing.channels.chat.capacity"), "{err}");
    assert_eq!(
        s.policy.channel("chat").map(|c| c.offer_timeout),
        Some(Duration::from_secs(60))
    );

    // A good file with a 1 s chat offer timeout: applied to the running engines.
    write(&path, &config_text(&topics, &ns, ROUTING));
    d.reload
        .send(Reload { path: path.clone() })
        .await
        .expect("daemon running");
    let s = d.wait_for(5, "applied reload", |s| s.reloads_ok == 1).await;
    assert_eq!(
        s.policy.channel("chat").map(|c| c.offer_timeout),
        Some(Duration::from_secs(1))
    );

    // The agents registered before the reloads are still there, and the new timeout applies.
    send_event(&p, ev, &contact(t, "c1", "chat", "es-CO", json!({}))).await;
    let got = out
        .json_until(Duration::from_secs(10), |o| offer_for(o, "c1").len() >= 2)
        .await;
    let offers = offer_for(&got, "c1");
    assert_eq!(offers.len(), 2, "{got:#?}");
    assert_eq!(of_type(&got, "offer.withdrawn")[0]["reason"], "timeout");
    let expires = offers[0]["expires_at"].as_u64().unwrap_or(0);
    let offered = offers[0]["offered_at"].as_u64().unwrap_or(0);
    assert_eq!(
        expires - offered,
        1000,
        "offer made under the reloaded policy"
    );
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_hands_over_offsets_and_the_state_of_every_partition() {
    let ns = unique("rebalance");
    let topics = create_topics(&ns).await;
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let ev = &topics.events;
    let mut a = start(config(&topics, &ns, ""));
    a.ready().await;
    a.wait_for(10, "both partitions on the first instance", |s| {
        s.partitions == 2
    })
    .await;
    // One tenant per partition, each with an agent.
    for part in 0..2 {
        let t = format!("tenant-{part}");
        for e in [
            event(
                &t,
                "agent.profile",
                json!({"agent_id": "a", "languages": ["es"]}),
            ),
            event(
                &t,
                "agent.state",
                json!({"agent_id": "a", "state": "available"}),
            ),
        ] {
            send_to(&p, ev, part, &e).await;
        }
    }
    a.wait_for(10, "agents applied", |s| s.routed == 4).await;

    // A second instance joins: one partition moves to it.
    let mut b = start(config(&topics, &ns, ""));
    b.ready().await;
    let sb = b
        .wait_for(20, "the second instance owns a partition", |s| {
            s.partitions == 1
        })
        .await;
    let sa = a
        .wait_for(20, "the first instance keeps one", |s| s.partitions == 1)
        .await;
    let (kept, moved) = (sa.partition_ids[0], sb.partition_ids[0]);
    assert_ne!(kept, moved);

    for part in [kept, moved] {
        let t = format!("tenant-{part}");
        send_to(
            &p,
            ev,
            part,
            &contact(&t, "c1", "email", "es-MX", json!({})),
        )
        .await;
    }
    // Both partitions know their agent: after the rebalance each owner rebuilt its partitions
    // from the last snapshot (the one that stayed as well as the one that moved).
    let got = out
        .json_until(Duration::from_secs(10), |o| of_type(o, "offer").len() >= 2)
        .await;
    let offers = of_type(&got, "offer");
    assert_eq!(offers.len(), 2, "{got:#?}");
    let mut tenants: Vec<String> = offers
        .iter()
        .map(|o| o["tenant"].as_str().unwrap_or_default().to_string())
        .collect();
    tenants.sort();
    assert_eq!(tenants, ["tenant-0", "tenant-1"]);
    // The new owner started at the snapshot's committed offset: it applied only the new
    // contact, not the agent events the first owner had handled (those came with the state).
    let sb = b
        .wait_for(10, "the contact consumed", |s| s.consumed >= 1)
        .await;
    assert_eq!(sb.consumed, 1, "{sb:?}");
    let sb = b.stop().await;
    assert_eq!(sb.consumed, 1);
    a.stop().await;
}
