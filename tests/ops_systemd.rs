//! sd_notify messages received on a real unix datagram socket posing as systemd's
//! NOTIFY_SOCKET. The environment is process-wide, so these tests take one lock.

use std::os::unix::net::UnixDatagram;
use std::sync::Mutex;
use std::time::Duration;

use omniroute::systemd::Notifier;

static ENV: Mutex<()> = Mutex::new(());

struct FakeSystemd {
    sock: UnixDatagram,
    _dir: tempfile::TempDir,
}

impl FakeSystemd {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        std::env::set_var("NOTIFY_SOCKET", &path);
        FakeSystemd { sock, _dir: dir }
    }

    fn recv(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.sock.recv(&mut buf).expect("a notification");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    fn nothing_pending(&self) -> bool {
        self.sock.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        let r = self.sock.recv(&mut buf);
        self.sock.set_nonblocking(false).unwrap();
        matches!(r, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn clear_env() {
    for k in ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"] {
        std::env::remove_var(k);
    }
}

fn lock() -> std::sync::MutexGuard<'static, ()> {
    let g = ENV.lock().unwrap_or_else(|p| p.into_inner());
    clear_env();
    g
}

#[test]
fn lifecycle_messages_reach_the_socket() {
    let _g = lock();
    let systemd = FakeSystemd::new();
    let n = Notifier::from_env();
    assert!(n.is_active());

    n.ready();
    assert_eq!(systemd.recv(), "READY=1\n");

    n.status("routing: 1200 records/s, 3 partitions");
    assert_eq!(
        systemd.recv(),
        "STATUS=routing: 1200 records/s, 3 partitions\n"
    );

    n.reloading();
    let msg = systemd.recv();
    let lines: Vec<&str> = msg.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{msg}");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .expect("MONOTONIC_USEC follows RELOADING")
        .parse()
        .unwrap();
    assert!(usec > 0);

    n.stopping();
    assert_eq!(systemd.recv(), "STOPPING=1\n");
    clear_env();
}

#[test]
fn status_cannot_inject_other_fields() {
    let _g = lock();
    let systemd = FakeSystemd::new();
    let n = Notifier::from_env();
    n.status("ok\nREADY=1");
    assert_eq!(systemd.recv(), "STATUS=ok READY=1\n");
    clear_env();
}

#[test]
fn watchdog_pings_only_when_configured_and_interval_is_half() {
    let _g = lock();
    let systemd = FakeSystemd::new();
    let n = Notifier::from_env();
    assert_eq!(n.watchdog_interval(), None);
    n.watchdog();
    assert!(systemd.nothing_pending(), "no watchdog configured, no ping");

    std::env::set_var("WATCHDOG_USEC", "30000000");
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    let n = Notifier::from_env();
    assert_eq!(n.watchdog_interval(), Some(Duration::from_secs(15)));
    n.watchdog();
    assert_eq!(systemd.recv(), "WATCHDOG=1\n");

    // A watchdog meant for another process (e.g. our parent) is not ours to feed.
    std::env::set_var("WATCHDOG_PID", "1");
    assert_eq!(Notifier::from_env().watchdog_interval(), None);

    // Zero would make a ping timer spin; treat it as no watchdog.
    std::env::set_var("WATCHDOG_USEC", "0");
    std::env::remove_var("WATCHDOG_PID");
    assert_eq!(Notifier::from_env().watchdog_interval(), None);
    clear_env();
}

#[test]
fn without_notify_socket_everything_is_a_no_op() {
    let _g = lock();
    std::env::set_var("WATCHDOG_USEC", "30000000");
    let n = Notifier::from_env();
    assert!(!n.is_active());
    assert_eq!(n.watchdog_interval(), None);
    n.ready();
    n.reloading();
    n.status("x");
    n.watchdog();
    n.stopping();
    assert!(!Notifier::inactive().is_active());
    clear_env();
}

#[test]
fn an_unreachable_socket_is_not_fatal() {
    let _g = lock();
    let dir = tempfile::tempdir().unwrap();
    std::env::set_var("NOTIFY_SOCKET", dir.path().join("gone"));
    let n = Notifier::from_env();
    assert!(n.is_active());
    // Each send fails (no such socket); the notifier logs and carries on.
    n.ready();
    n.status("still running");
    n.stopping();
    clear_env();
}
