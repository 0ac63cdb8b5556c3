//! `switchyard serve`: load settings, set up logging, run the server until a signal.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use switchyard_server::{LogFormat, Server, ServerConfig};

/// Flags of `serve`; each overrides the config file and the `SWITCHYARD_*` variables.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "SWITCHYARD_CONFIG")]
    config: Option<PathBuf>,
    /// Folder for all data [default: ./switchyard-data].
    #[arg(long)]
    data_dir: Option<String>,
    /// Address for the native protocol [default: 127.0.0.1:7411].
    #[arg(long)]
    listen: Option<String>,
    /// `human` or `json` [default: human].
    #[arg(long)]
    log_format: Option<String>,
    /// Log filter, e.g. `info` or `switchyard_server=debug` [default: info].
    #[arg(long)]
    log_level: Option<String>,
    /// Fsync policy for topics created without one: always, interval or never.
    #[arg(long)]
    default_fsync: Option<String>,
    /// Partitions for topics created without a count.
    #[arg(long)]
    default_partitions: Option<u32>,
    /// Largest frame the server accepts, e.g. `17 MiB`.
    #[arg(long)]
    max_frame_bytes: Option<String>,
    /// How often retention runs, e.g. `5m`.
    #[arg(long)]
    retention_check_interval: Option<String>,
}

impl ServeArgs {
    fn overrides(&self) -> Vec<(&'static str, String)> {
        let mut overrides = Vec::new();
        let mut put = |key: &'static str, value: &Option<String>| {
            if let Some(value) = value {
                overrides.push((key, value.clone()));
            }
        };
        put("data_dir", &self.data_dir);
        put("listen", &self.listen);
        put("log_format", &self.log_format);
        put("log_level", &self.log_level);
        put("default_fsync", &self.default_fsync);
        put("max_frame_bytes", &self.max_frame_bytes);
        put("retention_check_interval", &self.retention_check_interval);
        put(
            "default_partitions",
            &self.default_partitions.map(|n| n.to_string()),
        );
        overrides
    }
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = ServerConfig::load(args.config.as_deref(), &args.overrides())?;
    init_logging(config.log_format, &config.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchyard")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::bind(config).await?;
        server.run(shutdown_signal()).await?;
        anyhow::Ok(())
    })
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid value for `log_level`: `{level}` is not a filter"))?;
    // Colour codes only for a person at a terminal, not in a file or a log collector.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let signal = crate::signals::stop_requested().await;
    tracing::info!(signal, "received a stop signal");
}
