//! The `switchyard` command: the server, admin commands, produce, consume and benchmarks.
//!
//! - `serve`: run the broker (module [`serve`]).
//! - `topic`, `group`: administration ([`topic`], [`group`]).
//! - `produce`, `consume`: move records from stdin to a topic and back ([`produce`],
//!   [`consume`], with [`input`] parsing and [`template`] formatting).
//! - `bench`: load generators that print throughput and latency ([`bench`]).
//! - `queue`, `send`, `receive`, `ack`, `nack`, `extend`, `dlq`: queues ([`queue`]).
//! - `publish`, `subscribe`, `request`, `reply`: ephemeral pub/sub and request-reply
//!   ([`pubsub`]).
//! - `sub`: durable subscriptions, groups and queues over one topic ([`sub`]).
//! - `rule`, `trace`: event rules routing records between topics, and their trace ([`rule`]).

mod bench;
mod consume;
mod group;
mod input;
mod output;
mod produce;
mod pubsub;
mod queue;
mod rule;
mod serve;
mod signals;
mod sub;
mod template;
mod time;
mod topic;

use std::process::ExitCode;

use anyhow::Context;
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use switchyard_client::{Client, ClientError};

/// Switchyard: queues, pub/sub and streams on one durable log.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about)]
struct Cli {
    /// Broker address for client commands (`serve` takes --listen instead).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_SERVER",
        default_value = "127.0.0.1:7411"
    )]
    server: String,
    /// Print JSON instead of tables, and errors as `{"error": "..."}` on standard error
    /// (client commands; `serve` takes --log-format json).
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
    /// Manage queues.
    #[command(subcommand)]
    Queue(queue::QueueCommand),
    /// Send one record per input line to a queue.
    Send(queue::messages::SendArgs),
    /// Receive records from a queue under a lease.
    Receive(queue::messages::ReceiveArgs),
    /// Ack received records by their lease tokens.
    Ack(queue::messages::AckArgs),
    /// Give a received record back, to be delivered again or dead-lettered.
    Nack(queue::messages::NackArgs),
    /// Extend the lease of a received record.
    Extend(queue::messages::ExtendArgs),
    /// Inspect and redrive a queue's dead letters.
    #[command(subcommand)]
    Dlq(queue::dlq::DlqCommand),
    /// Publish one record per input line to a subject's subscribers.
    Publish(pubsub::PublishArgs),
    /// Print records published to subjects matching a pattern, as they arrive.
    Subscribe(pubsub::SubscribeArgs),
    /// Send a request to a subject and print the reply.
    Request(pubsub::RequestArgs),
    /// Answer requests on a subject by running a command.
    Reply(pubsub::ReplyArgs),
    /// Manage durable subscriptions: stream, exclusive and queue readers of a topic.
    #[command(subcommand)]
    Sub(sub::SubCommand),
    /// Manage event rules: route records of matching topics into another topic.
    #[command(subcommand)]
    Rule(rule::RuleCommand),
    /// Show the records routed by rules from one record, as a tree.
    Trace(rule::TraceArgs),
}

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    // `serve` refuses --json (below), and says so in plain text.
    let json = cli.json && !matches!(cli.command, Command::Serve(_));
    let result = match &cli.command {
        Command::Serve(_) => reject_client_flags(&matches).and_then(|()| run(cli)),
        _ => run(cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if json => {
            eprintln!("{}", serde_json::json!({ "error": describe(&err) }));
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// `--server` and `--json` are global so that they can go anywhere on a client command's
/// line, but they mean nothing to `serve`: say so rather than ignore them.
fn reject_client_flags(matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let given = |id: &str| matches.value_source(id) == Some(ValueSource::CommandLine);
    if given("server") {
        anyhow::bail!(
            "`serve` does not take --server; give the address to listen on with --listen"
        );
    }
    if given("json") {
        anyhow::bail!("`serve` does not take --json; for JSON log lines use --log-format json");
    }
    Ok(())
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
            .map_err(|err| unreachable_broker(&cli.server, err))?;
        match cli.command {
            Command::Serve(_) => unreachable!("handled above"),
            Command::Topic(command) => topic::run(&client, command, cli.json).await,
            Command::Group(command) => group::run(&client, command, cli.json).await,
            Command::Produce(args) => produce::run(&client, args, cli.json).await,
            Command::Consume(args) => consume::run(&client, args, cli.json).await,
            Command::Bench(command) => bench::run(&client, &cli.server, command, cli.json).await,
            Command::Queue(command) => queue::run(&client, command, cli.json).await,
            Command::Send(args) => queue::messages::send(&client, args, cli.json).await,
            Command::Receive(args) => queue::messages::receive(&client, args, cli.json).await,
            Command::Ack(args) => queue::messages::ack(&client, args, cli.json).await,
            Command::Nack(args) => queue::messages::nack(&client, args, cli.json).await,
            Command::Extend(args) => queue::messages::extend(&client, args, cli.json).await,
            Command::Dlq(command) => queue::dlq::run(&client, command, cli.json).await,
            Command::Publish(args) => pubsub::publish(&client, args, cli.json).await,
            Command::Subscribe(args) => pubsub::subscribe(&client, args, cli.json).await,
            Command::Request(args) => pubsub::request(&client, args, cli.json).await,
            Command::Reply(args) => pubsub::reply(&client, args).await,
            Command::Sub(command) => sub::run(&client, command, cli.json).await,
            Command::Rule(command) => rule::run(&client, command, cli.json).await,
            Command::Trace(args) => rule::trace(&client, args, cli.json).await,
        }
    })
}

/// The error of a failed connect, with what to do when nothing listens at the address.
fn unreachable_broker(server: &str, err: ClientError) -> anyhow::Error {
    let refused = matches!(
        &err,
        ClientError::Connect { source, .. }
            if source.kind() == std::io::ErrorKind::ConnectionRefused
    );
    let hint = if refused {
        "; is the broker running? start it with `switchyard serve`"
    } else {
        ""
    };
    anyhow::anyhow!("cannot reach the broker at {server}: {err}{hint}")
}
