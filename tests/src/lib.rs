//! Harness for the integration suite: starts the real `switchyard` binary on a free port
//! with its own data folder, runs CLI commands against it, kills and restarts it.
//!
//! The binary is the one `cargo build -p switchyard-cli` left in the workspace's target
//! folder, or the one named by `SWITCHYARD_BIN`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the broker may take to start listening: recovery of a large data folder in a
/// debug build on a loaded 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of the `switchyard` binary under test.
pub fn binary() -> PathBuf {
    if let Ok(path) = std::env::var("SWITCHYARD_BIN") {
        return PathBuf::from(path);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace.join("target"));
    let path = target.join("debug").join("switchyard");
    assert!(
        path.exists(),
        "{} is missing; run `cargo build -p switchyard-cli` first",
        path.display()
    );
    path
}

/// A running broker process.
pub struct BrokerProcess {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
}

impl BrokerProcess {
    /// Starts `switchyard serve` on 127.0.0.1 with a free port and waits until it listens.
    pub fn start(data_dir: &Path) -> BrokerProcess {
        Self::start_with(data_dir, &[])
    }

    pub fn start_with(data_dir: &Path, extra: &[&str]) -> BrokerProcess {
        let data = data_dir.to_str().expect("utf-8 path");
        let mut child = Command::new(binary())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "--data-dir",
                data,
            ])
            .args(extra)
            .env("SWITCHYARD_LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn switchyard serve");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = addr_tx.send(addr);
                }
                sink.lock().expect("log lock").push(line);
            }
        });
        let addr = match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                let log = log.lock().expect("log lock").join("\n");
                panic!("broker did not start listening within {START_TIMEOUT:?}; log:\n{log}");
            }
        };
        BrokerProcess {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            log,
        }
    }

    /// Every log line so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().expect("log lock").clone()
    }

    /// Runs a CLI command against this broker.
    pub fn cli(&self, args: &[&str]) -> Output {
        cli(&self.addr, args, None)
    }

    /// Runs a CLI command with `input` on its standard input.
    pub fn cli_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        cli(&self.addr, args, Some(input))
    }

    /// Runs a CLI command that must succeed; returns its standard output.
    pub fn cli_ok(&self, args: &[&str]) -> String {
        let output = self.cli(args);
        assert_success(args, &output);
        String::from_utf8(output.stdout).expect("utf-8 output")
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `timeout` for a clean exit; returns the exit status.
    pub fn terminate(mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn listening_addr(line: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let fields = value.get("fields")?;
    if fields.get("message")?.as_str()? != "listening for the native protocol" {
        return None;
    }
    Some(fields.get("addr")?.as_str()?.to_string())
}

/// Runs the CLI against `addr`.
pub fn cli(addr: &str, args: &[&str], input: Option<&[u8]>) -> Output {
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("SWITCHYARD_SERVER", addr)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("spawn switchyard");
    if let Some(input) = input {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin piped");
        let data = input.to_vec();
        std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
    }
    child.wait_with_output().expect("wait for switchyard")
}

/// Panics with the command's output unless it exited 0.
pub fn assert_success(args: &[&str], output: &Output) {
    assert!(
        output.status.success(),
        "`switchyard {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Polls `condition` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// A broker's log lines, shared with the thread that reads its standard error; it stays
/// readable after the process is gone, so a test can look for what it wrote while exiting.
#[derive(Clone)]
pub struct LogHandle(Arc<Mutex<Vec<String>>>);

impl LogHandle {
    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().expect("log lock").clone()
    }

    /// The lines that parse as JSON log events (`--log-format json`).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The `fields` of every event whose message is `message`.
    pub fn fields_of(&self, message: &str) -> Vec<serde_json::Value> {
        self.events()
            .into_iter()
            .filter_map(|event| event.get("fields").cloned())
            .filter(|fields| fields["message"] == message)
            .collect()
    }
}

impl BrokerProcess {
    /// A handle on the log that outlives this process value.
    pub fn log_handle(&self) -> LogHandle {
        LogHandle(Arc::clone(&self.log))
    }

    /// Operating-system id of the broker process.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Path of a partition's folder: `<data>/topics/<topic>/<partition>`.
pub fn partition_dir(data_dir: &Path, topic: &str, partition: u32) -> PathBuf {
    data_dir
        .join("topics")
        .join(topic)
        .join(partition.to_string())
}

/// The segment data files (`*.log`) of a partition, oldest first.
pub fn segment_files(data_dir: &Path, topic: &str, partition: u32) -> Vec<PathBuf> {
    let dir = partition_dir(data_dir, topic, partition);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    files.sort();
    files
}

/// Copies the folder `from` into `to` (created), recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy folder");
    for entry in std::fs::read_dir(from).expect("list folder to copy") {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

/// A runtime for the async client in a synchronous test, which keeps the broker process and
/// the CLI (both blocking) on the test's own thread.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Every record of a partition from its start offset up to its end offset, fetched page by
/// page without waiting; `log_start` and `log_end` are those of the last page.
pub async fn read_partition(
    client: &switchyard_client::Client,
    topic: &str,
    partition: u32,
) -> switchyard_client::Result<switchyard_client::FetchResult> {
    let start = client
        .list_offsets(topic, partition, switchyard_client::OffsetSpec::Earliest)
        .await?;
    let mut all = switchyard_client::FetchResult {
        log_start: start,
        log_end: start,
        records: Vec::new(),
    };
    let mut next = start;
    loop {
        let page = client
            .fetch(topic, partition, next, 1 << 20, Duration::ZERO)
            .await?;
        all.log_start = page.log_start;
        all.log_end = page.log_end;
        if next >= page.log_end {
            return Ok(all);
        }
        assert!(
            !page.records.is_empty(),
            "fetch of `{topic}` partition {partition} at {next} returned nothing below the end \
             offset {}",
            page.log_end
        );
        next = page.next_offset(next);
        all.records.extend(page.records);
    }
}

/// Path of the `flights` example binary, built next to the `switchyard` one.
pub fn flights_binary() -> PathBuf {
    let path = binary().with_file_name("flights");
    assert!(
        path.exists(),
        "{} is missing; run `cargo build -p switchyard-example-flights` first",
        path.display()
    );
    path
}

/// Path of flights.csv.zip, as the example's own script finds it.
pub fn flights_data_zip() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let script = workspace.join("examples/flights/data.sh");
    let output = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run examples/flights/data.sh");
    assert!(output.status.success(), "{} failed", script.display());
    let path = String::from_utf8(output.stdout).expect("utf-8 path");
    PathBuf::from(path.trim())
}

/// Longest one `flights` run may take: a load is about 5 s in a debug build, so this leaves
/// a loaded 2-core machine a wide margin while still failing a hung run well before CI does.
pub const FLIGHTS_TIMEOUT: Duration = Duration::from_secs(120);

/// Starts `flights ARGS` against the broker at `addr`.
pub fn spawn_flights(addr: &str, args: &[&str]) -> Child {
    Command::new(flights_binary())
        .args(args)
        .env("SWITCHYARD_SERVER", addr)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn flights")
}

/// Waits for a `flights` run that must succeed within [`FLIGHTS_TIMEOUT`]; kills it
/// otherwise. Returns its output.
pub fn finish_flights(child: Child, args: &[&str]) -> Output {
    let pid = child.id().to_string();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let Ok(output) = done_rx.recv_timeout(FLIGHTS_TIMEOUT) else {
        let _ = Command::new("kill").args(["-KILL", &pid]).status();
        panic!(
            "`flights {}` did not finish in {FLIGHTS_TIMEOUT:?}",
            args.join(" ")
        );
    };
    let output = output.expect("wait for flights");
    assert!(
        output.status.success(),
        "`flights {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs `flights ARGS` to the end; returns its output.
pub fn run_flights(addr: &str, args: &[&str]) -> Output {
    finish_flights(spawn_flights(addr, args), args)
}
