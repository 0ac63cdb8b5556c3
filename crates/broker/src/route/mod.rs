//! Routing: subject patterns that bind a subscription to many topics, and filters that pick
//! records by key and headers.

pub mod filter;
pub mod pattern_set;
pub mod subject;

pub use filter::{Filter, FilterError};
pub use pattern_set::PatternSet;
pub use subject::{Pattern, PatternError};
