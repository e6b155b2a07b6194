//! Service-manager notifications (`sd_notify`): readiness, reload, stop, status and watchdog.
//!
//! [`Notifier::from_env`] reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` once, at start-up. Outside
//! systemd (a terminal, a container, tests) the notifier is inactive and every method does
//! nothing. A failed notification is logged and otherwise ignored: systemd's own timeouts
//! (start, watchdog) already turn a daemon that cannot reach it into a visible failure.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends state changes to the service manager, when there is one.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` was set at start-up.
    active: bool,
    /// The watchdog timeout systemd expects pings within (`WatchdogSec=`), for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads the notification socket and watchdog settings systemd passed in the environment.
    pub fn from_env() -> Self {
        let active = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        Notifier {
            active,
            watchdog: if active {
                // A zero period would make a ping timer spin (or panic in `tokio::time::interval`).
                sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
            } else {
                None
            },
        }
    }

    /// A notifier that never sends anything.
    pub fn inactive() -> Self {
        Notifier::default()
    }

    /// Whether notifications are sent (the process runs under a service manager).
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// `READY=1`: start-up is done (partitions assigned, state rebuilt), or a reload finished.
    pub fn ready(&self) {
        self.send("ready", &[NotifyState::Ready]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC`, as systemd 253+ requires for `Type=notify-reload`;
    /// older managers ignore the extra field. Follow with [`Notifier::ready`] when done.
    pub fn reloading(&self) {
        if !self.active {
            return;
        }
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send("reloading", &[NotifyState::Reloading, now]),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the monotonic clock for RELOADING=1");
                self.send("reloading", &[NotifyState::Reloading]);
            }
        }
    }

    /// `STOPPING=1`: shutdown has begun.
    pub fn stopping(&self) {
        self.send("stopping", &[NotifyState::Stopping]);
    }

    /// `STATUS=…`: one line shown by `systemctl status`. Newlines would end the field early
    /// (the protocol is newline-separated), so they become spaces.
    pub fn status(&self, status: &str) {
        if !self.active {
            return;
        }
        let line = status.replace(['\n', '\r'], " ");
        self.send("status", &[NotifyState::Status(&line)]);
    }

    /// `WATCHDOG=1`: the main loop is alive. Call every [`Notifier::watchdog_interval`].
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send("watchdog", &[NotifyState::Watchdog]);
        }
    }

    /// How often to ping: half of `WATCHDOG_USEC`, as `sd_watchdog_enabled(3)` advises.
    /// `None` when no watchdog is configured for this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    fn send(&self, what: &'static str, states: &[NotifyState<'_>]) {
        if !self.active {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(notification = what, error = %e, "sd_notify failed");
        }
    }
}
