//! The connection against a scripted server on 127.0.0.1: responses matched by id whatever
//! their order, prompt failure of pending calls when the peer goes away, timeouts that leave
//! the connection usable. And against the real server: calls after it shut down fail at once.

mod common;

use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::TestServer;
use switchyard_client::{Client, ClientError, ConnectOptions, Connection, OffsetSpec};
use switchyard_protocol::{
    decode_request, encode_response, split_frame, Request, Response, DEFAULT_MAX_FRAME,
    PROTOCOL_VERSION,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server side of one scripted connection.
struct Peer {
    socket: TcpStream,
    buf: BytesMut,
}

impl Peer {
    /// Accepts one connection and answers its hello.
    async fn accept(listener: &TcpListener) -> Peer {
        let (socket, _) = listener.accept().await.expect("accept");
        let mut peer = Peer {
            socket,
            buf: BytesMut::new(),
        };
        let (id, hello) = peer.request().await;
        assert!(matches!(
            hello,
            Request::Hello {
                min_version: PROTOCOL_VERSION,
                ..
            }
        ));
        let ok = Response::HelloOk {
            version: PROTOCOL_VERSION,
            server_name: "scripted".into(),
            max_frame: DEFAULT_MAX_FRAME,
        };
        peer.answer(id, 1u16, Ok(ok)).await;
        peer
    }

    async fn request(&mut self) -> (u32, Request) {
        loop {
            if let Some(payload) = split_frame(&mut self.buf, DEFAULT_MAX_FRAME).expect("frame") {
                return decode_request(payload).expect("request decodes");
            }
            let read = self.socket.read_buf(&mut self.buf).await.expect("read");
            assert!(read > 0, "client closed early");
        }
    }

    async fn answer(&mut self, id: u32, kind: u16, result: switchyard_protocol::ResponseResult) {
        let mut frame = BytesMut::new();
        encode_response(id, kind, &result, &mut frame).expect("encodes");
        self.socket.write_all(&frame).await.expect("write");
    }
}

async fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    (listener, addr)
}

fn partition_of(request: &Request) -> u32 {
    match request {
        Request::ListOffsets { partition, .. } => *partition,
        other => panic!("unexpected request {other:?}"),
    }
}

#[tokio::test]
async fn responses_in_any_order_reach_their_callers() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        let mut requests = Vec::new();
        for _ in 0..3 {
            requests.push(peer.request().await);
        }
        // Answer newest first; each offset is ten times the partition asked about.
        for (id, request) in requests.into_iter().rev() {
            let offset = u64::from(partition_of(&request)) * 10;
            peer.answer(id, 9u16, Ok(Response::Offset { offset })).await;
        }
        peer
    });

    let client = Client::connect(&addr).await.expect("connects");
    assert_eq!(
        client
            .connection()
            .server_info()
            .map(|info| info.server_name.as_str()),
        Some("scripted")
    );
    let (a, b, c) = tokio::join!(
        client.list_offsets("t", 1, OffsetSpec::Latest),
        client.list_offsets("t", 2, OffsetSpec::Latest),
        client.list_offsets("t", 3, OffsetSpec::Latest),
    );
    assert_eq!((a.ok(), b.ok(), c.ok()), (Some(10), Some(20), Some(30)));
    drop(server.await.expect("script ran"));
}

#[tokio::test]
async fn pending_calls_fail_promptly_when_the_peer_goes_away() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        let _ = peer.request().await;
        let _ = peer.request().await;
        // Drop the socket with both requests unanswered.
    });

    let client = Client::connect(&addr).await.expect("connects");
    let started = Instant::now();
    let (first, second) = tokio::join!(
        client.fetch("t", 0, 0, 1024, Duration::from_secs(20)),
        client.list_offsets("t", 0, OffsetSpec::Earliest),
    );
    server.await.expect("script ran");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed promptly"
    );
    for result in [first.map(|_| ()), second.map(|_| ())] {
        let err = result.expect_err("connection dropped");
        assert!(matches!(err, ClientError::Closed { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("connection to {addr} closed: ")),
            "{message}"
        );
        assert!(
            message.contains("server closed the connection"),
            "{message}"
        );
    }

    // Later calls fail at once with the same reason.
    let err = client.list_topics().await.expect_err("closed");
    assert!(err.is_connection_lost());
    assert!(client.connection().closed_reason().is_some());
}

#[tokio::test]
async fn a_timed_out_call_leaves_the_connection_usable() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        let (slow_id, _) = peer.request().await;
        let (id, request) = peer.request().await;
        let offset = u64::from(partition_of(&request));
        peer.answer(id, 9u16, Ok(Response::Offset { offset })).await;
        // The late answer to the timed-out call is ignored by the client.
        peer.answer(slow_id, 9u16, Ok(Response::Offset { offset: 0 }))
            .await;
        peer
    });

    let options = ConnectOptions {
        request_timeout: Duration::from_millis(200),
        ..ConnectOptions::default()
    };
    let client = Client::connect_with(&addr, &options)
        .await
        .expect("connects");
    let err = client
        .list_offsets("t", 0, OffsetSpec::Latest)
        .await
        .expect_err("no answer");
    assert!(
        matches!(
            err,
            ClientError::Timeout {
                request: "ListOffsets",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("within 200 ms"), "{err}");
    let offset = client
        .list_offsets("t", 7, OffsetSpec::Latest)
        .await
        .expect("answered");
    assert_eq!(offset, 7);
    drop(server.await.expect("script ran"));
}

#[tokio::test]
async fn server_errors_carry_code_and_message() {
    let (listener, addr) = listener().await;
    let server = tokio::spawn(async move {
        let mut peer = Peer::accept(&listener).await;
        let (id, _) = peer.request().await;
        let error = switchyard_protocol::ErrorResponse::new(
            switchyard_protocol::ErrorCode::UnknownTopic,
            "topic `nope` does not exist",
        );
        peer.answer(id, 5u16, Err(error)).await;
        peer
    });
    let client = Client::connect(&addr).await.expect("connects");
    let err = client.describe_topic("nope").await.expect_err("unknown");
    assert_eq!(err.to_string(), "topic `nope` does not exist");
    assert_eq!(
        err.code(),
        Some(switchyard_protocol::ErrorCode::UnknownTopic)
    );
    drop(server.await.expect("script ran"));
}

#[tokio::test]
async fn connecting_to_a_closed_port_names_the_address() {
    let (listener, addr) = listener().await;
    drop(listener);
    let err = Connection::connect(&addr, &ConnectOptions::default())
        .await
        .expect_err("nothing listens");
    assert!(
        err.to_string()
            .starts_with(&format!("cannot connect to {addr}")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_after_the_real_server_stops_fail_at_once() {
    let mut server = TestServer::start().await;
    let client = server.client().await;
    client.list_topics().await.expect("server answers");
    server.stop().await;

    let started = Instant::now();
    let err = client.list_topics().await.expect_err("server gone");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(err.is_connection_lost(), "{err}");
    assert!(err.to_string().contains(&server.addr), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_calls_pipeline_on_one_connection() {
    let server = TestServer::start().await;
    let client = server.client().await;
    client
        .create_topic("t", 1, Default::default())
        .await
        .expect("topic");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..200 {
        let client = client.clone();
        tasks.spawn(async move { client.list_offsets("t", 0, OffsetSpec::Latest).await });
    }
    while let Some(joined) = tasks.join_next().await {
        assert_eq!(joined.expect("task").expect("answered"), 0);
    }
}
