//! Durable subscription calls on [`Client`]: create, list, delete.
//!
//! A subscription is a named reader of a topic in one of three modes. Once created, a stream
//! or exclusive subscription is read as a consumer group of its name (see
//! [`crate::Consumer`]), and a queue subscription as a queue of its name (see
//! [`Client::receive`]).

use switchyard_protocol::{
    OffsetSpec, QueueConfigWire, Request, Response, SubscriptionModeWire, SubscriptionSummaryWire,
};

use crate::client::Client;
use crate::error::Result;

/// What [`Client::create_subscription`] creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionOptions {
    /// How the subscription hands out records.
    pub mode: SubscriptionModeWire,
    /// Records that do not pass are skipped by the broker.
    pub filter: Option<String>,
    /// Where it starts: earliest, latest, or the first record at or after a time.
    pub start: OffsetSpec,
    /// Queue mode: the queue's settings, `None` fields taking the defaults.
    pub queue: QueueConfigWire,
    /// Partitions of the subscription's own log, for one on patterns or a filtered stream
    /// one; 0 takes the default, 1, which keeps one order over all its records.
    pub partitions: u32,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            mode: SubscriptionModeWire::Stream,
            filter: None,
            start: OffsetSpec::Earliest,
            queue: QueueConfigWire::default(),
            partitions: 0,
        }
    }
}

impl Client {
    /// Creates subscription `name` on `topic`, or on patterns (`a.A,a.*.B`).
    pub async fn create_subscription(
        &self,
        topic: &str,
        name: &str,
        options: SubscriptionOptions,
    ) -> Result<()> {
        let request = Request::CreateSubscription {
            topic: topic.to_string(),
            name: name.to_string(),
            mode: options.mode,
            filter: options.filter,
            start: options.start,
            queue: options.queue,
            partitions: options.partitions,
        };
        self.call_empty(request).await
    }

    /// Every subscription, or those of `topic`, sorted by topic then name.
    pub async fn list_subscriptions(
        &self,
        topic: Option<&str>,
    ) -> Result<Vec<SubscriptionSummaryWire>> {
        let request = Request::ListSubscriptions {
            topic: topic.map(str::to_string),
        };
        match self.connection().call(request).await? {
            Response::Subscriptions(all) => Ok(all),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Deletes subscription `name`; its topic and the other subscriptions stay.
    pub async fn delete_subscription(&self, name: &str) -> Result<()> {
        self.call_empty(Request::DeleteSubscription { name: name.into() })
            .await
    }
}
