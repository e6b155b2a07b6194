//! The operations HTTP endpoint: `/metrics` for Prometheus, `/healthz` and `/readyz` for
//! supervisors and load balancers.
//!
//! A deliberately tiny HTTP/1.1 responder on tokio: three fixed GET routes, one request per
//! connection (`Connection: close`), bounded request size, a read timeout and a cap on open
//! connections, so a slow or hostile client cannot hold memory or tasks.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Longest request head accepted; our routes need a few hundred bytes.
const MAX_REQUEST_BYTES: usize = 8 * 1024;
/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long writing a response may take before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 64;

/// Liveness and readiness as the daemon sees them; shared with the HTTP task.
#[derive(Debug, Default)]
pub struct Health {
    /// Partitions assigned and their state rebuilt: the instance is routing.
    ready: AtomicBool,
}

impl Health {
    /// Alive, not yet ready.
    pub fn new() -> Self {
        Health::default()
    }

    /// Marks the instance ready (routing) or not (starting, rebuilding, draining).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on `listener` until `shutdown` fires.
///
/// `render_metrics` produces the Prometheus text exposition (e.g. `PrometheusHandle::render`).
/// Accept errors (such as running out of file descriptors) are logged and retried, never fatal;
/// connections still open when `shutdown` fires are dropped.
pub async fn serve(
    listener: TcpListener,
    render_metrics: Arc<dyn Fn() -> String + Send + Sync>,
    health: Arc<Health>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "http endpoint listening");
    }
    loop {
        // Reap finished connection tasks so the set stays small.
        while conns.try_join_next().is_some() {}
        let permit = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break, // the semaphore is never closed; stop rather than spin
            },
        };
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, _peer)) => {
                let render = render_metrics.clone();
                let health = health.clone();
                conns.spawn(async move {
                    if let Err(e) = handle(stream, &*render, &health).await {
                        tracing::debug!(error = %e, "http connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // Usually EMFILE/ENFILE: back off briefly instead of spinning on the error.
                tracing::warn!(error = %e, "http accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    conns.shutdown().await;
    tracing::debug!("http endpoint stopped");
    Ok(())
}

/// What a request asked for, once its head is read.
#[derive(Debug, PartialEq, Eq)]
enum Request {
    Get(String),
    OtherMethod,
    Malformed,
    TooLarge,
}

/// Reads the request head: up to the blank line, at most [`MAX_REQUEST_BYTES`].
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            // Closed before a full head: nothing to answer.
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            return Ok(Some(parse_request_line(&buf)));
        }
        if buf.len() > MAX_REQUEST_BYTES {
            return Ok(Some(Request::TooLarge));
        }
    }
}

fn parse_request_line(head: &[u8]) -> Request {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Request::Malformed;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Request::Malformed;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Request::Malformed;
    }
    if method != "GET" {
        return Request::OtherMethod;
    }
    // Routes take no parameters; ignore any query string.
    let path = target.split('?').next().unwrap_or(target);
    Request::Get(path.to_owned())
}

async fn handle(
    mut stream: TcpStream,
    render_metrics: &(dyn Fn() -> String + Send + Sync),
    health: &Health,
) -> std::io::Result<()> {
    let request = match tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream)).await {
        Ok(r) => r?,
        Err(_) => None, // too slow: close without an answer
    };
    let Some(request) = request else {
        return Ok(());
    };
    let (status, content_type, body) = route(request, render_metrics, health);
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{}Connection: close\r\n\r\n",
        body.len(),
        if status.starts_with("405") { "Allow: GET\r\n" } else { "" },
    );
    let write = async {
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await
    };
    match tokio::time::timeout(WRITE_TIMEOUT, write).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

fn route(
    request: Request,
    render_metrics: &(dyn Fn() -> String + Send + Sync),
    health: &Health,
) -> (&'static str, &'static str, String) {
    match request {
        Request::Get(path) => match path.as_str() {
            "/metrics" => (
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                render_metrics(),
            ),
            "/healthz" => ("200 OK", TEXT, "ok\n".to_owned()),
            "/readyz" if health.is_ready() => ("200 OK", TEXT, "ready\n".to_owned()),
            "/readyz" => ("503 Service Unavailable", TEXT, "not ready\n".to_owned()),
            _ => ("404 Not Found", TEXT, "not found\n".to_owned()),
        },
        Request::OtherMethod => (
            "405 Method Not Allowed",
            TEXT,
            "method not allowed\n".to_owned(),
        ),
        Request::Malformed => ("400 Bad Request", TEXT, "bad request\n".to_owned()),
        Request::TooLarge => (
            "431 Request Header Fields Too Large",
            TEXT,
            "request too large\n".to_owned(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse() {
        let get = |s: &str| parse_request_line(s.as_bytes());
        assert_eq!(
            get("GET /metrics HTTP/1.1\r\n\r\n"),
            Request::Get("/metrics".into())
        );
        assert_eq!(
            get("GET /readyz?x=1 HTTP/1.0\r\n\r\n"),
            Request::Get("/readyz".into())
        );
        assert_eq!(get("POST /metrics HTTP/1.1\r\n\r\n"), Request::OtherMethod);
        assert_eq!(get("GET /metrics\r\n\r\n"), Request::Malformed);
        assert_eq!(get("GET metrics HTTP/1.1\r\n\r\n"), Request::Malformed);
        assert_eq!(get("GET /metrics SPDY/3\r\n\r\n"), Request::Malformed);
        assert_eq!(get("\u{0}\u{1}\r\n\r\n"), Request::Malformed);
    }
}
