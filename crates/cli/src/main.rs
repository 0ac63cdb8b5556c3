//! The `switchyard` command: the server, admin commands, produce, consume and benchmarks.
//!
//! - `serve`: run the broker (module [`serve`]).
//! - `topic`, `group`: administration ([`topic`], [`group`]).
//! - `produce`, `consume`: move records from stdin to a topic and back ([`produce`],
//!   [`consume`], with [`input`] parsing and [`template`] formatting).
//! - `bench`: load generators that print throughput and latency ([`bench`]).

mod bench;
mod consume;
mod group;
mod input;
mod output;
mod produce;
mod serve;
mod template;
mod topic;

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use switchyard_client::Client;

/// Switchyard: queues, pub/sub and streams on one durable log.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Broker address for client commands.
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_SERVER",
        default_value = "127.0.0.1:7411"
    )]
    server: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker.
    Serve(serve::ServeArgs),
    /// Manage topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Inspect consumer groups.
    #[command(subcommand)]
    Group(group::GroupCommand),
    /// Produce one record per input line.
    Produce(produce::ProduceArgs),
    /// Consume records as a member of a consumer group.
    Consume(consume::ConsumeArgs),
    /// Measure throughput and latency.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause whose text an outer message
/// already carries (many errors include their source in their own message).
fn describe(err: &anyhow::Error) -> String {
    let mut message = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if message.contains(&text) {
            continue;
        }
        if !message.is_empty() {
            message.push_str(": ");
        }
        message.push_str(&text);
    }
    message
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Serve(args) = cli.command {
        return serve::run(args);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let client = Client::connect(&cli.server)
            .await
            .with_context(|| format!("cannot reach the broker at {}", cli.server))?;
        match cli.command {
            Command::Serve(_) => unreachable!("handled above"),
            Command::Topic(command) => topic::run(&client, command, cli.json).await,
            Command::Group(command) => group::run(&client, command, cli.json).await,
            Command::Produce(args) => produce::run(&client, args, cli.json).await,
            Command::Consume(args) => consume::run(&client, args, cli.json).await,
            Command::Bench(command) => bench::run(&client, &cli.server, command, cli.json).await,
        }
    })
}
