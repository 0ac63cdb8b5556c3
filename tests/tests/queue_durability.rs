//! Queues across `kill -9` of the broker: what `docs/queues.md` ("Durability") promises.
//!
//! - `queue_promises_hold_across_kill_9_under_load`: producers send records with unique ids
//!   (some delayed 1–3 s, some with dedup ids) while consumers receive, ack and now and then
//!   nack them; the broker is killed with SIGKILL at a random moment and restarted on the
//!   same data folder, round after round. Most rounds load a queue on a topic with fsync
//!   `interval`, every third one a queue on a topic with fsync `always`. After each restart,
//!   sends with a dedup id that the kill left unanswered are retried, as a producer would,
//!   and a few dedup ids confirmed in earlier runs are sent again and must be suppressed,
//!   naming the original's place. At the end everything is drained, and the whole history
//!   must show: no record delivered again after its ack was confirmed (in the same broker run
//!   or any later one); every confirmed record delivered and acked (or in an ack the kill left
//!   unanswered); per record, delivery counts that only go up, across restarts too; within
//!   one broker run, a second delivery only after a nack; no delayed record delivered before
//!   its due time; no suppressed record ever delivered, and at most one record per dedup id.
//! - `a_record_whose_last_delivery_was_open_at_a_crash_is_dead_lettered`: with
//!   `max_deliveries` 2, the second delivery is still leased when the broker is killed; the
//!   lease counts as a delivery, so after the restart the record goes to the dead-letter
//!   queue rather than out a third time.
//!
//! Kill moments, batch shapes and which records are delayed, deduplicated or nacked come
//! from a seed printed at the start; set `SWITCHYARD_TEST_SEED` to rerun with the same ones
//! (thread timing still varies).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard_client::{
    Client, ClientError, DeliveryWire, QueueConfigWire, ReceiveOptions, SendRecordWire, SendStatus,
    TopicConfigWire,
};
use switchyard_log::now_ms;
use switchyard_protocol::FsyncPolicyWire;
use switchyard_tests::{read_partition, runtime, wait_until, BrokerProcess};

/// Crash rounds; each kills the broker once under load.
const ROUNDS: u64 = 12;
/// Queue on a topic with fsync `interval` (the default policy).
const INTERVAL_QUEUE: &str = "work-interval";
/// Queue on a topic with fsync `always`, created as a topic first.
const ALWAYS_QUEUE: &str = "work-always";
/// Partitions of each queue's topic.
const PARTITIONS: u32 = 3;
/// Concurrent producers and consumers, each on its own connection.
const PRODUCERS: u64 = 2;
const CONSUMERS: u64 = 2;
/// Time between one producer's sends: about 500 records a second each, which two debug-build
/// consumers keep up with, so the final drain takes seconds.
const SEND_EVERY: Duration = Duration::from_millis(10);
/// Lease length: longer than a round, so within one broker run only a nack gives a record
/// back, and a second delivery without one is a bug the test can see.
const VISIBILITY_MS: u64 = 60_000;
/// High enough that no record is dead-lettered: every confirmed record must end acked.
const MAX_DELIVERIES: u32 = 1_000;
/// How early a delayed record may seem to arrive: the clocks of test and broker are the
/// same, but a millisecond is rounded on each side.
const SLACK_MS: i64 = 100;
/// Dedup ids confirmed in earlier runs that are sent again after each restart.
const PROBES: usize = 4;
/// Sender number of the records that probe dedup ids, so their ids are unique too.
const PROBE_SENDER: u64 = 255;
/// Sender number of the records that retry unanswered sends after a restart.
const RETRY_SENDER: u64 = 254;

/// Where a record is: partition and offset.
type Pos = (u32, u64);

/// A record a producer sent; `stored` once the broker confirmed it.
#[derive(Debug, Clone)]
struct Sent {
    queue: &'static str,
    /// The client's clock just before the send.
    sent_ms: i64,
    delay_ms: u64,
    dedup_id: Option<String>,
    stored: Option<Pos>,
}

/// A delivery a consumer saw, in the order they were seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    id: u64,
    /// The broker run (0 before the first kill) that made the delivery.
    run: u64,
    deliveries: u32,
    /// The client's clock when the receive answered.
    observed_ms: i64,
}

/// Everything sent, seen, acked and nacked, across all broker runs.
#[derive(Debug, Default)]
struct Ledger {
    sent: HashMap<u64, Sent>,
    seen: Vec<Seen>,
    /// Confirmed acks: the broker run and the delivery count of the acked delivery.
    acked: HashMap<u64, (u64, u32)>,
    /// Confirmed nacks, by id and delivery count.
    nacked: HashSet<(u64, u32)>,
    /// Records whose ack was sent but never answered (the broker died): they may or may not
    /// have been acked.
    ack_unanswered: HashSet<u64>,
    /// Records sent with a dedup id already used: each must have been suppressed.
    probes: HashSet<u64>,
    /// Acks confirmed per broker run.
    acks_in_run: HashMap<u64, u64>,
}

type SharedLedger = Arc<Mutex<Ledger>>;

#[test]
fn queue_promises_hold_across_kill_9_under_load() {
    let seed = seed();
    eprintln!("kill -9 rounds use SWITCHYARD_TEST_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let data = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    let ledger = SharedLedger::default();

    // Drawn up front, so that the plan does not depend on how many records each round saw.
    let plan: Vec<(Duration, u64)> = (0..ROUNDS)
        .map(|_| (Duration::from_millis(rng.gen_range(100..=1_200)), rng.gen()))
        .collect();

    let mut broker = BrokerProcess::start(data.path());
    rt.block_on(create_queues(&broker.addr));
    for (run, (kill_after, round_seed)) in (0..ROUNDS).zip(plan) {
        let queue = if run % 3 == 2 {
            ALWAYS_QUEUE
        } else {
            INTERVAL_QUEUE
        };
        let mut rng = StdRng::seed_from_u64(round_seed);
        kill_under_load(&rt, broker, (run, queue), kill_after, &ledger, &mut rng);
        broker = BrokerProcess::start(data.path());
        let retried = rt.block_on(retry_unanswered(&broker.addr, run + 1, &ledger));
        let probed = rt.block_on(probe_dedup(&broker.addr, run + 1, &ledger, &mut rng));
        let acks = ledger.lock().expect("ledger").acks_in_run[&run];
        eprintln!(
            "run {run}: `{queue}`, killed after {kill_after:?}, {acks} acks, {retried} sends \
             retried, {probed} probes"
        );
    }

    drain(&rt, &broker, ROUNDS, &ledger);
    check_history(&ledger.lock().expect("ledger"));
}

fn seed() -> u64 {
    match std::env::var("SWITCHYARD_TEST_SEED") {
        Ok(text) => text.parse().expect("SWITCHYARD_TEST_SEED must be a number"),
        Err(_) => rand::random(),
    }
}

fn queue_config() -> QueueConfigWire {
    QueueConfigWire {
        visibility_ms: Some(VISIBILITY_MS),
        max_deliveries: Some(MAX_DELIVERIES),
        ..QueueConfigWire::default()
    }
}

/// Creates both queues; the `always` one on a topic created first with that policy.
async fn create_queues(addr: &str) {
    let client = Client::connect(addr).await.expect("connect");
    client
        .create_queue(INTERVAL_QUEUE, PARTITIONS, queue_config())
        .await
        .expect("create the interval queue");
    let always = TopicConfigWire {
        fsync: Some(FsyncPolicyWire::Always),
        ..TopicConfigWire::default()
    };
    client
        .create_topic(ALWAYS_QUEUE, PARTITIONS, always)
        .await
        .expect("create the always topic");
    client
        .create_queue(ALWAYS_QUEUE, PARTITIONS, queue_config())
        .await
        .expect("create a queue on the always topic");
}

/// What one producer or consumer task works on.
#[derive(Clone)]
struct Role {
    addr: String,
    queue: &'static str,
    /// The broker run it talks to.
    run: u64,
    /// Its number among the producers or consumers.
    number: u64,
    ledger: SharedLedger,
    seed: u64,
}

/// Runs producers and consumers against `broker` (`run`, on `queue`), kills it with SIGKILL
/// `kill_after` the first confirmed ack, and waits for the tasks to notice.
fn kill_under_load(
    rt: &tokio::runtime::Runtime,
    broker: BrokerProcess,
    (run, queue): (u64, &'static str),
    kill_after: Duration,
    ledger: &SharedLedger,
    rng: &mut StdRng,
) {
    let role = |number: u64, seed: u64| Role {
        addr: broker.addr.clone(),
        queue,
        run,
        number,
        ledger: Arc::clone(ledger),
        seed,
    };
    let never = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for number in 0..PRODUCERS {
        tasks.push(rt.spawn(produce(role(number, rng.gen()))));
    }
    for number in 0..CONSUMERS {
        let nacking = Consume {
            nack_one_in: 20,
            stop: Arc::clone(&never),
        };
        tasks.push(rt.spawn(consume(role(number, rng.gen()), nacking)));
    }

    let flowing = wait_until(Duration::from_secs(30), || {
        let ledger = ledger.lock().expect("ledger");
        ledger.acks_in_run.get(&run).is_some_and(|acks| *acks > 0)
    });
    assert!(flowing, "run {run}: no ack confirmed within 30 s");
    std::thread::sleep(kill_after);
    broker.kill9();
    for task in tasks {
        rt.block_on(task).expect("a producer or consumer panicked");
    }
}

/// A record id unique across the test: broker run, sender and sequence number.
fn record_id(run: u64, sender: u64, seq: u64) -> u64 {
    (run << 40) | (sender << 32) | seq
}

fn value_of(id: u64) -> Bytes {
    Bytes::from(format!("{id:016x}"))
}

fn id_of(delivery: &DeliveryWire) -> u64 {
    let value = delivery.value.as_deref().expect("every record has a value");
    let hex = std::str::from_utf8(value).expect("ids are ascii");
    u64::from_str_radix(hex, 16).expect("ids are hex")
}

/// Fails the test unless `err` is the connection dying with the broker.
fn expect_lost(err: &ClientError, what: &str) {
    assert!(err.is_connection_lost(), "{what} failed: {err}");
}

/// Sends batches of 1 to 10 records until the connection dies; records what was confirmed.
async fn produce(role: Role) {
    let Ok(client) = Client::connect(&role.addr).await else {
        return; // The broker was killed before this producer got going.
    };
    let mut rng = StdRng::seed_from_u64(role.seed);
    let mut pace = tokio::time::interval(SEND_EVERY);
    let mut seq = 0;
    loop {
        pace.tick().await;
        let count = rng.gen_range(1..=10);
        let ids: Vec<u64> = (0..count)
            .map(|_| {
                seq += 1;
                record_id(role.run, role.number, seq)
            })
            .collect();
        let records = plan_records(&role, &ids, &mut rng);
        match client.send(role.queue, records).await {
            Ok(results) => confirm_sent(&role, &ids, &results),
            Err(err) => return expect_lost(&err, "send"),
        }
    }
}

/// Builds one record per id, a fifth of them delayed and a fifth with a dedup id, and notes
/// them in the ledger as sent (not yet confirmed).
fn plan_records(role: &Role, ids: &[u64], rng: &mut StdRng) -> Vec<SendRecordWire> {
    let mut ledger = role.ledger.lock().expect("ledger");
    let sent_ms = now_ms();
    ids.iter()
        .map(|id| {
            let delay_ms = if rng.gen_ratio(1, 5) {
                rng.gen_range(1_000..=3_000)
            } else {
                0
            };
            let dedup_id = rng.gen_ratio(1, 5).then(|| format!("dedup-{id:x}"));
            let sent = Sent {
                queue: role.queue,
                sent_ms,
                delay_ms,
                dedup_id: dedup_id.clone(),
                stored: None,
            };
            ledger.sent.insert(*id, sent);
            SendRecordWire {
                delay_ms: Some(delay_ms),
                dedup_id,
                ..SendRecordWire::new(value_of(*id))
            }
        })
        .collect()
}

fn confirm_sent(role: &Role, ids: &[u64], results: &[switchyard_client::SendResultWire]) {
    assert_eq!(results.len(), ids.len(), "one send result per record");
    let mut ledger = role.ledger.lock().expect("ledger");
    for (id, result) in ids.iter().zip(results) {
        assert_eq!(
            result.status,
            SendStatus::Stored,
            "record {id:#x} with a fresh dedup id was not stored: {result:?}"
        );
        let sent = ledger.sent.get_mut(id).expect("planned before sending");
        sent.stored = Some((result.partition, result.offset));
    }
}

/// How a consumer behaves.
struct Consume {
    /// Nack about one delivery in this many (0: never).
    nack_one_in: u32,
    /// Set to make the consumer stop after its current receive.
    stop: Arc<AtomicBool>,
}

/// Receives, records and settles deliveries until the connection dies or `how.stop` is set.
async fn consume(role: Role, how: Consume) {
    let Ok(client) = Client::connect(&role.addr).await else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(role.seed);
    let options = ReceiveOptions {
        consumer: format!("consumer-{}", role.number),
        max: 20,
        wait: Duration::from_millis(200),
        ..ReceiveOptions::default()
    };
    // Each batch is settled only after the next receive, so that leases are open whenever
    // the broker is killed.
    let mut held = Vec::new();
    while !how.stop.load(Ordering::SeqCst) {
        let deliveries = match client.receive(role.queue, &options).await {
            Ok(deliveries) => deliveries,
            Err(err) => return expect_lost(&err, "receive"),
        };
        note_seen(&role, &deliveries);
        let settling = std::mem::replace(&mut held, deliveries);
        let (nacks, acks): (Vec<_>, Vec<_>) = settling
            .into_iter()
            .partition(|_| how.nack_one_in > 0 && rng.gen_ratio(1, how.nack_one_in));
        if let Err(err) = settle(&client, &role, nacks, acks).await {
            return expect_lost(&err, "ack or nack");
        }
    }
    if let Err(err) = settle(&client, &role, Vec::new(), held).await {
        expect_lost(&err, "ack");
    }
}

fn note_seen(role: &Role, deliveries: &[DeliveryWire]) {
    let observed_ms = now_ms();
    let mut ledger = role.ledger.lock().expect("ledger");
    for delivery in deliveries {
        ledger.seen.push(Seen {
            id: id_of(delivery),
            run: role.run,
            deliveries: delivery.deliveries,
            observed_ms,
        });
    }
}

/// Nacks `nacks` (deliverable again at once) and acks `acks`, noting what was confirmed. A
/// refused token is a failure: leases outlive a broker run, so none can have expired.
async fn settle(
    client: &Client,
    role: &Role,
    nacks: Vec<DeliveryWire>,
    acks: Vec<DeliveryWire>,
) -> Result<(), ClientError> {
    for delivery in nacks {
        let retry = client.nack(role.queue, &delivery.token, Some(Duration::ZERO), None);
        match retry.await {
            Ok(()) => {
                let mut ledger = role.ledger.lock().expect("ledger");
                ledger
                    .nacked
                    .insert((id_of(&delivery), delivery.deliveries));
            }
            Err(err) if err.is_connection_lost() => return Err(err),
            Err(err) => panic!("nack of a live lease refused: {err}"),
        }
    }
    if acks.is_empty() {
        return Ok(());
    }
    let tokens: Vec<String> = acks.iter().map(|d| d.token.clone()).collect();
    let results = match client.ack(role.queue, &tokens).await {
        Ok(results) => results,
        Err(err) => {
            let mut ledger = role.ledger.lock().expect("ledger");
            ledger.ack_unanswered.extend(acks.iter().map(id_of));
            return Err(err);
        }
    };
    let mut ledger = role.ledger.lock().expect("ledger");
    for (delivery, result) in acks.iter().zip(results) {
        if let Err(err) = result {
            panic!("ack of a live lease refused: {err}");
        }
        let id = id_of(delivery);
        let earlier = ledger.acked.insert(id, (role.run, delivery.deliveries));
        assert!(earlier.is_none(), "record {id:#x} acked twice");
        *ledger.acks_in_run.entry(role.run).or_default() += 1;
    }
    Ok(())
}

/// Sends again, with new ids, up to [`PROBES`] dedup ids confirmed in earlier runs; each must
/// be suppressed as a duplicate of its original. Returns how many were sent.
async fn probe_dedup(addr: &str, run: u64, ledger: &SharedLedger, rng: &mut StdRng) -> usize {
    let mut originals: Vec<(&'static str, String, Pos)> = {
        let ledger = ledger.lock().expect("ledger");
        let confirmed = ledger.sent.values().filter_map(|sent| {
            let id = sent.dedup_id.clone()?;
            Some((sent.queue, id, sent.stored?))
        });
        confirmed.collect()
    };
    originals.sort();
    let client = Client::connect(addr).await.expect("connect after restart");
    let mut probed = 0;
    for _ in 0..PROBES.min(originals.len()) {
        let (queue, dedup_id, original) = originals.swap_remove(rng.gen_range(0..originals.len()));
        let id = record_id(run, PROBE_SENDER, probed as u64);
        ledger.lock().expect("ledger").probes.insert(id);
        let record = SendRecordWire {
            dedup_id: Some(dedup_id.clone()),
            ..SendRecordWire::new(value_of(id))
        };
        let results = client.send(queue, vec![record]).await.expect("probe send");
        let result = &results[0];
        assert_eq!(
            (result.status, (result.partition, result.offset)),
            (SendStatus::Duplicate, original),
            "dedup id `{dedup_id}` sent again after a restart: {result:?}"
        );
        probed += 1;
    }
    probed
}

/// Sends again, under new ids, the records with a dedup id whose send the broker died
/// answering in the previous run, as a producer retrying after a crash would. Either outcome
/// is right (the first copy may or may not have been stored), but the two copies must never
/// both be delivered. Returns how many were sent.
async fn retry_unanswered(addr: &str, run: u64, ledger: &SharedLedger) -> usize {
    let mut unanswered: Vec<(u64, Sent)> = {
        let ledger = ledger.lock().expect("ledger");
        let from_producers = |id: u64| id >> 40 == run - 1 && (id >> 32) & 0xff < PRODUCERS;
        let unanswered = ledger.sent.iter().filter(|(id, sent)| {
            from_producers(**id) && sent.stored.is_none() && sent.dedup_id.is_some()
        });
        unanswered.map(|(id, sent)| (*id, sent.clone())).collect()
    };
    unanswered.sort_by_key(|(id, _)| *id);
    let client = Client::connect(addr).await.expect("connect after restart");
    for (seq, (_, first)) in unanswered.iter().enumerate() {
        let id = record_id(run, RETRY_SENDER, seq as u64);
        let retry = Sent {
            sent_ms: now_ms(),
            delay_ms: 0,
            stored: None,
            ..first.clone()
        };
        ledger.lock().expect("ledger").sent.insert(id, retry);
        let record = SendRecordWire {
            delay_ms: Some(0),
            dedup_id: first.dedup_id.clone(),
            ..SendRecordWire::new(value_of(id))
        };
        let results = client.send(first.queue, vec![record]).await;
        let result = results.expect("retry send").remove(0);
        match result.status {
            SendStatus::Stored => {
                let mut ledger = ledger.lock().expect("ledger");
                let sent = ledger.sent.get_mut(&id).expect("noted before sending");
                sent.stored = Some((result.partition, result.offset));
            }
            SendStatus::Duplicate => {} // The first copy was stored after all.
            SendStatus::Full => panic!("a queue without limits refused a record: {result:?}"),
        }
    }
    unanswered.len()
}

/// Consumes both queues on the last broker run, without nacks, until every confirmed record
/// is acked (or was in an ack the broker died answering) and both queues hold nothing.
fn drain(rt: &tokio::runtime::Runtime, broker: &BrokerProcess, run: u64, ledger: &SharedLedger) {
    let stop = Arc::new(AtomicBool::new(false));
    let consumers: Vec<_> = [INTERVAL_QUEUE, ALWAYS_QUEUE]
        .into_iter()
        .enumerate()
        .map(|(number, queue)| {
            let role = Role {
                addr: broker.addr.clone(),
                queue,
                run,
                number: number as u64,
                ledger: Arc::clone(ledger),
                seed: 0,
            };
            let how = Consume {
                nack_one_in: 0,
                stop: Arc::clone(&stop),
            };
            rt.spawn(consume(role, how))
        })
        .collect();
    let client = rt.block_on(Client::connect(&broker.addr)).expect("connect");
    let drained = wait_until(Duration::from_secs(60), || {
        all_confirmed_acked(&ledger.lock().expect("ledger")) && rt.block_on(queues_empty(&client))
    });
    stop.store(true, Ordering::SeqCst);
    for consumer in consumers {
        rt.block_on(consumer).expect("a draining consumer panicked");
    }
    let ledger = ledger.lock().expect("ledger");
    let lost: Vec<String> = unacked(&ledger)
        .iter()
        .map(|id| {
            let seen: Vec<&Seen> = ledger.seen.iter().filter(|s| s.id == *id).collect();
            format!("{id:#x}: {:?}, seen {seen:?}", ledger.sent[id])
        })
        .collect();
    assert!(
        drained,
        "not drained within 60 s; confirmed but never acked: {lost:#?}"
    );
}

fn unacked(ledger: &Ledger) -> Vec<u64> {
    let mut ids: Vec<u64> = ledger
        .sent
        .iter()
        .filter(|(id, sent)| sent.stored.is_some() && !ledger.acked.contains_key(id))
        .filter(|(id, _)| !ledger.ack_unanswered.contains(id))
        .map(|(id, _)| *id)
        .collect();
    ids.sort_unstable();
    ids
}

fn all_confirmed_acked(ledger: &Ledger) -> bool {
    unacked(ledger).is_empty()
}

async fn queues_empty(client: &Client) -> bool {
    for queue in [INTERVAL_QUEUE, ALWAYS_QUEUE] {
        let stats = client.queue_stats(queue).await.expect("queue stats");
        if stats.ready + stats.in_flight + stats.delayed + stats.blocked > 0 {
            return false;
        }
    }
    true
}

/// Checks the whole history; see the module docs.
fn check_history(ledger: &Ledger) {
    let mut by_id: HashMap<u64, Vec<Seen>> = HashMap::new();
    for seen in &ledger.seen {
        by_id.entry(seen.id).or_default().push(*seen);
    }
    for (id, seen) in &by_id {
        assert!(
            !ledger.probes.contains(id),
            "record {id:#x} was suppressed as a duplicate, yet delivered"
        );
        let sent = ledger.sent.get(id);
        let sent = sent.unwrap_or_else(|| panic!("record {id:#x} delivered but never sent"));
        check_not_early(*id, sent, seen);
        check_counts_rise(*id, seen, ledger);
        if let Some(acked) = ledger.acked.get(id) {
            check_none_after_ack(*id, *acked, seen);
        }
    }
    for (id, sent) in &ledger.sent {
        assert!(
            sent.stored.is_none() || by_id.contains_key(id),
            "confirmed record {id:#x} was never delivered: {sent:?}"
        );
    }
    check_dedup(ledger, &by_id);
    report(ledger, &by_id);
}

/// Of the records sharing a dedup id (a first copy and its retry), at most one is delivered.
fn check_dedup(ledger: &Ledger, by_id: &HashMap<u64, Vec<Seen>>) {
    let mut delivered: HashMap<&str, Vec<u64>> = HashMap::new();
    for id in by_id.keys() {
        if let Some(dedup_id) = &ledger.sent[id].dedup_id {
            delivered.entry(dedup_id).or_default().push(*id);
        }
    }
    for (dedup_id, ids) in delivered {
        assert!(
            ids.len() == 1,
            "dedup id `{dedup_id}` let several records through: {ids:x?}"
        );
    }
}

/// Says how much of the history crossed a restart, so a run that tested little shows.
fn report(ledger: &Ledger, by_id: &HashMap<u64, Vec<Seen>>) {
    let delivered: usize = by_id.values().map(Vec::len).sum();
    let across = |seen: &Vec<Seen>| seen.windows(2).any(|pair| pair[1].run > pair[0].run);
    let redelivered = by_id.values().filter(|seen| across(seen)).count();
    let delayed_across = by_id
        .iter()
        .filter(|(id, seen)| ledger.sent[*id].delay_ms > 0 && seen[0].run > **id >> 40)
        .count();
    let confirmed = ledger.sent.values().filter(|sent| sent.stored.is_some());
    eprintln!(
        "{} records confirmed, {delivered} deliveries, {} nacks, {} unanswered acks, {} \
         probes; {redelivered} records delivered again after a restart, {delayed_across} \
         delayed records first delivered after one",
        confirmed.count(),
        ledger.nacked.len(),
        ledger.ack_unanswered.len(),
        ledger.probes.len()
    );
}

/// A delayed record is delivered no earlier than its delay after it was sent.
fn check_not_early(id: u64, sent: &Sent, seen: &[Seen]) {
    let due = sent.sent_ms + sent.delay_ms as i64;
    for delivery in seen {
        assert!(
            delivery.observed_ms + SLACK_MS >= due,
            "record {id:#x}, delayed {} ms, was delivered {} ms early (run {})",
            sent.delay_ms,
            due - delivery.observed_ms,
            delivery.run
        );
    }
}

/// Delivery counts only go up, across restarts too (a lease open at a crash counts); within
/// one broker run a record comes back only after its previous delivery was nacked.
fn check_counts_rise(id: u64, seen: &[Seen], ledger: &Ledger) {
    for pair in seen.windows(2) {
        let (before, after) = (pair[0], pair[1]);
        assert!(
            after.deliveries > before.deliveries,
            "record {id:#x}: delivery count went from {} (run {}) to {} (run {})",
            before.deliveries,
            before.run,
            after.deliveries,
            after.run
        );
        let nacked = ledger.nacked.contains(&(id, before.deliveries));
        assert!(
            after.run > before.run || nacked,
            "record {id:#x} was delivered again in run {} without a nack (deliveries {} then {})",
            after.run,
            before.deliveries,
            after.deliveries
        );
    }
}

/// Nothing after a confirmed ack: no later delivery in that run or any later one.
fn check_none_after_ack(id: u64, (run, deliveries): (u64, u32), seen: &[Seen]) {
    for delivery in seen {
        assert!(
            delivery.run <= run && delivery.deliveries <= deliveries,
            "record {id:#x}, acked in run {run} at delivery {deliveries}, was delivered again \
             in run {} (delivery {})",
            delivery.run,
            delivery.deliveries
        );
    }
}

#[test]
fn a_record_whose_last_delivery_was_open_at_a_crash_is_dead_lettered() {
    let data = tempfile::tempdir().expect("temp dir");
    let rt = runtime();
    let broker = BrokerProcess::start(data.path());
    let once = |wait: Duration| ReceiveOptions {
        max: 10,
        wait,
        ..ReceiveOptions::default()
    };
    rt.block_on(async {
        let client = Client::connect(&broker.addr).await.expect("connect");
        let config = QueueConfigWire {
            max_deliveries: Some(2),
            ..queue_config()
        };
        client
            .create_queue("jobs", 1, config)
            .await
            .expect("create");
        let record = SendRecordWire::new(Bytes::from_static(b"work"));
        client.send("jobs", vec![record]).await.expect("send");
        let first = client.receive("jobs", &once(Duration::ZERO)).await;
        let first = first.expect("receive").remove(0);
        client
            .nack("jobs", &first.token, Some(Duration::ZERO), Some("failed"))
            .await
            .expect("nack");
        let second = client.receive("jobs", &once(Duration::ZERO)).await;
        assert_eq!(second.expect("receive")[0].deliveries, 2);
    });
    broker.kill9();

    let restarted = BrokerProcess::start(data.path());
    rt.block_on(async {
        let client = Client::connect(&restarted.addr).await.expect("connect");
        let third = client.receive("jobs", &once(Duration::from_secs(1))).await;
        let third = third.expect("receive");
        assert!(
            third.is_empty(),
            "delivered beyond max_deliveries 2 after the restart: {third:?}"
        );
        let dead = read_partition(&client, "jobs.dlq", 0).await.expect("read");
        assert_eq!(dead.records.len(), 1, "the record is dead-lettered");
        let header = dead.records[0]
            .headers
            .iter()
            .find(|(name, _)| name == "sy-dlq-deliveries");
        assert_eq!(header.map(|(_, value)| &value[..]), Some(&b"2"[..]));
    });
}
