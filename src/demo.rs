//! `omniroute demo`: the real daemon path against librdkafka's in-process mock cluster, fed by a
//! synthetic omnichannel workload, with a live per-queue table.
//!
//! The workload plays both sides around the daemon: connectors (contacts on all eight channels
//! in Spanish, Portuguese and English, agent profiles and states) and agent desktops (reading
//! offers from the assignments topic, accepting most, rejecting or ignoring a few, completing
//! and wrapping up; customers abandoning when they wait too long). The table is computed from
//! what the daemon actually produced.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DaemonConfig, KafkaConfig, MetricsConfig};
use crate::daemon::{self, Control};
use crate::engine::policy::STANDARD_CHANNELS;
use crate::engine::{Output, Policy};
use crate::http::Health;
use crate::systemd::Notifier;
use crate::telemetry::{LogFormat, LogSettings};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// How long to run, e.g. `30s`, `2m`.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Address for /metrics, /healthz and /readyz; empty to disable.
    #[arg(long, default_value = "127.0.0.1:9464")]
    pub metrics_listen: String,
    /// Number of tenants (shops).
    #[arg(long, default_value_t = 2)]
    pub tenants: usize,
    /// Agents per tenant.
    #[arg(long, default_value_t = 24)]
    pub agents: usize,
    /// New contacts per second, per tenant.
    #[arg(long, default_value_t = 4.0)]
    pub rate: f64,
    /// Random seed, for a repeatable workload.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Log level (the table goes to stdout, logs to stderr).
    #[arg(long, default_value = "warn")]
    pub log_level: String,
}

impl DemoOptions {
    pub fn log_settings(&self) -> LogSettings {
        LogSettings {
            format: LogFormat::Human,
            level: self.log_level.clone(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("mock Kafka cluster: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error(transparent)]
    Daemon(#[from] daemon::DaemonError),
    #[error("metrics endpoint: {0}")]
    Metrics(String),
}

const EVENTS: &str = "omniroute.events";
const ASSIGNMENTS: &str = "omniroute.assignments";
const QUEUES: [&str; 3] = ["general", "sales", "support"];
const SKILLS: [&str; 4] = ["sales", "support", "billing", "returns"];
const LANGS: [&str; 6] = ["es-MX", "es-AR", "es-CO", "pt-BR", "en-US", "es"];

/// The demo's routing policy: three queues with different strategies, short offer timeouts so
/// re-offers show up within the run.
fn demo_policy() -> Result<Policy, DemoError> {
    let text = r#"
        default_queue = "general"
        sticky_for = "10m"
        max_missed_offers = 3
        [channels.chat]
        offer_timeout = "4s"
        [channels.whatsapp]
        offer_timeout = "4s"
        [channels.voice]
        offer_timeout = "4s"
        service_level_threshold = "10s"
        [queues.general]
        strategy = "longest_idle"
        [queues.sales]
        strategy = "best_skill_match"
        [[queues.sales.relaxation]]
        after = "15s"
        lower_min_level_by = 2
        [queues.support]
        strategy = "least_occupied"
        [[queues.support.relaxation]]
        after = "20s"
        fallback_languages = ["es", "en"]
        overflow_to = "general"
    "#;
    toml::from_str(text).map_err(|e| DemoError::Metrics(format!("demo policy: {e}")))
}

/// Small deterministic PRNG (xorshift64*): the demo needs variety, not cryptography.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn between(&mut self, lo: f64, hi: f64) -> Duration {
        Duration::from_secs_f64(lo + (hi - lo) * self.unit())
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Things the simulated people do later.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Action {
    Accept {
        tenant: String,
        assignment: String,
        agent: String,
        contact: String,
    },
    Reject {
        tenant: String,
        assignment: String,
        agent: String,
        contact: String,
    },
    Complete {
        tenant: String,
        agent: String,
        contact: String,
    },
    WrapupDone {
        tenant: String,
        agent: String,
        contact: String,
    },
    Abandon {
        tenant: String,
        contact: String,
    },
}

#[derive(Debug, Clone)]
struct Contact {
    queue: String,
    created: Instant,
    threshold: Duration,
    answered: bool,
    abandoned: bool,
}

/// Per-queue figures for the table, from the daemon's outputs.
#[derive(Debug, Default, Clone)]
struct QueueRow {
    offered: u64,
    answered: u64,
    answered_within: u64,
    abandoned: u64,
    offers: u64,
}

struct Workload {
    rng: Rng,
    producer: FutureProducer,
    seq: u64,
    contacts: HashMap<(String, String), Contact>,
    rows: BTreeMap<(String, String), QueueRow>,
    channel_offers: BTreeMap<String, u64>,
    reoffers: u64,
    withdrawn: u64,
    agents_away: u64,
    bad_sent: u64,
    policy: Policy,
}

impl Workload {
    fn send(&mut self, tenant: &str, mut event: serde_json::Value) {
        self.seq += 1;
        if let Some(obj) = event.as_object_mut() {
            obj.insert("id".into(), json!(format!("demo-{}", self.seq)));
            obj.insert("tenant".into(), json!(tenant));
            obj.insert("ts".into(), json!(now_ms()));
        }
        let payload = event.to_string();
        self.send_raw(tenant, payload.as_bytes());
    }

    fn send_raw(&self, tenant: &str, payload: &[u8]) {
        let rec = FutureRecord::to(EVENTS).key(tenant).payload(payload);
        if let Err((e, _)) = self.producer.send_result(rec) {
            tracing::warn!(error = %e, "demo producer queue full; event dropped");
        }
    }

    fn agents(&mut self, tenant: &str, n: usize) {
        for i in 0..n {
            let mut skills = serde_json::Map::new();
            for s in SKILLS {
                if self.rng.unit() < 0.7 {
                    skills.insert(s.into(), json!(3 + self.rng.below(8)));
                }
            }
            // Most agents speak Spanish; some Portuguese or English too; a few only those.
            let languages = match i % 6 {
                0 => vec!["es", "pt"],
                1 => vec!["pt", "en"],
                2 => vec!["es", "en"],
                _ => vec!["es"],
            };
            let agent = format!("agent-{i:02}");
            self.send(
                tenant,
                json!({"type": "agent.profile", "agent_id": agent, "skills": skills,
                       "languages": languages}),
            );
            self.send(
                tenant,
                json!({"type": "agent.state", "agent_id": agent, "state": "available"}),
            );
        }
    }

    fn new_contact(&mut self, tenant: &str, todo: &mut BinaryHeap<Reverse<(Instant, Action)>>) {
        let contact = format!("c-{}", self.seq + 1);
        let channel = self.rng.pick(&STANDARD_CHANNELS).to_string();
        let queue = self.rng.pick(&QUEUES).to_string();
        let language = self.rng.pick(&LANGS);
        let skill = match queue.as_str() {
            "sales" => "sales",
            "support" => self.rng.pick(&["support", "billing", "returns"]),
            _ => self.rng.pick(&SKILLS),
        };
        let min = 2 + self.rng.below(4);
        let customer = format!("cust-{}", self.rng.below(500));
        let priority = if self.rng.unit() < 0.1 { 5 } else { 0 };
        self.send(
            tenant,
            json!({"type": "contact.created", "contact_id": contact, "channel": channel,
                   "customer_id": customer, "language": language,
                   "queue": queue, "required_skills": {skill: min},
                   "priority": priority}),
        );
        let threshold = self.policy.sl_threshold(&queue, &channel);
        let row = self.rows.entry((tenant.into(), queue.clone())).or_default();
        row.offered += 1;
        self.contacts.insert(
            (tenant.into(), contact.clone()),
            Contact {
                queue,
                created: Instant::now(),
                threshold,
                answered: false,
                abandoned: false,
            },
        );
        // Customers give up after a while if nobody answers.
        let patience = self.rng.between(8.0, 45.0);
        todo.push(Reverse((
            Instant::now() + patience,
            Action::Abandon {
                tenant: tenant.into(),
                contact,
            },
        )));
    }

    fn on_output(&mut self, o: Output, todo: &mut BinaryHeap<Reverse<(Instant, Action)>>) {
        match o {
            Output::Offer(offer) => {
                *self
                    .channel_offers
                    .entry(offer.channel.to_string())
                    .or_default() += 1;
                if offer.attempt > 1 {
                    self.reoffers += 1;
                }
                let key = (offer.tenant.to_string(), offer.contact_id.to_string());
                if let Some(c) = self.contacts.get(&key) {
                    let row = self
                        .rows
                        .entry((offer.tenant.to_string(), c.queue.clone()))
                        .or_default();
                    row.offers += 1;
                }
                let roll = self.rng.unit();
                let (tenant, assignment, agent, contact) = (
                    String::from(offer.tenant),
                    offer.assignment_id,
                    String::from(offer.agent_id),
                    String::from(offer.contact_id),
                );
                if roll < 0.86 {
                    let at = Instant::now() + self.rng.between(0.2, 2.0);
                    todo.push(Reverse((
                        at,
                        Action::Accept {
                            tenant,
                            assignment,
                            agent,
                            contact,
                        },
                    )));
                } else if roll < 0.93 {
                    let at = Instant::now() + self.rng.between(0.2, 1.0);
                    todo.push(Reverse((
                        at,
                        Action::Reject {
                            tenant,
                            assignment,
                            agent,
                            contact,
                        },
                    )));
                } // else: the agent does not answer; the offer times out and is re-offered.
            }
            Output::OfferWithdrawn(_) => self.withdrawn += 1,
            Output::AgentAway(a) => {
                self.agents_away += 1;
                // The supervisor sends them back after a short break.
                self.send(
                    &a.tenant,
                    json!({"type": "agent.state", "agent_id": a.agent_id, "state": "available"}),
                );
            }
        }
    }

    fn act(&mut self, action: Action, todo: &mut BinaryHeap<Reverse<(Instant, Action)>>) {
        match action {
            Action::Accept {
                tenant,
                assignment,
                agent,
                contact,
            } => {
                let key = (tenant.clone(), contact.clone());
                let Some(c) = self.contacts.get_mut(&key) else {
                    return;
                };
                if c.answered || c.abandoned {
                    return;
                }
                c.answered = true;
                let waited = c.created.elapsed();
                let within = waited <= c.threshold;
                let queue = c.queue.clone();
                let row = self.rows.entry((tenant.clone(), queue)).or_default();
                row.answered += 1;
                row.answered_within += u64::from(within);
                self.send(
                    &tenant,
                    json!({"type": "offer.accepted", "assignment_id": assignment,
                           "agent_id": agent, "contact_id": contact}),
                );
                let at = Instant::now() + self.rng.between(2.0, 9.0);
                todo.push(Reverse((
                    at,
                    Action::Complete {
                        tenant,
                        agent,
                        contact,
                    },
                )));
            }
            Action::Reject {
                tenant,
                assignment,
                agent,
                contact,
            } => self.send(
                &tenant,
                json!({"type": "offer.rejected", "assignment_id": assignment,
                       "agent_id": agent, "contact_id": contact, "reason": "busy"}),
            ),
            Action::Complete {
                tenant,
                agent,
                contact,
            } => {
                self.send(
                    &tenant,
                    json!({"type": "contact.completed", "contact_id": contact, "agent_id": agent}),
                );
                let at = Instant::now() + self.rng.between(0.5, 2.0);
                todo.push(Reverse((
                    at,
                    Action::WrapupDone {
                        tenant,
                        agent,
                        contact,
                    },
                )));
            }
            Action::WrapupDone {
                tenant,
                agent,
                contact,
            } => {
                self.contacts.remove(&(tenant.clone(), contact.clone()));
                self.send(
                    &tenant,
                    json!({"type": "agent.wrapup_done", "agent_id": agent, "contact_id": contact}),
                );
            }
            Action::Abandon { tenant, contact } => {
                let key = (tenant.clone(), contact.clone());
                let Some(c) = self.contacts.get_mut(&key) else {
                    return;
                };
                if c.answered {
                    return;
                }
                c.abandoned = true;
                let queue = c.queue.clone();
                self.contacts.remove(&key);
                self.rows
                    .entry((tenant.clone(), queue))
                    .or_default()
                    .abandoned += 1;
                self.send(
                    &tenant,
                    json!({"type": "contact.abandoned", "contact_id": contact}),
                );
            }
        }
    }

    fn table(&self, elapsed: Duration, status: &daemon::Status) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\n── omniroute demo · {:>3}s ── consumed {} · produced {} · dead-lettered {} · re-offers {} · withdrawn {} · set away {}",
            elapsed.as_secs(),
            status.consumed,
            status.produced,
            status.dead_lettered,
            self.reoffers,
            self.withdrawn,
            self.agents_away
        );
        let _ = writeln!(
            s,
            "{:<9} {:<8} {:>7} {:>7} {:>6} {:>8} {:>9} {:>6} {:>8}",
            "tenant",
            "queue",
            "waiting",
            "offered",
            "offers",
            "answered",
            "abandoned",
            "SL",
            "longest"
        );
        let mut waiting: BTreeMap<(&str, &str), (u64, Duration)> = BTreeMap::new();
        for ((tenant, _), c) in &self.contacts {
            if !c.answered && !c.abandoned {
                let w = waiting.entry((tenant, &c.queue)).or_default();
                w.0 += 1;
                w.1 = w.1.max(c.created.elapsed());
            }
        }
        for ((tenant, queue), r) in &self.rows {
            let (n, longest) = waiting
                .get(&(tenant.as_str(), queue.as_str()))
                .copied()
                .unwrap_or_default();
            let denom = r.answered + r.abandoned;
            let sl = if denom == 0 {
                "-".to_string()
            } else {
                format!("{:.0}%", 100.0 * r.answered_within as f64 / denom as f64)
            };
            let _ = writeln!(
                s,
                "{:<9} {:<8} {:>7} {:>7} {:>6} {:>8} {:>9} {:>6} {:>7.1}s",
                tenant,
                queue,
                n,
                r.offered,
                r.offers,
                r.answered,
                r.abandoned,
                sl,
                longest.as_secs_f64()
            );
        }
        let by_channel: Vec<String> = STANDARD_CHANNELS
            .iter()
            .map(|c| format!("{c} {}", self.channel_offers.get(*c).copied().unwrap_or(0)))
            .collect();
        let _ = writeln!(s, "offers by channel: {}", by_channel.join(" · "));
        s
    }
}

/// Runs the demo for `opts.duration`, printing the table every second.
pub async fn run(opts: DemoOptions) -> Result<(), DemoError> {
    let cluster = MockCluster::new(1)?;
    let brokers = cluster.bootstrap_servers();
    for (topic, partitions) in [
        (EVENTS, 4),
        (ASSIGNMENTS, 4),
        ("omniroute.state", 4),
        ("omniroute.sla", 1),
        ("omniroute.dlq", 1),
    ] {
        cluster.create_topic(topic, partitions, 1)?;
    }
    let policy = demo_policy()?;
    let mut client = BTreeMap::new();
    client.insert("session.timeout.ms".to_string(), "6000".to_string());
    client.insert("fetch.wait.max.ms".to_string(), "10".to_string());
    let config = Config {
        kafka: KafkaConfig {
            brokers: vec![brokers.clone()],
            group_id: "omniroute-demo".into(),
            input_topics: vec![EVENTS.into()],
            assignments_topic: ASSIGNMENTS.into(),
            sla_topic: "omniroute.sla".into(),
            dlq_topic: "omniroute.dlq".into(),
            state_topic: "omniroute.state".into(),
            start_from: crate::config::StartFrom::Earliest,
            security: Default::default(),
            client,
        },
        routing: policy.clone(),
        metrics: MetricsConfig {
            listen: opts.metrics_listen.clone(),
        },
        log: opts.log_settings(),
        daemon: DaemonConfig {
            tick_interval: Duration::from_millis(100),
            sla_snapshot_interval: Duration::from_secs(5),
            ..DaemonConfig::default()
        },
    };

    let shutdown = CancellationToken::new();
    let health = Arc::new(Health::new());
    if !opts.metrics_listen.is_empty() {
        let handle =
            crate::metrics::install_prometheus().map_err(|e| DemoError::Metrics(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(&opts.metrics_listen)
            .await
            .map_err(|e| DemoError::Metrics(format!("{}: {e}", opts.metrics_listen)))?;
        println!("metrics: http://{}/metrics", opts.metrics_listen);
        let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || handle.render());
        tokio::spawn(crate::http::serve(
            listener,
            render,
            health.clone(),
            shutdown.clone(),
        ));
    }
    let (control, _reload, status) = Control::new(shutdown.clone(), Arc::new(policy.clone()));
    tokio::spawn(daemon::supervise(
        status.clone(),
        health,
        Notifier::inactive(),
        Duration::from_secs(5),
        shutdown.clone(),
    ));
    let daemon = tokio::spawn(daemon::run_with(config, control));

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("linger.ms", "5")
        .create()?;
    let desktops: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("group.id", "omniroute-demo-desktops")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    desktops.subscribe(&[ASSIGNMENTS])?;

    let mut w = Workload {
        rng: Rng(opts.seed.max(1)),
        producer,
        seq: 0,
        contacts: HashMap::new(),
        rows: BTreeMap::new(),
        channel_offers: BTreeMap::new(),
        reoffers: 0,
        withdrawn: 0,
        agents_away: 0,
        bad_sent: 0,
        policy,
    };
    let tenants: Vec<String> = (0..opts.tenants.max(1))
        .map(|i| {
            ["shop-mx", "shop-br", "shop-ar", "shop-co", "shop-cl"]
                .get(i)
                .map_or_else(|| format!("shop-{i}"), |s| s.to_string())
        })
        .collect();
    for t in &tenants {
        w.agents(t, opts.agents.max(1));
    }
    println!(
        "demo: {} tenants × {} agents, {:.1} contacts/s each, for {:?} (in-process Kafka at {brokers})",
        tenants.len(),
        opts.agents,
        opts.rate,
        opts.duration
    );

    let start = Instant::now();
    let end = start + opts.duration;
    let mut todo: BinaryHeap<Reverse<(Instant, Action)>> = BinaryHeap::new();
    let gap = Duration::from_secs_f64(1.0 / (opts.rate.max(0.01) * tenants.len() as f64));
    let mut next_contact = Instant::now() + Duration::from_secs(1);
    let mut next_table = Instant::now() + Duration::from_secs(1);
    let mut next_bad = Instant::now() + Duration::from_secs(5);
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        while todo.peek().is_some_and(|Reverse((at, _))| *at <= now) {
            if let Some(Reverse((_, a))) = todo.pop() {
                w.act(a, &mut todo);
            }
        }
        if now >= next_contact {
            let t = tenants[w.rng.below(tenants.len())].clone();
            w.new_contact(&t, &mut todo);
            next_contact = now + gap.mul_f64(0.5 + w.rng.unit());
        }
        if now >= next_bad {
            // A broken connector now and then: the daemon dead-letters it and carries on.
            let bad: [&[u8]; 3] = [
                b"{\"type\":\"contact.created\",",
                b"\xff\xfe",
                b"{\"type\":\"contact.teleported\",\"id\":\"x\",\"tenant\":\"shop-mx\",\"ts\":1}",
            ];
            w.send_raw(&tenants[0], bad[(w.bad_sent % 3) as usize]);
            w.bad_sent += 1;
            next_bad = now + Duration::from_secs(10);
        }
        if now >= next_table {
            print!("{}", w.table(start.elapsed(), &status.borrow()));
            next_table += Duration::from_secs(1);
        }
        let wake = [
            Some(next_contact),
            Some(next_table),
            Some(end),
            todo.peek().map(|Reverse((at, _))| *at),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(end);
        tokio::select! {
            m = desktops.recv() => {
                if let Ok(m) = m {
                    if let Some(Ok(o)) = m.payload().map(serde_json::from_slice::<Output>) {
                        w.on_output(o, &mut todo);
                    }
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => {}
        }
    }
    shutdown.cancel();
    let final_status = match daemon.await {
        Ok(r) => r?,
        Err(e) => return Err(DemoError::Metrics(format!("daemon task: {e}"))),
    };
    print!("{}", w.table(start.elapsed(), &final_status));
    println!(
        "demo finished: {} records consumed, {} produced, {} dead-lettered; offsets committed.",
        final_status.consumed, final_status.produced, final_status.dead_lettered
    );
    Ok(())
}
