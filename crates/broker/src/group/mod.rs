//! Stream subscriptions: consumer groups with broker-side assignment and committed offsets.

pub mod coordinator;
pub mod offsets;

pub use coordinator::{Assignment, Group, Member, ResetPolicy};
pub use offsets::{GroupRecord, OffsetStore};
