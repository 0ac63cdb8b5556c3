//! Unit tests of the queue state machine.

use super::*;

fn meta(timestamp: i64, key: Option<u64>) -> RecordMeta {
    RecordMeta {
        timestamp,
        size: 10,
        key_hash: key,
        priority: 0,
        due_ms: 0,
        expires_ms: None,
    }
}

fn queue(config: QueueConfig) -> QueueState {
    QueueState::new(config, 1, 42)
}

#[test]
fn unacked_record_returns_after_its_lease_then_dies_after_max_deliveries() {
    let config = QueueConfig {
        visibility_ms: 1_000,
        max_deliveries: 2,
        dead_letter: Some("q.dlq".into()),
        ..QueueConfig::default()
    };
    let mut state = queue(config);
    state.admit((0, 0), meta(0, None), 0, 0);
    let first = state.lease("a", 10, 1_000, Prefetch::default(), 0);
    assert_eq!(first.len(), 1);
    assert!(state
        .lease("b", 10, 1_000, Prefetch::default(), 500)
        .is_empty());
    assert!(state.tick(999).is_empty());
    assert!(state.tick(1_000).is_empty());
    let second = state.lease("b", 10, 1_000, Prefetch::default(), 1_000);
    assert_eq!(second[0].deliveries, 2);
    let doomed = state.tick(2_000);
    assert_eq!(doomed.len(), 1);
    assert_eq!(doomed[0].deliveries, 2);
    assert!(!doomed[0].drop);
    state.complete((0, 0), Completion::DeadLettered, 2_000);
    assert!(state
        .lease("c", 10, 1_000, Prefetch::default(), 2_000)
        .is_empty());
    assert!(state.is_empty());
}

#[test]
fn a_late_token_is_refused_and_the_new_holder_acks() {
    let mut state = queue(QueueConfig::default());
    state.admit((0, 0), meta(0, None), 0, 0);
    let a = state.lease("a", 1, 100, Prefetch::default(), 0).remove(0);
    state.tick(100);
    let b = state.lease("b", 1, 100, Prefetch::default(), 100).remove(0);
    assert_eq!(b.deliveries, 2);
    assert!(matches!(
        state.ack(&a.token, 110),
        Err(TokenError::Expired(_))
    ));
    assert!(state.extend(&a.token, 1_000, 110).is_err());
    assert_eq!(state.ack(&b.token, 120), Ok((0, 0)));
    assert!(state.ack("garbage", 120).is_err());
}

#[test]
fn ordered_queue_keeps_one_record_per_key_out_and_restores_order_after_a_nack() {
    let config = QueueConfig {
        ordered_by_key: true,
        ..QueueConfig::default()
    };
    let mut state = queue(config);
    for offset in 0..3 {
        state.admit((0, offset), meta(offset as i64, Some(7)), 0, 0);
    }
    state.admit((0, 3), meta(3, Some(8)), 0, 0);
    let got = state.lease("a", 10, 1_000, Prefetch::default(), 0);
    let offsets: Vec<u64> = got.iter().map(|lent| lent.pos.1).collect();
    assert_eq!(offsets, vec![0, 3], "one per key");
    assert!(state
        .lease("b", 10, 1_000, Prefetch::default(), 0)
        .is_empty());
    // The head of key 7 is nacked: it, not its successor, comes back first.
    state
        .nack(&got[0].token, Some(0), Some("boom".into()), 1)
        .expect("nack");
    let again = state.lease("b", 10, 1_000, Prefetch::default(), 1);
    assert_eq!(again.iter().map(|l| l.pos.1).collect::<Vec<_>>(), vec![0]);
    state.ack(&again[0].token, 2).expect("ack");
    let next = state.lease("b", 10, 1_000, Prefetch::default(), 2);
    assert_eq!(next.iter().map(|l| l.pos.1).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn prefetch_bounds_what_one_consumer_holds() {
    let mut state = queue(QueueConfig::default());
    for offset in 0..10 {
        state.admit((0, offset), meta(offset as i64, None), 0, 0);
    }
    let limit = Prefetch {
        records: 3,
        bytes: 0,
    };
    assert_eq!(state.lease("a", 10, 1_000, limit, 0).len(), 3);
    assert!(state.lease("a", 10, 1_000, limit, 0).is_empty());
    assert_eq!(state.in_flight_of("a"), (3, 30));
    assert_eq!(state.lease("b", 10, 1_000, limit, 0).len(), 3);
}

#[test]
fn delayed_records_wait_and_priorities_go_first() {
    let mut state = queue(QueueConfig {
        priorities: 3,
        ..QueueConfig::default()
    });
    state.grow_partitions(3);
    state.admit(
        (0, 0),
        RecordMeta {
            priority: 0,
            ..meta(0, None)
        },
        0,
        0,
    );
    state.admit(
        (2, 0),
        RecordMeta {
            priority: 2,
            ..meta(5, None)
        },
        0,
        0,
    );
    state.admit(
        (1, 0),
        RecordMeta {
            priority: 1,
            due_ms: 100,
            ..meta(1, None)
        },
        0,
        0,
    );
    let first = state.lease("a", 1, 1_000, Prefetch::default(), 0);
    assert_eq!(first[0].pos, (2, 0), "highest priority first");
    let second = state.lease("a", 5, 1_000, Prefetch::default(), 0);
    assert_eq!(
        second.iter().map(|l| l.pos).collect::<Vec<_>>(),
        vec![(0, 0)]
    );
    state.tick(100);
    assert_eq!(
        state.lease("a", 5, 1_000, Prefetch::default(), 100)[0].pos,
        (1, 0)
    );
}

#[test]
fn expired_records_die_unless_leased() {
    let config = QueueConfig {
        dead_letter: Some("d".into()),
        ..QueueConfig::default()
    };
    let mut state = queue(config);
    state.admit(
        (0, 0),
        RecordMeta {
            expires_ms: Some(50),
            ..meta(0, None)
        },
        0,
        0,
    );
    let doomed = state.tick(50);
    assert_eq!(doomed[0].cause, DeathCause::Expired);
}

#[test]
fn an_extended_lease_outlives_its_first_deadline() {
    let mut state = queue(QueueConfig::default());
    state.admit((0, 0), meta(0, None), 0, 0);
    let lent = state.lease("a", 1, 100, Prefetch::default(), 0).remove(0);
    state.extend(&lent.token, 1_000, 50).expect("extend");
    assert!(state.tick(100).is_empty());
    assert!(
        state
            .lease("b", 1, 100, Prefetch::default(), 100)
            .is_empty(),
        "the first deadline must not release an extended lease"
    );
    assert_eq!(state.ack(&lent.token, 900), Ok((0, 0)));
}

#[test]
fn tokens_round_trip() {
    let made = token((3, 99), 2, 0xabc);
    assert_eq!(parse_token(&made), Some(((3, 99), 2, 0xabc)));
    assert_eq!(parse_token("1.2.3"), None);
}

#[test]
fn a_record_restored_with_all_its_deliveries_dies_instead_of_going_out_again() {
    let config = QueueConfig {
        max_deliveries: 2,
        dead_letter: Some("q.dlq".into()),
        ..QueueConfig::default()
    };
    let mut state = queue(config);
    // As after a crash during its second lease: the journal says it was delivered twice.
    state.admit((0, 0), meta(0, None), 2, 10);
    assert!(state
        .lease("a", 10, 1_000, Prefetch::default(), 10)
        .is_empty());
    let doomed = state.tick(10);
    assert_eq!(doomed.len(), 1);
    assert_eq!(doomed[0].cause, DeathCause::MaxDeliveries);
    assert_eq!(doomed[0].deliveries, 2);
}
