//! `flights`: replays the 2013 New York flights through Switchyard and asks two consumer
//! groups questions of them.
//!
//! The example exists to run the broker on real, messy data end to end and to check the
//! answers: `load` produces every row, `departures-by-origin` and `late-by-carrier` each
//! read the topic as their own consumer group, and `expected` answers the same questions
//! straight from the CSV, so a test can compare the two.
//!
//! - `data`: the zipped CSV and the row-to-JSON conversion.
//! - `tally`: the two questions, asked of one flight at a time.
//! - `load`: the producer side.
//! - `consume`: a group member that reads the topic up to its end and commits.
//! - `alerts`: the late flights as a work queue with competing workers (`alerts-*`).
//! - `fanout`: `replay` through publish, the live `board`, and `origin-subscriptions`.

mod alerts;
mod consume;
mod data;
mod fanout;
mod load;
mod tally;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use consume::{read_to_end, ReadSpec};
use data::{csv_reader, read_csv_from_zip, FlightColumns};
use tally::Tally;

/// Minutes from which a departure counts as late by default: an hour, well past the 15
/// minutes from which the US Bureau of Transportation Statistics calls a flight delayed, so
/// the report counts only the long delays.
const DEFAULT_MIN_DELAY: &str = "60";

#[derive(Parser)]
#[command(
    name = "flights",
    about = "Replay the 2013 NYC flights through Switchyard"
)]
struct Cli {
    /// Broker address.
    #[arg(
        long,
        env = "SWITCHYARD_SERVER",
        default_value = "127.0.0.1:7411",
        global = true
    )]
    server: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the topic and produce every flight as a JSON record keyed by tail number.
    Load {
        /// Path of flights.csv.zip (`examples/flights/data.sh` prints it).
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "flights")]
        topic: String,
        #[arg(long, default_value_t = 6)]
        partitions: u32,
    },
    /// Count departures per origin airport, reading as consumer group GROUP.
    DeparturesByOrigin(GroupArgs),
    /// Count late departures per carrier, reading as consumer group GROUP.
    LateByCarrier {
        #[command(flatten)]
        group: GroupArgs,
        /// Departure delay, in minutes, from which a flight counts as late.
        #[arg(long, default_value = DEFAULT_MIN_DELAY)]
        min_delay: f64,
    },
    /// Answer both questions straight from the CSV.
    Expected {
        /// Path of flights.csv.zip.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = DEFAULT_MIN_DELAY)]
        min_delay: f64,
    },
    /// Publish flights to the topic's subject: stored in the topic and shown on boards.
    Replay {
        /// Path of flights.csv.zip.
        #[arg(long)]
        data: PathBuf,
        /// Subject and topic; the topic is created unless it exists.
        #[arg(long, default_value = "flights")]
        topic: String,
        /// Partitions of the topic, when it is created.
        #[arg(long, default_value_t = 6)]
        partitions: u32,
        /// Rows of the CSV to leave out first.
        #[arg(long, default_value_t = 0)]
        skip: usize,
        /// Most rows to publish (default: the rest of the file).
        #[arg(long)]
        limit: Option<usize>,
        /// Records per second; 0 for no limit.
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
        /// Records per publish.
        #[arg(long, default_value_t = 100)]
        batch: usize,
    },
    /// Show departures as they are published (live, at most once, while connected).
    Board {
        /// Show only flights from this airport (EWR, JFK or LGA); all when left out.
        #[arg(long)]
        origin: Option<String>,
        /// Stop after this many flights.
        #[arg(long)]
        count: Option<u64>,
        /// Subject to subscribe to: the topic's name.
        #[arg(long, default_value = "flights")]
        topic: String,
    },
    /// Count each airport's departures through durable filtered queue subscriptions.
    OriginSubscriptions {
        #[arg(long, default_value = "flights")]
        topic: String,
        /// Give up after this many seconds without draining them.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Create queue `delay-alerts` and send one alert per flight that left late.
    AlertsLoad {
        /// Path of flights.csv.zip.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = alerts::DEFAULT_QUEUE)]
        queue: String,
        /// Departure delay, in minutes, from which a flight gets an alert.
        #[arg(long, default_value = DEFAULT_MIN_DELAY)]
        min_delay: f64,
    },
    /// Handle alerts as one of several competing workers, until the queue is drained.
    AlertsWorker {
        /// This worker's number; it names its output file, `OUT/worker-N.ids`.
        #[arg(long)]
        worker_id: u32,
        /// Folder of the workers' output files.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = alerts::DEFAULT_QUEUE)]
        queue: String,
        /// Seconds the queue must stay empty before the worker stops.
        #[arg(long, default_value_t = 3)]
        idle: u64,
    },
    /// Count the alerts the workers handled, each once.
    AlertsTally {
        /// Folder of the workers' output files.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Args)]
struct GroupArgs {
    /// Consumer group to read as; a group that already read the topic resumes where it
    /// stopped.
    #[arg(long)]
    group: String,
    #[arg(long, default_value = "flights")]
    topic: String,
    /// Give up after this many seconds without reaching the end.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
}

/// Prints a failure as one line with its causes, as the `switchyard` CLI does, and exits 1.
fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_command(cli))
}

async fn run_command(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Load {
            data,
            topic,
            partitions,
        } => load::run(&cli.server, &data, &topic, partitions).await,
        Command::DeparturesByOrigin(group) => {
            let tally = report(&cli.server, &group, Tally::new(0.0)).await?;
            print_json(&tally.departures_by_origin)
        }
        Command::LateByCarrier { group, min_delay } => {
            let tally = report(&cli.server, &group, Tally::new(min_delay)).await?;
            print_json(&tally.late_by_carrier)
        }
        Command::Expected { data, min_delay } => print_json(&expected(&data, min_delay)?),
        Command::Replay {
            data,
            topic,
            partitions,
            skip,
            limit,
            rate,
            batch,
        } => {
            let spec = fanout::ReplaySpec {
                server: &cli.server,
                data: &data,
                topic: &topic,
                partitions,
                skip,
                limit,
                rate,
                batch,
            };
            fanout::replay(&spec).await
        }
        Command::Board {
            origin,
            count,
            topic,
        } => fanout::board(&cli.server, &topic, origin.as_deref(), count).await,
        Command::OriginSubscriptions { topic, timeout } => {
            fanout::origin_subscriptions(&cli.server, &topic, Duration::from_secs(timeout)).await
        }
        Command::AlertsLoad {
            data,
            queue,
            min_delay,
        } => alerts::load::run(&cli.server, &data, &queue, min_delay).await,
        Command::AlertsWorker {
            worker_id,
            out,
            queue,
            idle,
        } => {
            let spec = alerts::worker::WorkerSpec {
                server: &cli.server,
                queue: &queue,
                worker_id,
                out: &out,
                idle: Duration::from_secs(idle),
            };
            alerts::worker::run(&spec).await
        }
        Command::AlertsTally { out } => alerts::tally::run(&out),
    }
}

/// Reads the topic as the group and tallies what it read; says how much on stderr, so a
/// caller can tell a resumed run that had nothing left to read.
async fn report(server: &str, args: &GroupArgs, mut tally: Tally) -> anyhow::Result<Tally> {
    let spec = ReadSpec {
        server,
        group: &args.group,
        topic: &args.topic,
        deadline: Duration::from_secs(args.timeout),
    };
    let read = read_to_end(&spec, |flight| tally.add(flight)).await?;
    eprintln!(
        "read {read} records of topic `{}` as group `{}`",
        args.topic, args.group
    );
    Ok(tally)
}

/// Both answers computed from the CSV alone.
fn expected(data: &Path, min_delay: f64) -> anyhow::Result<Tally> {
    let text = read_csv_from_zip(data)?;
    let mut reader = csv_reader(&text);
    let columns = FlightColumns::new(reader.headers().context("cannot read the CSV header")?)?;
    let mut tally = Tally::new(min_delay);
    for (index, row) in reader.records().enumerate() {
        // Line 1 is the header.
        let line = index as u64 + 2;
        let row = row.with_context(|| format!("cannot read CSV line {line}"))?;
        tally.add(&columns.flight(&row, line)?);
    }
    Ok(tally)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
