//! Concrete routing scenarios, one or more per numbered point of the routing rules
//! (docs/ROUTING.md). Events go through the real wire decoder, as a connector would send them.

use std::sync::Arc;

use omniroute::engine::{Engine, Ignored, Offer, Output, Policy};
use omniroute::event::{decode, DEFAULT_MAX_RECORD_BYTES};
use serde_json::{json, Value};

const T0: u64 = 1_800_000_000_000;

struct Desk {
    engine: Engine,
    now: u64,
    seq: u64,
}

impl Desk {
    fn new() -> Self {
        Self::with_policy(Policy::default())
    }

    fn with_toml(toml_text: &str) -> Self {
        let p: Policy = toml::from_str(toml_text).unwrap();
        p.validate().unwrap();
        Self::with_policy(p)
    }

    fn with_policy(p: Policy) -> Self {
        Desk {
            engine: Engine::new("shop", Arc::new(p)),
            now: T0,
            seq: 0,
        }
    }

    fn at(&mut self, secs: u64) {
        self.now = T0 + secs * 1000;
    }

    fn send(&mut self, mut v: Value) -> Result<Vec<Output>, Ignored> {
        self.seq += 1;
        let o = v.as_object_mut().unwrap();
        o.entry("id").or_insert(json!(format!("e{}", self.seq)));
        o.entry("tenant").or_insert(json!("shop"));
        o.entry("ts").or_insert(json!(self.now));
        let ev = decode(v.to_string().as_bytes(), DEFAULT_MAX_RECORD_BYTES).unwrap();
        let mut out = Vec::new();
        self.engine.handle(self.now, &ev, &mut out).map(|_| out)
    }

    fn ok(&mut self, v: Value) -> Vec<Output> {
        self.send(v).unwrap()
    }

    fn tick(&mut self) -> Vec<Output> {
        let mut out = Vec::new();
        self.engine.tick(self.now, &mut out);
        out
    }

    /// A profile, then the agent becomes available.
    fn agent(&mut self, id: &str, skills: Value, langs: &[&str], extra: Value) -> Vec<Output> {
        let mut p = json!({"type":"agent.profile","agent_id":id,"skills":skills,"languages":langs});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        self.ok(p);
        self.ok(json!({"type":"agent.state","agent_id":id,"state":"available"}))
    }

    fn contact(&mut self, id: &str, channel: &str, lang: &str, extra: Value) -> Vec<Output> {
        let mut c = json!({"type":"contact.created","contact_id":id,"channel":channel,
            "customer_id":format!("cust-{id}"),"language":lang});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        self.ok(c)
    }

    fn accept(&mut self, o: &Offer) -> Vec<Output> {
        self.ok(
            json!({"type":"offer.accepted","assignment_id":o.assignment_id,
            "agent_id":o.agent_id,"contact_id":o.contact_id}),
        )
    }

    fn reject(&mut self, o: &Offer) -> Vec<Output> {
        self.ok(
            json!({"type":"offer.rejected","assignment_id":o.assignment_id,
            "agent_id":o.agent_id,"contact_id":o.contact_id}),
        )
    }

    fn complete(&mut self, contact: &str) -> Vec<Output> {
        self.ok(json!({"type":"contact.completed","contact_id":contact}))
    }
}

fn offers(out: &[Output]) -> Vec<&Offer> {
    out.iter()
        .filter_map(|o| match o {
            Output::Offer(o) => Some(o),
            _ => None,
        })
        .collect()
}

fn only_offer(out: &[Output]) -> Offer {
    let o = offers(out);
    assert_eq!(o.len(), 1, "expected one offer in {out:#?}");
    o[0].clone()
}

fn withdrawn(out: &[Output]) -> Vec<(String, String)> {
    out.iter()
        .filter_map(|o| match o {
            Output::OfferWithdrawn(w) => Some((w.assignment_id.clone(), w.reason.to_string())),
            _ => None,
        })
        .collect()
}

// 1–4. The Spanish WhatsApp case from the issue: skill at level, language with fallback,
// longest idle among the eligible.
#[test]
fn spanish_whatsapp_returns_goes_to_longest_idle_spanish_agent() {
    let mut d = Desk::new();
    d.at(0);
    d.agent("ana", json!({"returns":7}), &["es"], json!({}));
    d.agent("bob", json!({"returns":9}), &["en"], json!({}));
    d.at(10);
    d.agent("carla", json!({"returns":7}), &["es"], json!({}));
    d.agent("dora", json!({"returns":3}), &["es"], json!({}));
    d.at(60);
    let out = d.contact(
        "c1",
        "whatsapp",
        "es-MX",
        json!({"required_skills":{"returns":5}}),
    );
    let o = only_offer(&out);
    assert_eq!(o.agent_id, "ana");
    assert_eq!(o.assignment_id, "c1#1");
    assert_eq!(o.attempt, 1);
    assert_eq!(o.why.rule, "longest_idle");
    assert_eq!(o.why.matched_skills.get("returns"), Some(&7));
    assert_eq!(o.why.language, "es");
    assert!(o.why.language_fallback);
    assert_eq!(o.why.score, 60.0);
    assert_eq!(o.expires_at, o.offered_at + 60_000);
    // The next one goes to carla: ana holds work now, so carla is the longest idle.
    let o2 = only_offer(&d.contact(
        "c2",
        "whatsapp",
        "es",
        json!({"required_skills":{"returns":5}}),
    ));
    assert_eq!(o2.agent_id, "carla");
    assert!(!o2.why.language_fallback);
}

#[test]
fn regional_tags_fall_back_only_through_the_bare_language() {
    let mut d = Desk::new();
    d.agent("ar", json!({}), &["es-AR"], json!({}));
    // es-MX is not es-AR: it waits.
    assert!(offers(&d.contact("mx", "chat", "es-MX", json!({}))).is_empty());
    // A bare `es` contact is served by an agent with a regional variant.
    let o = only_offer(&d.contact("bare", "chat", "es", json!({})));
    assert_eq!((o.agent_id.as_str(), o.why.language_fallback), ("ar", true));
    // A Mexican agent arriving takes the waiting es-MX contact at once, exact match.
    let o = only_offer(&d.agent("mxa", json!({}), &["es-mx"], json!({})));
    assert_eq!(
        (o.contact_id.as_str(), o.why.language_fallback),
        ("mx", false)
    );
}

// 2. A contact's own fields reach the agent: customer, language, queue, priority and the bot's
// hand-off context (on the first offer and on a re-offer after a reject).
#[test]
fn offer_carries_the_contact_and_the_bot_handoff() {
    let mut d = Desk::new();
    d.agent("ana", json!({"returns":6}), &["es"], json!({}));
    d.agent("eva", json!({"returns":6}), &["es"], json!({}));
    let handoff = json!({"bot":"sofia","intent":"refund","summary":"Wants a refund for order 991"});
    let o = only_offer(&d.contact(
        "c1",
        "whatsapp",
        "es-MX",
        json!({"customer_id":"cust-7","queue":"returns","priority":2,
               "required_skills":{"returns":5},"handoff":handoff}),
    ));
    assert_eq!(
        (
            o.customer_id.as_str(),
            o.language.as_str(),
            o.queue.as_str()
        ),
        ("cust-7", "es-MX", "returns")
    );
    assert_eq!(o.priority, 2);
    let h = o.handoff.clone().expect("hand-off context on the offer");
    assert_eq!(h.bot.as_deref(), Some("sofia"));
    assert_eq!(h.intent.as_deref(), Some("refund"));
    assert_eq!(h.summary.as_deref(), Some("Wants a refund for order 991"));
    let again = only_offer(&d.reject(&o));
    assert_ne!(again.agent_id, o.agent_id);
    assert_eq!(again.handoff, o.handoff);
    // Without a hand-off the offer has none.
    d.agent("rui", json!({}), &["es"], json!({}));
    assert!(only_offer(&d.contact("c2", "chat", "es", json!({})))
        .handoff
        .is_none());
}

// 1. Capacity: per channel maximum, total load, voice exclusivity.
#[test]
fn chat_capacity_and_shared_load() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    for i in 0..3 {
        let o = only_offer(&d.contact(&format!("c{i}"), "chat", "en", json!({})));
        assert_eq!(o.agent_id, "a");
    }
    // Three chats fill the agent (3 × 1/3): neither a fourth chat nor an email fits.
    assert!(offers(&d.contact("c3", "chat", "en", json!({}))).is_empty());
    assert!(offers(&d.contact("m1", "email", "en", json!({}))).is_empty());
    assert_eq!(d.engine.stats().contacts_waiting, 2);
    // Completing one chat (15 s wrap-up) frees a third of the agent only after wrap-up.
    let first = "c0";
    d.ok(json!({"type":"offer.accepted","assignment_id":"c0#1","agent_id":"a","contact_id":first}));
    assert!(offers(&d.complete(first)).is_empty());
    d.at(15);
    let out = d.tick();
    // The chat (older, same priority) is preferred over the email: both fit, chat came first.
    let o = only_offer(&out);
    assert_eq!(o.contact_id, "c3");
}

#[test]
fn email_takes_a_fifth_and_mixes_with_chat() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    only_offer(&d.contact("c1", "chat", "en", json!({})));
    only_offer(&d.contact("c2", "chat", "en", json!({})));
    // 2/3 + 1/5 < 1: fits. 2/3 + 2/5 > 1: the second email waits.
    only_offer(&d.contact("m1", "email", "en", json!({})));
    assert!(offers(&d.contact("m2", "email", "en", json!({}))).is_empty());
}

#[test]
fn voice_is_exclusive_both_ways() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    only_offer(&d.contact("chat1", "chat", "en", json!({})));
    assert!(offers(&d.contact("call", "voice", "en", json!({}))).is_empty());
    d.agent("b", json!({}), &["en"], json!({}));
    // b was idle: it got the waiting call at once and is now blocked for anything else.
    assert_eq!(d.engine.stats().contacts_waiting, 0);
    let o = only_offer(&d.contact("chat2", "chat", "en", json!({})));
    assert_eq!(o.agent_id, "a");
}

#[test]
fn voice_holder_gets_nothing_else() {
    let mut d = Desk::new();
    d.agent("b", json!({}), &["en"], json!({"capacity":{"chat":1}}));
    let o = only_offer(&d.contact("call", "voice", "en", json!({})));
    assert_eq!(o.agent_id, "b");
    assert!(offers(&d.contact("chat", "chat", "en", json!({}))).is_empty());
}

#[test]
fn profile_capacity_zero_means_channel_not_worked() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({"capacity":{"voice":0}}));
    assert!(offers(&d.contact("call", "voice", "en", json!({}))).is_empty());
    // Gaining capacity through a new profile offers the waiting call at once.
    let out = d.ok(json!({"type":"agent.profile","agent_id":"a","languages":["en"]}));
    assert_eq!(only_offer(&out).contact_id, "call");
}

// 3. Skills: every required skill at level; queues served.
#[test]
fn every_required_skill_at_level_and_queue_membership() {
    let mut d = Desk::new();
    d.agent("a", json!({"billing":9}), &["en"], json!({}));
    d.agent(
        "b",
        json!({"billing":4,"returns":6}),
        &["en"],
        json!({"queues":["vip"]}),
    );
    d.agent("c", json!({"billing":4,"returns":6}), &["en"], json!({}));
    let o = only_offer(&d.contact(
        "c1",
        "chat",
        "en",
        json!({"required_skills":{"billing":3,"returns":5}}),
    ));
    assert_eq!(o.agent_id, "c", "b only serves vip, a lacks returns");
    let o = only_offer(&d.contact(
        "c2",
        "chat",
        "en",
        json!({"queue":"vip","required_skills":{"billing":3,"returns":5}}),
    ));
    assert_eq!(o.agent_id, "b");
}

// 4. Strategies.
#[test]
fn least_occupied_best_skill_and_round_robin() {
    let mut d = Desk::with_toml(
        r#"
        [queues.lo]
        strategy = "least_occupied"
        [queues.skill]
        strategy = "best_skill_match"
        [queues.rr]
        strategy = "round_robin"
        "#,
    );
    d.agent("a", json!({"x":5}), &["en"], json!({}));
    d.agent("b", json!({"x":8}), &["en"], json!({}));
    d.agent("c", json!({"x":6,"y":9}), &["en"], json!({}));
    // a takes a chat, so it is the most occupied.
    assert_eq!(
        only_offer(&d.contact("w", "chat", "en", json!({}))).agent_id,
        "a"
    );
    let o = only_offer(&d.contact("l1", "email", "en", json!({"queue":"lo"})));
    assert_eq!(o.agent_id, "b", "b and c are empty; b has the lower index");
    assert_eq!(o.why.rule, "least_occupied");
    // best skill: b has x surplus 3, c has x surplus 1 + preferred y.
    let o = only_offer(&d.contact(
        "s1",
        "email",
        "en",
        json!({"queue":"skill","required_skills":{"x":5},"preferred_skills":{"y":5}}),
    ));
    assert_eq!(o.agent_id, "c");
    assert_eq!(o.why.score, 1.0 + 10.0 + 4.0);
    assert_eq!(o.why.matched_preferred.get("y"), Some(&9));
    let o = only_offer(&d.contact(
        "s2",
        "email",
        "en",
        json!({"queue":"skill","required_skills":{"x":5}}),
    ));
    assert_eq!((o.agent_id.as_str(), o.why.score), ("b", 3.0));
    // Round robin rotates by agent index.
    let mut got = Vec::new();
    for i in 0..4 {
        got.push(
            only_offer(&d.contact(&format!("r{i}"), "email", "en", json!({"queue":"rr"}))).agent_id,
        );
    }
    assert_eq!(got, ["a", "b", "c", "a"]);
}

// 4. The orders least occupied and round robin read are kept only while a queue uses them; a
// reload that brings such a queue finds them complete, work taken before it included.
#[test]
fn a_reload_to_least_occupied_and_round_robin_sees_the_work_taken_before() {
    let mut d = Desk::new();
    for id in ["a", "b", "c"] {
        d.agent(id, json!({"x":5}), &["en"], json!({}));
    }
    // Longest idle: a, b and c take a chat each, then a a second one.
    for (i, want) in ["a", "b", "c", "a"].iter().enumerate() {
        let o = only_offer(&d.contact(&format!("w{i}"), "chat", "en", json!({})));
        assert_eq!(o.agent_id, *want);
        d.accept(&o);
    }
    d.engine.audit().unwrap();
    let p: Policy = toml::from_str(
        r#"
        [queues.lo]
        strategy = "least_occupied"
        [queues.rr]
        strategy = "round_robin"
        "#,
    )
    .unwrap();
    d.engine.set_policy(Arc::new(p));
    d.engine.audit().unwrap();
    // Loads now: a 2 chats, b and c 1 each. Least occupied picks the less loaded with the
    // lower index: b.
    let o = only_offer(&d.contact("l1", "email", "en", json!({"queue":"lo"})));
    assert_eq!(
        (o.agent_id.as_str(), o.why.rule.as_str()),
        ("b", "least_occupied")
    );
    // And after a snapshot round trip, round robin still knows every agent.
    let bytes = bincode::serde::encode_to_vec(&d.engine, bincode::config::standard()).unwrap();
    d.engine = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
        .unwrap()
        .0;
    d.engine.audit().unwrap();
    let mut got = Vec::new();
    for i in 0..3 {
        got.push(
            only_offer(&d.contact(&format!("r{i}"), "email", "en", json!({"queue":"rr"}))).agent_id,
        );
    }
    got.sort();
    assert_eq!(got, ["a", "b", "c"], "each agent once");
    d.engine.audit().unwrap();
}

// 4. Sticky routing across channels, and preferred agent.
#[test]
fn sticky_agent_across_channels_until_it_expires() {
    let mut d = Desk::with_toml("sticky_for = \"10m\"");
    d.agent("a", json!({}), &["en"], json!({}));
    d.agent("b", json!({}), &["en"], json!({}));
    let o = only_offer(&d.contact("c1", "chat", "en", json!({"customer_id":"maria"})));
    assert_eq!(o.agent_id, "a");
    d.accept(&o);
    d.at(60);
    d.complete("c1");
    d.at(120);
    // b is idle longer (a just finished), but maria's last agent was a.
    let o = only_offer(&d.contact("m1", "email", "en", json!({"customer_id":"maria"})));
    assert_eq!(o.agent_id, "a");
    assert_eq!(o.why.rule, "sticky");
    assert!(o.why.sticky);
    d.accept(&o);
    d.at(120 + 11 * 60);
    d.tick();
    let o = only_offer(&d.contact("m2", "email", "en", json!({"customer_id":"maria"})));
    assert_eq!(o.agent_id, "b", "stickiness expired after 10 minutes");
    assert!(!o.why.sticky);
}

#[test]
fn preferred_agent_wins_when_eligible() {
    let mut d = Desk::new();
    d.agent("a", json!({"x":1}), &["en"], json!({}));
    d.agent("b", json!({}), &["en"], json!({}));
    let o = only_offer(&d.contact("c1", "chat", "en", json!({"preferred_agent":"b"})));
    assert_eq!(
        (o.agent_id.as_str(), o.why.rule.as_str()),
        ("b", "preferred_agent")
    );
    // Not eligible (lacks the skill) or unknown: the queue strategy decides.
    let o = only_offer(&d.contact(
        "c2",
        "chat",
        "en",
        json!({"preferred_agent":"b","required_skills":{"x":1}}),
    ));
    assert_eq!(
        (o.agent_id.as_str(), o.why.rule.as_str()),
        ("a", "longest_idle")
    );
    let o = only_offer(&d.contact("c3", "chat", "en", json!({"preferred_agent":"ghost"})));
    assert_eq!(
        (o.agent_id.as_str(), o.why.rule.as_str()),
        ("a", "longest_idle")
    );
}

// 5. Waiting contacts and agents freeing up; effective priority with aging; cross-queue.
#[test]
fn freed_agent_takes_highest_effective_priority_across_queues() {
    let mut d = Desk::with_toml(
        r#"
        [queues.slow]
        service_level_threshold = "100s"
        aging = 1.0
        [queues.fast]
        service_level_threshold = "10s"
        aging = 1.0
        "#,
    );
    d.at(0);
    d.contact(
        "slow-old",
        "email",
        "en",
        json!({"queue":"slow","priority":1}),
    );
    d.at(5);
    d.contact("fast-new", "email", "en", json!({"queue":"fast"}));
    d.contact(
        "fast-prio",
        "email",
        "en",
        json!({"queue":"fast","priority":2}),
    );
    d.at(20);
    // At 20 s: slow-old = 1 + 20/100 = 1.2; fast-new = 0 + 15/10 = 1.5; fast-prio = 3.5.
    d.ok(json!({"type":"agent.profile","agent_id":"a","languages":["en"],"capacity":{"email":1}}));
    let o = only_offer(&d.ok(json!({"type":"agent.state","agent_id":"a","state":"available"})));
    assert_eq!(o.contact_id, "fast-prio");
    assert_eq!(o.why.effective_priority, 3.5);
    assert_eq!(o.wait_ms, 15_000);
    d.accept(&o);
    d.complete("fast-prio");
    d.at(200);
    let o = only_offer(&d.tick());
    assert_eq!(o.contact_id, "fast-new", "1.5 + aging beats 1.2 + aging");
}

#[test]
fn multichat_agent_takes_several_waiting_at_once() {
    let mut d = Desk::new();
    for i in 0..4 {
        d.contact(&format!("c{i}"), "chat", "en", json!({}));
    }
    let out = d.agent("a", json!({}), &["en"], json!({}));
    let got: Vec<_> = offers(&out).iter().map(|o| o.contact_id.clone()).collect();
    assert_eq!(got, ["c0", "c1", "c2"]);
}

#[test]
fn wrapup_done_frees_before_the_timer() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    let o = only_offer(&d.contact("call1", "voice", "en", json!({})));
    d.accept(&o);
    d.contact("call2", "voice", "en", json!({}));
    assert!(offers(&d.complete("call1")).is_empty());
    let o = only_offer(&d.ok(json!({"type":"agent.wrapup_done","agent_id":"a"})));
    assert_eq!(o.contact_id, "call2");
    // The wrap-up timer firing later is stale and does nothing.
    d.at(60);
    assert!(withdrawn(&d.tick()).iter().all(|w| w.1 == "timeout"));
}

// 6. Relaxation steps.
#[test]
fn relaxation_lowers_levels_adds_languages_and_overflows() {
    let mut d = Desk::with_toml(
        r#"
        [queues.returns]
        [[queues.returns.relaxation]]
        after = "30s"
        lower_min_level_by = 2
        [[queues.returns.relaxation]]
        after = "60s"
        fallback_languages = ["en"]
        [[queues.returns.relaxation]]
        after = "90s"
        overflow_to = "general"
        [queues.general]
        "#,
    );
    d.agent(
        "es3",
        json!({"returns":3}),
        &["es"],
        json!({"queues":["returns"]}),
    );
    d.agent(
        "en9",
        json!({"returns":9}),
        &["en"],
        json!({"queues":["returns"]}),
    );
    d.agent(
        "gen",
        json!({"returns":9,"vip":1}),
        &["pt"],
        json!({"queues":["general"]}),
    );
    d.at(0);
    assert!(offers(&d.contact(
        "a",
        "chat",
        "es",
        json!({"queue":"returns","required_skills":{"returns":5}})
    ))
    .is_empty());
    assert!(offers(&d.contact(
        "b",
        "chat",
        "fr",
        json!({"queue":"returns","required_skills":{"returns":5}})
    ))
    .is_empty());
    assert!(offers(&d.contact(
        "c",
        "chat",
        "pt",
        json!({"queue":"returns","required_skills":{"vip":1}})
    ))
    .is_empty());
    assert_eq!(d.engine.next_deadline(), Some(T0 + 30_000));
    d.at(30);
    let o = only_offer(&d.tick());
    assert_eq!((o.contact_id.as_str(), o.agent_id.as_str()), ("a", "es3"));
    assert_eq!(o.why.relaxation_step, 1);
    d.accept(&o);
    d.at(60);
    let o = only_offer(&d.tick());
    assert_eq!((o.contact_id.as_str(), o.agent_id.as_str()), ("b", "en9"));
    assert_eq!(o.why.relaxation_step, 2);
    assert!(o.why.language_fallback);
    d.at(90);
    let o = only_offer(&d.tick());
    assert_eq!((o.contact_id.as_str(), o.agent_id.as_str()), ("c", "gen"));
    assert_eq!(o.why.overflow_from.as_deref(), Some("general"));
    assert_eq!(o.why.relaxation_step, 3);
}

// 7. Offers: reject, timeout, misses in a row, stale answers.
#[test]
fn rejected_offer_goes_to_the_next_agent_and_never_back() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    d.agent("b", json!({}), &["en"], json!({}));
    let o1 = only_offer(&d.contact("c1", "voice", "en", json!({})));
    assert_eq!(o1.agent_id, "a");
    let out = d.reject(&o1);
    assert_eq!(
        withdrawn(&out),
        [("c1#1".to_string(), "rejected".to_string())]
    );
    let o2 = only_offer(&out);
    assert_eq!(
        (o2.agent_id.as_str(), o2.assignment_id.as_str(), o2.attempt),
        ("b", "c1#2", 2)
    );
    let out = d.reject(&o2);
    assert!(offers(&out).is_empty(), "both agents are excluded now");
    assert_eq!(d.engine.stats().contacts_waiting, 1);
    // The stale first offer cannot be accepted.
    let stale = d.send(
        json!({"type":"offer.accepted","assignment_id":"c1#1","agent_id":"a","contact_id":"c1"}),
    );
    assert_eq!(stale.unwrap_err().reason(), "unknown_offer");
}

#[test]
fn timeouts_count_as_misses_and_set_the_agent_away() {
    let mut d = Desk::with_toml("max_missed_offers = 2");
    d.agent("a", json!({}), &["en"], json!({}));
    only_offer(&d.contact("c1", "chat", "en", json!({})));
    d.contact("c2", "chat", "en", json!({}));
    d.at(30);
    // Both chat offers time out at 30 s: the second miss sets a away.
    let out = d.tick();
    assert_eq!(
        withdrawn(&out),
        [
            ("c1#1".to_string(), "timeout".to_string()),
            ("c2#1".to_string(), "timeout".to_string())
        ]
    );
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::AgentAway(a) if a.agent_id == "a" && a.missed == 2)));
    assert_eq!(d.engine.stats().agents_available, 0);
    assert_eq!(d.engine.stats().contacts_waiting, 2);
    // Coming back resets the count, but a missed both: they wait for someone else.
    let out = d.ok(json!({"type":"agent.state","agent_id":"a","state":"available"}));
    assert!(offers(&out).is_empty());
    let out = d.agent("b", json!({}), &["en"], json!({}));
    assert_eq!(offers(&out).len(), 2);
}

#[test]
fn accept_resets_the_miss_counter() {
    let mut d = Desk::with_toml("max_missed_offers = 2");
    d.agent("a", json!({}), &["en"], json!({}));
    let o = only_offer(&d.contact("c1", "chat", "en", json!({})));
    d.reject(&o);
    let o = only_offer(&d.contact("c2", "chat", "en", json!({})));
    d.accept(&o);
    let o = only_offer(&d.contact("c3", "chat", "en", json!({})));
    let out = d.reject(&o);
    assert!(!out.iter().any(|o| matches!(o, Output::AgentAway(_))));
}

#[test]
fn going_away_withdraws_pending_offers_and_requeues() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    let o = only_offer(&d.contact("c1", "chat", "en", json!({})));
    d.accept(&o);
    only_offer(&d.contact("c2", "chat", "en", json!({})));
    let out = d.ok(json!({"type":"agent.state","agent_id":"a","state":"away"}));
    assert_eq!(
        withdrawn(&out),
        [("c2#1".to_string(), "agent_unavailable".to_string())]
    );
    let s = d.engine.stats();
    assert_eq!(
        (s.contacts_waiting, s.contacts_in_service, s.offers_open),
        (1, 1, 0)
    );
    // c1 stays in service and completes normally.
    d.complete("c1");
    let o = only_offer(&d.agent("b", json!({}), &["en"], json!({})));
    assert_eq!((o.contact_id.as_str(), o.attempt), ("c2", 2));
}

// 8. Abandonment, unknowns, duplicates, out of order.
#[test]
fn abandonment_in_each_phase() {
    let mut d = Desk::new();
    d.contact("w", "chat", "en", json!({}));
    assert_eq!(d.engine.stats().contacts_waiting, 1);
    assert!(d
        .ok(json!({"type":"contact.abandoned","contact_id":"w"}))
        .is_empty());
    assert_eq!(d.engine.stats().contacts_waiting, 0);
    d.agent("a", json!({}), &["en"], json!({"capacity":{"chat":1}}));
    only_offer(&d.contact("o", "chat", "en", json!({})));
    d.contact("next", "chat", "en", json!({}));
    let out = d.ok(json!({"type":"contact.abandoned","contact_id":"o"}));
    assert_eq!(
        withdrawn(&out),
        [("o#1".to_string(), "abandoned".to_string())]
    );
    let o = only_offer(&out);
    assert_eq!(
        o.contact_id, "next",
        "the freed reservation is used at once"
    );
    d.accept(&o);
    let e = d
        .send(json!({"type":"contact.abandoned","contact_id":"next"}))
        .unwrap_err();
    assert_eq!(e.reason(), "out_of_order");
}

#[test]
fn ignored_events_say_why() {
    let mut d = Desk::with_toml("[limits]\nmax_agents = 1\nmax_contacts = 1\n");
    let reason = |r: Result<Vec<Output>, Ignored>| r.unwrap_err().reason();
    assert_eq!(
        reason(d.send(json!({"type":"agent.state","agent_id":"ghost","state":"available"}))),
        "unknown_agent"
    );
    assert_eq!(
        reason(d.send(json!({"type":"contact.abandoned","contact_id":"ghost"}))),
        "unknown_contact"
    );
    assert_eq!(reason(d.send(json!({"type":"contact.created","contact_id":"x","channel":"fax","customer_id":"c","language":"en"}))), "unknown_channel");
    assert_eq!(
        reason(d.send(
            json!({"type":"offer.accepted","assignment_id":"x#1","agent_id":"a","contact_id":"x"})
        )),
        "unknown_offer"
    );
    assert_eq!(
        reason(
            d.send(json!({"type":"agent.state","agent_id":"a","state":"away","tenant":"other"}))
        ),
        "wrong_tenant"
    );
    d.ok(json!({"type":"agent.profile","agent_id":"a","id":"dup"}));
    assert_eq!(
        reason(d.send(json!({"type":"agent.profile","agent_id":"a","id":"dup"}))),
        "duplicate"
    );
    assert_eq!(
        reason(d.send(json!({"type":"agent.profile","agent_id":"b"}))),
        "limit_reached"
    );
    d.contact("c1", "chat", "en", json!({}));
    assert_eq!(reason(d.send(json!({"type":"contact.created","contact_id":"c1","channel":"chat","customer_id":"c","language":"en"}))), "contact_exists");
    assert_eq!(reason(d.send(json!({"type":"contact.created","contact_id":"c2","channel":"chat","customer_id":"c","language":"en"}))), "limit_reached");
    assert_eq!(
        reason(d.send(json!({"type":"contact.completed","contact_id":"c1"}))),
        "out_of_order"
    );
    assert_eq!(
        reason(d.send(json!({"type":"agent.wrapup_done","agent_id":"a"}))),
        "out_of_order"
    );
}

#[test]
fn time_going_backwards_is_clamped_and_arrival_uses_event_time() {
    let mut d = Desk::new();
    d.agent("a", json!({}), &["en"], json!({}));
    d.at(100);
    d.ok(json!({"type":"agent.state","agent_id":"a","state":"away"}));
    d.ok(json!({"type":"agent.state","agent_id":"a","state":"available"}));
    d.at(50);
    // Processing time went back to 50 s: the engine stays at 100 s. The customer began
    // waiting at event time 40 s.
    let o = only_offer(&d.contact("c", "chat", "en", json!({"ts": T0 + 40_000})));
    assert_eq!(o.offered_at, T0 + 100_000);
    assert_eq!(o.wait_ms, 60_000);
}

#[test]
fn transfer_withdraws_and_requeues_in_the_new_queue() {
    let mut d = Desk::new();
    d.agent("gen", json!({}), &["en"], json!({"queues":["general"]}));
    only_offer(&d.contact("c", "chat", "en", json!({})));
    let out = d.ok(json!({"type":"contact.updated","contact_id":"c","queue":"vip"}));
    assert_eq!(
        withdrawn(&out),
        [("c#1".to_string(), "updated".to_string())]
    );
    assert!(offers(&out).is_empty());
    let o = only_offer(&d.agent("vip", json!({}), &["en"], json!({"queues":["vip"]})));
    assert_eq!((o.queue.as_str(), o.attempt), ("vip", 2));
}

#[test]
fn update_of_a_waiting_contact_retries_routing() {
    let mut d = Desk::new();
    d.agent("a", json!({"billing":5}), &["en"], json!({}));
    assert!(
        offers(&d.contact("c", "chat", "en", json!({"required_skills":{"billing":8}}))).is_empty()
    );
    let out =
        d.ok(json!({"type":"contact.updated","contact_id":"c","required_skills":{"billing":4}}));
    assert_eq!(only_offer(&out).agent_id, "a");
}

// 9. Byte-identical replay, and snapshots through bincode keep routing identically.
#[test]
fn replay_and_snapshot_are_byte_identical() {
    let run = |snapshot_midway: bool| {
        let mut d = Desk::new();
        let mut log = Vec::new();
        for i in 0..5 {
            log.extend(d.agent(
                &format!("a{i}"),
                json!({"x": 3 + i}),
                &["es", "en"],
                json!({}),
            ));
        }
        for i in 0..20u64 {
            d.at(i * 7);
            if snapshot_midway && i == 10 {
                let bytes =
                    bincode::serde::encode_to_vec(&d.engine, bincode::config::standard()).unwrap();
                d.engine = bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
                    .unwrap()
                    .0;
            }
            let lang = if i % 3 == 0 { "en" } else { "es-MX" };
            log.extend(d.contact(
                &format!("c{i}"),
                "chat",
                lang,
                json!({"required_skills":{"x":4}}),
            ));
            log.extend(d.tick());
        }
        serde_json::to_string(&log).unwrap()
    };
    let a = run(false);
    assert_eq!(a, run(false));
    assert_eq!(a, run(true));
}
