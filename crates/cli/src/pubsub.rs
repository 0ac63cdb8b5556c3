//! `switchyard publish`, `subscribe`, `request` and `reply`: ephemeral pub/sub and
//! request-reply from a shell.
//!
//! `publish` reads records as `produce` does (a line each; `--key-field`, `--csv`) and
//! sends what has been read in one publish, so a fast pipe is batched and a slow one is
//! sent line by line. `subscribe` says on standard error when it is subscribed, so a script
//! can wait for that line before publishing, and warns there when records were dropped
//! because it read too slowly. `request` prints the reply and exits 1 when there is none;
//! `reply --exec` runs a command per request with the payload on its standard input and
//! answers with its standard output.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use serde_json::json;
use switchyard_broker::route::Pattern;
use switchyard_client::{Client, Message, PublishRecordWire, Responder, SubscribeOptions};
use switchyard_log::{Record, RecordBuf};
use tokio::sync::mpsc;

use crate::input::{for_each_record, parse_header, InputOptions};
use crate::output::{count, print_json, print_line};
use crate::template::Template;

/// Records per publish at most, when input arrives faster than it is sent.
const PUBLISH_BATCH: usize = 1_000;
/// Payload bytes per publish at most, well under the frame limit.
const PUBLISH_BATCH_BYTES: usize = 1 << 20;
/// Records read ahead of the publisher.
const READ_AHEAD: usize = 16 * 1024;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Subject to publish to (no wildcards); a topic of that name also stores the records,
    /// created when a durable subscription's patterns match the subject.
    pub subject: String,
    /// Key for every record.
    #[arg(long, conflicts_with = "key_field")]
    pub key: Option<String>,
    /// Take each record's key from this field of its JSON line (or CSV column).
    #[arg(long)]
    pub key_field: Option<String>,
    /// Header added to every record, `name=value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, Bytes)>,
    /// Read from this file instead of standard input.
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// Input is CSV with a header row (as for `produce --csv`).
    #[arg(long)]
    pub csv: bool,
}

#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Subject pattern: `*` matches one token, a final `>` the rest (`orders.*.eu`, `a.>`);
    /// several, comma-separated (`a.A,a.*.B`), get each matching record once.
    pub pattern: String,
    /// Only records passing this filter on key and headers, e.g. "region = eu and key
    /// prefix 'vip-'".
    #[arg(long)]
    pub filter: Option<String>,
    /// Exit after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Output template: %t subject, %k key, %v value, %T timestamp, %h headers; \n and \t
    /// escapes (%p and %o print 0: ephemeral messages have no partition or offset).
    #[arg(long, default_value = "%v\\n", value_parser = Template::parse)]
    pub format: Template,
    /// Records buffered for this subscriber (by the broker and here) before they drop.
    #[arg(long, default_value_t = switchyard_client::DEFAULT_BUFFER_RECORDS)]
    pub buffer: u32,
}

#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Subject to send the request to.
    pub subject: String,
    /// The request's payload.
    pub payload: String,
    /// How long to wait for the reply, e.g. 500ms.
    #[arg(long, default_value = "1s", value_parser = switchyard_server::units::parse_duration)]
    pub timeout: Duration,
    /// Header added to the request, `name=value`; repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, Bytes)>,
}

#[derive(Debug, Args)]
pub struct ReplyArgs {
    /// Subject (or pattern) to answer requests on.
    pub subject: String,
    /// Shell command run per request with the payload on its standard input; its standard
    /// output is the reply. A failing command's reply carries an `exec-error` header.
    #[arg(long)]
    pub exec: String,
    /// Exit after answering this many requests.
    #[arg(long)]
    pub count: Option<u64>,
}

pub async fn publish(client: &Client, args: PublishArgs, json: bool) -> anyhow::Result<()> {
    // Say what is wrong with the subject before reading any input.
    let subject = Pattern::parse(&args.subject).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        subject.is_literal(),
        "cannot publish to `{subject}`: a subject has no wildcards; `*` and `>` belong in \
         subscription patterns"
    );
    let options = InputOptions {
        key: args.key.clone(),
        key_field: args.key_field.clone(),
        headers: args.headers.clone(),
        csv: args.csv,
    };
    let input: Box<dyn BufRead + Send> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let (records_tx, mut records_rx) = mpsc::channel::<RecordBuf>(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || {
        for_each_record(input, &options, |_, record| {
            (records_tx.blocking_send(record)).context("publisher stopped")
        })
    });

    // Publish whatever has been read, up to a batch, then wait for more.
    let (mut published, mut most_reached, mut stored) = (0u64, 0u32, false);
    while let Some(first) = records_rx.recv().await {
        let mut batch = vec![wire(first)];
        let mut bytes = batch[0].value.as_ref().map_or(0, Bytes::len);
        while batch.len() < PUBLISH_BATCH && bytes < PUBLISH_BATCH_BYTES {
            let Ok(record) = records_rx.try_recv() else {
                break;
            };
            bytes += record.value.as_ref().map_or(0, Bytes::len);
            batch.push(wire(record));
        }
        let sent = batch.len() as u64;
        let outcome = client
            .publish_many(&args.subject, batch)
            .await
            .with_context(|| {
                format!(
                    "cannot publish to `{}` after {published} records",
                    args.subject
                )
            })?;
        published += sent;
        most_reached = most_reached.max(outcome.subscribers);
        stored |= outcome.stored.is_some();
    }
    reader.await.context("input reader panicked")??;

    if json {
        print_json(&json!({
            "subject": args.subject, "published": published, "subscribers": most_reached,
            "stored": stored,
        }));
        return Ok(());
    }
    let also = if stored {
        format!("; also stored in topic `{}`", args.subject)
    } else {
        String::new()
    };
    print_line(format_args!(
        "{} published to `{}`, reaching up to {}{also}",
        count(published, "record"),
        args.subject,
        count(u64::from(most_reached), "ephemeral subscriber"),
    ));
    Ok(())
}

fn wire(record: RecordBuf) -> PublishRecordWire {
    PublishRecordWire {
        key: record.key,
        value: record.value,
        headers: record.headers,
    }
}

pub async fn subscribe(client: &Client, args: SubscribeArgs, json: bool) -> anyhow::Result<()> {
    let options = SubscribeOptions {
        filter: args.filter.clone(),
        buffer_records: args.buffer,
    };
    let mut subscription = client.subscribe_with(&args.pattern, options).await?;
    eprintln!("subscribed to `{}`", args.pattern);
    let limit = args.count.unwrap_or(u64::MAX);
    let (mut printed, mut warned_at) = (0u64, 0u64);
    let interrupted = crate::signals::stop_requested();
    tokio::pin!(interrupted);
    while printed < limit {
        let message = tokio::select! {
            message = subscription.next() => message,
            _ = &mut interrupted => break,
        };
        let Some(message) = message else {
            let reason = client.connection().closed_reason().unwrap_or_default();
            anyhow::bail!("the subscription to `{}` ended: {reason}", args.pattern);
        };
        if message.dropped > warned_at {
            warned_at = message.dropped;
            eprintln!(
                "warning: {} dropped so far: this subscriber reads more slowly than \
                 records are published",
                count(warned_at, "record")
            );
        }
        if !print_message(&args.format, json, &message) {
            break;
        }
        printed += 1;
    }
    Ok(())
}

/// Prints one message; `false` when standard output is closed.
fn print_message(format: &Template, json: bool, message: &Message) -> bool {
    let mut out = std::io::stdout().lock();
    let written = if json {
        let text = |bytes: &Option<Bytes>| {
            (bytes.as_ref()).map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        };
        let headers: serde_json::Map<String, serde_json::Value> = (message.headers.iter())
            .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into()))
            .collect();
        let value = json!({
            "subject": message.subject, "timestamp": message.timestamp,
            "key": text(&message.key), "value": text(&message.value), "headers": headers,
            "dropped": message.dropped,
        });
        writeln!(out, "{value}")
    } else {
        let record = Record {
            offset: 0,
            timestamp: message.timestamp,
            key: message.key.clone(),
            value: message.value.clone(),
            headers: message.headers.clone(),
        };
        format.render(&mut out, &message.subject, 0, &record)
    };
    written.and_then(|()| out.flush()).is_ok()
}

pub async fn request(client: &Client, args: RequestArgs, json: bool) -> anyhow::Result<()> {
    let record = PublishRecordWire {
        key: None,
        value: Some(Bytes::from(args.payload.into_bytes())),
        headers: args.headers,
    };
    let reply = client
        .request_record(&args.subject, record, args.timeout)
        .await?;
    let value = reply.value.unwrap_or_default();
    if json {
        print_json(&json!({
            "subject": reply.subject, "value": String::from_utf8_lossy(&value),
            "headers": (reply.headers.iter())
                .map(|(name, value)| (name.clone(), String::from_utf8_lossy(value).into()))
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        }));
    } else {
        let mut out = std::io::stdout().lock();
        let mut written = out.write_all(&value);
        if !value.ends_with(b"\n") {
            written = written.and_then(|()| out.write_all(b"\n"));
        }
        written
            .and_then(|()| out.flush())
            .context("cannot write the reply")?;
    }
    // A responder whose command failed still answers (with what it printed): say so, and
    // fail, so that scripts see it.
    if let Some((_, error)) = reply.headers.iter().find(|(name, _)| name == "exec-error") {
        anyhow::bail!(
            "the responder's command failed: {}",
            String::from_utf8_lossy(error)
        );
    }
    Ok(())
}

pub async fn reply(client: &Client, args: ReplyArgs) -> anyhow::Result<()> {
    let command = args.exec.clone();
    let responder = Responder::serve(client, &args.subject, move |request: Message| {
        let command = command.clone();
        async move {
            let payload = request.value.unwrap_or_default();
            let ran = tokio::task::spawn_blocking(move || run(&command, &payload)).await;
            match ran {
                Ok(Ok(output)) => output,
                Ok(Err(err)) => failed(Bytes::new(), &format!("{err:#}")),
                Err(err) => failed(Bytes::new(), &format!("the command's thread failed: {err}")),
            }
        }
    })
    .await?;
    eprintln!("replying to `{}` with `{}`", args.subject, args.exec);
    let interrupted = crate::signals::stop_requested();
    match args.count {
        Some(count) => tokio::select! {
            () = responder.wait_answered(count) => {}
            _ = interrupted => {}
        },
        None => {
            let _ = interrupted.await;
        }
    }
    Ok(())
}

/// Runs `command` through `sh -c` with `payload` on its standard input.
fn run(command: &str, payload: &[u8]) -> anyhow::Result<PublishRecordWire> {
    let mut child = Command::new("sh")
        .args(["-c", command])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{command}`"))?;
    let mut stdin = child
        .stdin
        .take()
        .context("the command's stdin is not piped")?;
    let payload = payload.to_vec();
    // Feed stdin on its own thread: a command that writes before reading must not deadlock.
    let feeder = std::thread::spawn(move || stdin.write_all(&payload));
    let output = child
        .wait_with_output()
        .context("cannot wait for the command")?;
    let _ = feeder.join();
    let stdout = Bytes::from(output.stdout);
    if output.status.success() {
        return Ok(PublishRecordWire::new(stdout));
    }
    let mut stderr = String::new();
    let _ = output.stderr.as_slice().read_to_string(&mut stderr);
    Ok(failed(
        stdout,
        &format!("{}: {}", output.status, stderr.trim()),
    ))
}

/// A reply saying the command failed, with what it printed.
fn failed(stdout: Bytes, error: &str) -> PublishRecordWire {
    PublishRecordWire {
        key: None,
        value: Some(stdout),
        headers: vec![("exec-error".into(), Bytes::from(error.to_string()))],
    }
}
