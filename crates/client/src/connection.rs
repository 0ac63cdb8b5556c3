//! One TCP connection to a server, shared by any number of concurrent callers.
//!
//! The protocol lets a client pipeline requests and the server answer them in any order, so
//! a connection is two tasks around a table of pending calls rather than a lock around a
//! socket:
//!
//! - callers encode their request, register a oneshot under a fresh request id and put the
//!   frame in the connection's output queue; this is synchronous, so two calls made one after
//!   the other from one task reach the wire in that order (the producer relies on this to
//!   keep batches of a partition in order);
//! - a caller that finds the socket idle writes its frame there and then, with a
//!   non-blocking write, rather than handing it to another task: a hand-over is a wake-up,
//!   and on a busy machine wake-ups are where request latency goes. When the socket is full
//!   the writer task takes over and waits for it to drain; frames queued meanwhile go out
//!   together, so a burst of small requests costs few syscalls;
//! - the reader task cuts frames out of the stream and completes the oneshot whose id the
//!   response carries; a push frame (a message for a subscription) goes to the
//!   subscription's channel instead, see [`crate::pubsub`].
//!
//! When either task sees the socket fail, the connection is marked closed with the reason and
//! every pending call fails with it; calls made afterwards fail at once. There is no
//! reconnect: a [`crate::Client`] user reconnects by building a new client.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use switchyard_protocol::{
    decode_response, encode_request, split_frame, Request, RequestKind, Response, ResponseResult,
    DEFAULT_MAX_FRAME, LENGTH_PREFIX_LEN, PROTOCOL_VERSION,
};
use tokio::io::AsyncReadExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinHandle;

use crate::error::{ClientError, Result};
use crate::pubsub::PushRoutes;

/// Largest response payload accepted. A fetch is capped at [`crate::MAX_FETCH_BYTES`] (16 MiB)
/// and may return one whole batch beyond its soft limit, itself at most one default request
/// frame; twice the default frame covers both.
pub const MAX_RESPONSE_FRAME: u32 = 2 * DEFAULT_MAX_FRAME;

/// Default time allowed for the TCP connect: a local or LAN server answers in milliseconds,
/// and a dead address should fail while a person is still watching.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Default time a request may wait for its response: long enough for a server stalled on a
/// slow fsync, short enough that a hung server does not hang its clients forever.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// An output queue that grew past this (a large produce) gives its memory back once empty.
const KEPT_WRITE_CAPACITY: usize = 1024 * 1024;

/// Initial read buffer; `split_frame` grows it as larger responses arrive.
const READ_BUFFER_BYTES: usize = 64 * 1024;

/// How to open a connection.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Sent in `Hello`; shows up in the server's logs and group descriptions.
    pub client_name: String,
    /// Limit on establishing the TCP connection.
    pub connect_timeout: Duration,
    /// Default limit on waiting for each response.
    pub request_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            client_name: "switchyard-client".into(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

/// What the server said about itself in `HelloOk`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// Protocol version in use on this connection.
    pub version: u16,
    /// Free-form server identification.
    pub server_name: String,
    /// Largest request payload the server accepts.
    pub max_frame: u32,
}

/// A handle to a connection; clones share the socket.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    out: Arc<Output>,
    next_id: AtomicU32,
    request_timeout: Duration,
    server: OnceLock<ServerInfo>,
    tasks: [JoinHandle<()>; 2],
}

/// The part of a connection its two tasks share with the handles.
struct Shared {
    addr: String,
    state: Mutex<State>,
    closed: watch::Sender<bool>,
    /// Where pushes go: subscriptions and requests waiting for replies.
    pushes: PushRoutes,
}

#[derive(Default)]
struct State {
    pending: HashMap<u32, oneshot::Sender<ResponseResult>>,
    /// Why the connection ended; `Some` once it has.
    closed: Option<String>,
}

/// A request on the wire whose response has not been awaited yet.
pub(crate) struct PendingCall {
    inner: Arc<Inner>,
    id: u32,
    kind: RequestKind,
    response: oneshot::Receiver<ResponseResult>,
    timeout: Duration,
}

impl Connection {
    /// Connects to `addr` (`host:port`), sets `TCP_NODELAY` and performs the handshake.
    pub async fn connect(addr: &str, options: &ConnectOptions) -> Result<Connection> {
        let connect = TcpStream::connect(addr);
        let stream = tokio::time::timeout(options.connect_timeout, connect)
            .await
            .map_err(|_| ClientError::ConnectTimeout {
                addr: addr.to_string(),
                after_ms: millis(options.connect_timeout),
            })?
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source: Arc::new(source),
            })?;
        stream.set_nodelay(true).map_err(|source| ClientError::Io {
            addr: addr.to_string(),
            source: Arc::new(source),
        })?;

        let connection = Connection::start(addr, stream, options.request_timeout);
        connection.handshake(&options.client_name).await?;
        Ok(connection)
    }

    /// Spawns the reader and writer tasks around a connected socket.
    fn start(addr: &str, stream: TcpStream, request_timeout: Duration) -> Connection {
        let (read_half, write_half) = stream.into_split();
        let out = Arc::new(Output {
            socket: write_half,
            queue: Mutex::new(OutputQueue::default()),
            work: Notify::new(),
        });
        let shared = Arc::new(Shared {
            addr: addr.to_string(),
            state: Mutex::new(State::default()),
            closed: watch::channel(false).0,
            pushes: PushRoutes::default(),
        });
        let reader = tokio::spawn(read_loop(Arc::clone(&shared), read_half));
        let writer = tokio::spawn(write_loop(Arc::clone(&shared), Arc::clone(&out)));
        Connection {
            inner: Arc::new(Inner {
                shared,
                out,
                next_id: AtomicU32::new(1),
                request_timeout,
                server: OnceLock::new(),
                tasks: [reader, writer],
            }),
        }
    }

    async fn handshake(&self, client_name: &str) -> Result<()> {
        let hello = Request::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client_name: client_name.to_string(),
        };
        let Response::HelloOk {
            version,
            server_name,
            max_frame,
        } = self.call(hello).await?
        else {
            return Err(self.protocol_error("handshake was not answered with HelloOk"));
        };
        if version != PROTOCOL_VERSION {
            return Err(self.protocol_error(format!(
                "server chose protocol version {version}, outside the offered \
                 {PROTOCOL_VERSION}..={PROTOCOL_VERSION}"
            )));
        }
        tracing::debug!(addr = %self.addr(), %server_name, max_frame, "connected");
        let info = ServerInfo {
            version,
            server_name,
            max_frame,
        };
        // The handshake runs once, before the handle is returned, so the cell is empty.
        let _ = self.inner.server.set(info);
        Ok(())
    }

    /// The address this connection was opened to, as given.
    pub fn addr(&self) -> &str {
        &self.inner.shared.addr
    }

    /// What the server announced in the handshake.
    pub fn server_info(&self) -> Option<&ServerInfo> {
        self.inner.server.get()
    }

    /// Largest request payload the server accepts.
    pub fn max_frame(&self) -> u32 {
        self.server_info()
            .map_or(DEFAULT_MAX_FRAME, |info| info.max_frame)
    }

    /// The pub/sub routes of this connection.
    pub(crate) fn pushes(&self) -> &PushRoutes {
        &self.inner.shared.pushes
    }

    /// The error of a call on this connection once it has closed.
    pub(crate) fn closed(&self) -> ClientError {
        let reason = self.closed_reason();
        let reason = reason.unwrap_or_else(|| "the connection was dropped".into());
        self.inner.shared.closed_error(&reason)
    }

    /// Why the connection ended, or `None` while it is open.
    pub fn closed_reason(&self) -> Option<String> {
        self.inner.shared.lock().closed.clone()
    }

    /// Sends `request` and waits for its response, up to the default request timeout.
    pub async fn call(&self, request: Request) -> Result<Response> {
        self.send(request, Duration::ZERO)?.wait().await
    }

    /// Like [`Connection::call`], allowing `extra` time beyond the default timeout (a fetch
    /// that may wait for data adds its `max_wait`).
    pub async fn call_with_extra_time(
        &self,
        request: Request,
        extra: Duration,
    ) -> Result<Response> {
        self.send(request, extra)?.wait().await
    }

    /// Queues `request` on the wire now and returns a handle to await its response. Requests
    /// sent one after another from one task are written in that order.
    pub(crate) fn send(&self, request: Request, extra: Duration) -> Result<PendingCall> {
        let kind = request.kind();

        // Encode first: a request that cannot go on the wire must not take an id.
        let mut frame = BytesMut::new();
        encode_request(0, &request, &mut frame)?;
        let len = frame.len() - LENGTH_PREFIX_LEN;
        let limit = self.max_frame();
        if len > limit as usize {
            return Err(ClientError::FrameTooLarge {
                request: request_name(kind),
                len,
                limit,
            });
        }

        // Register under a fresh id, then patch the id into the already encoded header.
        let (done, response) = oneshot::channel();
        let id = {
            let mut state = self.inner.shared.lock();
            if let Some(reason) = &state.closed {
                return Err(self.inner.shared.closed_error(reason));
            }
            let id = self.fresh_id(&state);
            state.pending.insert(id, done);
            id
        };
        let id_at = LENGTH_PREFIX_LEN + 2;
        frame[id_at..id_at + 4].copy_from_slice(&id.to_be_bytes());
        let call = PendingCall {
            inner: Arc::clone(&self.inner),
            id,
            kind,
            response,
            timeout: self.inner.request_timeout + extra,
        };

        tracing::debug!(addr = %self.addr(), request_id = id, request = request_name(kind), "send");
        if let Err(reason) = self.inner.out.put(frame) {
            self.inner.shared.close(reason.clone());
            return Err(self.inner.shared.closed_error(&reason));
        }
        Ok(call)
    }

    /// An id not in use by any pending call, never 0 (the server's "no request" id).
    fn fresh_id(&self, state: &State) -> u32 {
        loop {
            let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
            if id != 0 && !state.pending.contains_key(&id) {
                return id;
            }
        }
    }

    fn protocol_error(&self, detail: impl Into<String>) -> ClientError {
        ClientError::Protocol {
            addr: self.addr().to_string(),
            detail: detail.into(),
        }
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr())
            .field("server", &self.server_info())
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // No handle and no pending call is left, so nobody can observe the tasks any more.
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl PendingCall {
    /// Waits for the response, turning error statuses into [`ClientError::Server`].
    pub(crate) async fn wait(mut self) -> Result<Response> {
        let shared = &self.inner.shared;
        let outcome = tokio::time::timeout(self.timeout, &mut self.response).await;
        let result = match outcome {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => {
                // The sender was dropped: the connection closed with this call pending.
                let reason = shared.lock().closed.clone();
                let reason = reason.unwrap_or_else(|| "the connection was dropped".into());
                return Err(shared.closed_error(&reason));
            }
            Err(_) => {
                return Err(ClientError::Timeout {
                    addr: shared.addr.clone(),
                    request: request_name(self.kind),
                    after_ms: millis(self.timeout),
                })
            }
        };
        tracing::debug!(addr = %shared.addr, request_id = self.id, ok = result.is_ok(), "response");

        let response = result.map_err(|error| ClientError::Server {
            code: error.code,
            message: error.message,
        })?;
        if !response.answers(self.kind) {
            let detail = format!(
                "a {} request was answered with a {} response",
                request_name(self.kind),
                response.name()
            );
            shared.close(format!("protocol error: {detail}"));
            return Err(ClientError::Protocol {
                addr: shared.addr.clone(),
                detail,
            });
        }
        Ok(response)
    }
}

impl Drop for PendingCall {
    fn drop(&mut self) {
        // A call given up on (timed out, or its future dropped) frees its id.
        self.inner.shared.lock().pending.remove(&self.id);
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock leaves the map consistent, so poisoning is ignored.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn closed_error(&self, reason: &str) -> ClientError {
        ClientError::Closed {
            addr: self.addr.clone(),
            reason: reason.to_string(),
        }
    }

    /// Marks the connection closed (the first reason wins) and fails every pending call.
    fn close(&self, reason: String) {
        let pending = {
            let mut state = self.lock();
            if state.closed.is_none() {
                tracing::debug!(addr = %self.addr, %reason, "connection closed");
                state.closed = Some(reason);
            }
            std::mem::take(&mut state.pending)
        };
        // Dropping the senders wakes every waiter, which then reads the reason.
        drop(pending);
        self.pushes.close();
        self.closed.send_replace(true);
    }

    /// Hands one response payload to its caller; an error means the stream is unusable.
    fn deliver(&self, payload: Bytes) -> std::result::Result<(), String> {
        if switchyard_protocol::is_push(&payload) {
            return self.pushes.route(payload);
        }
        let (id, result) =
            decode_response(payload).map_err(|err| format!("undecodable response: {err}"))?;
        if id == 0 {
            // Id 0 answers no request: the server is reporting a broken connection.
            return Err(match result {
                Err(error) => format!("server reported {}: {}", error.code, error.message),
                Ok(_) => "server sent a success response with request id 0".into(),
            });
        }
        let waiter = self.lock().pending.remove(&id);
        match waiter {
            // The caller may have stopped waiting in the meantime; that is fine.
            Some(waiter) => drop(waiter.send(result)),
            None => tracing::debug!(addr = %self.addr, request_id = id, "late response dropped"),
        }
        Ok(())
    }
}

async fn read_loop(shared: Arc<Shared>, mut socket: OwnedReadHalf) {
    let mut closed = shared.closed.subscribe();
    let mut buf = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let reason = 'read: loop {
        // Hand out every complete response before reading more.
        loop {
            match split_frame(&mut buf, MAX_RESPONSE_FRAME) {
                Ok(Some(payload)) => {
                    if let Err(reason) = shared.deliver(payload) {
                        break 'read format!("protocol error: {reason}");
                    }
                }
                Ok(None) => break,
                Err(err) => break 'read format!("protocol error: bad response frame: {err}"),
            }
        }

        tokio::select! {
            read = socket.read_buf(&mut buf) => match read {
                Ok(0) => break "the server closed the connection".to_string(),
                Ok(_) => {}
                Err(err) => break format!("read failed: {err}"),
            },
            _ = closed.wait_for(|closed| *closed) => return,
        }
    };
    shared.close(reason);
}

/// The writing side of a connection: the socket and the bytes waiting for it.
struct Output {
    socket: OwnedWriteHalf,
    queue: Mutex<OutputQueue>,
    /// Wakes the writer task when it is put in charge.
    work: Notify,
}

#[derive(Default)]
struct OutputQueue {
    /// Bytes not yet written, in order.
    queued: BytesMut,
    /// The socket was full and the writer task is in charge: nobody else writes.
    flushing: bool,
}

impl Output {
    fn lock(&self) -> MutexGuard<'_, OutputQueue> {
        // A panic while holding this lock leaves a byte queue, still usable.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `frame` now if the socket is idle and takes it, else queues it behind what
    /// waits; hands what the socket did not take to the writer task. An error is the reason
    /// the connection is unusable.
    fn put(&self, mut frame: BytesMut) -> std::result::Result<(), String> {
        let mut queue = self.lock();
        if !queue.flushing && queue.queued.is_empty() {
            match self.socket.try_write(&frame) {
                Ok(0) => return Err("write failed: the socket takes no more bytes".into()),
                Ok(written) => frame.advance(written),
                Err(err) if would_block(&err) => {}
                Err(err) => return Err(format!("write failed: {err}")),
            }
            if frame.is_empty() {
                return Ok(());
            }
            queue.queued = frame;
        } else {
            queue.queued.extend_from_slice(&frame);
        }
        if !queue.flushing {
            queue.flushing = true;
            self.work.notify_one();
        }
        Ok(())
    }
}

fn would_block(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
    )
}

/// Writes the queue whenever callers found the socket full, until it is empty again.
async fn write_loop(shared: Arc<Shared>, out: Arc<Output>) {
    let mut closed = shared.closed.subscribe();
    loop {
        tokio::select! {
            () = out.work.notified() => {}
            _ = closed.wait_for(|closed| *closed) => return,
        }
        loop {
            let failed = {
                let mut queue = out.lock();
                let mut failed = None;
                while !queue.queued.is_empty() {
                    match out.socket.try_write(&queue.queued) {
                        Ok(0) => {
                            failed = Some("write failed: the socket takes no more bytes".into());
                            break;
                        }
                        Ok(written) => queue.queued.advance(written),
                        Err(err) if would_block(&err) => break,
                        Err(err) => {
                            failed = Some(format!("write failed: {err}"));
                            break;
                        }
                    }
                }
                if failed.is_none() && queue.queued.is_empty() {
                    queue.flushing = false;
                    if queue.queued.capacity() > KEPT_WRITE_CAPACITY {
                        queue.queued = BytesMut::new();
                    }
                    break;
                }
                failed
            };
            if let Some(reason) = failed {
                shared.close(reason);
                return;
            }
            tokio::select! {
                writable = out.socket.writable() => if let Err(err) = writable {
                    shared.close(format!("write failed: {err}"));
                    return;
                },
                _ = closed.wait_for(|closed| *closed) => return,
            }
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The protocol name of a request kind, for messages and logs.
pub(crate) fn request_name(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Hello => "Hello",
        RequestKind::CreateTopic => "CreateTopic",
        RequestKind::DeleteTopic => "DeleteTopic",
        RequestKind::ListTopics => "ListTopics",
        RequestKind::DescribeTopic => "DescribeTopic",
        RequestKind::AddPartitions => "AddPartitions",
        RequestKind::Produce => "Produce",
        RequestKind::Fetch => "Fetch",
        RequestKind::ListOffsets => "ListOffsets",
        RequestKind::JoinGroup => "JoinGroup",
        RequestKind::Heartbeat => "Heartbeat",
        RequestKind::LeaveGroup => "LeaveGroup",
        RequestKind::CommitOffsets => "CommitOffsets",
        RequestKind::FetchOffsets => "FetchOffsets",
        RequestKind::ListGroups => "ListGroups",
        RequestKind::DescribeGroup => "DescribeGroup",
        RequestKind::DeleteGroup => "DeleteGroup",
        RequestKind::CreateQueue => "CreateQueue",
        RequestKind::DeleteQueue => "DeleteQueue",
        RequestKind::ListQueues => "ListQueues",
        RequestKind::QueueStats => "QueueStats",
        RequestKind::Send => "Send",
        RequestKind::Receive => "Receive",
        RequestKind::Ack => "Ack",
        RequestKind::Nack => "Nack",
        RequestKind::Extend => "Extend",
        RequestKind::Redrive => "Redrive",
        RequestKind::Subscribe => "Subscribe",
        RequestKind::Unsubscribe => "Unsubscribe",
        RequestKind::Publish => "Publish",
        RequestKind::CreateSubscription => "CreateSubscription",
        RequestKind::ListSubscriptions => "ListSubscriptions",
        RequestKind::DeleteSubscription => "DeleteSubscription",
        RequestKind::CreateRule => "CreateRule",
        RequestKind::ListRules => "ListRules",
        RequestKind::DeleteRule => "DeleteRule",
        RequestKind::Trace => "Trace",
        RequestKind::BlobPut => "BlobPut",
        RequestKind::BlobGet => "BlobGet",
        RequestKind::PeekQueue => "PeekQueue",
    }
}
