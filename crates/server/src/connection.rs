//! One client connection: read frames, answer them, write responses.
//!
//! A reader loop decodes requests and hands them to the handler; the connection's
//! [`Outbox`] sends the encoded responses (and pushes), straight to the socket when it is
//! idle and through its flusher task, coalesced, when it is not. Requests that wait run as
//! their own tasks and answer through the same outbox, so one slow fetch never holds up the
//! rest of the connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use switchyard_broker::Broker;
use switchyard_protocol::{
    decode_request, encode_response, negotiate_version, split_frame, ErrorCode, ErrorResponse,
    Request, Response, ResponseResult, NO_REQUEST_KIND,
};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::handler::{self, Limits, Outcome};
use crate::outbox::Outbox;
use crate::pubsub::Registry;
use crate::pubsub_session::Session;

/// How long a started frame may take to arrive whole; a peer that stalls mid-frame is cut
/// off after this, so a truncated frame cannot pin a connection forever.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing connection may take to write its last answers to a peer that does not
/// read them; then they are dropped.
const FINISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer growth step.
const READ_CHUNK: usize = 64 * 1024;
/// Name the server gives in its hello.
const SERVER_NAME: &str = concat!("switchyard ", env!("CARGO_PKG_VERSION"));

/// Settings shared by every connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings {
    pub max_frame: u32,
}

/// Serves one connection until the peer closes it, it breaks the protocol, or the server
/// shuts down.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Broker,
    settings: ConnectionSettings,
    registry: Arc<Registry>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, writer) = stream.into_split();
    let tx = Outbox::start(writer);
    let gone = watch::Sender::new(false);
    // Dropped when this function returns, ending the connection's subscriptions.
    let mut session = Session::new(registry, &tx);
    let limits = Limits {
        max_fetch_bytes: settings.max_frame.saturating_sub(1024),
        max_frame_bytes: settings.max_frame,
    };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut handshaken = false;

    loop {
        // Answer every whole frame already buffered.
        loop {
            let payload = match split_frame(&mut buf, settings.max_frame) {
                Ok(Some(payload)) => payload,
                Ok(None) => {
                    // Everything read is answered: ring the subscribers this read's publishes
                    // reached, then write the answers, each with as few writes as it takes.
                    session.flush();
                    tx.flush();
                    break;
                }
                Err(err) => {
                    tracing::debug!(%peer, error = %err, "bad frame; closing");
                    send(&tx, 0, NO_REQUEST_KIND, &Err(err.to_error_response())).await;
                    return finish(&tx, &gone).await;
                }
            };
            let (request_id, request) = match decode_request(payload) {
                Ok(decoded) => decoded,
                Err(err) => {
                    tracing::debug!(%peer, error = %err, "malformed request");
                    let (Some(id), Some(kind)) = (err.request_id(), err.kind()) else {
                        return finish(&tx, &gone).await;
                    };
                    if !handshaken {
                        // Before a hello, nothing but a hello is answered.
                        let refused = ErrorResponse::new(
                            ErrorCode::HandshakeRequired,
                            "the first request on a connection must be hello",
                        );
                        send(&tx, id, kind, &Err(refused)).await;
                        return finish(&tx, &gone).await;
                    }
                    send(&tx, id, kind, &Err(err.to_error_response())).await;
                    continue;
                }
            };
            let kind = request.kind().as_u16();
            if !handshaken {
                let accepted = hello(&request, settings.max_frame);
                let closes = accepted.is_err();
                send(&tx, request_id, kind, &accepted).await;
                if closes {
                    return finish(&tx, &gone).await;
                }
                handshaken = true;
                continue;
            }
            let outcome = match request {
                request @ (Request::Subscribe { .. }
                | Request::Unsubscribe { .. }
                | Request::Publish { .. }) => session.handle(&broker, request),
                request => handler::handle(&broker, limits, request),
            };
            match outcome {
                Outcome::Ready(result) => queue(&tx, request_id, kind, &result).await,
                Outcome::Deferred(work) => {
                    let tx = Arc::clone(&tx);
                    let gone = gone.subscribe();
                    tokio::spawn(async move {
                        tokio::select! {
                            result = work => send(&tx, request_id, kind, &result).await,
                            // The peer left: abandon the wait (a long-poll must not lease
                            // records to nobody).
                            () = peer_left(gone) => {}
                        }
                    });
                }
            }
        }

        // Read more; a half-received frame must complete within FRAME_TIMEOUT.
        buf.reserve(READ_CHUNK);
        let read = tokio::select! {
            read = read_some(&mut reader, &mut buf) => read,
            _ = shutdown.changed() => return finish(&tx, &gone).await,
        };
        match read {
            Ok(0) => return finish(&tx, &gone).await,
            Ok(_) => {}
            Err(err) => {
                tracing::debug!(%peer, error = %err, "connection read ended");
                return finish(&tx, &gone).await;
            }
        }
    }
}

async fn read_some(
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    if buf.is_empty() {
        return reader.read_buf(buf).await;
    }
    match tokio::time::timeout(FRAME_TIMEOUT, reader.read_buf(buf)).await {
        Ok(read) => read,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("frame incomplete after {FRAME_TIMEOUT:?}"),
        )),
    }
}

/// Answers the first request, which must be a hello with a version range we speak.
fn hello(request: &Request, max_frame: u32) -> ResponseResult {
    let Request::Hello {
        min_version,
        max_version,
        ..
    } = request
    else {
        return Err(ErrorResponse::new(
            ErrorCode::HandshakeRequired,
            "the first request on a connection must be hello",
        ));
    };
    let version = negotiate_version(*min_version, *max_version).ok_or_else(|| {
        ErrorResponse::new(
            ErrorCode::UnsupportedVersion,
            format!(
                "client speaks protocol versions {min_version} to {max_version}; this server \
                 speaks {} to {}",
                switchyard_protocol::MIN_PROTOCOL_VERSION,
                switchyard_protocol::PROTOCOL_VERSION
            ),
        )
    })?;
    Ok(Response::HelloOk {
        version,
        server_name: SERVER_NAME.into(),
        max_frame,
    })
}

/// Sends one answer now; a closed outbox means the peer is gone and takes it silently.
async fn send(tx: &Outbox, request_id: u32, kind: u16, result: &ResponseResult) {
    tx.send(encode(request_id, kind, result)).await;
}

/// Like [`send`], leaving the answer queued until the reader has handled the whole read.
async fn queue(tx: &Outbox, request_id: u32, kind: u16, result: &ResponseResult) {
    tx.queue(encode(request_id, kind, result)).await;
}

fn encode(request_id: u32, kind: u16, result: &ResponseResult) -> BytesMut {
    let mut frame = BytesMut::new();
    if let Err(err) = encode_response(request_id, kind, result, &mut frame) {
        tracing::error!(request_id, kind, error = %err, "cannot encode response");
        let fallback = Err(ErrorResponse::new(ErrorCode::Internal, err.to_string()));
        frame.clear();
        if encode_response(request_id, kind, &fallback, &mut frame).is_err() {
            frame.clear();
        }
    }
    frame
}

/// Resolves once the connection has ended.
async fn peer_left(mut gone: watch::Receiver<bool>) {
    let _ = gone.wait_for(|gone| *gone).await.map(|_| ());
}

/// Ends a connection: tells requests still waiting that nobody is listening any more (so a
/// long-poll receive does not lease records to a peer that left), then lets the outbox send
/// what it holds, for at most [`FINISH_TIMEOUT`].
async fn finish(tx: &Outbox, gone: &watch::Sender<bool>) {
    gone.send_replace(true);
    if tokio::time::timeout(FINISH_TIMEOUT, tx.finish())
        .await
        .is_err()
    {
        tx.abandon();
    }
}
