//! Talking to systemd (`Type=notify`): `READY=1`, `RELOADING=1`,
//! `STOPPING=1` and the watchdog ping. A leaf: the daemon's lifecycle and the
//! scheduler's loop both call it, and it calls nothing of ours. Without
//! systemd (`NOTIFY_SOCKET` unset) every call is a no-op.

use std::time::Duration;

/// Sends states to systemd when it is listening; a no-op otherwise.
pub fn notify(states: &[sd_notify::NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_some()
        && let Err(e) = sd_notify::notify(states)
    {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// The watchdog interval systemd asked for, if any.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
}

/// Tells systemd the scheduler loop is alive.
pub fn notify_watchdog() {
    notify(&[sd_notify::NotifyState::Watchdog]);
}
