//! A real Prometheus server scrapes the operations endpoint and evaluates the shipped rules.
//!
//! The endpoint serves what a `metrics-exporter-prometheus` recorder renders, as the daemon
//! does. Prometheus runs on 127.0.0.1 with a 1 s scrape and evaluation interval and loads
//! config/prometheus/omniroute.rules.yml; the test then asks its HTTP API for the scraped
//! service level, a recording rule and the pending service-level alert. One tenant's figures
//! come from the real engine (events → `sla_snapshot` → `metrics::sla_snapshot`, the daemon's
//! own export), so the PromQL result is the engine's service level, not a value set by hand. Needs the `prometheus`
//! binary (Debian package `prometheus`); OMNIROUTE_SKIP_TOOL_TESTS=1 skips it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::PrometheusBuilder;
use omniroute::engine::{Engine, Output, Policy, SlaSnapshot};
use omniroute::event::{decode, DEFAULT_MAX_RECORD_BYTES};
use omniroute::http::{serve, Health};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// Prometheus start-up, first scrape and first rule evaluation, with a wide margin.
const DEADLINE: Duration = Duration::from_secs(60);

/// Stops the Prometheus child this test started, whatever happens.
struct Prometheus {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// One GET to Prometheus; `None` while it is not up yet.
async fn get(addr: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let mut s = TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    let text = String::from_utf8(out).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    // Prometheus answers small API responses with a plain body, larger ones chunked.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        body.to_owned()
    };
    serde_json::from_str(&body).ok()
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// Instant query; returns the result vector once it is non-empty.
async fn query(prom: SocketAddr, q: &str) -> Option<Vec<serde_json::Value>> {
    let v = get(prom, &format!("/api/v1/query?query={}", encode(q))).await?;
    let result = v["data"]["result"].as_array()?.clone();
    (!result.is_empty()).then_some(result)
}

async fn wait_for(prom: SocketAddr, q: &str, p: &Prometheus) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        if let Some(r) = query(prom, q).await {
            return r;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no result for {q} within {DEADLINE:?}; prometheus log:\n{}",
            p.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn value(sample: &serde_json::Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

/// SLA snapshots of tenant `shop2` after a hand-computed voice scenario (as in
/// tests/sla_engine.rs): c1 answered after 10 s (within 20 s), c2 a short abandon after 2 s, c3
/// abandoned after 58 s. Default formula: 1 within / (1 answered + 2 abandoned − 1 short) = 0.5.
fn engine_snapshots() -> Vec<SlaSnapshot> {
    const T0: u64 = 1_800_000_000_000;
    let mut engine = Engine::new("shop2", Arc::new(Policy::default()));
    let mut seq = 0;
    let mut send = |engine: &mut Engine, secs: u64, mut v: serde_json::Value| -> Vec<Output> {
        let now = T0 + secs * 1000;
        let mut out = Vec::new();
        while let Some(due) = engine.next_deadline().filter(|d| *d <= now) {
            engine.tick(due, &mut out);
        }
        seq += 1;
        let o = v.as_object_mut().unwrap();
        o.insert("id".into(), serde_json::json!(format!("e{seq}")));
        o.insert("tenant".into(), serde_json::json!("shop2"));
        o.insert("ts".into(), serde_json::json!(now));
        let ev = decode(v.to_string().as_bytes(), DEFAULT_MAX_RECORD_BYTES).unwrap();
        engine.handle(now, &ev, &mut out).unwrap();
        out
    };
    use serde_json::json;
    send(
        &mut engine,
        0,
        json!({"type": "agent.profile", "agent_id": "ana", "languages": ["es"]}),
    );
    send(
        &mut engine,
        0,
        json!({"type": "agent.state", "agent_id": "ana", "state": "available"}),
    );
    let out = send(
        &mut engine,
        0,
        json!({"type": "contact.created", "contact_id": "c1", "channel": "voice",
               "customer_id": "u1", "language": "es"}),
    );
    let a1 = out
        .iter()
        .find_map(|o| match o {
            Output::Offer(o) => Some(o.assignment_id.clone()),
            _ => None,
        })
        .expect("c1 is offered");
    for (c, at) in [("c2", 1), ("c3", 2)] {
        send(
            &mut engine,
            at,
            json!({"type": "contact.created", "contact_id": c, "channel": "voice",
                   "customer_id": c, "language": "es"}),
        );
    }
    send(
        &mut engine,
        3,
        json!({"type": "contact.abandoned", "contact_id": "c2"}),
    );
    send(
        &mut engine,
        10,
        json!({"type": "offer.accepted", "assignment_id": a1, "agent_id": "ana", "contact_id": "c1"}),
    );
    send(
        &mut engine,
        60,
        json!({"type": "contact.abandoned", "contact_id": "c3"}),
    );
    engine.sla_snapshot(T0 + 100_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_endpoint_and_the_rules_see_the_service_level() {
    if std::env::var_os("OMNIROUTE_SKIP_TOOL_TESTS").is_some() {
        eprintln!("OMNIROUTE_SKIP_TOOL_TESTS set: not starting prometheus");
        return;
    }

    // The daemon's side: a recorder with SLA gauges, served by omniroute::http::serve.
    let snapshots = engine_snapshots();
    assert_eq!(snapshots.len(), 1, "{snapshots:#?}");
    assert_eq!(snapshots[0].window.service_level, Some(0.5));
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        let sales = [("tenant", "shop1"), ("queue", "sales"), ("channel", "chat")];
        let support = [
            ("tenant", "shop1"),
            ("queue", "support"),
            ("channel", "email"),
        ];
        metrics::gauge!("omniroute_sla_service_level", &sales).set(0.75);
        metrics::gauge!("omniroute_sla_service_level_target", &sales).set(0.875);
        metrics::gauge!("omniroute_sla_service_level", &support).set(0.9375);
        metrics::gauge!("omniroute_sla_service_level_target", &support).set(0.875);
        metrics::gauge!("omniroute_partitions_assigned").set(2.0);
        for s in &snapshots {
            omniroute::metrics::sla_snapshot(s);
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = listener.local_addr().unwrap();
    let health = Arc::new(Health::new());
    health.set_ready(true);
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(serve(
        listener,
        Arc::new(move || handle.render()),
        health,
        shutdown.clone(),
    ));

    // Prometheus, configured like config/prometheus/prometheus.yml but fast.
    let dir = tempfile::tempdir().unwrap();
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/prometheus/omniroute.rules.yml");
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: omniroute\n    static_configs:\n      - targets: ['{target}']\n",
        rules.display()
    );
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).unwrap();
    let child = Command::new("prometheus")
        .arg(format!(
            "--config.file={}",
            dir.path().join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={prom_addr}"))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("the prometheus binary (apt-get install prometheus)");
    let prom = Prometheus { child, log };

    let up = wait_for(prom_addr, "up{job=\"omniroute\"} == 1", &prom).await;
    assert_eq!(up.len(), 1);

    let sl = wait_for(
        prom_addr,
        "omniroute_sla_service_level{queue=\"sales\"}",
        &prom,
    )
    .await;
    assert_eq!(sl.len(), 1);
    assert_eq!(value(&sl[0]), 0.75);
    assert_eq!(sl[0]["metric"]["tenant"], "shop1");
    assert_eq!(sl[0]["metric"]["channel"], "chat");

    // The engine's figure, through the daemon's exporter.
    let q = "omniroute_sla_service_level{tenant=\"shop2\",queue=\"general\",channel=\"voice\"}";
    let engine_sl = wait_for(prom_addr, q, &prom).await;
    eprintln!(
        "PromQL {q} -> {}",
        serde_json::Value::Array(engine_sl.clone())
    );
    assert_eq!(engine_sl.len(), 1);
    assert_eq!(value(&engine_sl[0]), 0.5);
    let q = "sum by (tenant) (omniroute_sla_contacts_abandoned_total{tenant=\"shop2\"})";
    let abandoned = wait_for(prom_addr, q, &prom).await;
    assert_eq!(value(&abandoned[0]), 2.0);

    let gap = wait_for(
        prom_addr,
        "queue:omniroute_sla_service_level:gap{tenant=\"shop1\"}",
        &prom,
    )
    .await;
    let mut gaps: Vec<(String, f64)> = gap
        .iter()
        .map(|s| (s["metric"]["queue"].as_str().unwrap().to_owned(), value(s)))
        .collect();
    gaps.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        gaps,
        vec![("sales".to_owned(), 0.125), ("support".to_owned(), -0.0625)]
    );

    // The alert is pending (it fires after 10 minutes) for the queue below target only.
    let alerts = wait_for(
        prom_addr,
        "ALERTS{alertname=\"OmnirouteServiceLevelBelowTarget\",tenant=\"shop1\"}",
        &prom,
    )
    .await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["metric"]["queue"], "sales");
    assert_eq!(alerts[0]["metric"]["alertstate"], "pending");
    assert_eq!(alerts[0]["metric"]["severity"], "warning");

    // A group that holds partitions is routing: that alert stays quiet.
    let not_routing = query(prom_addr, "ALERTS{alertname=\"OmnirouteNotRouting\"}").await;
    assert!(not_routing.is_none(), "{not_routing:?}");

    drop(prom);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
