//! `delay-alerts`: the late flights as a work queue, handled by competing consumers.
//!
//! The consumer-group reports read the whole topic as a stream; this part of the example
//! uses a queue instead, as a job system would: one alert per flight that left at least an
//! hour late, each handed to one of several worker processes under a lease, acked when
//! handled, retried when a worker dies, and dead-lettered when it can never be handled.
//!
//! - [`load`]: `alerts-load` creates the queue and sends the alerts, a few of them malformed
//!   on purpose, since the real data has none that would exercise the dead-letter path.
//! - [`worker`]: `alerts-worker`, one competing consumer; its handler is idempotent, so a
//!   redelivery after a crash changes nothing that is counted.
//! - [`tally`]: `alerts-tally`, what the workers handled, counted once per alert.
//!
//! An alert is identified by its flight: date, carrier, flight number, origin and scheduled
//! departure time, which is unique in the data. That id is the alert's dedup id at the queue
//! and the line a worker writes, so both the broker and the tally can spot a second copy.

pub mod load;
pub mod tally;
pub mod worker;

use anyhow::bail;
use serde_json::{Map, Value};

/// Fields whose values, joined by `-`, identify an alert.
const ID_FIELDS: [&str; 7] = [
    "year",
    "month",
    "day",
    "carrier",
    "flight",
    "origin",
    "sched_dep_time",
];

/// Queue the alerts go to unless told otherwise.
pub const DEFAULT_QUEUE: &str = "delay-alerts";

/// The id of the alert for `flight`: `year-month-day-carrier-flight-origin-sched_dep_time`.
pub fn alert_id(flight: &Map<String, Value>) -> anyhow::Result<String> {
    let mut parts = Vec::with_capacity(ID_FIELDS.len());
    for field in ID_FIELDS {
        match flight.get(field) {
            Some(Value::String(text)) => parts.push(text.clone()),
            Some(Value::Number(number)) => parts.push(number.to_string()),
            _ => bail!("the alert has no `{field}`, so it has no id"),
        }
    }
    Ok(parts.join("-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_joins_date_carrier_flight_origin_and_schedule() {
        let flight = serde_json::json!({
            "year": 2013, "month": 1, "day": 1, "carrier": "UA", "flight": 1545,
            "origin": "EWR", "sched_dep_time": 515, "dep_delay": 2,
        });
        let Value::Object(flight) = flight else {
            panic!("an object")
        };
        let id = alert_id(&flight).expect("all fields present");
        assert_eq!(id, "2013-1-1-UA-1545-EWR-515");
    }

    #[test]
    fn a_missing_field_is_named() {
        let mut flight = Map::new();
        flight.insert("year".into(), Value::from(2013));
        let error = alert_id(&flight).expect_err("fields missing");
        assert!(error.to_string().contains("`month`"), "{error}");
    }
}
