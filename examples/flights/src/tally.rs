//! The two questions the example asks of the data, answered the same way whichever side
//! the flights come from.
//!
//! Consumers see flights as JSON records fetched from the broker; `expected` sees them as
//! CSV rows. Both reduce a row to a [`Flight`] (the three fields the answers need) and feed
//! it to a [`Tally`], so the two answers can differ only if the broker lost, duplicated or
//! altered records on the way.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The fields of one flight the reports look at; `None` where the data says `NA`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Flight {
    /// Airport the flight left from: EWR, JFK or LGA.
    pub origin: Option<String>,
    /// Two-letter airline code.
    pub carrier: Option<String>,
    /// Minutes the departure was late (negative when early); `None` for a cancelled flight.
    pub dep_delay: Option<f64>,
}

/// Counts keyed by airport or carrier; a `BTreeMap` so the JSON comes out sorted by key.
pub type Counts = BTreeMap<String, u64>;

/// Departures per origin airport and late departures per carrier, built one flight at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Number of flights (rows) that left from each airport.
    pub departures_by_origin: Counts,
    /// Number of flights per carrier whose departure delay reached the threshold.
    pub late_by_carrier: Counts,
    /// Smallest `dep_delay`, in minutes, that counts as late.
    #[serde(skip)]
    min_delay: f64,
}

impl Tally {
    /// An empty tally counting a flight as late from `min_delay` minutes on.
    pub fn new(min_delay: f64) -> Tally {
        Tally {
            min_delay,
            ..Tally::default()
        }
    }

    /// Adds one flight. A cancelled flight (no `dep_delay`) is never late, but it is still a
    /// scheduled departure of its origin, so it counts there.
    pub fn add(&mut self, flight: &Flight) {
        if let Some(origin) = &flight.origin {
            *self.departures_by_origin.entry(origin.clone()).or_default() += 1;
        }
        let late = flight
            .dep_delay
            .is_some_and(|delay| delay >= self.min_delay);
        if let (true, Some(carrier)) = (late, &flight.carrier) {
            *self.late_by_carrier.entry(carrier.clone()).or_default() += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(origin: &str, carrier: &str, dep_delay: Option<f64>) -> Flight {
        Flight {
            origin: Some(origin.into()),
            carrier: Some(carrier.into()),
            dep_delay,
        }
    }

    #[test]
    fn counts_every_row_as_a_departure_and_only_delays_at_the_threshold_as_late() {
        let mut tally = Tally::new(60.0);
        tally.add(&flight("EWR", "UA", Some(60.0)));
        tally.add(&flight("EWR", "UA", Some(59.0)));
        tally.add(&flight("JFK", "B6", None));
        tally.add(&flight("JFK", "B6", Some(120.0)));

        assert_eq!(tally.departures_by_origin["EWR"], 2);
        assert_eq!(tally.departures_by_origin["JFK"], 2);
        assert_eq!(tally.late_by_carrier["UA"], 1);
        assert_eq!(tally.late_by_carrier["B6"], 1);
    }

    #[test]
    fn reads_a_flight_from_its_json_record() {
        let json = r#"{"origin":"LGA","carrier":"DL","dep_delay":null,"year":2013}"#;
        let parsed: Flight = serde_json::from_str(json).expect("valid flight");
        assert_eq!(parsed, flight("LGA", "DL", None));
    }
}
