//! The `omniroute run` binary and its signals against a real broker (Tansu): SIGHUP rereads the
//! config file (a bad file is rejected and logged, the running policy stays; a good one is
//! applied), logs are JSON lines when configured, and SIGTERM stops it cleanly.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;
use tokio::io::{AsyncBufReadExt, BufReader};

const LOG: &str = "[log]\nformat = \"json\"\nlevel = \"info\"\n";

fn kill(signal: &str, pid: u32) {
    let ok = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {signal} {pid}");
}

/// Reads JSON log lines until one has the given `message`; every line must be JSON.
async fn log_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
    message: &str,
) -> serde_json::Value {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(line) = lines.next_line().await.expect("read stderr") {
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if v["message"] == message {
                return Some(v);
            }
        }
        None
    })
    .await;
    match found {
        Ok(Some(v)) => v,
        Ok(None) => panic!("stderr closed before {message:?}"),
        Err(_) => panic!("no {message:?} log line within 20 s"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_file_rejects_a_bad_one_and_logs_json() {
    let ns = unique("hup");
    let topics = create_topics(&ns).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("omniroute.toml");
    let good = config_text(&topics, &ns, LOG);
    write(&path, &good);
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_omniroute"))
        .args(["run", "--config", &path.display().to_string()])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start omniroute");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    log_line(&mut lines, "partitions assigned").await;

    // State before the reloads: an agent, and a contact routed to it.
    let p = producer();
    let out = Reader::new(&topics.assignments, PARTITIONS);
    let (t, ev) = ("shop-uy", &topics.events);
    agent(&p, ev, t, "a1", json!({}), &["es"], json!({})).await;
    send_event(&p, ev, &contact(t, "c1", "email", "es-UY", json!({}))).await;
    let got = out
        .json_until(Duration::from_secs(10), |o| !of_type(o, "offer").is_empty())
        .await;
    assert_eq!(of_type(&got, "offer")[0]["agent_id"], "a1", "{got:#?}");

    // A file that does not validate: rejected with the key named, the process keeps running.
    write(
        &path,
        &config_text(
            &topics,
            &ns,
            &format!("{LOG}[routing.channels.chat]\ncapacity = 0\n"),
        ),
    );
    kill("-HUP", pid);
    let rejected = log_line(
        &mut lines,
        "config reload rejected; the previous policy stays in force",
    )
    .await;
    assert_eq!(rejected["level"], "ERROR", "{rejected}");
    let error = rejected["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("routing.channels.chat.capacity"),
        "{rejected}"
    );

    // A good file: applied; the agent and its work survive (email capacity 5, so a second
    // email still goes to a1, who already holds c1).
    write(
        &path,
        &config_text(
            &topics,
            &ns,
            &format!("{LOG}[routing]\nsticky_for = \"1m\"\n"),
        ),
    );
    kill("-HUP", pid);
    log_line(&mut lines, "routing policy reloaded").await;
    send_event(&p, ev, &contact(t, "c2", "email", "es-UY", json!({}))).await;
    let got = out
        .json_until(Duration::from_secs(10), |o| {
            of_type(o, "offer").iter().any(|x| x["contact_id"] == "c2")
        })
        .await;
    let c2: Vec<_> = of_type(&got, "offer")
        .into_iter()
        .filter(|x| x["contact_id"] == "c2")
        .collect();
    assert_eq!(c2.len(), 1, "{got:#?}");
    assert_eq!(c2[0]["agent_id"], "a1");

    kill("-TERM", pid);
    log_line(&mut lines, "offsets committed").await;
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("graceful stop within shutdown_timeout")
        .expect("exit status");
    assert!(status.success(), "{status:?}");
}
