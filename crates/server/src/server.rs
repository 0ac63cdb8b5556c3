//! The TCP server: binds, accepts, limits connections, shuts down cleanly.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use switchyard_broker::{Broker, BrokerError, BrokerOptions, MaintenanceOptions};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::config::ServerConfig;
use crate::connection::{self, ConnectionSettings};

/// How long shutdown waits for open connections to finish their requests before flushing.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}; is another broker already running there?")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the data folder: {0}")]
    Broker(#[from] BrokerError),
    #[error("the broker failed to start: {0}")]
    Startup(String),
}

/// A bound, not yet running server.
pub struct Server {
    listener: TcpListener,
    broker: Broker,
    config: ServerConfig,
    maintenance: Option<JoinHandle<()>>,
}

impl Server {
    /// Opens (and recovers) the data folder and binds the listening socket.
    pub async fn bind(config: ServerConfig) -> Result<Server, ServerError> {
        let mut options = BrokerOptions::new(&config.data_dir);
        options.topic_defaults = config.topic_defaults.clone();
        options.max_blob_bytes = config.max_payload_bytes;
        let opened = tokio::task::spawn_blocking(move || Broker::open(options))
            .await
            .map_err(|err| ServerError::Startup(err.to_string()))?;
        let (broker, recoveries) = opened?;
        let repaired = recoveries
            .iter()
            .filter(|r| r.report.truncated_bytes > 0 || !r.report.problems.is_empty())
            .count();
        tracing::info!(
            data_dir = %config.data_dir.display(),
            partitions = recoveries.len(),
            repaired,
            "data folder opened"
        );
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let maintenance = broker.start_maintenance(MaintenanceOptions {
            retention_check: config.retention_check_interval,
        });
        Ok(Server {
            listener,
            broker,
            config,
            maintenance: Some(maintenance),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.config.listen)
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Serves until `shutdown` completes; then stops accepting, lets open requests finish
    /// for up to [`SHUTDOWN_GRACE`], and flushes and fsyncs all data.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        tracing::info!(addr = %self.local_addr(), "listening for the native protocol");
        let limit = self.config.max_connections as usize;
        let slots = Arc::new(Semaphore::new(limit));
        let (stop_tx, stop_rx) = watch::channel(false);
        let settings = ConnectionSettings {
            max_frame: self.config.max_frame_bytes,
        };
        let registry = Arc::new(crate::pubsub::Registry::new());
        tokio::pin!(shutdown);
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                tracing::warn!(%peer, limit, "connection limit reached; refusing connection");
                drop(stream);
                continue;
            };
            tracing::debug!(%peer, "connection accepted");
            let broker = self.broker.clone();
            let stop = stop_rx.clone();
            let registry = Arc::clone(&registry);
            tokio::spawn(async move {
                connection::serve(stream, peer, broker, settings, registry, stop).await;
                drop(slot);
            });
        }

        tracing::info!("shutting down: no longer accepting connections");
        drop(self.listener);
        let _ = stop_tx.send(true);
        self.broker.begin_shutdown();
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, slots.acquire_many(limit as u32)).await;
        if drained.is_err() {
            tracing::warn!("some connections were still busy after the grace period");
        }
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.shutdown())
            .await
            .map_err(|err| ServerError::Startup(err.to_string()))??;
        if let Some(maintenance) = self.maintenance.take() {
            let _ = maintenance.join();
        }
        tracing::info!("shutdown complete");
        Ok(())
    }
}
