//! Ephemeral pub/sub and request-reply against the real broker.
//!
//! - `patterns_route_records_in_publish_order`: `a.>` gets all five subjects in publish
//!   order, `a.*.B` the two that match, a filter picks by key, `a.>.b` is refused saying
//!   why, and a subject that is also a topic stores what it delivers.
//! - `a_subscription_to_several_patterns_gets_each_record_once`: `a.A,a.*.B` gets `a.A`,
//!   `a.Z.B` and `a.A.B` once each in publish order, `a.A,a.*,a.>` (every record matched by
//!   two of its patterns) gets each of the five once, `a.>` all five, `a.>.b` is refused
//!   alone and inside a list, unsubscribing a list removes all its patterns, and
//!   `switchyard subscribe 'a.A,a.*.B'` prints the same three.
//! - `a_slow_subscriber_drops_and_counts_without_slowing_anyone`: two subscribers that do not
//!   read (one through the client, one a raw socket that stops reading altogether) while
//!   200,000 records are published; publishing finishes in bounded time, a reading
//!   subscriber gets everything, and the slow ones account for every record as received or
//!   dropped, the raw one by the broker's own count.
//! - `requests_without_responders_fail_fast_and_leave_nothing_behind`: 100,000 requests to
//!   nobody fail at once with "no responders", and the broker's memory is where it was.
//! - `late_replies_are_dropped_and_prompt_ones_all_arrive`: replies after the timeout never
//!   reach a later request; an instant responder loses none of 1,000 requests.
//! - `cli_publish_subscribe_request_and_reply`: `publish | subscribe --count` and
//!   `request` / `reply --exec`, with the exit codes of no responders and timeouts.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchyard_client::{Client, ClientError, PublishRecordWire, Responder, SubscribeOptions};
use switchyard_protocol::{
    decode_push, decode_response, encode_request, is_push, split_frame, Request, PROTOCOL_VERSION,
};
use switchyard_tests::{binary, runtime, wait_until, BrokerProcess};

fn start() -> (BrokerProcess, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    (BrokerProcess::start(data.path()), data)
}

fn text(bytes: &Option<Bytes>) -> String {
    String::from_utf8_lossy(bytes.as_deref().unwrap_or_default()).into_owned()
}

#[test]
fn patterns_route_records_in_publish_order() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let mut all = client.subscribe("a.>", None).await.expect("subscribe a.>");
        let mut middle = client
            .subscribe("a.*.B", None)
            .await
            .expect("subscribe a.*.B");
        let mut keyed = (client.subscribe("a.>", Some("key = k1")).await).expect("filtered");
        let refused = client
            .subscribe("a.>.b", None)
            .await
            .expect_err("tail not last");
        assert!(
            refused
                .to_string()
                .contains("`>` may only be the last token"),
            "{refused}"
        );

        // One record per subject; the last one also keyed, for the filter.
        let subjects = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B"];
        for subject in subjects {
            let mut record = PublishRecordWire::new(Bytes::from(subject));
            if subject == "a.A.B" {
                record.key = Some(Bytes::from_static(b"k1"));
            }
            let published = client.publish(subject, record).await.expect("publish");
            assert_eq!(published.stored, None, "no topic, nothing stored");
        }
        let publisher = Client::connect(&broker.addr).await.expect("connect");
        let fence = publisher
            .publish("a.Y.B", PublishRecordWire::new("fence"))
            .await;
        assert_eq!(fence.expect("fence").subscribers, 2, "a.> and a.*.B");

        let within = Duration::from_secs(10);
        let mut seen = Vec::new();
        while seen.len() < 6 {
            let message = all
                .next_within(within)
                .await
                .expect("a.> gets every subject");
            seen.push(message.subject);
        }
        assert_eq!(seen, ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B", "a.Y.B"]);
        let mut seen = Vec::new();
        while seen.len() < 3 {
            let message = middle.next_within(within).await.expect("a.*.B gets three");
            seen.push(text(&message.value));
        }
        assert_eq!(seen, ["a.Z.B", "a.A.B", "fence"], "and nothing in between");
        let only = keyed.next_within(within).await.expect("the keyed record");
        assert_eq!(only.subject, "a.A.B");
        assert_eq!(only.dropped, 0);
        assert!(
            keyed.try_next().is_none(),
            "the filter took only the keyed record"
        );

        // A subject that is also a topic: delivered and stored, offsets in the answer.
        client
            .create_topic("a.T", 1, Default::default())
            .await
            .expect("topic");
        let published = client.publish_many(
            "a.T",
            vec![PublishRecordWire::new("t0"), PublishRecordWire::new("t1")],
        );
        let published = published.await.expect("publish to a topic");
        let stored = published.stored.expect("stored in the topic");
        assert_eq!((stored.partition, stored.offset), (0, 0));
        let fetched = switchyard_tests::read_partition(&client, "a.T", 0).await;
        let values: Vec<_> = (fetched.expect("fetch").records.iter())
            .map(|record| text(&record.value))
            .collect();
        assert_eq!(values, ["t0", "t1"]);
        let message = all.next_within(within).await.expect("a.> sees it too");
        assert_eq!(
            (message.subject.as_str(), text(&message.value)),
            ("a.T", "t0".into())
        );
    });
}

#[test]
fn a_subscription_to_several_patterns_gets_each_record_once() {
    let (broker, _data) = start();
    let addr = broker.addr.clone();
    let args = [
        "subscribe",
        "a.A,a.*.B",
        "--count",
        "4",
        "--format",
        "%t %v\\n",
    ];
    let (cli_subscriber, _log) = background(&addr, &args, "subscribed to `a.A,a.*.B`");
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let mut set = (client.subscribe("a.A,a.*.B", None).await).expect("subscribe a set");
        assert_eq!(set.pattern(), "a.A,a.*.B");
        let overlapping = client.subscribe("a.A,a.*,a.>", None).await;
        let mut overlapping = overlapping.expect("subscribe an overlapping set");
        let mut all = client.subscribe("a.>", None).await.expect("subscribe a.>");
        for bad in ["a.>.b", "a.A,a.>.b"] {
            let refused = client
                .subscribe(bad, None)
                .await
                .expect_err("tail not last");
            assert!(
                refused
                    .to_string()
                    .contains("`>` may only be the last token"),
                "{bad}: {refused}"
            );
        }

        let publisher = Client::connect(&broker.addr).await.expect("connect");
        let subjects = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B"];
        let mut reached = Vec::new();
        for subject in subjects {
            let record = PublishRecordWire::new(Bytes::from(subject));
            let published = publisher.publish(subject, record).await.expect("publish");
            reached.push(published.subscribers);
        }
        // The CLI's subscription counts too: four subscriptions on `a.A`, each once.
        assert_eq!(reached, [4, 2, 4, 2, 4], "one count per subscription");
        let fence = publisher.publish("a.Y.B", PublishRecordWire::new("fence"));
        assert_eq!(fence.await.expect("fence").subscribers, 4);

        let once = ["a.A", "a.Z.B", "a.A.B", "fence"];
        assert_eq!(
            gather(&mut set, 4).await,
            once,
            "each once, in publish order"
        );
        let every = ["a.A", "a.B", "a.Z.B", "a.Z.C", "a.A.B", "fence"];
        assert_eq!(gather(&mut overlapping, 6).await, every);
        assert_eq!(gather(&mut all, 6).await, every);
        assert!(set.try_next().is_none() && overlapping.try_next().is_none());

        let printed = output_of(cli_subscriber);
        assert_eq!(printed, "a.A a.A\na.Z.B a.Z.B\na.A.B a.A.B\na.Y.B fence\n");

        // Unsubscribing a list takes all of its patterns away (once the CLI's connection,
        // which ended with its fourth record, is gone too).
        set.unsubscribe().await.expect("unsubscribe");
        overlapping.unsubscribe().await.expect("unsubscribe");
        all.unsubscribe().await.expect("unsubscribe");
        let deadline = Instant::now() + Duration::from_secs(10);
        for subject in ["a.A", "a.B", "a.Z.B", "a.A.B"] {
            loop {
                let record = PublishRecordWire::new("after");
                let published = publisher.publish(subject, record).await.expect("publish");
                if published.subscribers == 0 {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "`{subject}` still has subscribers"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    });
}

/// The values of the next `count` messages of `subscription`, none of them after a drop.
async fn gather(subscription: &mut switchyard_client::Subscription, count: usize) -> Vec<String> {
    let mut seen = Vec::new();
    while seen.len() < count {
        let message = subscription.next_within(Duration::from_secs(10)).await;
        let message = message.expect("every matching record arrives");
        assert_eq!(message.dropped, 0);
        seen.push(text(&message.value));
    }
    seen
}

/// A subscriber on a bare socket: after the handshake and its subscribe it reads nothing
/// until told to, so the broker's buffers for it fill up.
struct RawSubscriber {
    socket: TcpStream,
    buf: BytesMut,
}

impl RawSubscriber {
    fn subscribe(addr: &str, subject: &str) -> RawSubscriber {
        let socket = TcpStream::connect(addr).expect("raw connect");
        let mut raw = RawSubscriber {
            socket,
            buf: BytesMut::new(),
        };
        let hello = Request::Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client_name: "raw".into(),
        };
        let subscribe = Request::Subscribe {
            subscription_id: 1,
            pattern: subject.into(),
            filter: None,
            buffer_records: 1_000,
        };
        let mut out = BytesMut::new();
        encode_request(1, &hello, &mut out).expect("hello encodes");
        encode_request(2, &subscribe, &mut out).expect("subscribe encodes");
        raw.socket.write_all(&out).expect("raw write");
        for id in [1, 2] {
            let payload = raw.next_frame().expect("a response");
            let (answered, result) = decode_response(payload).expect("a response decodes");
            assert_eq!(answered, id);
            result.expect("accepted");
        }
        raw
    }

    fn next_frame(&mut self) -> Option<Bytes> {
        self.socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        loop {
            if let Some(payload) = split_frame(&mut self.buf, u32::MAX).expect("valid frame") {
                return Some(payload);
            }
            let mut chunk = [0u8; 64 * 1024];
            match self.socket.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(read) => self.buf.extend_from_slice(&chunk[..read]),
            }
        }
    }

    /// Reads pushes until received + dropped reaches `published`; returns both.
    fn drain(&mut self, published: u64) -> (u64, u64) {
        let (mut received, mut dropped) = (0u64, 0u64);
        while received + dropped < published {
            let Some(payload) = self.next_frame() else {
                break;
            };
            assert!(is_push(&payload), "only pushes after the subscribe");
            let push = decode_push(payload).expect("push decodes");
            received += push.messages.len() as u64;
            dropped = dropped.max(push.dropped_total);
        }
        (received, dropped)
    }
}

#[test]
fn a_slow_subscriber_drops_and_counts_without_slowing_anyone() {
    const PUBLISHED: u64 = 200_000;
    const PER_PUBLISH: u64 = 100;
    let (broker, _data) = start();
    let mut raw = RawSubscriber::subscribe(&broker.addr, "load");
    runtime().block_on(async {
        let slow_client = Client::connect(&broker.addr).await.expect("connect");
        let mut slow = slow_client.subscribe("load", None).await.expect("slow");
        let reader = Client::connect(&broker.addr).await.expect("connect");
        // Buffers generous enough that a loaded test machine cannot make it drop: its pace,
        // not the slow subscribers', is what may hold the producer back.
        let options = SubscribeOptions {
            buffer_records: 50_000,
            ..SubscribeOptions::default()
        };
        let mut fast = reader.subscribe_with("load", options).await.expect("fast");
        let counting = tokio::spawn(async move {
            let mut received = 0u64;
            while received < PUBLISHED {
                let Some(message) = fast.next_within(Duration::from_secs(20)).await else {
                    break;
                };
                assert_eq!(message.dropped, 0, "the reading subscriber loses nothing");
                received += 1;
            }
            received
        });

        // Publish 200,000 records of 100 bytes; nothing waits on the slow subscribers.
        let producer = Client::connect(&broker.addr).await.expect("connect");
        let started = Instant::now();
        let mut slowest = Duration::ZERO;
        for _ in 0..PUBLISHED / PER_PUBLISH {
            let batch = (0..PER_PUBLISH)
                .map(|_| PublishRecordWire::new(vec![7u8; 100]))
                .collect();
            let sent = Instant::now();
            let published = producer.publish_many("load", batch).await.expect("publish");
            slowest = slowest.max(sent.elapsed());
            // A subscriber whose buffer is full is not counted; the reading one always is.
            assert!(published.subscribers >= 1, "{published:?}");
        }
        let publishing = started.elapsed();
        println!("published {PUBLISHED} in {publishing:?}; slowest publish {slowest:?}");
        assert!(publishing < Duration::from_secs(40), "{publishing:?}");
        assert!(slowest < Duration::from_secs(2), "{slowest:?}");
        assert_eq!(counting.await.expect("reader"), PUBLISHED);

        // The client-side slow subscriber: what it did not take is counted.
        let mut received = 0u64;
        while received + slow.dropped() < PUBLISHED {
            let within = Duration::from_secs(10);
            if slow.next_within(within).await.is_none() {
                break;
            }
            received += 1;
        }
        println!(
            "client subscriber: {received} received, {} dropped",
            slow.dropped()
        );
        assert!(slow.dropped() > 0);
        assert_eq!(received + slow.dropped(), PUBLISHED);
    });

    // The raw subscriber: the broker itself dropped and counted.
    let (received, dropped) = raw.drain(PUBLISHED);
    println!("raw subscriber: {received} received, {dropped} dropped by the broker");
    assert!(
        dropped > 0,
        "the broker dropped for the subscriber that did not read"
    );
    assert_eq!(received + dropped, PUBLISHED);
}

/// Resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .expect("VmRSS line");
    let kib = line.split_whitespace().nth(1).expect("VmRSS value");
    kib.parse().expect("VmRSS number")
}

/// Sends `count` requests to nobody from `tasks` concurrent tasks; returns the slowest.
async fn unanswered(client: &Client, count: usize, tasks: usize) -> Duration {
    let mut workers = Vec::new();
    for _ in 0..tasks {
        let client = client.clone();
        workers.push(tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            for n in 0..count / tasks {
                let started = Instant::now();
                let failed = client.request("nobody.home", n.to_string(), ms(50)).await;
                slowest = slowest.max(started.elapsed());
                let err = failed.expect_err("nobody answers");
                assert!(matches!(err, ClientError::NoResponders { .. }), "{err}");
            }
            slowest
        }));
    }
    let mut slowest = Duration::ZERO;
    for worker in workers {
        slowest = slowest.max(worker.await.expect("worker"));
    }
    slowest
}

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

#[test]
fn requests_without_responders_fail_fast_and_leave_nothing_behind() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        unanswered(&client, 2_000, 16).await;
        let before = rss_kib(broker.pid());
        let started = Instant::now();
        let slowest = unanswered(&client, 100_000, 16).await;
        let after = rss_kib(broker.pid());
        println!(
            "100,000 requests to nobody in {:?}, slowest {slowest:?}; broker RSS {before} KiB \
             before, {after} KiB after",
            started.elapsed()
        );
        assert!(
            slowest < ms(50),
            "no responders is known at once: {slowest:?}"
        );
        assert!(
            after <= (before + before / 10).max(before + 4 * 1024),
            "broker RSS grew from {before} KiB to {after} KiB"
        );
        assert_eq!(client.waiting_requests(), 0, "no state left in the client");
    });
}

#[test]
fn late_replies_are_dropped_and_prompt_ones_all_arrive() {
    let (broker, _data) = start();
    runtime().block_on(async {
        let server_side = Client::connect(&broker.addr).await.expect("connect");
        let echo = |message: switchyard_client::Message| async move {
            PublishRecordWire::new(message.value.unwrap_or_default())
        };
        let slow = Responder::serve(&server_side, "svc.slow", move |message| async move {
            // The responder under test is slow on purpose.
            tokio::time::sleep(ms(200)).await;
            echo(message).await
        });
        let _slow = slow.await.expect("slow responder");
        let fast = Responder::serve(&server_side, "svc.fast", echo)
            .await
            .expect("fast");

        // Twenty requests time out; while their replies are on the way, prompt requests
        // run, and each must get its own answer.
        let client = Client::connect(&broker.addr).await.expect("connect");
        let late: Vec<_> = (0..20)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move {
                    let late = client
                        .request("svc.slow", format!("late-{n}"), ms(50))
                        .await;
                    assert!(
                        matches!(late, Err(ClientError::RequestTimeout { .. })),
                        "{late:?}"
                    );
                })
            })
            .collect();
        let started = Instant::now();
        let mut prompt = 0;
        let mut correlations = std::collections::HashSet::new();
        while started.elapsed() < ms(400) {
            let payload = format!("prompt-{prompt}");
            let reply = client.request("svc.fast", payload.clone(), ms(5_000)).await;
            let reply = reply.expect("prompt reply");
            assert_eq!(
                text(&reply.value),
                payload,
                "a reply to this request, not a late one"
            );
            let correlation = reply.header_str(switchyard_client::CORRELATION_ID);
            let fresh = correlations.insert(correlation.expect("correlation id").to_string());
            assert!(
                fresh,
                "every reply carries its own request's correlation id"
            );
            prompt += 1;
        }
        for request in late {
            request.await.expect("late request");
        }
        let dropped = wait_until(Duration::from_secs(10), || client.late_replies() == 20);
        assert!(dropped, "late replies dropped: {}", client.late_replies());
        assert_eq!(client.waiting_requests(), 0);
        println!("{prompt} prompt requests while 20 late replies were dropped");

        // An instant responder answers all of 1,000 concurrent requests.
        let requests: Vec<_> = (0..1_000)
            .map(|n| {
                let client = client.clone();
                tokio::spawn(async move {
                    let payload = format!("n-{n}");
                    let reply = client
                        .request("svc.fast", payload.clone(), ms(10_000))
                        .await;
                    text(&reply.expect("reply").value) == payload
                })
            })
            .collect();
        let mut matched = 0;
        for request in requests {
            matched += usize::from(request.await.expect("request"));
        }
        assert_eq!(matched, 1_000);
        // The responder counts a reply once its publish is answered, which may be after the
        // requester already has it.
        let counted = tokio::time::timeout(ms(10_000), fast.wait_answered(1_000 + prompt));
        assert!(counted.await.is_ok(), "answered {}", fast.answered());
    });
}

/// Starts a CLI command in the background and waits for `ready` on its standard error.
fn background(addr: &str, args: &[&str], ready: &str) -> (Child, std::thread::JoinHandle<String>) {
    let mut child = Command::new(binary())
        .args(args)
        .env("SWITCHYARD_SERVER", addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn switchyard");
    let stderr = child.stderr.take().expect("stderr piped");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ready = ready.to_string();
    let log = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(&ready) {
                let _ = ready_tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let started = ready_rx.recv_timeout(Duration::from_secs(20));
    assert!(
        started.is_ok(),
        "`switchyard {}` did not get ready",
        args.join(" ")
    );
    (child, log)
}

fn output_of(child: Child) -> String {
    let output = child.wait_with_output().expect("wait");
    assert!(output.status.success(), "{}", output.status);
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn cli_publish_subscribe_request_and_reply() {
    let (broker, _data) = start();
    let addr = broker.addr.clone();

    // publish | subscribe --count
    let args = ["subscribe", "cli.>", "--count", "3", "--format", "%t %v\\n"];
    let (subscriber, _log) = background(&addr, &args, "subscribed to `cli.>`");
    let published = broker.cli_with_input(&["publish", "cli.lines"], b"one\ntwo\nthree\n");
    assert!(published.status.success(), "{published:?}");
    let said = String::from_utf8_lossy(&published.stdout).into_owned();
    assert!(said.contains("3 records published"), "{said}");
    assert_eq!(
        output_of(subscriber),
        "cli.lines one\ncli.lines two\ncli.lines three\n"
    );
    let wildcard = broker.cli_with_input(&["publish", "cli.*"], b"x\n");
    assert!(!wildcard.status.success());
    assert!(String::from_utf8_lossy(&wildcard.stderr).contains("no wildcards"));

    // request / reply --exec
    let args = ["reply", "cli.upper", "--exec", "tr a-z A-Z", "--count", "1"];
    let (replier, _log) = background(&addr, &args, "replying to `cli.upper`");
    assert_eq!(broker.cli_ok(&["request", "cli.upper", "hello"]), "HELLO\n");
    output_of(replier);

    // A responder whose command fails: its output is printed, and the request fails.
    let args = [
        "reply",
        "cli.fail",
        "--exec",
        "echo partial; echo oops >&2; exit 3",
        "--count",
        "1",
    ];
    let (failing, _log) = background(&addr, &args, "replying to `cli.fail`");
    let failed = broker.cli(&["request", "cli.fail", "x"]);
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&failed.stdout), "partial\n");
    let said = String::from_utf8_lossy(&failed.stderr).into_owned();
    assert!(
        said.contains("the responder's command failed") && said.contains("oops"),
        "{said}"
    );
    output_of(failing);

    // Nobody answers: exit 1 at once, saying so.
    let started = Instant::now();
    let nobody = broker.cli(&["request", "cli.nobody", "x", "--timeout", "5s"]);
    assert_eq!(nobody.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "no responders is immediate"
    );
    let said = String::from_utf8_lossy(&nobody.stderr).into_owned();
    assert!(said.contains("no responders for `cli.nobody`"), "{said}");

    // A responder too slow for the timeout: exit 1, naming the timeout.
    let args = ["reply", "cli.slow", "--exec", "sleep 1; cat"];
    let (mut slow, _log) = background(&addr, &args, "replying to `cli.slow`");
    let late = broker.cli(&["request", "cli.slow", "x", "--timeout", "200ms"]);
    assert_eq!(late.status.code(), Some(1));
    let said = String::from_utf8_lossy(&late.stderr).into_owned();
    assert!(said.contains("no reply within 200 ms"), "{said}");
    let _ = slow.kill();
    let _ = slow.wait();
}
