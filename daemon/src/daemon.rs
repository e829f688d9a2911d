//! `certkeeper run`: the daemon's lifecycle.
//!
//! Start-up order matters to systemd: open the store (applying migrations),
//! bind the API, start the scheduler, and only then send `READY=1`. Signals:
//! SIGHUP re-reads and validates the config and swaps it in only if it is
//! valid (the old one keeps running otherwise); SIGTERM/SIGINT send
//! `STOPPING=1`, cancel every task through one [`CancellationToken`], and wait
//! for them up to the shutdown deadline. Without systemd (`NOTIFY_SOCKET`
//! unset) the notifications are no-ops and everything else is the same.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::api;
use crate::config::Config;
use crate::systemd::notify;
use certkeeper_store::Store;

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config_path: PathBuf, config: Config) -> anyhow::Result<()> {
    let store = Store::open(&config.store)
        .await
        .with_context(|| format!("cannot open the store at {}", config.store.url))?;
    tracing::info!(url = %config.store.url, "store open");
    if config.api.token.is_none() && !store.has_users().await.unwrap_or(true) {
        tracing::warn!(
            listen = %config.api.listen,
            "no api.token and no accounts: the API is open, to loopback callers only, until the first account or token exists"
        );
    }

    let vault = certkeeper_store::vault::Vault::for_store(&config.store)
        .context("cannot open the store key (store.key_file)")?;
    let key_source = config.store.key_file.as_ref().map_or_else(
        || "(the default key file, or the systemd credential store-key)".to_owned(),
        |p| p.display().to_string(),
    );
    store.check_vault(&vault, &key_source).await.context(
        "refusing to start: the store key does not match the store (nothing was written)",
    )?;
    let registry = Arc::new(
        crate::renewal::Registry::build(&config, &store, &vault)
            .await
            .context("cannot set up the connectors")?,
    );
    let holder = config
        .scheduler
        .holder
        .clone()
        .unwrap_or_else(default_holder);
    let renewer = crate::renewal::Renewer::new(
        &config,
        store.clone(),
        vault,
        registry.clone(),
        holder.clone(),
    )?;
    renewer
        .load_api_certificates()
        .await
        .context("cannot load managed certificates")?;

    if config.security.restrict_outbound {
        // Names are checked now, resolved: `validate` saw only literals.
        let policy = config.security.url_policy();
        for (key, url) in crate::config::SecurityConfig::outbound_urls(&config) {
            let parsed = policy
                .check_url(&url)
                .map_err(|e| anyhow::anyhow!("{}: {key}: {e}", config_path.display()))?;
            if let Err(e) = policy.resolve_checked(&parsed).await
                && !e.is_transient()
            {
                anyhow::bail!("{}: {key}: {e}", config_path.display());
            }
        }
    }
    let alerts = crate::alerts::Alerts::new(&config, store.clone())?;

    let listen = config.api.listen;
    let tls = match (&config.api.tls_cert, &config.api.tls_key) {
        (Some(cert), Some(key)) => Some(api::tls::server_config(cert, key)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (api.listen)"))?;
    let shutdown_timeout = Duration::from_secs(config.scheduler.shutdown_timeout_seconds);

    crate::scheduler::register_jobs(&store, &config).await;
    let (config_tx, config_rx) = watch::channel(Arc::new(config));
    let cancel = CancellationToken::new();
    let state = api::AppState::new(store.clone(), config_rx.clone()).with_renewer(renewer.clone());
    if let Err(e) = api::requests::resume_approved(&state).await {
        tracing::warn!(error = %e.message(), "cannot resume approved requests");
    }
    let closing = store.clone();
    let app = app(state);
    let server = tokio::spawn(api::serve(listener, tls, app, cancel.clone()));
    let renewals = tokio::spawn(renewer.run(cancel.clone()));
    let alerting = tokio::spawn(alerts.run(cancel.clone()));
    let scheduler = tokio::spawn(crate::scheduler::run(
        store,
        config_rx,
        registry,
        holder.clone(),
        cancel.clone(),
    ));
    tracing::info!(%listen, %holder, "certkeeper is ready");
    notify(&[sd_notify::NotifyState::Ready]);

    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => reload(&config_path, &config_tx, &closing).await,
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }

    tracing::info!("shutting down");
    notify(&[sd_notify::NotifyState::Stopping]);
    cancel.cancel();
    let deadline = shutdown_timeout + Duration::from_secs(5);
    let finished = tokio::time::timeout(deadline, async {
        let _ = server.await;
        let _ = scheduler.await;
        let _ = renewals.await;
        let _ = alerting.await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!("shutdown deadline passed; exiting with tasks still running");
    }
    closing.close(Duration::from_secs(20)).await;
    tracing::info!("stopped");
    Ok(())
}

async fn reload(path: &std::path::Path, config_tx: &watch::Sender<Arc<Config>>, store: &Store) {
    notify(&[sd_notify::NotifyState::Reloading]);
    let loaded = Config::load(path);
    let entry = certkeeper_model::admin::audit_chain::AuditEntry {
        source: Some("SIGHUP".into()),
        outcome: if loaded.is_ok() { "success" } else { "failure" }.into(),
        after: loaded
            .as_ref()
            .err()
            .map(|e| serde_json::json!({ "error": e.to_string() })),
        ..certkeeper_model::admin::audit_chain::AuditEntry::new(
            "system",
            "config_reload",
            Some(path.display().to_string()),
        )
    };
    if let Err(e) = store.append_audit(entry).await {
        tracing::error!(error = %e, "cannot write the audit entry of the reload");
    }
    match loaded {
        Ok(new) => {
            let old = config_tx.borrow().clone();
            if new.api.listen != old.api.listen
                || new.store.url != old.store.url
                || new.api.tls_cert != old.api.tls_cert
            {
                tracing::warn!(
                    "api.listen, api.tls_* and store.* changes take effect on restart, not on reload"
                );
            }
            config_tx.send_replace(Arc::new(new));
            tracing::info!(path = %path.display(), "configuration reloaded");
        }
        Err(e) => {
            tracing::error!(error = %e, "new configuration is invalid; keeping the running one");
        }
    }
    notify(&[sd_notify::NotifyState::Ready]);
}

/// The whole application on one port: the web portal (`/ui`), which calls
/// the API in-process, in front of the API itself.
pub fn app(state: api::AppState) -> axum::Router {
    let api = api::router(state.clone());
    crate::portal::router(state.clone(), api.clone())
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            state,
            api::auth::forwarded_client,
        ))
}

fn default_holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{host}:{}:{suffix}", std::process::id())
}
