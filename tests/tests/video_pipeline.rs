//! The video-pipeline example end to end: the real broker and seven real `video` service
//! processes choreographing uploads with no coordinator.
//!
//! - `three_good_uploads_reach_the_cdn_and_the_infected_one_is_rejected`: setup, start the
//!   six services, upload 3 clean files and 1 without the media magic; the CDN ends up with
//!   exactly the 3 encodings, video.rejected holds the bad one, `trace` shows one chain
//!   uploaded → scanned → thumbnailed and encoded → ready → published linked by
//!   `caused-by`, and a `recommend` service started afterwards replays all 3 published.
//!
//! Needs `cargo build -p switchyard-cli -p switchyard-example-video` first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchyard_tests::{binary, wait_until, BrokerProcess};

const SERVICES: [&str; 6] = [
    "scanner",
    "thumbnail",
    "encoder",
    "ready",
    "cdn",
    "analytics",
];

/// Path of the `video` example binary, built next to the `switchyard` one.
fn video_binary() -> PathBuf {
    let path = binary().with_file_name("video");
    assert!(
        path.exists(),
        "{} is missing; run `cargo build -p switchyard-example-video` first",
        path.display()
    );
    path
}

fn video(addr: &str, args: &[&str]) -> Output {
    let output = Command::new(video_binary())
        .args(args)
        .env("SWITCHYARD_SERVER", addr)
        .stdin(Stdio::null())
        .output()
        .expect("run video");
    assert!(
        output.status.success(),
        "`video {}` failed ({}):\nstdout: {}\nstderr: {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Kills every child when dropped, so a failed assertion leaves no service running.
struct Services(Vec<Child>);

impl Drop for Services {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Starts `video service NAME --dir DIR`, its output going to DIR/logs/NAME.log.
fn spawn_service(addr: &str, dir: &Path, name: &str) -> Child {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).expect("logs folder");
    let log = std::fs::File::create(logs.join(format!("{name}.log"))).expect("log file");
    let err = log.try_clone().expect("clone log file");
    Command::new(video_binary())
        .args(["service", name, "--dir"])
        .arg(dir)
        .env("SWITCHYARD_SERVER", addr)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .expect("spawn video service")
}

fn service_log(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join("logs").join(format!("{name}.log"))).unwrap_or_default()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| !name.ends_with(".partial"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn all_logs(dir: &Path) -> String {
    (SERVICES.iter().chain(["recommend"].iter()))
        .map(|name| format!("--- {name}\n{}", service_log(dir, name)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn three_good_uploads_reach_the_cdn_and_the_infected_one_is_rejected() {
    let data = tempfile::tempdir().expect("temp dir");
    let work = tempfile::tempdir().expect("temp dir");
    let dir = work.path();
    let broker = BrokerProcess::start(data.path());
    let addr = broker.addr.clone();
    let dir_arg = dir.to_str().expect("utf-8 path");

    video(&addr, &["setup"]);
    // Setup twice is fine: a restart of the whole pipeline runs it again.
    video(&addr, &["setup"]);

    let mut services = Services(Vec::new());
    for name in SERVICES {
        services.0.push(spawn_service(&addr, dir, name));
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            service_log(dir, "analytics").contains("subscribed")
        }),
        "analytics did not subscribe:\n{}",
        all_logs(dir)
    );

    let media = dir.join("media");
    let good = ["clip-a", "clip-b", "clip-c"];
    for (index, (id, size)) in good.iter().zip([4_096, 60_000, 200_000]).enumerate() {
        let path = media.join(format!("{id}.mp4"));
        let (path_arg, size_arg, seed) = (path.to_str().expect("utf-8"), size.to_string(), index);
        video(
            &addr,
            &[
                "generate",
                "--out",
                path_arg,
                "--size",
                &size_arg,
                "--seed",
                &seed.to_string(),
            ],
        );
        video(&addr, &["upload", "--dir", dir_arg, "--file", path_arg]);
    }
    let bad = media.join("evil.mp4");
    let bad_arg = bad.to_str().expect("utf-8");
    video(
        &addr,
        &[
            "generate",
            "--out",
            bad_arg,
            "--size",
            "30000",
            "--infected",
        ],
    );
    video(&addr, &["upload", "--dir", dir_arg, "--file", bad_arg]);

    let cdn = dir.join("cdn");
    assert!(
        wait_until(Duration::from_secs(30), || files_in(&cdn).len() >= 3),
        "the CDN holds {:?}:\n{}",
        files_in(&cdn),
        all_logs(dir)
    );
    // Give a stray fourth file a moment to show up, should the infected one leak.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(files_in(&cdn), good.to_vec(), "{}", all_logs(dir));
    for id in good {
        let original = std::fs::read(media.join(format!("{id}.mp4"))).expect("original");
        let served = std::fs::read(cdn.join(id)).expect("cdn copy");
        let encoded: Vec<u8> = original.iter().rev().copied().collect();
        assert!(served == encoded, "{id}: the CDN copy is not its encoding");
        let thumb = std::fs::read(dir.join("thumbs").join(format!("{id}.thumb"))).expect("thumb");
        assert_eq!(
            thumb,
            original[..original.len().min(4096)],
            "{id} thumbnail"
        );
    }
    assert!(!dir.join("encoded").join("evil.enc").exists());

    // video.rejected holds the infected upload, and only it.
    let rejected = broker.cli_ok(&[
        "--json",
        "consume",
        "video.rejected",
        "--group",
        "check",
        "--count",
        "1",
    ]);
    let rejected: Value = serde_json::from_str(rejected.trim()).expect("record is JSON");
    assert!(rejected.to_string().contains("evil"), "{rejected}");
    let trace_bad = video(&addr, &["trace", "--id", "evil", "--json"]);
    let bad_steps = String::from_utf8_lossy(&trace_bad.stdout).into_owned();
    let bad_topics: Vec<String> = bad_steps
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).expect("trace line is JSON"))
        .map(|step| step["topic"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        bad_topics,
        ["video.uploaded", "video.rejected"],
        "{bad_steps}"
    );

    // The trace of one good upload: every step, each caused by the one before.
    let trace = video(&addr, &["trace", "--id", "clip-b", "--json"]);
    let text = String::from_utf8_lossy(&trace.stdout).into_owned();
    let steps: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).expect("trace line is JSON"))
        .collect();
    let topics: Vec<&str> = steps
        .iter()
        .filter_map(|step| step["topic"].as_str())
        .collect();
    assert_eq!(
        topics,
        [
            "video.uploaded",
            "video.scanned",
            "video.thumbnailed",
            "video.encoded",
            "video.ready",
            "video.published"
        ],
        "{text}"
    );
    let at = |topic: &str| -> String {
        let step = steps
            .iter()
            .find(|step| step["topic"] == topic)
            .expect("step");
        step["at"].as_str().unwrap_or_default().to_string()
    };
    let cause = |topic: &str| -> String {
        let step = steps
            .iter()
            .find(|step| step["topic"] == topic)
            .expect("step");
        step["caused_by"].as_str().unwrap_or_default().to_string()
    };
    assert!(steps[0]["caused_by"].is_null(), "{text}");
    assert_eq!(cause("video.scanned"), at("video.uploaded"), "{text}");
    assert_eq!(cause("video.thumbnailed"), at("video.scanned"), "{text}");
    assert_eq!(cause("video.encoded"), at("video.scanned"), "{text}");
    let ready_causes = format!("{},{}", at("video.thumbnailed"), at("video.encoded"));
    assert_eq!(cause("video.ready"), ready_causes, "{text}");
    assert_eq!(cause("video.published"), at("video.ready"), "{text}");

    // Analytics saw every event live: 4 uploads, 3 of each later step, 1 rejection.
    let want = concat!(
        r#"{"video.encoded":3,"video.published":3,"video.ready":3,"video.rejected":1,"#,
        r#""video.scanned":3,"video.thumbnailed":3,"video.uploaded":4}"#
    );
    assert!(
        wait_until(Duration::from_secs(10), || service_log(dir, "analytics")
            .contains(want)),
        "{}",
        service_log(dir, "analytics")
    );

    // A service added later replays the history with no change to the others.
    services.0.push(spawn_service(&addr, dir, "recommend"));
    let recommended = dir.join("recommend");
    assert!(
        wait_until(Duration::from_secs(20), || files_in(&recommended).len()
            >= 3),
        "recommend saw {:?}:\n{}",
        files_in(&recommended),
        service_log(dir, "recommend")
    );
    assert_eq!(files_in(&recommended), good.to_vec());

    drop(services);
    drop(broker);
}
