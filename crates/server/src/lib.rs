//! The Switchyard server: the native protocol over TCP, on tokio, in front of the broker.
//!
//! - [`server`]: binding, accepting, the connection limit, graceful shutdown.
//! - [`connection`]: one connection's read–answer–write loop and the handshake.
//! - [`handler`]: what each request does, inline or as a waiting task.
//! - [`outbox`]: what a connection sends, written by whoever produced it when the socket is
//!   idle.
//! - [`convert`]: wire types ↔ broker types, broker errors → stable wire codes.
//! - [`queue_handler`], [`queue_convert`]: the queue requests and their wire types.
//! - [`rule_handler`]: event rules (create, list, delete) and trace.
//! - [`subscription_handler`]: durable subscriptions (groups and queues over one topic).
//! - [`pubsub`]: the registry of ephemeral subscriptions, shared by all connections;
//!   [`pubsub_session`]: one connection's subscriptions, their pushes, and publish.
//! - [`config`]: settings from defaults, TOML file, `SWITCHYARD_*` and flags.
//! - [`units`]: human durations and sizes in configuration.

pub mod config;
pub mod connection;
pub mod convert;
pub mod handler;
pub mod outbox;
pub mod pubsub;
pub mod pubsub_session;
pub mod queue_convert;
pub mod queue_handler;
pub mod rule_handler;
pub mod server;
pub mod subscription_handler;
pub mod units;

pub use config::{ConfigError, LogFormat, RawConfig, ServerConfig};
pub use server::{Server, ServerError};
