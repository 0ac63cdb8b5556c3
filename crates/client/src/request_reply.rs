//! Request-reply over ephemeral pub/sub: [`Client::request`] and [`Responder`].
//!
//! A request is a publish carrying two headers, `reply-to` (a subject of this connection's
//! inbox) and `correlation-id`; a responder publishes its answer to that subject with the
//! same correlation id. Three choices keep abandoned requests from costing anything:
//!
//! - one inbox subscription per connection (`_INBOX.<random>.>`, made on the first
//!   request), not one per request, so the server holds nothing per request;
//! - the waiting request is a oneshot in the connection's routes, removed when the request
//!   ends for any reason (answered, timed out, dropped); a reply that arrives later finds no
//!   entry and is dropped, and since correlation ids are never reused on a connection it
//!   cannot be taken for the answer to another request;
//! - the publish answer says how many subscriptions took the request, so with none the
//!   request fails at once with [`ClientError::NoResponders`] instead of waiting out its
//!   timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::PublishRecordWire;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{ClientError, Result};
use crate::pubsub::{Message, PushRoutes};

/// Header naming the subject a reply goes to.
pub const REPLY_TO: &str = "reply-to";
/// Header pairing a reply with its request.
pub const CORRELATION_ID: &str = "correlation-id";
/// First token of every inbox subject.
pub const INBOX_PREFIX: &str = "_INBOX";
/// Requests a [`Responder`] handles at once; more wait in its subscription's buffer, so a
/// slow handler cannot make the responder spawn without bound.
pub const MAX_CONCURRENT_REPLIES: usize = 256;

/// Removes a waiting request from the routes however the request ends.
struct Waiting<'a> {
    pushes: &'a PushRoutes,
    correlation: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.pushes.forget_reply(self.correlation);
    }
}

impl Client {
    /// Publishes `payload` to `subject` as a request and waits up to `timeout` for the
    /// reply. Fails at once with [`ClientError::NoResponders`] when no subscription took the
    /// request, and with [`ClientError::RequestTimeout`] when no reply came in time.
    pub async fn request(
        &self,
        subject: &str,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message> {
        self.request_record(subject, PublishRecordWire::new(payload), timeout)
            .await
    }

    /// Like [`Client::request`], with a key and headers of the caller's choosing; the
    /// `reply-to` and `correlation-id` headers are replaced.
    pub async fn request_record(
        &self,
        subject: &str,
        mut record: PublishRecordWire,
        timeout: Duration,
    ) -> Result<Message> {
        let attempt = async {
            let prefix = self.inbox().await?;
            let pushes = self.connection().pushes();
            let (correlation, reply) = pushes
                .expect_reply()
                .ok_or_else(|| self.connection().closed())?;
            let _waiting = Waiting {
                pushes,
                correlation,
            };
            record
                .headers
                .retain(|(name, _)| name != REPLY_TO && name != CORRELATION_ID);
            let reply_to = format!("{prefix}.{correlation}");
            record
                .headers
                .push((REPLY_TO.into(), Bytes::from(reply_to)));
            let id = Bytes::from(correlation.to_string());
            record.headers.push((CORRELATION_ID.into(), id));

            let published = self.publish(subject, record).await?;
            if published.subscribers == 0 {
                return Err(ClientError::NoResponders {
                    subject: subject.to_string(),
                });
            }
            reply.await.map_err(|_| self.connection().closed())
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::RequestTimeout {
                subject: subject.to_string(),
                after_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            }),
        }
    }

    /// Requests waiting for a reply on this connection now (0 once all have ended).
    pub fn waiting_requests(&self) -> usize {
        self.connection().pushes().waiting_replies()
    }

    /// Replies dropped on this connection because their request had already ended.
    pub fn late_replies(&self) -> u64 {
        self.connection().pushes().late_replies()
    }

    /// The connection's inbox prefix, subscribing the inbox on first use.
    async fn inbox(&self) -> Result<&str> {
        let pushes = self.connection().pushes();
        let prefix = pushes
            .inbox
            .get_or_try_init(|| async {
                let prefix = format!("{INBOX_PREFIX}.{:016x}", rand::random::<u64>());
                self.subscribe_inbox(&prefix).await?;
                Ok::<_, ClientError>(prefix)
            })
            .await?;
        Ok(prefix.as_str())
    }
}

/// Answers requests on a subject pattern with a handler, until dropped or stopped.
pub struct Responder {
    task: JoinHandle<()>,
    /// Replies published so far.
    answered: Arc<watch::Sender<u64>>,
}

impl Responder {
    /// Subscribes to `pattern` and, for every request that arrives (a message with a
    /// `reply-to` header), publishes what `handler` returns to its `reply-to` subject with
    /// its `correlation-id`. Messages without `reply-to` are ignored. Up to
    /// [`MAX_CONCURRENT_REPLIES`] handlers run at once.
    pub async fn serve<F, Fut>(client: &Client, pattern: &str, handler: F) -> Result<Responder>
    where
        F: Fn(Message) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = PublishRecordWire> + Send + 'static,
    {
        let mut subscription = client.subscribe(pattern, None).await?;
        let handler = Arc::new(handler);
        let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_REPLIES));
        let answered = Arc::new(watch::Sender::new(0u64));
        let (client, counter) = (client.clone(), Arc::clone(&answered));
        let task = tokio::spawn(async move {
            while let Some(request) = subscription.next().await {
                let Some(reply_to) = request.header_str(REPLY_TO).map(str::to_string) else {
                    continue;
                };
                let correlation = request.header(CORRELATION_ID).cloned();
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (client, handler) = (client.clone(), Arc::clone(&handler));
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let mut reply = handler(request).await;
                    reply.headers.retain(|(name, _)| name != CORRELATION_ID);
                    if let Some(correlation) = correlation {
                        reply.headers.push((CORRELATION_ID.into(), correlation));
                    }
                    match client.publish(&reply_to, reply).await {
                        Ok(_) => counter.send_modify(|answered| *answered += 1),
                        Err(err) => tracing::debug!(%reply_to, error = %err, "reply failed"),
                    }
                    drop(slot);
                });
            }
        });
        Ok(Responder { task, answered })
    }

    /// Replies published so far.
    pub fn answered(&self) -> u64 {
        *self.answered.borrow()
    }

    /// Waits until `count` replies have been published.
    pub async fn wait_answered(&self, count: u64) {
        let mut answered = self.answered.subscribe();
        let _ = answered.wait_for(|answered| *answered >= count).await;
    }

    /// Stops answering: unsubscribes; handlers already running finish on their own.
    pub fn stop(self) {
        drop(self);
    }

    /// Waits until the subscription ends (the connection closed).
    pub async fn finished(&mut self) {
        let _ = (&mut self.task).await;
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Responder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Responder")
            .field("answered", &self.answered())
            .finish_non_exhaustive()
    }
}
