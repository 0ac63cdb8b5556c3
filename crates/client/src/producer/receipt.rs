//! [`DeliveryReceipt`]: the future a sent record resolves through.
//!
//! A receipt resolves once, from the produce response of the batch its record went out in:
//! to the record's partition and offset if the server appended it, to the batch's error if
//! not, and to [`ClientError::Abandoned`] if the record never left (its producer was dropped
//! with the record still waiting). It never reports success the server did not acknowledge.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{ClientError, Result};

/// Where a record was stored: `(partition, offset)`.
pub type Delivery = (u32, u64);

/// The sending half of a receipt, kept with the record until its batch is answered.
pub(crate) type Waiter = oneshot::Sender<Result<Delivery>>;

/// Resolves to the partition and offset of a sent record, or to why it was not stored.
#[derive(Debug)]
#[must_use = "a receipt is the only way to learn whether the record was stored"]
pub struct DeliveryReceipt {
    topic: Arc<str>,
    outcome: oneshot::Receiver<Result<Delivery>>,
}

impl DeliveryReceipt {
    pub(crate) fn new(topic: Arc<str>) -> (Waiter, DeliveryReceipt) {
        let (waiter, outcome) = oneshot::channel();
        (waiter, DeliveryReceipt { topic, outcome })
    }
}

impl Future for DeliveryReceipt {
    type Output = Result<Delivery>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = Pin::new(&mut self.outcome).poll(cx);
        outcome.map(|received| {
            received.unwrap_or_else(|_| {
                Err(ClientError::Abandoned {
                    topic: self.topic.to_string(),
                })
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn receipt_yields_what_was_sent() {
        let (waiter, receipt) = DeliveryReceipt::new("t".into());
        let _ = waiter.send(Ok((2, 40)));
        assert_eq!(receipt.await.expect("delivered"), (2, 40));
    }

    #[tokio::test]
    async fn dropped_waiter_is_abandoned_not_delivered() {
        let (waiter, receipt) = DeliveryReceipt::new("orders".into());
        drop(waiter);
        let err = receipt.await.expect_err("never sent");
        assert!(matches!(err, ClientError::Abandoned { .. }));
        assert!(err.to_string().contains("`orders`"));
    }
}
