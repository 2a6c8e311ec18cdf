//! `edgepush-receiver`: the native receiver.

use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use edgepush_receiver::dedupe::Seen;
use edgepush_receiver::sink::Retry;
use edgepush_receiver::tenant::Replays;
use edgepush_receiver_native::aggregation::Aggregation;
use edgepush_receiver_native::config::{self, Args};
use edgepush_receiver_native::{App, Forwarder, serve};

#[tokio::main]
async fn main() -> ExitCode {
    if let Err(message) = init_logging() {
        eprintln!("edgepush-receiver: {message}");
        return ExitCode::FAILURE;
    }
    let args = Args::parse();
    let result = async {
        let config = args.config()?;
        let ingest = config.ingest()?;
        let sinks = config::sinks(&config.sink_configs(), Retry::default()).await?;
        let names: Vec<&str> = sinks.iter().map(|s| s.name()).collect();
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let mut forwarder = Forwarder::new(sinks);
        if let Some(dir) = &config.spool_dir {
            forwarder = forwarder
                .spool(dir, config.spool_max_bytes)
                .map_err(|e| format!("cannot open the spool in {}: {e}", dir.display()))?;
        }
        let seen = Seen::new(
            std::time::Duration::from_secs(config.dedupe_seconds),
            config.dedupe_capacity,
        );
        let aggregated = config.aggregated_sinks();
        let aggregation = (!aggregated.is_empty()).then(|| {
            let merging: Vec<&str> = aggregated.iter().map(|&i| names[i]).collect();
            tracing::info!(sinks = ?merging, flush_interval_seconds = config.aggregation.flush_interval_seconds, "merging pushes per series and period");
            let aggregation = Aggregation::new(config.aggregation.clone(), aggregated);
            match &config.spool_dir {
                Some(dir) => aggregation
                    .with_journal(&dir.join("aggregation"), config.spool_max_bytes)
                    .map(Arc::new)
                    .map_err(|e| format!("cannot open the aggregator's journal in {}: {e}", dir.display())),
                None => Ok(Arc::new(aggregation)),
            }
        });
        let aggregation = aggregation.transpose()?;
        let app = Arc::new(App {
            replays: Replays::new(config.replay_capacity),
            aggregation,
            read_timeout: std::time::Duration::from_secs(config.read_timeout_seconds.max(1)),
            max_connections: config.max_connections,
            ..App::new(ingest, forwarder, seen)
        });
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%addr, sinks = ?names, "edgepush receiver listening");
        if config.open() {
            tracing::warn!(%addr, "no api_keys and no tenants: anyone who can reach this address may push");
        }
        serve(listener, app, shutdown())
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("edgepush-receiver: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries line protocol in the default setup):
/// as text, coloured only when stderr is a terminal and `NO_COLOR` is not
/// set (or empty), or one JSON object per line with `EDGEPUSH_LOG_FORMAT=json` (for
/// log collectors). `EDGEPUSH_LOG` filters (`info` by default).
fn init_logging() -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("EDGEPUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match std::env::var("EDGEPUSH_LOG_FORMAT").as_deref() {
        Ok("json") => logs.json().with_current_span(false).init(),
        Ok("text") | Err(std::env::VarError::NotPresent) => {
            let colour = std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            logs.with_ansi(colour).init();
        }
        Ok(other) => {
            return Err(format!(
                "EDGEPUSH_LOG_FORMAT is {other:?}: it must be text or json"
            ));
        }
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err("EDGEPUSH_LOG_FORMAT is not UTF-8: it must be text or json".into());
        }
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return ctrl_c.await.unwrap_or(()),
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
