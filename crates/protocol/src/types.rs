//! Structured values shared by request and response bodies.
//!
//! These are wire types, deliberately separate from the broker's and log's own types: they
//! change only with a protocol version, while internal types may change freely. The `Wire`
//! suffix marks the ones that mirror an internal configuration type.

use crate::codec::{Reader, Wire, Writer};
use crate::error::{BodyError, EncodeError};

/// When the log flushes appended data to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsyncPolicyWire {
    /// After every append (tag 0).
    Always,
    /// Every `fsync_interval_ms` (tag 1).
    Interval,
    /// Leave it to the operating system (tag 2).
    Never,
}

impl Wire for FsyncPolicyWire {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            FsyncPolicyWire::Always => 0,
            FsyncPolicyWire::Interval => 1,
            FsyncPolicyWire::Never => 2,
        });
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("fsync")? {
            0 => Ok(FsyncPolicyWire::Always),
            1 => Ok(FsyncPolicyWire::Interval),
            2 => Ok(FsyncPolicyWire::Never),
            value => Err(BodyError::InvalidTag {
                field: "fsync",
                value,
            }),
        }
    }
}

/// Topic settings. In `CreateTopic`, `None` means "use the server default"; in
/// `TopicDescription` the server fills in every field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TopicConfigWire {
    /// Delete segments older than this.
    pub retention_ms: Option<u64>,
    /// Delete old segments while a partition is larger than this.
    pub retention_bytes: Option<u64>,
    /// Roll a new segment once the active one reaches this size.
    pub segment_bytes: Option<u64>,
    /// Roll a new segment once the active one is this old.
    pub segment_ms: Option<u64>,
    /// Flush policy.
    pub fsync: Option<FsyncPolicyWire>,
    /// Flush period for [`FsyncPolicyWire::Interval`].
    pub fsync_interval_ms: Option<u64>,
    /// Largest accepted record.
    pub max_record_bytes: Option<u32>,
}

impl Wire for TopicConfigWire {
    const MIN_LEN: usize = 7;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        let u64_field = |w: &mut Writer<'_>, v: &u64| {
            w.u64(*v);
            Ok(())
        };
        w.option(self.retention_ms.as_ref(), u64_field)?;
        w.option(self.retention_bytes.as_ref(), u64_field)?;
        w.option(self.segment_bytes.as_ref(), u64_field)?;
        w.option(self.segment_ms.as_ref(), u64_field)?;
        w.option(self.fsync.as_ref(), |w, v| v.encode(w))?;
        w.option(self.fsync_interval_ms.as_ref(), u64_field)?;
        w.option(self.max_record_bytes.as_ref(), |w, v| {
            w.u32(*v);
            Ok(())
        })
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(TopicConfigWire {
            retention_ms: r.option("retention_ms", |r| r.u64("retention_ms"))?,
            retention_bytes: r.option("retention_bytes", |r| r.u64("retention_bytes"))?,
            segment_bytes: r.option("segment_bytes", |r| r.u64("segment_bytes"))?,
            segment_ms: r.option("segment_ms", |r| r.u64("segment_ms"))?,
            fsync: r.option("fsync", FsyncPolicyWire::decode)?,
            fsync_interval_ms: r.option("fsync_interval_ms", |r| r.u64("fsync_interval_ms"))?,
            max_record_bytes: r.option("max_record_bytes", |r| r.u32("max_record_bytes"))?,
        })
    }
}

/// Which offset `ListOffsets` looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OffsetSpec {
    /// The first offset still in the log (tag 0).
    Earliest,
    /// The offset the next record will get (tag 1).
    Latest,
    /// The first offset whose record timestamp is at or after this many ms since the epoch
    /// (tag 2).
    Timestamp(i64),
}

impl Wire for OffsetSpec {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        match self {
            OffsetSpec::Earliest => w.u8(0),
            OffsetSpec::Latest => w.u8(1),
            OffsetSpec::Timestamp(ms) => {
                w.u8(2);
                w.i64(*ms);
            }
        }
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("spec")? {
            0 => Ok(OffsetSpec::Earliest),
            1 => Ok(OffsetSpec::Latest),
            2 => Ok(OffsetSpec::Timestamp(r.i64("spec timestamp")?)),
            value => Err(BodyError::InvalidTag {
                field: "spec",
                value,
            }),
        }
    }
}

/// Where a group member starts when its group has no usable committed offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResetPolicyWire {
    /// From the start of the log (tag 0).
    Earliest,
    /// From the end of the log (tag 1).
    Latest,
}

impl Wire for ResetPolicyWire {
    const MIN_LEN: usize = 1;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u8(match self {
            ResetPolicyWire::Earliest => 0,
            ResetPolicyWire::Latest => 1,
        });
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        match r.u8("reset")? {
            0 => Ok(ResetPolicyWire::Earliest),
            1 => Ok(ResetPolicyWire::Latest),
            value => Err(BodyError::InvalidTag {
                field: "reset",
                value,
            }),
        }
    }
}

/// One entry of `ListTopics`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicSummary {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: u32,
}

impl Wire for TopicSummary {
    const MIN_LEN: usize = 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("topic name", &self.name)?;
        w.u32(self.partitions);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(TopicSummary {
            name: r.string("topic name")?,
            partitions: r.u32("partitions")?,
        })
    }
}

/// State of one partition in `TopicDescription`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PartitionInfo {
    /// Partition number.
    pub partition: u32,
    /// First offset still stored.
    pub start_offset: u64,
    /// Offset the next record will get.
    pub end_offset: u64,
    /// Bytes on disk.
    pub size_bytes: u64,
    /// Number of segment files.
    pub segments: u32,
}

impl Wire for PartitionInfo {
    const MIN_LEN: usize = 4 + 8 + 8 + 8 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.partition);
        w.u64(self.start_offset);
        w.u64(self.end_offset);
        w.u64(self.size_bytes);
        w.u32(self.segments);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(PartitionInfo {
            partition: r.u32("partition")?,
            start_offset: r.u64("start_offset")?,
            end_offset: r.u64("end_offset")?,
            size_bytes: r.u64("size_bytes")?,
            segments: r.u32("segments")?,
        })
    }
}

/// A partition and an offset in it: a commit, or a committed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PartitionOffset {
    /// Partition number.
    pub partition: u32,
    /// Offset of the next record to consume.
    pub offset: u64,
}

impl Wire for PartitionOffset {
    const MIN_LEN: usize = 4 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.partition);
        w.u64(self.offset);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(PartitionOffset {
            partition: r.u32("partition")?,
            offset: r.u64("offset")?,
        })
    }
}

/// One entry of `ListGroups`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GroupSummary {
    /// Group name.
    pub name: String,
    /// Topic the group consumes.
    pub topic: String,
    /// Current member count.
    pub members: u32,
    /// Current generation.
    pub generation: u32,
}

impl Wire for GroupSummary {
    const MIN_LEN: usize = 2 + 2 + 4 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("group name", &self.name)?;
        w.string("topic", &self.topic)?;
        w.u32(self.members);
        w.u32(self.generation);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(GroupSummary {
            name: r.string("group name")?,
            topic: r.string("topic")?,
            members: r.u32("members")?,
            generation: r.u32("generation")?,
        })
    }
}

/// One member in `GroupDescription`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    /// Server-assigned member id.
    pub member_id: String,
    /// Name the client gave when joining.
    pub client_name: String,
    /// Partitions assigned to this member.
    pub partitions: Vec<u32>,
}

impl Wire for MemberInfo {
    const MIN_LEN: usize = 2 + 2 + 4;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.string("member_id", &self.member_id)?;
        w.string("client_name", &self.client_name)?;
        w.list("member partitions", &self.partitions)
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(MemberInfo {
            member_id: r.string("member_id")?,
            client_name: r.string("client_name")?,
            partitions: r.list("member partitions")?,
        })
    }
}

/// Progress of a group on one partition in `GroupDescription`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupPartition {
    /// Partition number.
    pub partition: u32,
    /// Committed offset, if the group has committed on this partition.
    pub committed: Option<u64>,
    /// First offset still stored.
    pub log_start: u64,
    /// Offset the next record will get.
    pub log_end: u64,
    /// Records between the consumed position and `log_end`.
    pub lag: u64,
}

impl Wire for GroupPartition {
    const MIN_LEN: usize = 4 + 1 + 8 + 8 + 8;

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        w.u32(self.partition);
        w.option(self.committed.as_ref(), |w, v| {
            w.u64(*v);
            Ok(())
        })?;
        w.u64(self.log_start);
        w.u64(self.log_end);
        w.u64(self.lag);
        Ok(())
    }

    fn decode(r: &mut Reader) -> Result<Self, BodyError> {
        Ok(GroupPartition {
            partition: r.u32("partition")?,
            committed: r.option("committed", |r| r.u64("committed"))?,
            log_start: r.u64("log_start")?,
            log_end: r.u64("log_end")?,
            lag: r.u64("lag")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn encode<T: Wire>(value: &T) -> BytesMut {
        let mut buf = BytesMut::new();
        value.encode(&mut Writer::new(&mut buf)).expect("encodes");
        buf
    }

    fn round_trip<T: Wire + PartialEq + std::fmt::Debug>(value: T) {
        let buf = encode(&value);
        assert!(buf.len() >= T::MIN_LEN, "MIN_LEN is a lower bound");
        let mut r = Reader::new(buf.freeze());
        assert_eq!(T::decode(&mut r).expect("decodes"), value);
        r.finish().expect("no trailing bytes");
    }

    #[test]
    fn empty_config_is_seven_absent_tags() {
        assert_eq!(&encode(&TopicConfigWire::default())[..], &[0; 7]);
        round_trip(TopicConfigWire::default());
    }

    #[test]
    fn full_config_round_trips() {
        round_trip(TopicConfigWire {
            retention_ms: Some(1),
            retention_bytes: Some(2),
            segment_bytes: Some(3),
            segment_ms: Some(4),
            fsync: Some(FsyncPolicyWire::Interval),
            fsync_interval_ms: Some(5),
            max_record_bytes: Some(6),
        });
    }

    #[test]
    fn enum_tags_match_the_spec() {
        assert_eq!(&encode(&FsyncPolicyWire::Never)[..], &[2]);
        assert_eq!(&encode(&ResetPolicyWire::Latest)[..], &[1]);
        assert_eq!(&encode(&OffsetSpec::Latest)[..], &[1]);
        assert_eq!(
            &encode(&OffsetSpec::Timestamp(-1))[..],
            &[2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]
        );
    }

    #[test]
    fn unknown_enum_tags_are_rejected() {
        let mut r = Reader::new(bytes::Bytes::from_static(&[3]));
        assert_eq!(
            FsyncPolicyWire::decode(&mut r),
            Err(BodyError::InvalidTag {
                field: "fsync",
                value: 3
            })
        );
        let mut r = Reader::new(bytes::Bytes::from_static(&[2]));
        assert!(ResetPolicyWire::decode(&mut r).is_err());
        let mut r = Reader::new(bytes::Bytes::from_static(&[3]));
        assert!(OffsetSpec::decode(&mut r).is_err());
    }

    #[test]
    fn composite_values_round_trip() {
        round_trip(TopicSummary {
            name: "orders".into(),
            partitions: 3,
        });
        round_trip(PartitionInfo {
            partition: 1,
            start_offset: 2,
            end_offset: 3,
            size_bytes: 4,
            segments: 5,
        });
        round_trip(PartitionOffset {
            partition: 7,
            offset: u64::MAX,
        });
        round_trip(GroupSummary {
            name: "g".into(),
            topic: "t".into(),
            members: 2,
            generation: 9,
        });
        round_trip(MemberInfo {
            member_id: "m-1".into(),
            client_name: "ünïcode".into(),
            partitions: vec![0, 2, 4],
        });
        round_trip(GroupPartition {
            partition: 0,
            committed: None,
            log_start: 0,
            log_end: 10,
            lag: 10,
        });
    }
}
