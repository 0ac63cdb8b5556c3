//! Stopping on a signal: Ctrl-C (SIGINT) or SIGTERM, as `kill`, `timeout` and service
//! managers send, so that a consumer leaves its group (its partitions move on at once) and a
//! server shuts down cleanly whichever way it is stopped.

/// Resolves on Ctrl-C or SIGTERM; says which.
pub async fn stop_requested() -> &'static str {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "Ctrl-C",
        () = term => "SIGTERM",
    }
}
