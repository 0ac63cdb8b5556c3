//! Router tests: run `route_rules` by hand instead of the maintenance thread.

use std::sync::Arc;

use bytes::Bytes;
use switchyard_log::{parse_batches, Record, RecordBuf};

use super::*;
use crate::clock::ManualClock;
use crate::topic_config::TopicConfig;
use crate::BrokerOptions;

fn open(dir: &std::path::Path) -> Broker {
    let mut options = BrokerOptions::new(dir);
    options.clock = Arc::new(ManualClock::new(1_000));
    Broker::open(options).expect("open").0
}

fn topic(broker: &Broker, name: &str) {
    broker
        .create_topic(name, TopicConfig::default())
        .expect("create topic");
}

fn rule(name: &str, source: &str, target: &str, filter: Option<&str>) -> RuleSpec {
    RuleSpec {
        name: name.into(),
        source: source.into(),
        filter: filter.map(str::to_string),
        target: target.into(),
        add_headers: vec![("stage".into(), name.into())],
    }
}

fn send(broker: &Broker, topic: &str, key: &str, headers: &[(&str, &str)]) {
    let record = RecordBuf {
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from_static(b"payload")),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
            .collect(),
    };
    broker
        .produce_records(topic, &[record], 0)
        .expect("produce");
}

fn records(broker: &Broker, topic: &str) -> Vec<Record> {
    let handle = broker.topic(topic).expect("topic");
    let mut all = Vec::new();
    for partition in handle.partitions() {
        let read = broker
            .fetch(topic, partition.id, 0, 1 << 20)
            .expect("fetch");
        let batches = parse_batches(&read.batches).expect("batches");
        all.extend(batches.iter().flat_map(|batch| batch.records()));
    }
    all
}

fn header<'a>(record: &'a Record, name: &str) -> Option<&'a str> {
    header_text(record, name)
}

#[test]
fn routed_copies_keep_the_record_and_carry_headers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    topic(&broker, "video.uploaded");
    topic(&broker, "video.scanned");
    broker
        .create_rule(rule("scan", "video.uploaded", "video.scanned", None))
        .expect("rule");
    send(&broker, "video.uploaded", "clip-1", &[("tenant", "acme")]);

    assert_eq!(broker.route_rules(), 1);
    let copies = records(&broker, "video.scanned");
    assert_eq!(copies.len(), 1);
    let copy = &copies[0];
    assert_eq!(copy.key.as_deref(), Some(&b"clip-1"[..]));
    assert_eq!(copy.value.as_deref(), Some(&b"payload"[..]));
    assert_eq!(header(copy, "tenant"), Some("acme"));
    assert_eq!(header(copy, "stage"), Some("scan"));
    assert_eq!(header(copy, "sy-rule"), Some("scan"));
    assert_eq!(header(copy, "sy-origin"), Some("video.uploaded/0/0"));
    assert_eq!(header(copy, "sy-hops"), Some("1"));
    assert_eq!(broker.route_rules(), 0, "nothing is routed twice");
}

#[test]
fn the_filter_applies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    topic(&broker, "orders");
    topic(&broker, "eu-orders");
    let spec = rule("eu", "orders", "eu-orders", Some("region = eu"));
    broker.create_rule(spec).expect("rule");
    send(&broker, "orders", "a", &[("region", "eu")]);
    send(&broker, "orders", "b", &[("region", "us")]);
    send(&broker, "orders", "c", &[]);

    assert_eq!(broker.route_rules(), 1);
    let copies = records(&broker, "eu-orders");
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].key.as_deref(), Some(&b"a"[..]));
}

#[test]
fn a_topic_created_later_is_covered_by_the_pattern() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    topic(&broker, "audit");
    broker
        .create_rule(rule("all", "orders.>", "audit", None))
        .expect("rule");
    topic(&broker, "orders.eu");
    send(&broker, "orders.eu", "a", &[]);
    send(&broker, "orders.eu", "b", &[]);

    assert_eq!(broker.route_rules(), 2);
    assert_eq!(records(&broker, "audit").len(), 2);
}

#[test]
fn a_rule_into_its_own_source_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    topic(&broker, "orders.eu");
    let err = broker
        .create_rule(rule("self", "orders.*", "orders.eu", None))
        .expect_err("refused");
    assert!(err.to_string().contains("its own source"), "{err}");
}

#[test]
fn a_restart_resumes_without_losing_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let broker = open(dir.path());
        topic(&broker, "in");
        topic(&broker, "out");
        broker
            .create_rule(rule("copy", "in", "out", None))
            .expect("rule");
        send(&broker, "in", "a", &[]);
        assert_eq!(broker.route_rules(), 1);
        send(&broker, "in", "b", &[]);
        broker.shutdown().expect("shutdown");
    }
    let broker = open(dir.path());
    assert_eq!(broker.list_rules().len(), 1);
    send(&broker, "in", "c", &[]);
    assert_eq!(broker.route_rules(), 2);
    let keys: Vec<_> = records(&broker, "out").into_iter().map(|r| r.key).collect();
    assert_eq!(keys.len(), 3, "{keys:?}");
}

#[test]
fn the_hop_limit_stops_a_loop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    topic(&broker, "ping");
    topic(&broker, "pong");
    broker
        .create_rule(rule("there", "ping", "pong", None))
        .expect("rule");
    broker
        .create_rule(rule("back", "pong", "ping", None))
        .expect("rule");
    send(&broker, "ping", "ball", &[]);

    let mut total = 0;
    for _ in 0..100 {
        total += broker.route_rules();
    }
    assert_eq!(total, MAX_HOPS as usize);
    let hops: Vec<_> = records(&broker, "ping")
        .iter()
        .chain(records(&broker, "pong").iter())
        .filter_map(|r| header(r, HOPS_HEADER).map(str::to_string))
        .collect();
    assert!(hops.iter().any(|h| h == "16"), "{hops:?}");
}

#[test]
fn trace_follows_the_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = open(dir.path());
    for name in ["up", "scanned", "thumbs", "encoded"] {
        topic(&broker, name);
    }
    broker
        .create_rule(rule("scan", "up", "scanned", None))
        .expect("rule");
    broker
        .create_rule(rule("thumb", "scanned", "thumbs", None))
        .expect("rule");
    broker
        .create_rule(rule("encode", "scanned", "encoded", None))
        .expect("rule");
    send(&broker, "up", "clip", &[]);
    while broker.route_rules() > 0 {}

    let steps = broker.trace("up", 0, 0).expect("trace");
    let rules: BTreeSet<_> = steps.iter().map(|step| step.rule.as_str()).collect();
    assert_eq!(steps.len(), 3, "{steps:?}");
    assert_eq!(rules, BTreeSet::from(["scan", "thumb", "encode"]));
    assert_eq!(steps[0].origin, "up/0/0");
}
