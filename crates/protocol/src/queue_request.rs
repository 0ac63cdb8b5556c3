//! Bodies of the queue requests (kinds 18 to 27), apart from `ListQueues`, which has none.
//!
//! Kept out of `request.rs` so that file stays about the stream requests; the kinds, the
//! enum variants and the header handling are all still there.

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};
use crate::queue_types::QueueConfigWire;
use crate::request::{Request, RequestKind};

fn put_u64(w: &mut Writer<'_>, value: &u64) -> Result<(), EncodeError> {
    w.u64(*value);
    Ok(())
}

impl Request {
    /// Encodes the body of a queue request; other requests are not written by this.
    pub(crate) fn encode_queue_body(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            Request::CreateQueue {
                name,
                partitions,
                config,
            } => {
                w.string("queue name", name)?;
                w.u32(*partitions);
                config.encode(w)?;
            }
            Request::DeleteQueue { name } | Request::QueueStats { name } => {
                w.string("queue name", name)?;
            }
            Request::Send { queue, records } => {
                w.string("queue", queue)?;
                w.list("records", records)?;
            }
            Request::Receive {
                queue,
                consumer,
                max,
                wait_ms,
                visibility_ms,
                prefetch_records,
                prefetch_bytes,
            } => {
                w.string("queue", queue)?;
                w.string("consumer", consumer)?;
                w.u32(*max);
                w.u32(*wait_ms);
                w.option(visibility_ms.as_ref(), put_u64)?;
                w.u32(*prefetch_records);
                w.u64(*prefetch_bytes);
            }
            Request::Ack { queue, tokens } => {
                w.string("queue", queue)?;
                w.list("tokens", tokens)?;
            }
            Request::Nack {
                queue,
                token,
                delay_ms,
                error,
            } => {
                w.string("queue", queue)?;
                w.string("token", token)?;
                w.option(delay_ms.as_ref(), put_u64)?;
                w.option(error.as_ref(), |w, text| w.string("error", text))?;
            }
            Request::Extend {
                queue,
                token,
                visibility_ms,
            } => {
                w.string("queue", queue)?;
                w.string("token", token)?;
                w.u64(*visibility_ms);
            }
            Request::PeekQueue { queue, max } => {
                w.string("queue", queue)?;
                w.u32(*max);
            }
            Request::Redrive {
                dead_letter_queue,
                max,
                from_offset,
                to_offset,
            } => {
                w.string("dead_letter_queue", dead_letter_queue)?;
                w.u32(*max);
                w.option(from_offset.as_ref(), put_u64)?;
                w.option(to_offset.as_ref(), put_u64)?;
            }
            // request.rs routes only the queue requests with a body here.
            other => unreachable!("{:?} is not a queue request with a body", other.kind()),
        }
        Ok(())
    }

    /// Decodes the body of a queue request of `kind`.
    pub(crate) fn decode_queue_body(
        kind: RequestKind,
        r: &mut Reader,
    ) -> Result<Request, BodyError> {
        use RequestKind as K;
        Ok(match kind {
            K::CreateQueue => Request::CreateQueue {
                name: r.string("queue name")?,
                partitions: r.u32("partitions")?,
                config: QueueConfigWire::decode(r)?,
            },
            K::DeleteQueue => Request::DeleteQueue {
                name: r.string("queue name")?,
            },
            K::QueueStats => Request::QueueStats {
                name: r.string("queue name")?,
            },
            K::Send => Request::Send {
                queue: r.string("queue")?,
                records: r.list("records")?,
            },
            K::Receive => Request::Receive {
                queue: r.string("queue")?,
                consumer: r.string("consumer")?,
                max: r.u32("max")?,
                wait_ms: r.u32("wait_ms")?,
                visibility_ms: r.option("visibility_ms", |r| r.u64("visibility_ms"))?,
                prefetch_records: r.u32("prefetch_records")?,
                prefetch_bytes: r.u64("prefetch_bytes")?,
            },
            K::Ack => Request::Ack {
                queue: r.string("queue")?,
                tokens: r.list("tokens")?,
            },
            K::Nack => Request::Nack {
                queue: r.string("queue")?,
                token: r.string("token")?,
                delay_ms: r.option("delay_ms", |r| r.u64("delay_ms"))?,
                error: r.option("error", |r| r.string("error"))?,
            },
            K::Extend => Request::Extend {
                queue: r.string("queue")?,
                token: r.string("token")?,
                visibility_ms: r.u64("visibility_ms")?,
            },
            K::PeekQueue => Request::PeekQueue {
                queue: r.string("queue")?,
                max: r.u32("max")?,
            },
            K::Redrive => Request::Redrive {
                dead_letter_queue: r.string("dead_letter_queue")?,
                max: r.u32("max")?,
                from_offset: r.option("from_offset", |r| r.u64("from_offset"))?,
                to_offset: r.option("to_offset", |r| r.u64("to_offset"))?,
            },
            // request.rs routes only the queue kinds with a body here.
            other => unreachable!("{other:?} is not a queue request kind with a body"),
        })
    }
}
