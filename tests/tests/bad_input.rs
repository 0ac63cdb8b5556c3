//! The real server against bad input, per the table in `docs/protocol.md` ("Limits and bad
//! input"), and the client-visible errors of bad requests.
//!
//! Raw TCP: a request before the handshake (valid, unknown or malformed), a second hello, an
//! unsupported version range, an unknown request kind, malformed bodies, a frame length over
//! the limit or under 6, full-size frames announced but not sent, a frame that stalls
//! halfway, and random garbage. Each gets the documented error code (or none) and the
//! documented fate of the connection, in bounded time and without the server's memory
//! jumping. Through the client: unknown topics, partitions out of range, offsets out of
//! range, oversized records, corrupt and empty batches each get their own code and a message
//! that names the topic, partition or limit.
//!
//! Every test ends by checking that a client connected since before the bad input still
//! works and that the server process is still running.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard_client::{Client, ClientError, ErrorCode, RecordBuf, TopicConfigWire};
use switchyard_log::BatchBuilder;
use switchyard_tests::{runtime, BrokerProcess};

/// Request kinds used here (`docs/protocol.md`, "Requests and responses").
const HELLO: u16 = 1;
const LIST_TOPICS: u16 = 4;
const DESCRIBE_TOPIC: u16 = 5;
const PRODUCE: u16 = 7;
const CREATE_TOPIC: u16 = 2;
/// Kind of a response that answers no request.
const NO_KIND: u16 = 0;
/// The server's frame timeout is 10 s; a stalled connection must be gone well before this.
const STALL_CLOSE_BOUND: Duration = Duration::from_secs(15);

/// A broker, a runtime, and a client connected before any bad input arrives.
struct Fixture {
    broker: BrokerProcess,
    rt: tokio::runtime::Runtime,
    observer: Client,
    _data: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let data = tempfile::tempdir().expect("temp dir");
        let broker = BrokerProcess::start(data.path());
        let rt = runtime();
        let observer = rt.block_on(async {
            let client = Client::connect(&broker.addr)
                .await
                .expect("connect observer");
            let config = TopicConfigWire::default();
            client
                .create_topic("orders", 2, config)
                .await
                .expect("create");
            client
        });
        Fixture {
            broker,
            rt,
            observer,
            _data: data,
        }
    }

    /// The observer still produces and fetches, and the server process is alive.
    fn finish(mut self) {
        self.rt.block_on(async {
            let (base, _) = self
                .observer
                .produce("orders", 1, batch(&[b"still here"]))
                .await
                .expect("the observer's connection survived");
            let fetched = self
                .observer
                .fetch("orders", 1, base, 1 << 16, Duration::ZERO)
                .await
                .expect("fetch on the observer's connection");
            assert_eq!(
                fetched.records[0].value.as_deref(),
                Some(&b"still here"[..])
            );
        });
        assert!(self.broker.is_running(), "the server process died");
    }
}

fn batch(values: &[&[u8]]) -> Bytes {
    let mut builder = BatchBuilder::new();
    for value in values {
        builder.push(switchyard_log::now_ms(), &RecordBuf::new(None, value));
    }
    builder.finish()
}

/// One response as it came off the wire.
#[derive(Debug)]
struct Reply {
    kind: u16,
    id: u32,
    status: u16,
    body: Vec<u8>,
}

impl Reply {
    /// The message of an error reply.
    fn message(&self) -> String {
        assert_ne!(self.status, 0, "not an error reply: {self:?}");
        let len = u16::from_be_bytes([self.body[0], self.body[1]]) as usize;
        String::from_utf8(self.body[2..2 + len].to_vec()).expect("utf-8 message")
    }

    fn assert_error(&self, kind: u16, id: u32, code: ErrorCode) {
        assert_eq!(
            (self.kind, self.id, self.status),
            (kind, id, code.as_u16()),
            "expected {} for kind {kind} id {id}, got {self:?} ({})",
            code.name(),
            String::from_utf8_lossy(&self.body)
        );
    }
}

/// A raw TCP connection speaking hand-built frames.
struct Raw {
    stream: TcpStream,
    /// The frame limit announced in `HelloOk`, once the handshake is done.
    max_frame: Option<u32>,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).expect("raw connect");
        stream
            .set_read_timeout(Some(STALL_CLOSE_BOUND))
            .expect("read timeout");
        Raw {
            stream,
            max_frame: None,
        }
    }

    /// A connection that has done the handshake.
    fn handshaken(addr: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.request(HELLO, 1, &hello_body(1, 1));
        let reply = raw.reply();
        assert_eq!(
            (reply.kind, reply.id, reply.status),
            (HELLO, 1, 0),
            "{reply:?}"
        );
        // HelloOk: version u16, server_name string, max_frame u32.
        let max_frame = &reply.body[reply.body.len() - 4..];
        raw.max_frame = Some(u32::from_be_bytes(max_frame.try_into().expect("4 bytes")));
        raw
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("raw write");
    }

    fn request(&mut self, kind: u16, id: u32, body: &[u8]) {
        let mut frame = Vec::with_capacity(10 + body.len());
        frame.extend_from_slice(&(6 + body.len() as u32).to_be_bytes());
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.extend_from_slice(&id.to_be_bytes());
        frame.extend_from_slice(body);
        self.send(&frame);
    }

    /// Reads one response frame; panics if the connection ends first.
    fn reply(&mut self) -> Reply {
        let mut prefix = [0; 4];
        self.stream
            .read_exact(&mut prefix)
            .expect("response length");
        let mut payload = vec![0; u32::from_be_bytes(prefix) as usize];
        self.stream
            .read_exact(&mut payload)
            .expect("response payload");
        Reply {
            kind: u16::from_be_bytes([payload[0], payload[1]]),
            id: u32::from_be_bytes(payload[2..6].try_into().expect("4 bytes")),
            status: u16::from_be_bytes([payload[6], payload[7]]),
            body: payload[8..].to_vec(),
        }
    }

    /// Waits for the server to close, discarding anything it still sends; returns how long
    /// that took. Panics if it stays open past [`STALL_CLOSE_BOUND`].
    fn wait_closed(&mut self) -> Duration {
        let started = Instant::now();
        let mut scratch = [0; 4096];
        loop {
            match self.stream.read(&mut scratch) {
                Ok(0) => return started.elapsed(),
                Ok(_) => continue,
                Err(err) if err.kind() == ErrorKind::ConnectionReset => return started.elapsed(),
                Err(err) => panic!("connection still open after {:?}: {err}", started.elapsed()),
            }
        }
    }

    fn assert_usable(&mut self, id: u32) {
        self.request(LIST_TOPICS, id, &[]);
        let reply = self.reply();
        assert_eq!(
            (reply.kind, reply.id, reply.status),
            (LIST_TOPICS, id, 0),
            "{reply:?}"
        );
    }
}

fn string(text: &[u8]) -> Vec<u8> {
    let mut out = (text.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(text);
    out
}

fn hello_body(min: u16, max: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&min.to_be_bytes());
    body.extend_from_slice(&max.to_be_bytes());
    body.extend_from_slice(&string(b"bad-input-test"));
    body
}

fn produce_body(topic: &[u8], partition: u32, batch: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    body.extend_from_slice(&partition.to_be_bytes());
    body.extend_from_slice(&(batch.len() as u32).to_be_bytes());
    body.extend_from_slice(batch);
    body
}

#[test]
fn a_request_before_hello_is_refused_and_the_connection_closed() {
    let fixture = Fixture::start();
    let mut raw = Raw::connect(&fixture.broker.addr);
    raw.request(PRODUCE, 5, &produce_body(b"orders", 0, &batch(&[b"early"])));
    let reply = raw.reply();
    reply.assert_error(PRODUCE, 5, ErrorCode::HandshakeRequired);
    assert!(reply.message().contains("hello"), "{}", reply.message());
    raw.wait_closed();
    fixture.finish();
}

#[test]
fn a_bad_request_before_hello_is_refused_and_the_connection_closed() {
    let fixture = Fixture::start();
    let cases: [(u16, Vec<u8>); 2] = [(999, Vec::new()), (DESCRIBE_TOPIC, vec![0, 100, b'a'])];
    for (kind, body) in cases {
        let mut raw = Raw::connect(&fixture.broker.addr);
        raw.request(kind, 6, &body);
        raw.reply()
            .assert_error(kind, 6, ErrorCode::HandshakeRequired);
        raw.wait_closed();
    }
    fixture.finish();
}

#[test]
fn an_unsupported_version_range_is_refused_and_the_connection_closed() {
    let fixture = Fixture::start();
    for (min, max) in [(2, 9), (2, 1), (0, 0)] {
        let mut raw = Raw::connect(&fixture.broker.addr);
        raw.request(HELLO, 3, &hello_body(min, max));
        let reply = raw.reply();
        reply.assert_error(HELLO, 3, ErrorCode::UnsupportedVersion);
        let message = reply.message();
        assert!(message.contains(&format!("{min} to {max}")), "{message}");
        raw.wait_closed();
    }
    fixture.finish();
}

#[test]
fn an_unknown_request_kind_is_answered_and_the_connection_stays_usable() {
    let fixture = Fixture::start();
    let mut raw = Raw::handshaken(&fixture.broker.addr);
    for (id, kind) in [(7, 999), (8, 4000), (9, u16::MAX)] {
        raw.request(kind, id, b"whatever");
        raw.reply()
            .assert_error(kind, id, ErrorCode::UnknownRequest);
    }
    raw.assert_usable(10);
    fixture.finish();
}

#[test]
fn a_second_hello_is_an_invalid_request() {
    let fixture = Fixture::start();
    let mut raw = Raw::handshaken(&fixture.broker.addr);
    raw.request(HELLO, 4, &hello_body(1, 1));
    let reply = raw.reply();
    reply.assert_error(HELLO, 4, ErrorCode::InvalidRequest);
    assert!(reply.message().contains("hello"), "{}", reply.message());
    raw.assert_usable(5);
    fixture.finish();
}

#[test]
fn malformed_bodies_are_answered_and_the_connection_stays_usable() {
    let fixture = Fixture::start();
    let mut raw = Raw::handshaken(&fixture.broker.addr);
    let mut bad_option = string(b"new-topic");
    bad_option.extend_from_slice(&1u32.to_be_bytes());
    bad_option.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0]);
    let cases: [(&str, u16, Vec<u8>); 5] = [
        (
            "string longer than the body",
            DESCRIBE_TOPIC,
            vec![0, 100, b'a', b'b'],
        ),
        ("trailing bytes", LIST_TOPICS, vec![0]),
        ("invalid utf-8", DESCRIBE_TOPIC, string(&[0xff, 0xfe])),
        ("bad option tag", CREATE_TOPIC, bad_option),
        (
            "batch longer than the body",
            PRODUCE,
            produce_body(b"orders", 0, &[])[..10].into(),
        ),
    ];
    for (id, (what, kind, body)) in (20..).zip(cases) {
        raw.request(kind, id, &body);
        let reply = raw.reply();
        reply.assert_error(kind, id, ErrorCode::MalformedRequest);
        assert!(
            !reply.message().is_empty(),
            "{what}: the message says what was bad"
        );
    }
    raw.assert_usable(30);
    fixture.finish();
}

/// Resident memory of a process in KiB, from `/proc`.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    line.split_whitespace()
        .nth(1)
        .expect("value")
        .parse()
        .expect("number")
}

#[test]
fn a_bad_frame_length_is_refused_fast_and_the_connection_closed() {
    let fixture = Fixture::start();
    let before = rss_kib(fixture.broker.pid());
    let max_frame = Raw::handshaken(&fixture.broker.addr)
        .max_frame
        .expect("announced");
    let lengths = [
        (false, 0xFFFF_FFF0),
        (true, 0xFFFF_FFF0),
        (true, max_frame + 1),
        (true, 5),
        (true, 0),
    ];
    for (handshake, length) in lengths {
        let mut raw = if handshake {
            Raw::handshaken(&fixture.broker.addr)
        } else {
            Raw::connect(&fixture.broker.addr)
        };
        eprintln!("frame length {length:#x}, after a handshake: {handshake}");
        let started = Instant::now();
        raw.send(&u32::to_be_bytes(length));
        raw.reply()
            .assert_error(NO_KIND, 0, ErrorCode::FrameTooLarge);
        raw.wait_closed();
        let elapsed = started.elapsed();
        assert!(
            elapsed < Duration::from_secs(2),
            "length {length:#x} took {elapsed:?}"
        );
    }
    let grown = rss_kib(fixture.broker.pid()).saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "server memory grew by {grown} KiB on bad lengths"
    );
    fixture.finish();
}

#[test]
fn announced_but_missing_payloads_do_not_reserve_memory() {
    let fixture = Fixture::start();
    let before = rss_kib(fixture.broker.pid());
    let mut stalled: Vec<Raw> = (0..64)
        .map(|_| Raw::handshaken(&fixture.broker.addr))
        .collect();
    for raw in &mut stalled {
        // One write: a whole request, then the start of a full-size frame. The answer to the
        // request shows the server has read that far.
        let max_frame = raw.max_frame.expect("announced");
        let mut bytes = vec![0, 0, 0, 6, 0, LIST_TOPICS as u8, 0, 0, 0, 2];
        bytes.extend_from_slice(&max_frame.to_be_bytes());
        bytes.extend_from_slice(&[0, PRODUCE as u8, 0, 0, 0, 3]);
        bytes.extend_from_slice(&[0; 1000]);
        raw.send(&bytes);
        let reply = raw.reply();
        assert_eq!((reply.id, reply.status), (2, 0), "{reply:?}");
    }
    let grown = rss_kib(fixture.broker.pid()).saturating_sub(before);
    assert!(
        grown < 64 * 1024,
        "64 stalled frames grew the server by {grown} KiB; memory must follow received bytes"
    );
    drop(stalled);
    fixture.finish();
}

#[test]
fn a_frame_that_stalls_halfway_is_cut_off() {
    let fixture = Fixture::start();
    let mut raw = Raw::handshaken(&fixture.broker.addr);
    let mut partial = 100u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0, LIST_TOPICS as u8, 0, 0, 0, 1, 0, 0]);
    raw.send(&partial);
    let closed_after = raw.wait_closed();
    eprintln!("stalled connection closed after {closed_after:?}");
    fixture.finish();
}

#[test]
fn random_garbage_closes_the_connection_and_nothing_else() {
    let fixture = Fixture::start();
    let seed: u64 = rand::random();
    eprintln!("garbage seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    for round in 0..24 {
        let mut raw = if round % 2 == 0 {
            Raw::connect(&fixture.broker.addr)
        } else {
            Raw::handshaken(&fixture.broker.addr)
        };
        let len = rng.gen_range(1..4096);
        let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // The peer may close before reading it all; that is the point.
        let _ = raw.stream.write_all(&garbage);
        let _ = raw.stream.shutdown(Shutdown::Write);
        raw.wait_closed();
    }
    fixture.finish();
}

/// Expects a server error with `code` whose message contains every one of `names`.
fn expect_error<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    code: ErrorCode,
    names: &[&str],
) {
    let err = result.expect_err("the request must fail");
    let ClientError::Server { code: got, message } = &err else {
        panic!(
            "expected a {} error from the server, got {err}",
            code.name()
        );
    };
    assert_eq!(*got, code, "{message}");
    for name in names {
        assert!(message.contains(name), "`{message}` does not name {name}");
    }
}

#[test]
fn bad_client_requests_get_their_own_codes_and_clear_messages() {
    let fixture = Fixture::start();
    let client = fixture
        .rt
        .block_on(Client::connect(&fixture.broker.addr))
        .expect("connect");
    fixture.rt.block_on(async {
        let tiny = TopicConfigWire {
            max_record_bytes: Some(1024),
            ..TopicConfigWire::default()
        };
        client
            .create_topic("tiny", 1, tiny)
            .await
            .expect("create tiny");
        client
            .produce("orders", 0, batch(&[b"a", b"b", b"c"]))
            .await
            .expect("produce");
        check_unknown_and_out_of_range(&client).await;
        check_bad_batches(&client).await;
        client
            .list_topics()
            .await
            .expect("the client's connection still works");
    });
    fixture.finish();
}

async fn check_unknown_and_out_of_range(client: &Client) {
    let zero = Duration::ZERO;
    let unknown = ErrorCode::UnknownTopic;
    expect_error(
        client.produce("missing", 0, batch(&[b"x"])).await,
        unknown,
        &["`missing`"],
    );
    expect_error(
        client.fetch("missing", 0, 0, 1024, zero).await,
        unknown,
        &["`missing`"],
    );

    let partition = ErrorCode::PartitionOutOfRange;
    let names = ["`orders`", "2 partitions", "partition 7"];
    expect_error(
        client.produce("orders", 7, batch(&[b"x"])).await,
        partition,
        &names,
    );
    expect_error(
        client.fetch("orders", 7, 0, 1024, zero).await,
        partition,
        &names,
    );

    let offset = ErrorCode::OffsetOutOfRange;
    let names = ["`orders`", "partition 0", "1000", "0 to 3"];
    expect_error(
        client.fetch("orders", 0, 1000, 1024, zero).await,
        offset,
        &names,
    );
}

async fn check_bad_batches(client: &Client) {
    let big = vec![b'x'; 2048];
    let oversized = batch(&[b"small", &big]);
    let names = ["`tiny`", "partition 0", "record 1", "limit of 1024 bytes"];
    let result = client.produce("tiny", 0, oversized).await;
    expect_error(result, ErrorCode::RecordTooLarge, &names);

    let mut corrupt = batch(&[b"checksummed"]).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x55;
    let result = client.produce("orders", 0, Bytes::from(corrupt)).await;
    expect_error(result, ErrorCode::CorruptBatch, &["`orders`", "checksum"]);
    let empty = BatchBuilder::new().finish();
    let result = client.produce("orders", 0, empty).await;
    expect_error(result, ErrorCode::CorruptBatch, &["`orders`", "no records"]);

    let end = client
        .fetch("orders", 0, 0, 1 << 16, Duration::ZERO)
        .await
        .expect("fetch")
        .log_end;
    assert_eq!(end, 3, "rejected batches leave no trace in the log");
}
