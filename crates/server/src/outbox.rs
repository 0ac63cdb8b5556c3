//! Everything a connection sends: responses and pushes, in one ordered byte queue.
//!
//! Why not a writer task fed by a channel: every hand-over between tasks is a wake-up, and on
//! a busy machine a wake-up is where the tail latency goes (a thread has to be scheduled
//! before the bytes move). So whoever produces bytes for an idle socket writes them there and
//! then, with a non-blocking `try_write`: the connection's reader for its responses, and a
//! *publisher's* reader for the pushes of the subscriptions its records reached (as NATS's
//! server does). Only when the socket is full, or a publisher finds a backlog of pushes to
//! write (a busy stream, better encoded on another worker), does a flusher task take over;
//! until it is done, producers append to the queue behind it.
//!
//! A subscription's records are not copied into the queue when published: they wait in the
//! subscription's bounded buffer (see [`crate::pubsub`]) and the publisher rings this outbox,
//! which moves them into the queue, up to [`PUSH_FRAME_BYTES`] per push frame, only while
//! fewer than [`PUSH_QUEUE_BYTES`] are waiting. A stalled subscriber therefore costs its
//! buffers plus that much, whatever is published, and publishers never wait: what does not
//! fit stays in the buffer, where the overflow is dropped and counted.
//!
//! Responses do wait: a response is queued only while fewer than [`RESPONSE_QUEUE_BYTES`] are
//! waiting, so a client that does not read its answers stops its connection's reader
//! (backpressure) instead of growing the queue.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use parking_lot::{Mutex, MutexGuard};
use switchyard_protocol::{encode_push_of, MessageWire};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::pubsub::{Doorbell, Outlet, Published};

/// A push frame holds about this many bytes of messages: enough to amortise the frame and
/// the syscall over hundreds of small records, small enough to interleave subscriptions
/// fairly.
pub const PUSH_FRAME_BYTES: usize = 64 * 1024;
/// Pushes are moved into the queue only while fewer bytes than this wait in it: enough to
/// keep a socket busy while more are encoded, little enough that a stalled subscriber pins
/// little memory.
pub const PUSH_QUEUE_BYTES: usize = 256 * 1024;
/// Responses are queued only while fewer bytes than this wait (one large fetch response may
/// exceed it on its own).
pub const RESPONSE_QUEUE_BYTES: usize = 4 * 1024 * 1024;
/// Rounds of encode-then-write a producer does on an idle socket before it leaves the rest to
/// the flusher, so that a reader is not kept writing a connection's backlog for long.
const DIRECT_ROUNDS: usize = 4;
/// A publisher writes a subscriber's pushes itself only while they come to no more than
/// this: the few records a latency-sensitive subscriber gets at a time. A larger backlog goes
/// to the flusher, which then encodes and writes on another worker while the publisher's
/// reader goes on decoding, so a busy stream uses both cores.
const RING_DIRECT_BYTES: usize = 16 * 1024;
/// A queue that grew past this (a large response) gives its memory back once empty.
const KEPT_CAPACITY: usize = 1024 * 1024;

/// What one non-blocking write did.
enum Written {
    Some(usize),
    /// The socket takes nothing now.
    Full,
    /// The socket is broken.
    Failed,
}

/// One subscription's records on their way to this connection.
struct Feed {
    outlet: Outlet,
    /// The drop count last sent.
    reported: u64,
    /// In `ready` already.
    scheduled: bool,
}

struct State {
    /// Bytes not yet written, in order.
    queued: BytesMut,
    /// The flusher is in charge: the socket was full, and nobody else writes until it is
    /// done.
    flushing: bool,
    /// The socket failed or the connection is over; nothing more is written.
    closed: bool,
    /// Subscriptions with records or a drop to report, oldest first.
    ready: VecDeque<u32>,
    feeds: HashMap<u32, Feed>,
}

/// The outgoing side of one connection.
pub struct Outbox {
    socket: OwnedWriteHalf,
    state: Mutex<State>,
    /// Wakes the flusher when it is put in charge.
    work: Notify,
    /// Wakes responses waiting for room, and `finish` waiting for the queue to empty.
    room: Notify,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").finish_non_exhaustive()
    }
}

impl Outbox {
    /// An outbox writing to `socket`, and its flusher task.
    pub fn start(socket: OwnedWriteHalf) -> Arc<Outbox> {
        let outbox = Arc::new(Outbox {
            socket,
            state: Mutex::new(State {
                queued: BytesMut::new(),
                flushing: false,
                closed: false,
                ready: VecDeque::new(),
                feeds: HashMap::new(),
            }),
            work: Notify::new(),
            room: Notify::new(),
        });
        tokio::spawn(flusher(Arc::clone(&outbox)));
        outbox
    }

    /// Queues one encoded frame, writing it at once when the socket is idle; waits while
    /// the queue is over [`RESPONSE_QUEUE_BYTES`]. A closed connection takes it silently: the
    /// peer is gone and there is no one to tell.
    pub async fn send(&self, frame: BytesMut) {
        self.put(frame, true).await;
    }

    /// Like [`Outbox::send`], but leaves the frame queued until [`Outbox::flush`] (or until
    /// the queue is full): a reader answering several requests of one read sends the answers
    /// with one write.
    pub async fn queue(&self, frame: BytesMut) {
        self.put(frame, false).await;
    }

    /// Writes what [`Outbox::queue`] left queued, if the socket is idle.
    pub fn flush(&self) {
        self.write_now(&mut self.state.lock());
    }

    async fn put(&self, mut frame: BytesMut, now: bool) {
        if frame.is_empty() {
            return;
        }
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            {
                let mut state = self.state.lock();
                if state.closed {
                    return;
                }
                if state.queued.len() < RESPONSE_QUEUE_BYTES {
                    if state.queued.is_empty() && !state.flushing && now {
                        // Nothing ahead of it: write straight from the frame, keep the rest.
                        match self.write_some(&frame) {
                            Written::Some(written) => frame.advance(written),
                            Written::Full => {}
                            Written::Failed => return self.close(&mut state),
                        }
                        if frame.is_empty() {
                            return;
                        }
                    }
                    if state.queued.is_empty() {
                        state.queued = frame;
                    } else {
                        state.queued.extend_from_slice(&frame);
                    }
                    if now {
                        self.write_now(&mut state);
                    }
                    return;
                }
                room.as_mut().enable();
                // Full: make sure someone is writing it down before waiting.
                self.write_now(&mut state);
            }
            room.await;
        }
    }

    /// Starts sending the records of subscription `id` as they come into `outlet`.
    pub fn attach(&self, id: u32, outlet: Outlet) {
        let mut state = self.state.lock();
        let feed = Feed {
            outlet,
            reported: 0,
            scheduled: false,
        };
        state.feeds.insert(id, feed);
        // Records published between registering and now were rung for nobody.
        self.schedule(&mut state, id);
        self.write_now(&mut state);
    }

    /// Stops sending subscription `id`; what its buffer still holds is discarded.
    pub fn detach(&self, id: u32) {
        self.state.lock().feeds.remove(&id);
    }

    /// Sends what is queued, then closes: nothing is queued or written afterwards. The
    /// socket's write side shuts down once the last handle on the outbox is gone.
    pub async fn finish(&self) {
        loop {
            let room = self.room.notified();
            tokio::pin!(room);
            {
                let mut state = self.state.lock();
                state.feeds.clear();
                state.ready.clear();
                if state.closed || state.queued.is_empty() {
                    state.closed = true;
                    drop(state);
                    self.work.notify_one();
                    return;
                }
                room.as_mut().enable();
                if !state.flushing {
                    self.write_now(&mut state);
                }
            }
            room.await;
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock()
    }

    fn schedule(&self, state: &mut State, id: u32) {
        if let Some(feed) = state.feeds.get_mut(&id) {
            if !feed.scheduled {
                feed.scheduled = true;
                state.ready.push_back(id);
            }
        }
    }

    /// Writes what is queued, and pushes moved in meanwhile, for a few rounds while the
    /// socket takes it; leaves any rest to the flusher. Does nothing while the flusher is in
    /// charge.
    fn write_now(&self, state: &mut State) {
        if state.flushing || state.closed {
            return;
        }
        for _ in 0..DIRECT_ROUNDS {
            fill(state);
            if state.queued.is_empty() {
                self.emptied(state);
                return;
            }
            match self.write_queued(state) {
                Some(true) => continue,
                Some(false) => break,
                None => return,
            }
        }
        if !state.queued.is_empty() || !state.ready.is_empty() {
            state.flushing = true;
            self.work.notify_one();
        }
    }

    /// Writes from the queue until it is empty or the socket full: `Some(true)` when it
    /// emptied, `Some(false)` when the socket is full, `None` when the socket failed (the
    /// outbox is then closed).
    fn write_queued(&self, state: &mut State) -> Option<bool> {
        while !state.queued.is_empty() {
            match self.write_some(&state.queued) {
                Written::Some(written) => state.queued.advance(written),
                Written::Full => return Some(false),
                Written::Failed => {
                    self.close(state);
                    return None;
                }
            }
        }
        Some(true)
    }

    /// One non-blocking write.
    fn write_some(&self, bytes: &[u8]) -> Written {
        match self.socket.try_write(bytes) {
            Ok(0) => Written::Failed,
            Ok(written) => Written::Some(written),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => Written::Full,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => Written::Some(0),
            Err(err) => {
                tracing::debug!(error = %err, "connection write failed");
                Written::Failed
            }
        }
    }

    /// The queue ran empty: wake whoever waits for room, and give back a large buffer.
    fn emptied(&self, state: &mut State) {
        if state.queued.capacity() > KEPT_CAPACITY {
            state.queued = BytesMut::new();
        }
        self.room.notify_waiters();
    }

    /// Closes at once, dropping what is queued: for a peer that does not read even its last
    /// answers.
    pub fn abandon(&self) {
        self.close(&mut self.state.lock());
    }

    fn close(&self, state: &mut State) {
        state.closed = true;
        state.queued = BytesMut::new();
        state.feeds.clear();
        state.ready.clear();
        self.room.notify_waiters();
        self.work.notify_one();
    }
}

impl Doorbell for Outbox {
    fn ring(&self, id: u32) {
        let mut state = self.lock();
        self.schedule(&mut state, id);
        if state.flushing || state.closed {
            return;
        }
        let buffered = (state.feeds.get(&id)).map_or(0, |feed| {
            feed.outlet.counters.queued_bytes.load(Ordering::Acquire)
        });
        if state.queued.len() + buffered <= RING_DIRECT_BYTES {
            self.write_now(&mut state);
        } else {
            state.flushing = true;
            self.work.notify_one();
        }
    }
}

/// Moves pushes of ready subscriptions into the queue, a frame per subscription in turn,
/// while it holds less than [`PUSH_QUEUE_BYTES`].
fn fill(state: &mut State) {
    let mut batch: Vec<Arc<Published>> = Vec::new();
    while state.queued.len() < PUSH_QUEUE_BYTES {
        let Some(id) = state.ready.pop_front() else {
            return;
        };
        let Some(feed) = state.feeds.get_mut(&id) else {
            continue;
        };
        feed.scheduled = false;
        let bytes = feed.outlet.take(PUSH_FRAME_BYTES, &mut batch);
        let dropped = feed.outlet.counters.dropped.load(Ordering::Acquire);
        let more = bytes >= PUSH_FRAME_BYTES;
        if batch.is_empty() && dropped == feed.reported {
            continue;
        }
        feed.reported = dropped;
        let messages: Vec<&MessageWire> = batch.iter().map(|p| &p.message).collect();
        if let Err(err) = encode_push_of(id, dropped, &messages, &mut state.queued) {
            tracing::error!(subscription_id = id, error = %err, "cannot encode push");
        }
        drop(messages);
        batch.clear();
        if more {
            feed.scheduled = true;
            state.ready.push_back(id);
        }
    }
}

/// Writes for the outbox while the socket is full, until it has drained everything.
async fn flusher(outbox: Arc<Outbox>) {
    loop {
        outbox.work.notified().await;
        let mut rounds = 0usize;
        loop {
            rounds += 1;
            if rounds.is_multiple_of(DIRECT_ROUNDS) {
                // Publishers may keep this busy; let the worker run other tasks in between.
                tokio::task::yield_now().await;
            }
            {
                let mut state = outbox.lock();
                if state.closed {
                    return;
                }
                if !state.flushing {
                    break;
                }
                fill(&mut state);
                if state.queued.is_empty() {
                    state.flushing = false;
                    outbox.emptied(&mut state);
                    break;
                }
                match outbox.write_queued(&mut state) {
                    None => return,
                    Some(true) => continue,
                    Some(false) => {}
                }
                if state.queued.len() < RESPONSE_QUEUE_BYTES {
                    outbox.room.notify_waiters();
                }
            }
            // Closing wakes `work` too, so a peer that never reads does not keep this task.
            tokio::select! {
                writable = outbox.socket.writable() => if let Err(err) = writable {
                    tracing::debug!(error = %err, "connection write failed");
                    outbox.close(&mut outbox.lock());
                    return;
                },
                () = outbox.work.notified() => {}
            }
        }
    }
}
