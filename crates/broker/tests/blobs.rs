//! Claim-check blobs in embedded mode: references shared across topics, and the repairs a
//! start makes after a crash (see `blobs`).
//!
//! - `a_blob_is_shared_by_topics_and_refused_once_gone`: a second topic's record refers to
//!   the blob without uploading it again; deleting both topics makes a third refusal.
//! - `start_up_restores_a_missing_reference_and_drops_stale_ones`: a reference lost between
//!   append and link comes back; references of records beyond the log's end or of a topic
//!   that no longer exists go.

use std::path::Path;

use bytes::Bytes;
use switchyard_broker::{Broker, BrokerOptions, TopicConfig};
use switchyard_log::RecordBuf;

fn open(dir: &Path) -> Broker {
    Broker::open(BrokerOptions::new(dir))
        .expect("open broker")
        .0
}

fn upload(broker: &Broker, id: &str, data: &[u8]) {
    broker
        .put_blob(id, 0, data.len() as u64, data, true)
        .expect("upload");
}

/// A record that refers to blob `id`, as the client's producer sends it.
fn reference(id: &str, size: usize) -> RecordBuf {
    RecordBuf {
        key: None,
        value: None,
        headers: vec![
            ("sy-blob".into(), Bytes::from(id.to_string())),
            ("sy-blob-size".into(), Bytes::from(size.to_string())),
        ],
    }
}

fn link(dir: &Path, topic: &str, id: &str, at: &str) -> std::path::PathBuf {
    dir.join("blobs/topics").join(topic).join(id).join(at)
}

fn read_all(broker: &Broker, id: &str) -> Vec<u8> {
    let (total, data) = broker.get_blob(id, 0, 1 << 20).expect("read blob");
    assert_eq!(total, data.len() as u64);
    data.to_vec()
}

#[test]
fn a_blob_is_shared_by_topics_and_refused_once_gone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    for topic in ["a", "b", "c"] {
        broker
            .create_topic(topic, TopicConfig::default())
            .expect("create");
    }
    upload(&broker, "clip", b"the bytes");
    broker
        .produce_records("a", &[reference("clip", 9)], 0)
        .expect("first record");
    broker
        .produce_records("b", &[reference("clip", 9)], 0)
        .expect("a second topic refers to the stored blob");
    assert!(link(dir.path(), "a", "clip", "0-0").is_file());
    assert!(link(dir.path(), "b", "clip", "0-0").is_file());

    broker.delete_topic("a").expect("delete a");
    assert_eq!(read_all(&broker, "clip"), b"the bytes");
    broker.delete_topic("b").expect("delete b");
    assert!(broker.get_blob("clip", 0, 100).is_err());
    let err = broker
        .produce_records("c", &[reference("clip", 9)], 0)
        .expect_err("no record refers to it any more");
    assert!(err.to_string().contains("clip"), "{err}");
}

#[test]
fn start_up_restores_a_missing_reference_and_drops_stale_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = open(dir.path());
        broker
            .create_topic("a", TopicConfig::default())
            .expect("create");
        broker
            .create_topic("b", TopicConfig::default())
            .expect("create");
        upload(&broker, "clip", b"0123456789");
        broker
            .produce_records("a", &[reference("clip", 10)], 0)
            .expect("a");
        broker
            .produce_records("b", &[reference("clip", 10)], 0)
            .expect("b");
        // Dropped without shutdown, as after a crash.
    }
    // A crash between b's append and its link; a link of a record the crash lost (offset 7,
    // past the end); what a topic deletion cut short left.
    std::fs::remove_file(link(dir.path(), "b", "clip", "0-0")).expect("remove b's link");
    std::fs::hard_link(
        link(dir.path(), "a", "clip", "0-0"),
        link(dir.path(), "a", "clip", "0-7"),
    )
    .expect("stale link");
    let gone = link(dir.path(), "gone", "clip", "0-0");
    std::fs::create_dir_all(gone.parent().expect("parent")).expect("gone topic folder");
    std::fs::hard_link(link(dir.path(), "a", "clip", "0-0"), &gone).expect("gone link");

    let broker = open(dir.path());
    assert!(
        link(dir.path(), "b", "clip", "0-0").is_file(),
        "b's link restored"
    );
    assert!(
        !link(dir.path(), "a", "clip", "0-7").exists(),
        "stale link kept"
    );
    assert!(
        !dir.path().join("blobs/topics/gone").exists(),
        "deleted topic's links kept"
    );
    assert_eq!(read_all(&broker, "clip"), b"0123456789");

    // With b's reference restored, deleting a leaves the blob to b.
    broker.delete_topic("a").expect("delete a");
    assert_eq!(read_all(&broker, "clip"), b"0123456789");
}
