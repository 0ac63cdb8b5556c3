//! From a decoded request to its response.
//!
//! Quick requests are answered inline, in the order they arrived on the connection, so that
//! pipelined produces to one partition are appended in order. Requests that may wait — a
//! fetch long-poll, the fsync of an `always` topic, admin calls that touch the file system —
//! return a future that the connection runs on its own, answering when it is done.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use switchyard_broker::{Broker, BrokerError};
use switchyard_protocol::types::{GroupSummary, PartitionOffset, TopicSummary};
use switchyard_protocol::{Request, Response, ResponseResult};

use crate::convert;

/// Longest a fetch may wait for data, whatever the client asks: a bound on how long a
/// connection task can be parked.
pub const MAX_FETCH_WAIT: Duration = Duration::from_secs(30);

/// A response, or the work that will produce it.
pub enum Outcome {
    Ready(ResponseResult),
    Deferred(Pin<Box<dyn Future<Output = ResponseResult> + Send>>),
}

/// What the handler needs besides the broker.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest batch bytes a fetch may return; below the frame limit.
    pub max_fetch_bytes: u32,
    /// The server's `max_frame_bytes`: a topic's records must fit in a frame.
    pub max_frame_bytes: u32,
}

pub(crate) fn ready<T>(
    result: Result<T, BrokerError>,
    wrap: impl FnOnce(T) -> Response,
) -> Outcome {
    Outcome::Ready(
        result
            .map(wrap)
            .map_err(|err| convert::error_response(&err)),
    )
}

/// Refuses a topic whose largest record, with its request's overhead, would not fit in a
/// frame of this server: the topic would accept what no produce could carry.
fn check_fits_in_frame(
    config: &switchyard_broker::TopicConfig,
    max_frame_bytes: u32,
) -> Result<(), BrokerError> {
    let needed = u64::from(config.max_record_bytes) + crate::config::FRAME_OVERHEAD_BYTES;
    if needed <= u64::from(max_frame_bytes) {
        return Ok(());
    }
    Err(BrokerError::InvalidConfig(format!(
        "max_record_bytes = {} does not fit in the server's max_frame_bytes = {max_frame_bytes} \
         (a record needs {} bytes more for its request); use at most {} or start the server \
         with a larger max_frame_bytes",
        config.max_record_bytes,
        crate::config::FRAME_OVERHEAD_BYTES,
        u64::from(max_frame_bytes).saturating_sub(crate::config::FRAME_OVERHEAD_BYTES),
    )))
}

/// Runs `work` on the blocking pool and answers with its result.
pub(crate) fn blocking(
    broker: &Broker,
    work: impl FnOnce(&Broker) -> Result<Response, BrokerError> + Send + 'static,
) -> Outcome {
    let broker = broker.clone();
    Outcome::Deferred(Box::pin(async move {
        let joined = tokio::task::spawn_blocking(move || work(&broker)).await;
        match joined {
            Ok(result) => result.map_err(|err| convert::error_response(&err)),
            Err(err) => Err(switchyard_protocol::ErrorResponse::new(
                switchyard_protocol::ErrorCode::Internal,
                format!("request handler failed: {err}"),
            )),
        }
    }))
}

/// Handles every request except `Hello`, which the connection answers itself.
pub fn handle(broker: &Broker, limits: Limits, request: Request) -> Outcome {
    match request {
        Request::Hello { .. } => Outcome::Ready(Err(switchyard_protocol::ErrorResponse::new(
            switchyard_protocol::ErrorCode::InvalidRequest,
            "hello was already exchanged on this connection",
        ))),
        Request::CreateTopic {
            name,
            partitions,
            config,
        } => blocking(broker, move |broker| {
            let config = convert::topic_config(partitions, &config, &broker.topic_defaults());
            check_fits_in_frame(&config, limits.max_frame_bytes)?;
            broker.create_topic(&name, config).map(|()| Response::Empty)
        }),
        Request::DeleteTopic { name } => blocking(broker, move |broker| {
            broker.delete_topic(&name).map(|()| Response::Empty)
        }),
        Request::AddPartitions { name, total } => blocking(broker, move |broker| {
            broker
                .add_partitions(&name, total)
                .map(|()| Response::Empty)
        }),
        Request::ListTopics => {
            let topics = broker.list_topics();
            Outcome::Ready(Ok(Response::Topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| TopicSummary { name, partitions })
                    .collect(),
            )))
        }
        Request::DescribeTopic { name } => {
            ready(broker.describe_topic(&name), convert::topic_description)
        }
        Request::Produce {
            topic,
            partition,
            batch,
        } => produce(broker, topic, partition, batch),
        Request::Fetch {
            topic,
            partition,
            offset,
            max_bytes,
            max_wait_ms,
        } => {
            let max_bytes = max_bytes.min(limits.max_fetch_bytes) as usize;
            let wait = Duration::from_millis(u64::from(max_wait_ms)).min(MAX_FETCH_WAIT);
            fetch(broker, topic, partition, offset, max_bytes, wait)
        }
        Request::ListOffsets {
            topic,
            partition,
            spec,
        } => ready(
            broker.list_offset(&topic, partition, convert::offset_spec(spec)),
            |offset| Response::Offset { offset },
        ),
        Request::JoinGroup {
            group,
            topic,
            member_id,
            client_name,
            session_timeout_ms,
            reset,
        } => {
            let topic = broker.group_topic(&group, &topic);
            let joined = broker.join_group(
                &group,
                &topic,
                member_id.as_deref(),
                &client_name,
                session_timeout_ms,
                convert::reset_policy(reset),
            );
            ready(joined, |assignment| Response::Joined {
                member_id: assignment.member_id,
                generation: assignment.generation,
                assignment: assignment.partitions,
                heartbeat_interval_ms: convert::heartbeat_interval(session_timeout_ms).as_millis()
                    as u32,
                topic,
            })
        }
        Request::Heartbeat {
            group,
            member_id,
            owned,
            ..
        } => ready(broker.heartbeat(&group, &member_id, &owned), |assignment| {
            Response::Assignment {
                generation: assignment.generation,
                assignment: assignment.partitions,
            }
        }),
        Request::LeaveGroup { group, member_id } => {
            ready(broker.leave_group(&group, &member_id), |()| Response::Empty)
        }
        Request::CommitOffsets {
            group,
            member_id,
            offsets,
            ..
        } => {
            let offsets: Vec<(u32, u64)> = offsets
                .iter()
                .map(|entry| (entry.partition, entry.offset))
                .collect();
            ready(broker.commit_offsets(&group, &member_id, &offsets), |()| {
                Response::Empty
            })
        }
        Request::FetchOffsets { group } => ready(broker.committed_offsets(&group), |offsets| {
            Response::CommittedOffsets(
                offsets
                    .into_iter()
                    .map(|(partition, offset)| PartitionOffset { partition, offset })
                    .collect(),
            )
        }),
        Request::ListGroups => Outcome::Ready(Ok(Response::Groups(
            broker
                .list_groups()
                .into_iter()
                .map(|group| GroupSummary {
                    name: group.name,
                    topic: group.topic,
                    members: group.members,
                    generation: group.generation,
                })
                .collect(),
        ))),
        Request::DescribeGroup { group } => {
            ready(broker.describe_group(&group), convert::group_description)
        }
        Request::DeleteGroup { group } => ready(broker.delete_group(&group), |()| Response::Empty),
        request @ (Request::CreateQueue { .. }
        | Request::DeleteQueue { .. }
        | Request::ListQueues
        | Request::QueueStats { .. }
        | Request::Send { .. }
        | Request::Receive { .. }
        | Request::Ack { .. }
        | Request::Nack { .. }
        | Request::Extend { .. }
        | Request::Redrive { .. }
        | Request::PeekQueue { .. }) => crate::queue_handler::handle(broker, limits, request),
        request @ (Request::CreateSubscription { .. }
        | Request::ListSubscriptions { .. }
        | Request::DeleteSubscription { .. }) => {
            crate::subscription_handler::handle(broker, request)
        }
        request @ (Request::CreateRule { .. }
        | Request::ListRules
        | Request::DeleteRule { .. }
        | Request::Trace { .. }) => crate::rule_handler::handle(broker, request),
        Request::BlobPut {
            id,
            offset,
            total,
            data,
            last,
        } => blocking(broker, move |broker| {
            broker
                .put_blob(&id, offset, total, &data, last)
                .map(|()| Response::Empty)
        }),
        Request::BlobGet { id, offset, max } => blocking(broker, move |broker| {
            let (total, data) = broker.get_blob(&id, offset, max)?;
            Ok(Response::Blob { total, data })
        }),
        // Subscriptions belong to a connection, so the connection's session answers these.
        Request::Subscribe { .. } | Request::Unsubscribe { .. } | Request::Publish { .. } => {
            Outcome::Ready(Err(switchyard_protocol::ErrorResponse::new(
                switchyard_protocol::ErrorCode::Internal,
                "pub/sub requests are handled by the connection's session",
            )))
        }
    }
}

/// Appends inline (keeping the connection's order); for an `always` topic the answer waits
/// until the sync workers have made the records durable, sharing fsyncs (group commit).
fn produce(broker: &Broker, topic: String, partition: u32, batch: bytes::Bytes) -> Outcome {
    let appended = match broker.append(&topic, partition, &batch) {
        Ok(appended) => appended,
        Err(err) => return Outcome::Ready(Err(convert::error_response(&err))),
    };
    let info = appended.info;
    let response = Response::Produced {
        base_offset: info.base_offset,
        record_count: info.record_count,
    };
    if !appended.needs_sync {
        return Outcome::Ready(Ok(response));
    }
    let broker = broker.clone();
    let end = info.base_offset + u64::from(info.record_count);
    Outcome::Deferred(Box::pin(async move {
        broker
            .wait_durable(&topic, partition, end)
            .await
            .map(|()| response)
            .map_err(|err| convert::error_response(&err))
    }))
}

/// Answers at once when there is data; otherwise waits for an append or the deadline.
fn fetch(
    broker: &Broker,
    topic: String,
    partition: u32,
    offset: u64,
    max_bytes: usize,
    wait: Duration,
) -> Outcome {
    let fetched = |result: Result<switchyard_log::ReadResult, BrokerError>| {
        result.map(|read| Response::Fetched {
            log_start: read.log_start,
            log_end: read.log_end,
            batches: read.batches,
        })
    };
    let first = broker.fetch(&topic, partition, offset, max_bytes);
    let has_data = first.as_ref().map_or(true, |read| !read.batches.is_empty());
    if has_data || wait.is_zero() {
        return Outcome::Ready(fetched(first).map_err(|err| convert::error_response(&err)));
    }
    let broker = broker.clone();
    Outcome::Deferred(Box::pin(async move {
        let deadline = tokio::time::Instant::now() + wait;
        let mut stopping = broker.stopping();
        let handle = broker
            .partition_handle(&topic, partition)
            .map_err(|e| convert::error_response(&e))?;
        loop {
            let notified = handle.appended.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let result = broker.fetch(&topic, partition, offset, max_bytes);
            let empty = result.as_ref().is_ok_and(|read| read.batches.is_empty());
            if !empty || tokio::time::Instant::now() >= deadline {
                return fetched(result).map_err(|err| convert::error_response(&err));
            }
            if *stopping.borrow() {
                return fetched(result).map_err(|err| convert::error_response(&err));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => {}
                _ = stopping.changed() => {}
            }
        }
    }))
}
