//! `video`: a choreographed video pipeline on Switchyard, with no central coordinator.
//!
//! Each step is its own process reading its own durable queue subscription and publishing
//! the next event itself: `scanner` (video.uploaded → video.scanned or video.rejected),
//! `thumbnail` and `encoder` (both on video.scanned, in parallel), `ready` (joins
//! video.thumbnailed and video.encoded per id), `cdn` (video.ready → video.published),
//! `analytics` (counts every `video.>` event live) and `recommend` (added later, replays
//! video.published from the start). Every event carries `video-id`, and every downstream
//! event `caused-by` (`topic/partition/offset` of what it reacted to), which `trace` follows.
//!
//! - `events`: topics, event payloads, publishing with the linkage headers.
//! - `services`: the service loops.
//! - `media`: the fake media files, their check, their thumbnail and their "encoding".
//!
//! The media travel inside the events, large ones as broker claim-check blobs (see
//! `events`): no service reads another's files.

mod events;
mod media;
mod services;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "video", about = "A choreographed video pipeline on Switchyard")]
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
    /// Create the topics and the services' durable subscriptions (idempotent).
    Setup,
    /// Publish video.uploaded holding a file's bytes (a claim-check blob when large).
    Upload {
        /// The media file to upload.
        #[arg(long)]
        file: PathBuf,
        /// Id of the upload (default: the file's name without extension).
        #[arg(long)]
        id: Option<String>,
    },
    /// Run one service: scanner, thumbnail, encoder, ready, cdn, analytics or recommend.
    Service {
        /// Which service.
        name: services::Service,
        /// The pipeline's working folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
    },
    /// Print every event of one upload, in pipeline order, with its `caused-by`.
    Trace {
        /// The upload's id.
        #[arg(long)]
        id: String,
        /// Print JSON lines instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a fake media file: a magic header and pseudo-random bytes.
    Generate {
        /// Where to write it.
        #[arg(long)]
        out: PathBuf,
        /// Size in bytes.
        #[arg(long, default_value_t = 64 * 1024)]
        size: usize,
        /// Seed of the pseudo-random bytes.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Leave out the magic header, so the scanner rejects the file.
        #[arg(long)]
        infected: bool,
    },
}

/// Prints a failure as one line with its causes and exits 1.
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
        Command::Setup => events::setup(&cli.server).await,
        Command::Upload { file, id } => events::upload(&cli.server, &file, id.as_deref()).await,
        Command::Service { name, dir } => services::run(&cli.server, name, &dir).await,
        Command::Trace { id, json } => events::trace(&cli.server, &id, json).await,
        Command::Generate {
            out,
            size,
            seed,
            infected,
        } => media::generate(&out, size, seed, infected),
    }
}
