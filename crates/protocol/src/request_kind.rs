//! The kinds of request: one stable number per request type, in the order they were added,
//! with the list of all of them, so that decoders, servers and tests agree on what exists.

/// The stable numeric identity of a request type. Values are never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum RequestKind {
    /// Handshake and version negotiation; must be first on a connection.
    Hello = 1,
    /// Create a topic.
    CreateTopic = 2,
    /// Delete a topic and its data.
    DeleteTopic = 3,
    /// List all topics.
    ListTopics = 4,
    /// Configuration and per-partition state of one topic.
    DescribeTopic = 5,
    /// Grow a topic to a total partition count.
    AddPartitions = 6,
    /// Append a record batch to a partition.
    Produce = 7,
    /// Read record batches from a partition.
    Fetch = 8,
    /// Look up an offset by position or time.
    ListOffsets = 9,
    /// Join (or rejoin) a consumer group.
    JoinGroup = 10,
    /// Keep group membership alive and learn the current assignment.
    Heartbeat = 11,
    /// Leave a consumer group.
    LeaveGroup = 12,
    /// Commit consumed positions.
    CommitOffsets = 13,
    /// Read a group's committed positions.
    FetchOffsets = 14,
    /// List all consumer groups.
    ListGroups = 15,
    /// Members, assignment and lag of one group.
    DescribeGroup = 16,
    /// Delete a consumer group and its commits.
    DeleteGroup = 17,
    /// Create a queue (and its dead-letter queue).
    CreateQueue = 18,
    /// Delete a queue and its topic.
    DeleteQueue = 19,
    /// List all queues.
    ListQueues = 20,
    /// Depth, totals and settings of one queue.
    QueueStats = 21,
    /// Send records to a queue.
    Send = 22,
    /// Lease records of a queue, waiting for some when there are none.
    Receive = 23,
    /// Acknowledge deliveries: their records are done.
    Ack = 24,
    /// Give a delivery back, to be delivered again or dead-lettered.
    Nack = 25,
    /// Extend a delivery's lease.
    Extend = 26,
    /// Move dead letters back to the queue they came from.
    Redrive = 27,
    /// Start an ephemeral subscription to a subject pattern; messages come as pushes.
    Subscribe = 28,
    /// End an ephemeral subscription.
    Unsubscribe = 29,
    /// Deliver records to every matching subscription (and append them to a topic of the
    /// subject's name, if there is one).
    Publish = 30,
    /// Create a durable subscription (a consumer group or a queue) on a topic.
    CreateSubscription = 31,
    /// List durable subscriptions, of every topic or of one.
    ListSubscriptions = 32,
    /// Delete a durable subscription; its topic and the other subscriptions stay.
    DeleteSubscription = 33,
    /// Create an event rule routing records between topics.
    CreateRule = 34,
    /// List the event rules.
    ListRules = 35,
    /// Delete an event rule; what it routed stays.
    DeleteRule = 36,
    /// Find the records routed from one record, recursively.
    Trace = 37,
    /// Uploads one chunk of a claim-check blob.
    BlobPut = 38,
    /// Reads a range of a claim-check blob.
    BlobGet = 39,
    /// The records still in a queue, without leasing them.
    PeekQueue = 40,
}

impl RequestKind {
    /// Every kind, in numeric order.
    pub const ALL: [RequestKind; 40] = [
        RequestKind::Hello,
        RequestKind::CreateTopic,
        RequestKind::DeleteTopic,
        RequestKind::ListTopics,
        RequestKind::DescribeTopic,
        RequestKind::AddPartitions,
        RequestKind::Produce,
        RequestKind::Fetch,
        RequestKind::ListOffsets,
        RequestKind::JoinGroup,
        RequestKind::Heartbeat,
        RequestKind::LeaveGroup,
        RequestKind::CommitOffsets,
        RequestKind::FetchOffsets,
        RequestKind::ListGroups,
        RequestKind::DescribeGroup,
        RequestKind::DeleteGroup,
        RequestKind::CreateQueue,
        RequestKind::DeleteQueue,
        RequestKind::ListQueues,
        RequestKind::QueueStats,
        RequestKind::Send,
        RequestKind::Receive,
        RequestKind::Ack,
        RequestKind::Nack,
        RequestKind::Extend,
        RequestKind::Redrive,
        RequestKind::Subscribe,
        RequestKind::Unsubscribe,
        RequestKind::Publish,
        RequestKind::CreateSubscription,
        RequestKind::ListSubscriptions,
        RequestKind::DeleteSubscription,
        RequestKind::CreateRule,
        RequestKind::ListRules,
        RequestKind::DeleteRule,
        RequestKind::Trace,
        RequestKind::BlobPut,
        RequestKind::BlobGet,
        RequestKind::PeekQueue,
    ];

    /// Maps a wire value to a kind; `None` for values this implementation does not know.
    pub fn from_u16(value: u16) -> Option<RequestKind> {
        match value {
            1..=40 => Some(Self::ALL[usize::from(value) - 1]),
            _ => None,
        }
    }

    /// The wire value of this kind.
    pub fn as_u16(self) -> u16 {
        self as u16
    }
}

impl From<RequestKind> for u16 {
    fn from(kind: RequestKind) -> u16 {
        kind.as_u16()
    }
}
