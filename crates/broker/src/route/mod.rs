//! Routing: subject patterns that bind a subscription to many topics, and filters that pick
//! records by key and headers.

pub mod filter;
pub mod subject;

pub use filter::{Filter, FilterError};
pub use subject::{Pattern, PatternError};
