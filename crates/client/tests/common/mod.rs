//! Shared test harness: a real server in-process on 127.0.0.1 port 0 over a temporary data
//! folder, and a helper to wait for a condition instead of sleeping.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use switchyard_client::{Client, RecordBuf};
use switchyard_server::{RawConfig, Server, ServerConfig};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server and what it needs to stay alive.
pub struct TestServer {
    pub addr: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    _data: TempDir,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let data = tempfile::tempdir().expect("temporary data folder");
        let raw = RawConfig {
            data_dir: data.path().display().to_string(),
            listen: "127.0.0.1:0".into(),
            ..RawConfig::default()
        };
        let config = ServerConfig::from_raw(&raw).expect("valid test config");
        let server = Server::bind(config).await.expect("server binds");
        let addr = server.local_addr().to_string();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            server.run(shutdown).await.expect("server runs");
        });
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
            _data: data,
        }
    }

    pub async fn client(&self) -> Client {
        Client::connect(&self.addr).await.expect("client connects")
    }

    /// Shuts the server down and waits until it has stopped.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task ends");
        }
    }
}

/// A limit on waiting for a condition; loops check it on every round instead of sleeping.
pub struct Deadline {
    what: &'static str,
    at: Instant,
}

impl Deadline {
    pub fn after(limit: Duration, what: &'static str) -> Deadline {
        Deadline {
            what,
            at: Instant::now() + limit,
        }
    }

    /// Fails the test once the deadline has passed.
    pub fn check(&self) {
        assert!(
            Instant::now() < self.at,
            "timed out waiting for {}",
            self.what
        );
    }

    /// Checks, then pauses briefly: for loops whose condition does not wait by itself.
    pub async fn tick(&self) {
        self.check();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

pub fn record(key: &str, value: &str) -> RecordBuf {
    RecordBuf::new(Some(key.as_bytes()), value.as_bytes())
}

pub fn text(bytes: &Option<bytes::Bytes>) -> String {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned()
}
