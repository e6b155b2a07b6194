//! Shared test support for the Kafka tests: a real broker, topics, a running daemon, and
//! readers with short timeouts.
//!
//! The broker is `OMNIROUTE_TEST_BROKERS` when set; otherwise one Tansu per test binary, on a
//! free 127.0.0.1 port with memory storage, stopped when the test process exits. Each test uses
//! its own topics and consumer group, so tests in one binary run side by side.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use omniroute::config::Config;
use omniroute::daemon::{self, Control, Reload, Status};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Partitions of the input and assignments topics in tests.
pub const PARTITIONS: i32 = 2;

/// The broker address for this test binary.
pub fn brokers() -> &'static str {
    static BROKER: OnceLock<Broker> = OnceLock::new();
    &BROKER
        .get_or_init(|| match std::env::var("OMNIROUTE_TEST_BROKERS") {
            Ok(b) if !b.trim().is_empty() => Broker {
                addr: b,
                _guard: None,
            },
            _ => spawn_tansu(),
        })
        .addr
}

struct Broker {
    addr: String,
    /// The shell that owns the Tansu process (see [`spawn_tansu`]).
    _guard: Option<std::process::Child>,
}

fn spawn_tansu() -> Broker {
    let found = Command::new("tansu")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "tansu not found: run scripts/tansu.sh install");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1");
    let url = format!("tcp://127.0.0.1:{port}");
    // The shell stays behind as a guard: when this test process is gone, it stops the broker.
    let script = format!(
        "tansu broker --listener-url {url} --advertised-listener-url {url} \
         --storage-engine memory://tansu/ >/dev/null 2>&1 & b=$!; \
         while kill -0 {parent} 2>/dev/null; do sleep 0.2; done; kill $b",
        parent = std::process::id()
    );
    let guard = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .spawn()
        .expect("start tansu");
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "tansu did not listen on {addr} within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker {
        addr,
        _guard: Some(guard),
    }
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The topics of one test.
#[derive(Debug, Clone)]
pub struct Topics {
    pub events: String,
    pub assignments: String,
    pub sla: String,
    pub dlq: String,
    pub state: String,
}

/// Creates a fresh set of topics (Tansu does not create them on first use).
pub async fn create_topics(ns: &str) -> Topics {
    let t = Topics {
        events: format!("{ns}.events"),
        assignments: format!("{ns}.assignments"),
        sla: format!("{ns}.sla"),
        dlq: format!("{ns}.dlq"),
        state: format!("{ns}.state"),
    };
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .expect("admin client");
    let specs = [
        (&t.events, PARTITIONS),
        (&t.assignments, PARTITIONS),
        (&t.state, PARTITIONS),
        (&t.sla, 1),
        (&t.dlq, 1),
    ];
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|(name, p)| NewTopic::new(name, *p, TopicReplication::Fixed(1)))
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(5)));
    let results = tokio::time::timeout(Duration::from_secs(10), admin.create_topics(&new, &opts))
        .await
        .expect("create topics within 10 s")
        .expect("create topics");
    for r in results {
        r.expect("topic created");
    }
    t
}

/// A daemon config for the test's topics, with the test-friendly client settings.
pub fn config(topics: &Topics, group: &str, routing_toml: &str) -> Config {
    let text = config_text(topics, group, routing_toml);
    Config::parse(&text, "test config").expect("test config is valid")
}

pub fn config_text(topics: &Topics, group: &str, routing_toml: &str) -> String {
    format!(
        r#"
[kafka]
brokers = ["{brokers}"]
group_id = "{group}"
input_topics = ["{events}"]
assignments_topic = "{assignments}"
sla_topic = "{sla}"
dlq_topic = "{dlq}"
state_topic = "{state}"
[kafka.client]
"session.timeout.ms" = "6000"
"fetch.wait.max.ms" = "10"
"group.protocol" = "classic"
"log_level" = "3"
[metrics]
listen = ""
[daemon]
tick_interval = "50ms"
shutdown_timeout = "5s"
sla_snapshot_interval = "0s"
commit_interval = "200ms"
snapshot_interval = "200ms"
{routing_toml}
"#,
        brokers = brokers(),
        events = topics.events,
        assignments = topics.assignments,
        sla = topics.sla,
        dlq = topics.dlq,
        state = topics.state,
    )
}

/// A daemon running in this process.
pub struct Running {
    pub shutdown: CancellationToken,
    pub reload: mpsc::Sender<Reload>,
    pub status: watch::Receiver<Status>,
    pub handle: JoinHandle<Result<Status, daemon::DaemonError>>,
}

pub fn start(config: Config) -> Running {
    let shutdown = CancellationToken::new();
    let (control, reload, status) =
        Control::new(shutdown.clone(), Arc::new(config.routing.clone()));
    let handle = tokio::spawn(daemon::run_with(config, control));
    Running {
        shutdown,
        reload,
        status,
        handle,
    }
}

impl Running {
    /// Waits until partitions are assigned (a group's first join takes a few seconds).
    pub async fn ready(&mut self) {
        tokio::time::timeout(Duration::from_secs(20), self.status.wait_for(|s| s.ready))
            .await
            .expect("daemon ready within 20 s")
            .expect("daemon still running");
    }

    /// Waits for a status condition, for at most `secs`.
    pub async fn wait_for(
        &mut self,
        secs: u64,
        what: &str,
        f: impl FnMut(&Status) -> bool,
    ) -> Status {
        tokio::time::timeout(Duration::from_secs(secs), self.status.wait_for(f))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("daemon still running")
            .clone()
    }

    /// Graceful stop; returns the final status.
    pub async fn stop(self) -> Status {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(15), self.handle)
            .await
            .expect("daemon stops within 15 s")
            .expect("daemon task")
            .expect("daemon stopped cleanly")
    }
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "0")
        .create()
        .expect("producer")
}

/// Produces one record, waits for the broker's acknowledgement, returns (partition, offset).
pub async fn send(p: &FutureProducer, topic: &str, key: &str, payload: &[u8]) -> (i32, i64) {
    let d = p
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("record produced");
    (d.partition, d.offset)
}

/// Produces a JSON event keyed by its tenant.
pub async fn send_event(p: &FutureProducer, topic: &str, event: &serde_json::Value) -> (i32, i64) {
    let tenant = event["tenant"].as_str().expect("event has a tenant");
    send(p, topic, tenant, event.to_string().as_bytes()).await
}

/// Reads a topic from the beginning, every partition, without a consumer group.
pub struct Reader {
    consumer: StreamConsumer,
}

impl Reader {
    pub fn new(topic: &str, partitions: i32) -> Reader {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .expect("reader");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning)
                .expect("partition offset");
        }
        consumer.assign(&tpl).expect("assign");
        Reader { consumer }
    }

    /// The next record, or `None` after `timeout` without one.
    pub async fn next(&self, timeout: Duration) -> Option<OwnedMessage> {
        match tokio::time::timeout(timeout, self.consumer.recv()).await {
            Ok(Ok(m)) => Some(m.detach()),
            Ok(Err(e)) => panic!("reader failed: {e}"),
            Err(_) => None,
        }
    }

    /// Records until `n` were read or `timeout` passed in total.
    pub async fn take(&self, n: usize, timeout: Duration) -> Vec<OwnedMessage> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.next(left).await {
                Some(m) => out.push(m),
                None => break,
            }
        }
        out
    }

    /// JSON payloads until `done` says so or `timeout` passes in total.
    pub async fn json_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        let mut out = Vec::new();
        while !done(&out) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(m) = self.next(left).await {
                let v = serde_json::from_slice(m.payload().unwrap_or_default())
                    .expect("output is JSON");
                out.push(v);
            }
        }
        out
    }
}

/// A record's headers as a map of strings.
pub fn headers(m: &OwnedMessage) -> BTreeMap<String, String> {
    m.headers()
        .map(|h| {
            h.iter()
                .map(|h| {
                    (
                        h.key.to_string(),
                        String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `text` to `path` (for reload tests).
pub fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config file");
}

/// An event of `kind` for `tenant` with a unique id and the current time; `fields` are merged in.
pub fn event(tenant: &str, kind: &str, fields: serde_json::Value) -> serde_json::Value {
    static N: AtomicU32 = AtomicU32::new(0);
    let mut v = serde_json::json!({
        "type": kind,
        "id": format!("ev-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)),
        "tenant": tenant,
        "ts": std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0),
    });
    if let (Some(obj), Some(extra)) = (v.as_object_mut(), fields.as_object()) {
        for (k, x) in extra {
            obj.insert(k.clone(), x.clone());
        }
    }
    v
}

/// `agent.profile` then `agent.state available`.
pub async fn agent(
    p: &FutureProducer,
    topic: &str,
    tenant: &str,
    id: &str,
    skills: serde_json::Value,
    languages: &[&str],
    capacity: serde_json::Value,
) {
    send_event(
        p,
        topic,
        &event(
            tenant,
            "agent.profile",
            serde_json::json!({"agent_id": id, "skills": skills, "languages": languages,
                               "capacity": capacity}),
        ),
    )
    .await;
    send_event(
        p,
        topic,
        &event(
            tenant,
            "agent.state",
            serde_json::json!({"agent_id": id, "state": "available"}),
        ),
    )
    .await;
}

/// A `contact.created`.
pub fn contact(
    tenant: &str,
    id: &str,
    channel: &str,
    language: &str,
    skills: serde_json::Value,
) -> serde_json::Value {
    event(
        tenant,
        "contact.created",
        serde_json::json!({"contact_id": id, "channel": channel, "customer_id": format!("cust-{id}"),
                           "language": language, "required_skills": skills}),
    )
}

/// Outputs of one type.
pub fn of_type<'a>(out: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    out.iter().filter(|v| v["type"] == kind).collect()
}

/// Produces a JSON event to an explicit partition (to place tenants in tests).
pub async fn send_to(p: &FutureProducer, topic: &str, partition: i32, event: &serde_json::Value) {
    let tenant = event["tenant"].as_str().expect("event has a tenant");
    let payload = event.to_string();
    p.send(
        FutureRecord::to(topic)
            .partition(partition)
            .key(tenant)
            .payload(&payload),
        Duration::from_secs(5),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("record produced");
}
