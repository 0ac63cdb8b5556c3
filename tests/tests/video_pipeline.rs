//! The video-pipeline example end to end: the real broker and seven real `video` service
//! processes choreographing uploads with no coordinator, the media inside the events.
//!
//! - `three_good_uploads_reach_the_cdn_and_the_infected_one_is_rejected`: setup, start the
//!   six services, upload 3 clean clips (4 KiB, about 1.5 MiB and 3 MiB) and 1 of 600 KB
//!   without the media magic; the CDN ends up with exactly the 3 encodings, byte-exact, and
//!   video.thumbnailed with the 3 thumbnails, video.rejected holds the bad one, `trace`
//!   shows one chain uploaded → scanned → thumbnailed and encoded → ready → published
//!   linked by `caused-by`, and a `recommend` service started afterwards replays all 3.
//!   The large payloads went by claim-check: the log holds references, the broker's blob
//!   folder the bytes (one blob per large clip, shared by the events that pass it on, and
//!   one per large encoding), analytics' pushes arrived resolved, and deleting
//!   video.uploaded leaves the clips that video.scanned still refers to.
//!
//! Needs `cargo build -p switchyard-cli -p switchyard-example-video` first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use switchyard_client::{Client, BLOB_HEADER};
use switchyard_tests::{binary, runtime, wait_until, BrokerProcess};

/// The clean clips: id and size. Only the first is under the 256 KiB claim-check threshold.
const GOOD: [(&str, usize); 3] = [
    ("clip-a", 4_096),
    ("clip-b", 1_500_000),
    ("clip-c", 3 << 20),
];

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
    let good: Vec<&str> = GOOD.iter().map(|(id, _)| *id).collect();
    for (index, (id, size)) in GOOD.iter().enumerate() {
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
        video(&addr, &["upload", "--file", path_arg]);
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
            "600000",
            "--infected",
        ],
    );
    video(&addr, &["upload", "--file", bad_arg]);

    let cdn = dir.join("cdn");
    assert!(
        wait_until(Duration::from_secs(60), || files_in(&cdn).len() >= 3),
        "the CDN holds {:?}:\n{}",
        files_in(&cdn),
        all_logs(dir)
    );
    // Give a stray fourth file a moment to show up, should the infected one leak.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(files_in(&cdn), good, "{}", all_logs(dir));
    let thumbs = stored_values(&addr, "video.thumbnailed");
    for (id, size) in GOOD {
        let original = std::fs::read(media.join(format!("{id}.mp4"))).expect("original");
        assert_eq!(original.len(), size);
        let served = std::fs::read(cdn.join(id)).expect("cdn copy");
        let encoded: Vec<u8> = original.iter().rev().copied().collect();
        assert!(served == encoded, "{id}: the CDN copy is not its encoding");
        let thumb = thumbs.get(id).expect("a thumbnail event");
        assert!(
            *thumb == downscale(&original),
            "{id}: the thumbnail is not its downscale"
        );
    }
    assert_eq!(thumbs.len(), 3, "thumbnails of {:?}", thumbs.keys());

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

    // The large payloads went by claim-check, and the media were passed on by reference.
    let blob_of = |steps: &[Value], topic: &str| -> Option<String> {
        let step = steps
            .iter()
            .find(|step| step["topic"] == topic)
            .expect("step");
        step["blob"].as_str().map(str::to_string)
    };
    let size_of = |steps: &[Value], topic: &str| -> u64 {
        let step = steps
            .iter()
            .find(|step| step["topic"] == topic)
            .expect("step");
        step["size"].as_u64().unwrap_or_default()
    };
    assert_eq!(size_of(&steps, "video.uploaded"), 1_500_000, "{text}");
    assert_eq!(size_of(&steps, "video.encoded"), 1_500_000, "{text}");
    assert_eq!(
        size_of(&steps, "video.thumbnailed"),
        1_500_000_u64.div_ceil(64),
        "{text}"
    );
    let clip = blob_of(&steps, "video.uploaded").expect("the upload is a blob");
    assert_eq!(
        blob_of(&steps, "video.scanned"),
        Some(clip.clone()),
        "scanned shares it"
    );
    let encoding = blob_of(&steps, "video.encoded").expect("the encoding is a blob");
    assert_ne!(encoding, clip);
    assert_eq!(
        blob_of(&steps, "video.ready"),
        Some(encoding.clone()),
        "ready shares it"
    );
    assert_eq!(
        blob_of(&steps, "video.thumbnailed"),
        None,
        "a thumbnail is small: inline"
    );
    assert_eq!(blob_of(&steps, "video.published"), None);
    let small = video(&addr, &["trace", "--id", "clip-a", "--json"]);
    let small = String::from_utf8_lossy(&small.stdout).into_owned();
    assert!(
        !small.contains("\"blob\":\"b"),
        "a 4 KiB clip travels inline: {small}"
    );
    assert!(
        bad_steps.contains("\"blob\":\"b"),
        "the 600 KB upload is a blob: {bad_steps}"
    );

    // The broker's blob folder: one blob per large clip (3) and per large encoding (2), each
    // referred to from every topic its events passed through; the log holds references.
    let blobs = blob_refs(data.path());
    let ids: BTreeSet<&str> = blobs.keys().map(|(_, id)| id.as_str()).collect();
    assert_eq!(ids.len(), 5, "{blobs:?}");
    assert_eq!(
        topics_of(&blobs, &clip),
        ["video.scanned", "video.uploaded"]
    );
    assert_eq!(
        topics_of(&blobs, &encoding),
        ["video.encoded", "video.ready"]
    );
    for ((topic, id), (links, size)) in &blobs {
        assert_eq!(*links, 1, "{topic}/{id}: one record refers to it");
        assert!(*size > 256 * 1024, "{topic}/{id}: {size} bytes");
    }
    assert!(
        entries(&data.path().join("blobs/pending")).is_empty(),
        "every upload is referred to"
    );
    runtime().block_on(async {
        let client = Client::connect(&addr).await.expect("connect");
        let raw = client
            .fetch_unresolved("video.uploaded", 0, 0, 1 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        assert_eq!(raw.records.len(), 4);
        for record in &raw.records {
            let is_reference = record.headers.iter().any(|(name, _)| name == BLOB_HEADER);
            assert_eq!(is_reference, record.value.is_none(), "{record:?}");
        }
        assert_eq!(
            raw.records.iter().filter(|r| r.value.is_none()).count(),
            3,
            "clip-b, clip-c and evil are references"
        );
    });

    // Analytics saw every event live, claim-checked payloads resolved: 4 uploads, 3 of each
    // later step, 1 rejection.
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
    assert_eq!(files_in(&recommended), good);
    let analytics = service_log(dir, "analytics");
    assert!(
        analytics.contains("analytics: video.uploaded clip-c caused-by - (3145728 bytes)"),
        "{analytics}"
    );
    drop(services);

    // Deleting video.uploaded frees the rejected clip's blob; the good clips stay, since
    // video.scanned still refers to them, and still resolve.
    broker.cli_ok(&["topic", "delete", "video.uploaded"]);
    let blobs = blob_refs(data.path());
    assert!(
        blobs.keys().all(|(topic, _)| topic != "video.uploaded"),
        "{blobs:?}"
    );
    assert_eq!(topics_of(&blobs, &clip), ["video.scanned"]);
    assert_eq!(
        blobs.len(),
        6,
        "2 clips in scanned, 2 encodings in encoded and ready"
    );
    runtime().block_on(async {
        let client = Client::connect(&addr).await.expect("connect");
        let bytes = client
            .get_blob(&clip)
            .await
            .expect("the clip outlives its upload");
        let original = std::fs::read(media.join("clip-b.mp4")).expect("original");
        assert!(bytes == original[..]);
    });
    drop(broker);
}

/// The topics holding references to blob `id`, sorted.
fn topics_of<'a>(blobs: &'a BTreeMap<(String, String), (usize, u64)>, id: &str) -> Vec<&'a str> {
    (blobs.keys().filter(|(_, blob)| blob == id))
        .map(|(topic, _)| topic.as_str())
        .collect()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.filter_map(Result::ok).map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The broker's blob references, `blobs/topics/<topic>/<id>/<partition>-<offset>`: per
/// (topic, blob id), the number of records referring to it and the blob's size.
fn blob_refs(data_dir: &Path) -> BTreeMap<(String, String), (usize, u64)> {
    let mut found = BTreeMap::new();
    for topic in entries(&data_dir.join("blobs").join("topics")) {
        for id in entries(&topic) {
            let links = entries(&id);
            let size = links
                .first()
                .and_then(|link| std::fs::metadata(link).ok())
                .map_or(0, |meta| meta.len());
            let name = |path: &Path| {
                path.file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned()
            };
            found.insert((name(&topic), name(&id)), (links.len(), size));
        }
    }
    found
}

/// The thumbnail the example computes: the mean of every 64 bytes.
fn downscale(bytes: &[u8]) -> Vec<u8> {
    (bytes.chunks(64))
        .map(|block| (block.iter().map(|&b| b as usize).sum::<usize>() / block.len()) as u8)
        .collect()
}

/// The values of `topic` (partition 0), resolved, by `video-id`.
fn stored_values(addr: &str, topic: &str) -> BTreeMap<String, Vec<u8>> {
    runtime().block_on(async {
        let client = Client::connect(addr).await.expect("connect");
        let page = client
            .fetch(topic, 0, 0, 16 << 20, Duration::ZERO)
            .await
            .expect("fetch");
        (page.records.iter())
            .filter_map(|record| {
                let id = record.headers.iter().find(|(name, _)| name == "video-id")?;
                let id = String::from_utf8_lossy(&id.1).into_owned();
                Some((id, record.value.as_deref().unwrap_or_default().to_vec()))
            })
            .collect()
    })
}
