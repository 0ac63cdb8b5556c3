//! Reading a topic to a fixed end as one consumer-group member.
//!
//! A report is a query over the topic "as of now", so it needs an end: the end offsets that
//! `describe_topic` gives when the run starts. The reader polls until its position in every
//! partition has reached that end, counts only records below it, and before closing moves
//! any partition that overshot back to the end. The group's commit is then exactly that end,
//! and a later run of the same group starts where this one stopped: it reads only what was
//! produced in between, and nothing at all when nothing was.
//!
//! The reader must be its group's only member: the count is right only if this run read
//! every record between the group's commit and the end itself, once. So it fails as soon
//! as the group moves a partition away from it or sends a position back (a rejoin after a
//! lost session restarts from the last commit, and would count records twice).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use switchyard_client::{Client, ConsumedRecord, Consumer, ConsumerOptions, StartPosition};

use crate::tally::Flight;

/// Where a run must get to and how far it has got, per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Offset the run stops at in each partition: its end when the run started.
    ends: BTreeMap<u32, u64>,
    /// Offset of the next record to read in each partition whose position is known.
    next: BTreeMap<u32, u64>,
}

impl Progress {
    /// Progress toward `ends` (partition to end offset), with no position known yet.
    pub fn new(ends: BTreeMap<u32, u64>) -> Progress {
        Progress {
            ends,
            next: BTreeMap::new(),
        }
    }

    /// Takes in the consumer's positions after a poll (partition, next offset), checking
    /// that nothing read so far can be read again or missed: every partition seen before is
    /// still owned, and no position went back. Either happens only when the group moved a
    /// partition (another member joined, or this one lost its membership and rejoined).
    pub fn follow(&mut self, owned: &[(u32, u64)]) -> Result<(), Setback> {
        for partition in self.next.keys() {
            if !owned.iter().any(|(held, _)| held == partition) {
                return Err(Setback::Moved(*partition));
            }
        }
        for (partition, offset) in owned {
            match self.next.insert(*partition, *offset) {
                Some(before) if before > *offset => {
                    return Err(Setback::Rewound {
                        partition: *partition,
                        from: before,
                        to: *offset,
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Whether a record at `offset` of `partition` lies before the end.
    pub fn within_end(&self, partition: u32, offset: u64) -> bool {
        self.ends.get(&partition).is_some_and(|end| offset < *end)
    }

    /// Whether every partition's position has reached its end. A partition that was empty
    /// at the start has nothing to read, so it counts as done before its position is known.
    pub fn caught_up(&self) -> bool {
        self.ends.iter().all(|(partition, end)| {
            *end == 0 || self.next.get(partition).is_some_and(|next| next >= end)
        })
    }

    /// Partitions read past their end, with the end to move them back to.
    pub fn overshot(&self) -> Vec<(u32, u64)> {
        self.ends
            .iter()
            .filter(|(partition, end)| self.next.get(partition).is_some_and(|next| next > end))
            .map(|(partition, end)| (*partition, *end))
            .collect()
    }
}

/// Why a run cannot trust its count any more.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setback {
    /// The group gave a partition this run was reading to another member.
    Moved(u32),
    /// A partition's position went back, so records already counted would come again.
    Rewound { partition: u32, from: u64, to: u64 },
}

impl std::fmt::Display for Setback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setback::Moved(partition) => {
                write!(
                    f,
                    "partition {partition} moved to another member of the group"
                )
            }
            Setback::Rewound {
                partition,
                from,
                to,
            } => write!(
                f,
                "the position in partition {partition} went back from {from} to {to}"
            ),
        }
    }
}

/// Which group reads which topic, and for how long at most.
pub struct ReadSpec<'a> {
    pub server: &'a str,
    pub group: &'a str,
    pub topic: &'a str,
    pub deadline: Duration,
}

/// Reads `spec.topic` in `spec.group` up to the end offsets it has now, handing each flight
/// to `on_flight`; commits, leaves the group and returns the number of records read.
pub async fn read_to_end(
    spec: &ReadSpec<'_>,
    mut on_flight: impl FnMut(&Flight),
) -> anyhow::Result<u64> {
    let client = Client::connect(spec.server)
        .await
        .with_context(|| format!("cannot connect to the broker at {}", spec.server))?;
    let mut progress = Progress::new(end_offsets(&client, spec.topic).await?);

    let mut options = ConsumerOptions::new(spec.group, spec.topic);
    options.client_name = "flights".into();
    options.start = StartPosition::Earliest;
    options.auto_commit = true;
    let mut consumer = Consumer::join(client, options)
        .await
        .with_context(|| format!("cannot join group `{}`", spec.group))?;

    let read = poll_until_caught_up(&mut consumer, &mut progress, spec, &mut on_flight).await?;

    // Positions past the end would be committed, and their records never counted by anyone.
    for (partition, end) in progress.overshot() {
        consumer.seek(partition, StartPosition::Offset(end)).await?;
    }
    consumer
        .close()
        .await
        .with_context(|| format!("cannot commit and leave group `{}`", spec.group))?;
    Ok(read)
}

/// The end offset of every partition of `topic`.
async fn end_offsets(client: &Client, topic: &str) -> anyhow::Result<BTreeMap<u32, u64>> {
    let description = client
        .describe_topic(topic)
        .await
        .with_context(|| format!("cannot describe topic `{topic}`"))?;
    let ends = description
        .partitions
        .iter()
        .map(|info| (info.partition, info.end_offset))
        .collect();
    Ok(ends)
}

/// The poll loop: hands on records below the end until every partition is caught up.
async fn poll_until_caught_up(
    consumer: &mut Consumer,
    progress: &mut Progress,
    spec: &ReadSpec<'_>,
    on_flight: &mut impl FnMut(&Flight),
) -> anyhow::Result<u64> {
    let started = Instant::now();
    let mut read = 0;
    while !progress.caught_up() {
        if started.elapsed() > spec.deadline {
            bail!(
                "group `{}` did not reach the end of topic `{}` within {:?}; is another \
                 member of the group holding partitions?",
                spec.group,
                spec.topic,
                spec.deadline
            );
        }
        for consumed in consumer.poll().await? {
            if progress.within_end(consumed.partition, consumed.record.offset) {
                on_flight(&decode(spec.topic, &consumed)?);
                read += 1;
            }
        }
        let owned: Vec<(u32, u64)> = consumer
            .assignment()
            .into_iter()
            .filter_map(|partition| Some((partition, consumer.position(partition)?)))
            .collect();
        progress.follow(&owned).map_err(|setback| {
            anyhow::anyhow!(
                "{setback}; group `{}` changed under this run, so its count cannot be \
                 trusted (a report must be its group's only member)",
                spec.group
            )
        })?;
    }
    Ok(read)
}

/// The flight a record holds.
fn decode(topic: &str, consumed: &ConsumedRecord) -> anyhow::Result<Flight> {
    let place = || {
        format!(
            "record {} of topic `{topic}`, partition {}",
            consumed.record.offset, consumed.partition
        )
    };
    let value = consumed
        .record
        .value
        .as_deref()
        .with_context(|| format!("{} has no value", place()))?;
    serde_json::from_slice(value).with_context(|| format!("{} is not a flight", place()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toward(ends: &[(u32, u64)]) -> Progress {
        Progress::new(ends.iter().copied().collect())
    }

    #[test]
    fn caught_up_only_when_every_nonempty_partition_reached_its_end() {
        let mut progress = toward(&[(0, 10), (1, 0), (2, 5)]);
        assert!(!progress.caught_up());
        progress.follow(&[(0, 10)]).expect("first positions");
        assert!(!progress.caught_up());
        progress.follow(&[(0, 10), (2, 4)]).expect("moved on");
        assert!(!progress.caught_up());
        progress.follow(&[(0, 10), (2, 5)]).expect("moved on");
        assert!(progress.caught_up());
    }

    #[test]
    fn a_partition_taken_away_or_rewound_is_a_setback() {
        let mut progress = toward(&[(0, 10), (1, 10)]);
        progress.follow(&[(0, 4), (1, 4)]).expect("first positions");
        assert_eq!(progress.follow(&[(1, 6)]), Err(Setback::Moved(0)));

        let mut progress = toward(&[(0, 10)]);
        progress.follow(&[(0, 7)]).expect("first positions");
        let rewound = Setback::Rewound {
            partition: 0,
            from: 7,
            to: 3,
        };
        assert_eq!(progress.follow(&[(0, 3)]), Err(rewound));
    }

    #[test]
    fn records_at_or_past_the_end_are_outside() {
        let progress = toward(&[(0, 10)]);
        assert!(progress.within_end(0, 9));
        assert!(!progress.within_end(0, 10));
        assert!(!progress.within_end(1, 0));
    }

    #[test]
    fn overshot_partitions_are_moved_back_to_their_end() {
        let mut progress = toward(&[(0, 10), (1, 3)]);
        progress.follow(&[(0, 12), (1, 3)]).expect("positions");
        assert_eq!(progress.overshot(), vec![(0, 10)]);
    }
}
