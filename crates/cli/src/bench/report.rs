//! The result of a benchmark run and how it is printed.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::json;

use crate::output::{count, print_line};

/// Throughput and latency of one run.
#[derive(Debug)]
pub struct Report {
    pub name: &'static str,
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency: Histogram<u64>,
    /// What the latency measures, for the printed report.
    pub latency_of: &'static str,
}

/// A histogram for microsecond latencies up to an hour, three significant digits.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static histogram bounds are valid")
}

impl Report {
    pub fn records_per_sec(&self) -> f64 {
        self.records as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn print(&self, json: bool) {
        let quantile = |q: f64| self.latency.value_at_quantile(q);
        if json {
            let value = json!({
                "bench": self.name,
                "records": self.records,
                "bytes": self.bytes,
                "seconds": self.elapsed.as_secs_f64(),
                "records_per_sec": self.records_per_sec(),
                "mb_per_sec": self.mb_per_sec(),
                "latency_of": self.latency_of,
                "latency_us": {
                    "p50": quantile(0.50), "p90": quantile(0.90), "p99": quantile(0.99),
                    "p999": quantile(0.999), "max": self.latency.max(),
                },
            });
            print_line(value);
            return;
        }
        print_line(format_args!(
            "{}: {} in {:.2} s: {:.0} records/s, {:.1} MB/s",
            self.name,
            count(self.records, "record"),
            self.elapsed.as_secs_f64(),
            self.records_per_sec(),
            self.mb_per_sec()
        ));
        print_line(format_args!(
            "latency ({}) µs: p50 {} p90 {} p99 {} p99.9 {} max {}",
            self.latency_of,
            quantile(0.50),
            quantile(0.90),
            quantile(0.99),
            quantile(0.999),
            self.latency.max()
        ));
    }
}
