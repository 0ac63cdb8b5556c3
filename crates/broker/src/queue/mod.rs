//! Queues: competing consumers with leases over a topic's log.
//!
//! A queue is a topic with a `queue` subscription of the same name. The log stores the
//! records; this module keeps, per queue, which records are done and which are ready, leased,
//! waiting or held, and persists every change in a journal beside the topic.
//!
//! - [`config`]: a queue's settings.
//! - [`state`]: the pure state machine of one queue.

pub mod config;
pub mod dedup;
pub mod delay;
pub mod journal;
pub mod service;
pub mod state;

pub use config::{ExpiryAction, Overflow, QueueConfig, RetryPolicy};
