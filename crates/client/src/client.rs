//! [`Client`]: one typed method per request kind, over a shared [`Connection`].
//!
//! Each method builds its request, awaits the response and unpacks the success body, so
//! callers deal in Rust values and [`ClientError`] rather than protocol enums. The methods are
//! thin on purpose: no retries and no caching, which belong to the [`crate::Producer`] and
//! [`crate::Consumer`] built on top, or to the caller.

use std::time::Duration;

use bytes::Bytes;
use switchyard_protocol::{
    GroupSummary, OffsetSpec, PartitionOffset, Request, Response, TopicConfigWire, TopicSummary,
};

use crate::connection::{ConnectOptions, Connection, PendingCall};
use crate::error::{ClientError, Result};
use crate::records::{decode_fetched, FetchResult};
use crate::types::{GroupAssignment, GroupDescription, JoinRequest, JoinedGroup, TopicDescription};

/// Largest `max_bytes` a fetch asks for: 16 MiB, the size of the largest batch the default
/// frame limit lets a producer send; larger values are lowered to it.
pub const MAX_FETCH_BYTES: u32 = 16 * 1024 * 1024;

/// A connected client. Cheap to clone; clones share one connection and may call concurrently.
#[derive(Debug, Clone)]
pub struct Client {
    connection: Connection,
}

impl Client {
    /// Connects to `addr` (`host:port`) with default options.
    pub async fn connect(addr: &str) -> Result<Client> {
        Client::connect_with(addr, &ConnectOptions::default()).await
    }

    /// Connects to `addr` with the given options.
    pub async fn connect_with(addr: &str, options: &ConnectOptions) -> Result<Client> {
        Ok(Client {
            connection: Connection::connect(addr, options).await?,
        })
    }

    /// Wraps an open connection.
    pub fn from_connection(connection: Connection) -> Client {
        Client { connection }
    }

    /// The underlying connection.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Creates `name` with `partitions` partitions; `None` config fields take server defaults.
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        config: TopicConfigWire,
    ) -> Result<()> {
        let request = Request::CreateTopic {
            name: name.to_string(),
            partitions,
            config,
        };
        self.call_empty(request).await
    }

    /// Deletes topic `name` and all its data.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.call_empty(Request::DeleteTopic { name: name.into() })
            .await
    }

    /// Every topic with its partition count.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        match self.connection.call(Request::ListTopics).await? {
            Response::Topics(topics) => Ok(topics),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Configuration and partition state of topic `name`.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let request = Request::DescribeTopic { name: name.into() };
        match self.connection.call(request).await? {
            Response::TopicDescription {
                name,
                config,
                partitions,
            } => Ok(TopicDescription {
                name,
                config,
                partitions,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Grows topic `name` to `total` partitions (the new total, not the number to add).
    pub async fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let request = Request::AddPartitions {
            name: name.into(),
            total,
        };
        self.call_empty(request).await
    }

    /// Appends one encoded batch (see [`crate::encode_batch`]) to a partition; returns the
    /// offset given to its first record and the number of records.
    pub async fn produce(&self, topic: &str, partition: u32, batch: Bytes) -> Result<(u64, u32)> {
        let call = self.start_produce(topic, partition, batch)?;
        self.finish_produce(call).await
    }

    /// Puts a produce on the wire now; see [`Client::finish_produce`].
    pub(crate) fn start_produce(
        &self,
        topic: &str,
        partition: u32,
        batch: Bytes,
    ) -> Result<PendingCall> {
        let request = Request::Produce {
            topic: topic.to_string(),
            partition,
            batch,
        };
        self.connection.send(request, Duration::ZERO)
    }

    /// Awaits a produce started with [`Client::start_produce`].
    pub(crate) async fn finish_produce(&self, call: PendingCall) -> Result<(u64, u32)> {
        match call.wait().await? {
            Response::Produced {
                base_offset,
                record_count,
            } => Ok((base_offset, record_count)),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Reads records from `offset` on, waiting up to `max_wait` when there are none yet.
    /// `max_bytes` is a soft limit (at least one batch comes back when one is available) and
    /// is lowered to [`MAX_FETCH_BYTES`].
    /// Records that refer to a claim-check blob come back with their value.
    pub async fn fetch(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait: Duration,
    ) -> Result<FetchResult> {
        let mut fetched = self
            .fetch_unresolved(topic, partition, offset, max_bytes, max_wait)
            .await?;
        self.resolve_blobs(&mut fetched.records).await?;
        Ok(fetched)
    }

    /// As [`Client::fetch`], leaving claim-check records as sent: no value, the `sy-blob`
    /// and `sy-blob-size` headers.
    pub async fn fetch_unresolved(
        &self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
        max_wait: Duration,
    ) -> Result<FetchResult> {
        let max_wait_ms = u32::try_from(max_wait.as_millis()).unwrap_or(u32::MAX);
        let request = Request::Fetch {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes: max_bytes.min(MAX_FETCH_BYTES),
            max_wait_ms,
        };
        let response = self
            .connection
            .call_with_extra_time(request, max_wait)
            .await?;
        let Response::Fetched {
            log_start,
            log_end,
            batches,
        } = response
        else {
            return Err(self.unexpected(&response));
        };
        let records = decode_fetched(topic, partition, offset, &batches)?;
        Ok(FetchResult {
            log_start,
            log_end,
            records,
        })
    }

    /// Looks up an offset of a partition by position (earliest, latest) or time.
    pub async fn list_offsets(&self, topic: &str, partition: u32, spec: OffsetSpec) -> Result<u64> {
        let request = Request::ListOffsets {
            topic: topic.to_string(),
            partition,
            spec,
        };
        match self.connection.call(request).await? {
            Response::Offset { offset } => Ok(offset),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Joins (or rejoins) a group, creating it bound to the topic if it does not exist.
    pub async fn join_group(&self, join: JoinRequest) -> Result<JoinedGroup> {
        let request = Request::JoinGroup {
            group: join.group,
            topic: join.topic,
            member_id: join.member_id,
            client_name: join.client_name,
            session_timeout_ms: join.session_timeout_ms,
            reset: join.reset,
        };
        match self.connection.call(request).await? {
            Response::Joined {
                member_id,
                generation,
                assignment,
                heartbeat_interval_ms,
                topic,
            } => Ok(JoinedGroup {
                member_id,
                generation,
                assignment,
                heartbeat_interval_ms,
                topic,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Keeps a membership alive, reporting the partitions the member consumes now; returns
    /// what it may consume.
    pub async fn heartbeat(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        owned: &[u32],
    ) -> Result<GroupAssignment> {
        let request = Request::Heartbeat {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation,
            owned: owned.to_vec(),
        };
        match self.connection.call(request).await? {
            Response::Assignment {
                generation,
                assignment,
            } => Ok(GroupAssignment {
                generation,
                assignment,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Leaves a group; its partitions are handed to the remaining members.
    pub async fn leave_group(&self, group: &str, member_id: &str) -> Result<()> {
        let request = Request::LeaveGroup {
            group: group.to_string(),
            member_id: member_id.to_string(),
        };
        self.call_empty(request).await
    }

    /// Commits positions (the offset of the next record to consume) of owned partitions.
    pub async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        generation: u32,
        offsets: &[PartitionOffset],
    ) -> Result<()> {
        let request = Request::CommitOffsets {
            group: group.to_string(),
            member_id: member_id.to_string(),
            generation,
            offsets: offsets.to_vec(),
        };
        self.call_empty(request).await
    }

    /// The group's committed positions, only for partitions that have one.
    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<PartitionOffset>> {
        let request = Request::FetchOffsets {
            group: group.to_string(),
        };
        match self.connection.call(request).await? {
            Response::CommittedOffsets(offsets) => Ok(offsets),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Every group with its topic, member count and generation.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>> {
        match self.connection.call(Request::ListGroups).await? {
            Response::Groups(groups) => Ok(groups),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Members, assignment and lag of a group.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let request = Request::DescribeGroup {
            group: group.to_string(),
        };
        match self.connection.call(request).await? {
            Response::GroupDescription {
                name,
                topic,
                generation,
                members,
                partitions,
            } => Ok(GroupDescription {
                name,
                topic,
                generation,
                members,
                partitions,
            }),
            other => Err(self.unexpected(&other)),
        }
    }

    /// Deletes a group and its commits.
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        let request = Request::DeleteGroup {
            group: group.to_string(),
        };
        self.call_empty(request).await
    }

    pub(crate) async fn call_empty(&self, request: Request) -> Result<()> {
        match self.connection.call(request).await? {
            Response::Empty => Ok(()),
            other => Err(self.unexpected(&other)),
        }
    }

    /// The connection already checks that a response answers its request's kind, so this
    /// only fires if the two disagree about which body a kind has.
    pub(crate) fn unexpected(&self, response: &Response) -> ClientError {
        ClientError::Protocol {
            addr: self.connection.addr().to_string(),
            detail: format!("unexpected {} response", response.name()),
        }
    }
}
