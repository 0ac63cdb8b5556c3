//! Ephemeral pub/sub on [`Client`]: [`Client::subscribe`], [`Client::publish`], and the
//! routing of the server's push frames to [`Subscription`]s.
//!
//! Pushes arrive on the connection's one reader task, among the responses. The reader must
//! never wait on a subscriber (a subscription nobody reads would stall every call on the
//! connection), so each subscription has a bounded channel of its own and the reader only
//! `try_send`s into it. What does not fit is dropped and counted here, just as the server
//! drops and counts what does not fit its buffer; [`Subscription::dropped`] and
//! [`Message::dropped`] add the two, so `received + dropped` accounts for every record
//! published to the subscription while it was open.
//!
//! A route is registered before `Subscribe` is sent, since the server may push a message
//! before its answer to the subscribe arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{decode_push, PartitionOffset, PublishRecordWire, Request, Response};
use tokio::sync::{mpsc, oneshot};

use crate::client::Client;
use crate::connection::Connection;
use crate::error::Result;

/// Records a subscription buffers on each side (server and client) unless told otherwise:
/// the server's default, a second of a busy subject.
pub const DEFAULT_BUFFER_RECORDS: u32 = 10_000;

/// One published record as a subscriber receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published to.
    pub subject: String,
    /// When the server received it, ms since the Unix epoch.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Bytes>,
    /// Payload.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Bytes)>,
    /// Records dropped for this subscription, by the server and the client, as of this
    /// message's arrival.
    pub dropped: u64,
}

impl Message {
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&Bytes> {
        (self.headers.iter())
            .find(|(header, _)| header == name)
            .map(|(_, value)| value)
    }

    /// A header as text, when it is UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|value| std::str::from_utf8(value).ok())
    }
}

/// How to subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Filter on key and headers (see `switchyard_broker::route::Filter`); `None` takes all.
    pub filter: Option<String>,
    /// Records buffered by the server and by the client before they drop.
    pub buffer_records: u32,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            filter: None,
            buffer_records: DEFAULT_BUFFER_RECORDS,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// Subscriptions that took at least one of the records; 0 means nobody was listening.
    pub subscribers: u32,
    /// Where the records went when a topic has the subject's name: the partition and the
    /// offset of the first.
    pub stored: Option<PartitionOffset>,
}

/// Drops of one subscription, on both sides.
#[derive(Debug, Default)]
struct DropCounts {
    /// The highest cumulative count the server has reported.
    server: AtomicU64,
    /// Messages the client's buffer had no room for.
    client: AtomicU64,
}

impl DropCounts {
    fn total(&self) -> u64 {
        self.server.load(Ordering::Acquire) + self.client.load(Ordering::Acquire)
    }
}

/// Where the reader sends a subscription's pushes.
enum Route {
    Channel {
        sender: mpsc::Sender<Message>,
        drops: Arc<DropCounts>,
    },
    /// The connection's request inbox: replies go to their waiting requests.
    Inbox,
}

#[derive(Default)]
struct Routes {
    by_id: HashMap<u32, Route>,
    /// Requests waiting for a reply, by correlation id.
    replies: HashMap<u64, oneshot::Sender<Message>>,
    closed: bool,
}

/// The pub/sub state of a connection, kept with the connection so the reader can use it.
#[derive(Default)]
pub(crate) struct PushRoutes {
    routes: Mutex<Routes>,
    next_id: AtomicU32,
    /// Replies that arrived after their request had given up; dropped.
    late_replies: AtomicU64,
    /// The inbox prefix (`_INBOX.<random>`), once the inbox is subscribed.
    pub(crate) inbox: tokio::sync::OnceCell<String>,
    next_correlation: AtomicU64,
}

impl PushRoutes {
    fn lock(&self) -> MutexGuard<'_, Routes> {
        // The maps stay consistent through a panic, so poisoning is ignored.
        self.routes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Hands one push payload to its subscription; an error means the stream is unusable.
    pub(crate) fn route(&self, payload: Bytes) -> std::result::Result<(), String> {
        let push = decode_push(payload).map_err(|err| format!("undecodable push: {err}"))?;
        let mut routes = self.lock();
        let routes = &mut *routes;
        match routes.by_id.get(&push.subscription_id) {
            Some(Route::Channel { sender, drops }) => {
                drops.server.fetch_max(push.dropped_total, Ordering::AcqRel);
                for wire in push.messages {
                    let message = Message {
                        subject: wire.subject,
                        timestamp: wire.timestamp,
                        key: wire.key,
                        value: wire.value,
                        headers: wire.headers,
                        dropped: drops.total(),
                    };
                    if sender.try_send(message).is_err() {
                        drops.client.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
            Some(Route::Inbox) => {
                for wire in push.messages {
                    let message = Message {
                        subject: wire.subject,
                        timestamp: wire.timestamp,
                        key: wire.key,
                        value: wire.value,
                        headers: wire.headers,
                        dropped: push.dropped_total,
                    };
                    let waiter = correlation_of(&message).and_then(|id| routes.replies.remove(&id));
                    match waiter {
                        Some(waiter) => drop(waiter.send(message)),
                        None => drop(self.late_replies.fetch_add(1, Ordering::Relaxed)),
                    }
                }
            }
            // Unsubscribed a moment ago; what was still on the way is not wanted.
            None => {}
        }
        Ok(())
    }

    /// Ends every subscription (their streams end) and fails every waiting request.
    pub(crate) fn close(&self) {
        let mut routes = self.lock();
        routes.closed = true;
        routes.by_id.clear();
        routes.replies.clear();
    }

    /// A subscription id not in use on this connection.
    fn fresh_id(&self, routes: &Routes) -> u32 {
        loop {
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            if !routes.by_id.contains_key(&id) {
                return id;
            }
        }
    }

    /// Registers a route under a fresh id; `None` once the connection is closed.
    fn add(&self, make: impl FnOnce() -> Route) -> Option<u32> {
        let mut routes = self.lock();
        if routes.closed {
            return None;
        }
        let id = self.fresh_id(&routes);
        routes.by_id.insert(id, make());
        Some(id)
    }

    fn remove(&self, id: u32) {
        self.lock().by_id.remove(&id);
    }

    /// Registers a request waiting for its reply; returns its correlation id.
    pub(crate) fn expect_reply(&self) -> Option<(u64, oneshot::Receiver<Message>)> {
        let (sender, receiver) = oneshot::channel();
        let id = self.next_correlation.fetch_add(1, Ordering::Relaxed);
        let mut routes = self.lock();
        if routes.closed {
            return None;
        }
        routes.replies.insert(id, sender);
        Some((id, receiver))
    }

    /// Forgets a request that stopped waiting; its reply, if one comes, is dropped.
    pub(crate) fn forget_reply(&self, correlation: u64) {
        self.lock().replies.remove(&correlation);
    }

    /// Requests waiting for a reply now.
    pub(crate) fn waiting_replies(&self) -> usize {
        self.lock().replies.len()
    }

    /// Replies dropped because their request had stopped waiting.
    pub(crate) fn late_replies(&self) -> u64 {
        self.late_replies.load(Ordering::Relaxed)
    }
}

/// The correlation id a reply carries, if it is one of ours (a decimal number).
fn correlation_of(message: &Message) -> Option<u64> {
    message
        .header_str(crate::request_reply::CORRELATION_ID)?
        .parse()
        .ok()
}

/// An open subscription: the messages published to matching subjects since it began.
///
/// Dropping it unsubscribes (without waiting for the server's answer).
pub struct Subscription {
    id: u32,
    pattern: String,
    messages: mpsc::Receiver<Message>,
    drops: Arc<DropCounts>,
    connection: Connection,
    open: bool,
}

impl Subscription {
    /// The next message; `None` once the connection has closed. A claim-check reference
    /// is resolved (see `blobs`); cancelled while it downloads, the message is lost.
    pub async fn next(&mut self) -> Option<Message> {
        let message = self.messages.recv().await?;
        Some(crate::blobs::resolve_pushed(&self.connection, message).await)
    }

    /// The next message if one is already here, as pushed: a claim-check reference stays.
    pub fn try_next(&mut self) -> Option<Message> {
        self.messages.try_recv().ok()
    }

    /// The next message, waiting at most `timeout` for it (not for its blob).
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Message> {
        let message = tokio::time::timeout(timeout, self.messages.recv()).await;
        Some(crate::blobs::resolve_pushed(&self.connection, message.ok().flatten()?).await)
    }

    /// Records dropped for this subscription so far, by the server and by the client.
    pub fn dropped(&self) -> u64 {
        self.drops.total()
    }

    /// The pattern subscribed to.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Ends the subscription and waits for the server to confirm.
    pub async fn unsubscribe(mut self) -> Result<()> {
        self.open = false;
        self.connection.pushes().remove(self.id);
        let request = Request::Unsubscribe {
            subscription_id: self.id,
        };
        self.connection.call(request).await.map(|_| ())
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("pattern", &self.pattern)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.open {
            return;
        }
        self.connection.pushes().remove(self.id);
        // Fire and forget: the answer is dropped as a late response.
        let request = Request::Unsubscribe {
            subscription_id: self.id,
        };
        let _ = self.connection.send(request, Duration::ZERO);
    }
}

impl Client {
    /// Subscribes to `pattern` (`*` one token, a final `>` the rest; or several patterns,
    /// comma-separated, each record arriving once), optionally through a filter on key and
    /// headers, with the default buffers.
    pub async fn subscribe(&self, pattern: &str, filter: Option<&str>) -> Result<Subscription> {
        let options = SubscribeOptions {
            filter: filter.map(str::to_string),
            ..SubscribeOptions::default()
        };
        self.subscribe_with(pattern, options).await
    }

    /// Subscribes with the given options.
    pub async fn subscribe_with(
        &self,
        pattern: &str,
        options: SubscribeOptions,
    ) -> Result<Subscription> {
        let capacity = options.buffer_records.max(1) as usize;
        let (sender, messages) = mpsc::channel(capacity);
        let drops = Arc::new(DropCounts::default());
        let route_drops = Arc::clone(&drops);
        let pushes = self.connection().pushes();
        let Some(id) = pushes.add(|| Route::Channel {
            sender,
            drops: route_drops,
        }) else {
            return Err(self.connection().closed());
        };
        let request = Request::Subscribe {
            subscription_id: id,
            pattern: pattern.to_string(),
            filter: options.filter,
            buffer_records: options.buffer_records,
        };
        if let Err(err) = self.call_empty(request).await {
            pushes.remove(id);
            return Err(err);
        }
        Ok(Subscription {
            id,
            pattern: pattern.to_string(),
            messages,
            drops,
            connection: self.connection().clone(),
            open: true,
        })
    }

    /// Subscribes the connection's request inbox, `<prefix>.>`; replies are routed to their
    /// requests by correlation id.
    pub(crate) async fn subscribe_inbox(&self, prefix: &str) -> Result<()> {
        let pushes = self.connection().pushes();
        let Some(id) = pushes.add(|| Route::Inbox) else {
            return Err(self.connection().closed());
        };
        let request = Request::Subscribe {
            subscription_id: id,
            pattern: format!("{prefix}.>"),
            filter: None,
            buffer_records: DEFAULT_BUFFER_RECORDS,
        };
        let subscribed = self.call_empty(request).await;
        if subscribed.is_err() {
            pushes.remove(id);
        }
        subscribed
    }

    /// Publishes one record to `subject`.
    pub async fn publish(&self, subject: &str, record: PublishRecordWire) -> Result<Published> {
        self.publish_many(subject, vec![record]).await
    }

    /// Publishes records to `subject`, delivered in order to each matching subscription.
    pub async fn publish_many(
        &self,
        subject: &str,
        records: Vec<PublishRecordWire>,
    ) -> Result<Published> {
        let request = Request::Publish {
            subject: subject.to_string(),
            records,
        };
        match self.connection().call(request).await? {
            Response::Published {
                subscribers,
                stored,
            } => Ok(Published {
                subscribers,
                stored,
            }),
            other => Err(self.unexpected(&other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use switchyard_protocol::{encode_push, split_frame, MessageWire, Push, DEFAULT_MAX_FRAME};

    use super::*;
    use crate::request_reply::CORRELATION_ID;

    fn push(subscription_id: u32, dropped_total: u64, headers: &[(&str, &str)]) -> Bytes {
        let message = MessageWire {
            subject: "s".into(),
            timestamp: 1,
            key: None,
            value: Some(Bytes::from_static(b"v")),
            headers: (headers.iter())
                .map(|(name, value)| (name.to_string(), Bytes::from(value.to_string())))
                .collect(),
        };
        let push = Push {
            subscription_id,
            dropped_total,
            messages: vec![message.clone(), message.clone(), message],
        };
        let mut buf = BytesMut::new();
        encode_push(&push, &mut buf).expect("encodes");
        split_frame(&mut buf, DEFAULT_MAX_FRAME)
            .expect("valid")
            .expect("complete")
    }

    #[test]
    fn a_full_client_buffer_drops_and_adds_to_the_servers_count() {
        let routes = PushRoutes::default();
        let (sender, mut receiver) = mpsc::channel(2);
        let drops = Arc::new(DropCounts::default());
        let route_drops = Arc::clone(&drops);
        let id = routes
            .add(|| Route::Channel {
                sender,
                drops: route_drops,
            })
            .expect("open");
        routes.route(push(id, 5, &[])).expect("routed");
        let first = receiver.try_recv().expect("first message");
        assert_eq!(first.dropped, 5, "the server's count");
        assert_eq!(receiver.try_recv().expect("second").dropped, 5);
        assert!(receiver.try_recv().is_err(), "the third did not fit");
        assert_eq!(drops.total(), 6);
        routes
            .route(push(99, 0, &[]))
            .expect("unknown ids are ignored");
    }

    #[test]
    fn replies_go_to_their_request_and_late_ones_to_nobody() {
        let routes = PushRoutes::default();
        let id = routes.add(|| Route::Inbox).expect("open");
        let (correlation, mut reply) = routes.expect_reply().expect("open");
        let other = routes.expect_reply().expect("open");
        let header = [(CORRELATION_ID, correlation.to_string())];
        let header: Vec<(&str, &str)> = header.iter().map(|(n, v)| (*n, v.as_str())).collect();
        routes.route(push(id, 0, &header)).expect("routed");
        assert!(reply.try_recv().is_ok(), "answered");
        assert_eq!(
            routes.late_replies(),
            2,
            "the copies found no request waiting"
        );
        assert_eq!(routes.waiting_replies(), 1, "the other request still waits");
        routes.forget_reply(other.0);
        assert_eq!(routes.waiting_replies(), 0);
        routes.close();
        assert!(routes.expect_reply().is_none(), "closed");
    }
}
