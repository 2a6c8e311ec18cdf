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
    // Logs go to stderr: stdout carries line protocol in the default setup.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("EDGEPUSH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
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
