//! Looking into a queue without taking from it: the records still in it (not acked, not
//! dead-lettered, not redriven), in log order, with their delivery counts. Nothing is leased
//! and no count changes, so listing a dead-letter queue shows exactly the dead letters that
//! are still there, which reading its log cannot (the log keeps redriven ones until
//! retention).

use crate::broker::Broker;
use crate::error::Result;
use crate::queues::Delivery;

impl Broker {
    /// Up to `max` records of `queue` in log order (by partition, then offset), leased ones
    /// included; each `Delivery` has an empty token.
    pub fn peek_queue(&self, queue: &str, max: usize) -> Result<Vec<Delivery>> {
        self.check_running()?;
        let queue = self.queue(queue)?;
        self.tick_queue(&queue)?;
        let now = self.now_ms();
        let mut inner = queue.inner.lock();
        // Records not read from the log yet are in the queue too.
        queue.fill(&mut inner, max, now)?;
        // Only admissions: durable with the next periodic sync.
        inner.journal.flush()?;
        let pending = inner.state.pending(max);
        let positions: Vec<_> = pending.iter().map(|(pos, _)| *pos).collect();
        let records = queue.records(&mut inner, &positions)?;
        Ok(pending
            .into_iter()
            .zip(records)
            .filter_map(|((pos, deliveries), record)| {
                Some(Delivery {
                    token: String::new(),
                    partition: pos.0,
                    deliveries,
                    record: record?,
                })
            })
            .collect())
    }
}
