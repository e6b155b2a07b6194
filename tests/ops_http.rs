//! The operations endpoint served on a real loopback socket, read with a plain TcpStream.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omniroute::http::{serve, Health};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(5);

struct Server {
    addr: std::net::SocketAddr,
    health: Arc<Health>,
    renders: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = Arc::new(Health::new());
    let renders = Arc::new(AtomicUsize::new(0));
    let counter = renders.clone();
    let render: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        format!("# TYPE omniroute_test_renders_total counter\nomniroute_test_renders_total {n}\n")
    });
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(serve(listener, render, health.clone(), shutdown.clone()));
    Server {
        addr,
        health,
        renders,
        shutdown,
        task,
    }
}

/// Sends raw bytes, reads until the server closes, returns (status line, headers, body).
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> (String, String, String) {
    let io = async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(request).await.unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        out
    };
    let out = tokio::time::timeout(WAIT, io)
        .await
        .expect("response in time");
    let text = String::from_utf8(out).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_owned(), body.to_owned())
}

async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n");
    raw(addr, req.as_bytes()).await
}

#[tokio::test]
async fn metrics_are_rendered_per_request_with_the_prometheus_content_type() {
    let srv = start().await;
    let (status, headers, body) = get(srv.addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(
        headers.contains("Content-Type: text/plain; version=0.0.4"),
        "{headers}"
    );
    assert!(
        headers.contains(&format!("Content-Length: {}", body.len())),
        "{headers}"
    );
    assert!(body.contains("omniroute_test_renders_total 1"), "{body}");
    let (_, _, body) = get(srv.addr, "/metrics?ignored=1").await;
    assert!(body.contains("omniroute_test_renders_total 2"), "{body}");
    assert_eq!(srv.renders.load(Ordering::SeqCst), 2);
    srv.shutdown.cancel();
    tokio::time::timeout(WAIT, srv.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn healthz_is_always_ok_and_readyz_follows_health() {
    let srv = start().await;
    let (status, _, body) = get(srv.addr, "/healthz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ok\n")
    );

    let (status, _, body) = get(srv.addr, "/readyz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 503 Service Unavailable", "not ready\n")
    );
    srv.health.set_ready(true);
    let (status, _, body) = get(srv.addr, "/readyz").await;
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "ready\n")
    );
    // Draining makes the instance unready again while it stays alive.
    srv.health.set_ready(false);
    let (status, _, _) = get(srv.addr, "/readyz").await;
    assert_eq!(status, "HTTP/1.1 503 Service Unavailable");
    let (status, _, _) = get(srv.addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    srv.shutdown.cancel();
}

#[tokio::test]
async fn unknown_paths_other_methods_and_garbage_get_errors_not_metrics() {
    let srv = start().await;
    let (status, _, _) = get(srv.addr, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = get(srv.addr, "/metricsx").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = raw(
        srv.addr,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    )
    .await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert!(headers.contains("Allow: GET"), "{headers}");
    let (status, _, _) = raw(srv.addr, b"HEAD /healthz HTTP/1.1\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    let (status, _, _) = raw(srv.addr, b"hello there\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    // None of these may have rendered the metrics.
    assert_eq!(srv.renders.load(Ordering::SeqCst), 0);
    srv.shutdown.cancel();
}

#[tokio::test]
async fn oversized_requests_are_refused_without_reading_them_all() {
    let srv = start().await;
    let mut req = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 20_000));
    req.extend_from_slice(b"\r\n\r\n");
    let io = async {
        let mut s = TcpStream::connect(srv.addr).await.unwrap();
        // The server may close before taking everything; a write error then is expected.
        let _ = s.write_all(&req).await;
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out).await;
        String::from_utf8_lossy(&out).into_owned()
    };
    let out = tokio::time::timeout(WAIT, io).await.unwrap();
    assert!(
        out.starts_with("HTTP/1.1 431") || out.is_empty(),
        "unexpected answer: {out:?}"
    );
    assert_eq!(srv.renders.load(Ordering::SeqCst), 0);
    srv.shutdown.cancel();
}

#[tokio::test]
async fn a_client_that_never_finishes_its_request_does_not_block_others() {
    let srv = start().await;
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    silent.write_all(b"GET /metr").await.unwrap();
    let (status, _, _) = get(srv.addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    drop(silent);
    srv.shutdown.cancel();
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_disconnected_after_the_read_timeout() {
    let srv = start().await;
    let mut silent = TcpStream::connect(srv.addr).await.unwrap();
    silent.write_all(b"GET /metr").await.unwrap();
    // Paused time auto-advances while the runtime is idle, so the 5 s timeout fires at once.
    let mut out = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(30), silent.read_to_end(&mut out))
        .await
        .expect("server closes the connection")
        .unwrap();
    assert_eq!(n, 0, "no answer to an incomplete request");
    srv.shutdown.cancel();
}

#[tokio::test]
async fn serve_returns_when_shutdown_fires_even_with_a_connection_open() {
    let srv = start().await;
    let _idle = TcpStream::connect(srv.addr).await.unwrap();
    // Let the server accept it before cancelling.
    let (status, _, _) = get(srv.addr, "/healthz").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    srv.shutdown.cancel();
    let result = tokio::time::timeout(WAIT, srv.task).await;
    assert!(result.expect("serve returned in time").unwrap().is_ok());
    // The listener is gone with it.
    let refused = TcpStream::connect(srv.addr).await;
    assert!(refused.is_err(), "listener still accepting after shutdown");
}
